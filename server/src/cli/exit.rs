//! Exit codes of `tenure`, and the failure every command can end with.
//!
//! The full table, with `run`'s codes, is the help of `tenure run` (the doc comment of
//! [`crate::args::RunArgs`]). In short: 0 done, 1 `kv get` found no key (like `grep`), 120 lease
//! lost, 124 lock not obtained within `--wait`, 125 tenure itself failed, 126/127 `run`'s command
//! could not be executed / was not found, 128+N a signal.
//!
//! Unparseable flags exit 125 too, not clap's usual 2, so that `tenure run` never reports its
//! own usage error with a code the command could have returned.

/// The key asked for does not exist.
pub const NOT_FOUND: u8 = 1;
/// The lease was lost while it was needed.
pub const LEASE_LOST: u8 = 120;
/// The lock was not obtained within `--wait`.
pub const TIMEOUT: u8 = 124;
/// tenure itself failed.
pub const FAILED: u8 = 125;
/// The command could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;

/// Why a command failed: a stable code (the core's codes, plus `NOT_FOUND` for a missing key),
/// a message for humans, the offending field when there is one, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    pub exit: u8,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>, exit: u8) -> Failure {
        Failure { code: code.to_string(), message: message.into(), field: None, exit }
    }
}

impl From<tenure::Error> for Failure {
    fn from(e: tenure::Error) -> Failure {
        let exit = match e.code() {
            "TIMEOUT" => TIMEOUT,
            "LEASE_LOST" => LEASE_LOST,
            _ => FAILED,
        };
        let field = match &e {
            tenure::Error::InvalidArgument { field, .. } if !field.is_empty() => Some(field.clone()),
            _ => None,
        };
        Failure { code: e.code().to_string(), message: e.to_string(), field, exit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_code_and_pick_the_exit_code() {
        let f = Failure::from(tenure::Error::Timeout("busy".into()));
        assert_eq!((f.code.as_str(), f.exit), ("TIMEOUT", TIMEOUT));
        let f = Failure::from(tenure::Error::LeaseLost("gone".into()));
        assert_eq!((f.code.as_str(), f.exit), ("LEASE_LOST", LEASE_LOST));
        let f = Failure::from(tenure::Error::Unavailable("no node".into()));
        assert_eq!((f.code.as_str(), f.message.as_str(), f.exit), ("UNAVAILABLE", "no node", FAILED));
        let f = Failure::from(tenure::Error::FencedOut("stale".into()));
        assert_eq!((f.code.as_str(), f.field, f.exit), ("FENCED_OUT", None, FAILED));
        let f = Failure::from(tenure::Error::InvalidArgument { field: "ttl_ms".into(), message: "too short".into() });
        assert_eq!((f.code.as_str(), f.field.as_deref(), f.exit), ("INVALID_ARGUMENT", Some("ttl_ms"), FAILED));
    }
}

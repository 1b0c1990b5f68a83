//! The command line: global flags, subcommands and their options (clap derive). Parsing checks
//! what the CLI can check alone (durations have units, TTLs are positive, lock names are not
//! empty); the cluster checks the rest (TTL minimum, name length, lock-delay cap).

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration;
use crate::output::Format;

/// Client of tenure, a distributed lock service with fencing tokens and FIFO-fair waiting.
///
/// Durations take a unit: 500ms, 30s, 1m, 2h (or sums: 1m30s); a bare number is refused.
/// Times print as RFC 3339 in UTC with milliseconds, in text and JSON alike; JSON gives
/// durations as integer milliseconds (`*_ms`) and fencing tokens as numbers.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Errors go to stderr as `tenure: CODE: message` (with --output json: {\"error\": {\"code\", \"message\"}})
and exit 125, or 124 for TIMEOUT and 120 for LEASE_LOST; bad flags exit 125 too. `kv get` of a missing
key exits 1, like grep. `tenure run --help` lists every exit code.
Logs of the client library: TENURE_LOG=debug (default: error).";

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Nodes to talk to, comma-separated `host:port` or `http(s)://host:port` (one is enough;
    /// the client finds the leader). Default: http://127.0.0.1:7070.
    #[arg(long, global = true, env = "TENURE_ENDPOINTS", value_delimiter = ',', value_name = "ENDPOINTS")]
    pub endpoints: Vec<String>,
    /// Output format: human-readable aligned text, or one JSON document per command.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Deadline of one call to the cluster, retries included (lock waits come on top).
    #[arg(long, global = true, default_value = "5s", value_parser = duration::parse_positive, value_name = "DURATION")]
    pub timeout: Duration,
    /// Owner recorded with the leases taken (shown by `describe`). Default: hostname:pid.
    #[arg(long, global = true, value_name = "TEXT")]
    pub owner: Option<String>,
    /// CA certificate (PEM) of a cluster that serves TLS; endpoints without a scheme then use https.
    #[arg(long, global = true, env = "TENURE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Bearer token for a cluster that requires one (`tenured --auth-config`).
    #[arg(long, global = true, env = "TENURE_AUTH_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Acquire(AcquireArgs),
    /// Release a lease by request id (e.g. one taken by `tenure acquire`), or withdraw a waiting
    /// request. Idempotent: prints whether it was held.
    Release {
        #[arg(value_parser = lock_name)]
        name: String,
        request_id: String,
    },
    ForceRelease(ForceReleaseArgs),
    /// Show a lock's holders (owner, token, mode, times), its waiters in order, and its limit.
    Describe {
        #[arg(value_parser = lock_name)]
        name: String,
    },
    /// List the locks whose names start with PREFIX (all locks without one).
    List {
        prefix: Option<String>,
    },
    Watch(WatchArgs),
    /// The replicated key/value store; writes can be fenced by a lock's token.
    #[command(subcommand)]
    Kv(KvCommand),
    /// The cluster's members, leader and log progress.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// Print committed lock events as they happen, until interrupted
///
/// One line per event: log index, kind (QUEUED, GRANTED, RELEASED, EXPIRED, CANCELLED), lock
/// name, request id, token and owner, and `forced` for a hold an admin force-released; with --output json, one JSON object per line. Watches every
/// lock whose name starts with PREFIX (every lock without one). Reconnects to another node by
/// itself when its node fails, without losing or repeating events.
#[derive(Debug, Args)]
pub struct WatchArgs {
    pub prefix: Option<String>,
    /// Watch exactly this lock instead of a prefix.
    #[arg(long, conflicts_with = "prefix", value_parser = lock_name, value_name = "NAME")]
    pub name: Option<String>,
    /// Start at this log index (to replay history or resume) instead of at the next event.
    #[arg(long, value_name = "INDEX")]
    pub from: Option<u64>,
}

/// Admin: release a hold on its holder's behalf, or every holder's
///
/// For a holder that is stuck but still renewing. Its renewals fail at once, so its client
/// learns at its next renewal that the lease is gone; the next waiters are granted in order
/// (with higher fencing tokens) once the released holds' TTL (or lock-delay) has passed, or at
/// once with --immediate. Waiters are never released. Idempotent: releasing what
/// is already gone prints that nothing was released. The leader logs an audit line. Once the
/// cluster requires auth, this needs a token with the `admin` right.
#[derive(Debug, Args)]
pub struct ForceReleaseArgs {
    /// The lock's name (1..=512 bytes).
    #[arg(value_parser = lock_name)]
    pub name: String,
    #[command(flatten)]
    pub target: ForceReleaseTarget,
    /// Grant the next waiters at once. By default the lock first waits out the released holds'
    /// TTL (or lock-delay, if longer), so an old holder that is still running has learned it
    /// lost the lease before anyone else gets it; with --immediate only fencing tokens protect
    /// the resource until its next renewal.
    #[arg(long)]
    pub immediate: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ForceReleaseTarget {
    /// Release the hold of this request id (see `tenure describe`); a queued one is refused.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Release every current holder (waiters stay queued).
    #[arg(long)]
    pub all: bool,
}

/// Run a command while holding a lock; kill it if the lease is lost
///
/// Acquires NAME (waiting until granted unless --wait is given; --wait 0s tries once), then
/// runs CMD in its own process group with TENURE_LOCK=NAME and TENURE_TOKEN=<fencing token> in
/// its environment, and keeps the lease alive while CMD runs. SIGINT, SIGTERM and SIGHUP sent
/// to tenure are forwarded to CMD's process group. When CMD exits, the lock is released and
/// tenure exits with CMD's code. If the lease is lost (the cluster cannot confirm a renewal
/// within 90% of the TTL), CMD's process group is killed with SIGKILL at once.
///
/// If no node answers within --timeout at the start, tenure exits 125 (UNAVAILABLE); once the
/// cluster has answered, waiting rides out elections and node failures. CMD's descendants that
/// leave its process group, or outlive it, are not covered by the lock; nor is CMD itself if
/// tenure is killed with SIGKILL (its lease then expires after the TTL).
///
/// Exit codes:
///   0-119     CMD's own exit code
///   120       the lease was lost: CMD was killed
///   121-123   CMD's own exit code
///   124       the lock was not obtained within --wait
///   125       tenure itself failed: bad arguments or flags, cluster unavailable, a refusal
///             (the message gives the error code, e.g. UNAVAILABLE, INVALID_ARGUMENT)
///   126       CMD was found but could not be executed
///   127       CMD was not found
///   128+N     CMD died from signal N; or tenure got signal N (SIGHUP 129, SIGINT 130,
///             SIGTERM 143) while waiting for the lock, and withdrew its request
///   other     CMD's own exit code
/// A CMD that itself exits 120 or 124-127 is told apart by the message tenure prints on stderr
/// for its own codes.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The lock's name (1..=512 bytes).
    #[arg(value_parser = lock_name)]
    pub name: String,
    #[command(flatten)]
    pub lock: LockOptions,
    /// The command and its arguments (after `--`, or after NAME and the options).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Take a lock and print the lease (name, token, request id, owner, TTL, expiry).
///
/// Without --hold, the lease is left to its TTL: nothing renews it, and `tenure release NAME
/// REQUEST_ID` frees it early. With --hold, tenure keeps it alive until SIGINT, SIGTERM or
/// SIGHUP, then releases it and exits 0 (120 if it was lost meanwhile). Exits 124 when the lock
/// is not obtained within --wait.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The lock's name (1..=512 bytes).
    #[arg(value_parser = lock_name)]
    pub name: String,
    #[command(flatten)]
    pub lock: LockOptions,
    /// Keep the lease alive until SIGINT, SIGTERM or SIGHUP, then release it.
    #[arg(long)]
    pub hold: bool,
}

/// How to take a lock (`run` and `acquire`).
#[derive(Debug, Args)]
pub struct LockOptions {
    /// The lease's time to live; tenure renews it every third of it.
    #[arg(long, default_value = "30s", value_parser = duration::parse_positive, value_name = "DURATION")]
    pub ttl: Duration,
    /// How long to wait for the lock. Default: until granted; 0s tries once.
    #[arg(long, value_parser = duration::parse, value_name = "DURATION")]
    pub wait: Option<Duration>,
    /// Take the lock SHARED (readers, or a semaphore with --limit) instead of EXCLUSIVE.
    #[arg(long)]
    pub shared: bool,
    /// With --shared: at most N holders at once (0 = unlimited).
    #[arg(long, requires = "shared", default_value_t = 0, value_name = "N")]
    pub limit: u32,
    /// After this lease expires (not after a release), nobody gets the lock for this long.
    #[arg(long, default_value = "0s", value_parser = duration::parse, value_name = "DURATION")]
    pub lock_delay: Duration,
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print the value at KEY. Exits 1 (with a message on stderr) when there is none.
    Get { key: String },
    /// Write VALUE at KEY, only if the fence (when given) is a current hold of its lock.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        fence: FenceArgs,
    },
    /// Delete KEY, only if the fence (when given) is a current hold of its lock. Prints whether
    /// it existed.
    #[command(visible_alias = "delete")]
    Del {
        key: String,
        #[command(flatten)]
        fence: FenceArgs,
    },
    /// List the keys starting with PREFIX, with their values.
    List { prefix: Option<String> },
}

/// A fence on a KV write: it applies only while TOKEN is a current hold of lock NAME, and fails
/// with FENCED_OUT otherwise.
#[derive(Debug, Args)]
pub struct FenceArgs {
    /// The lock whose token fences the write.
    #[arg(long, requires = "fence_token", value_parser = lock_name, value_name = "NAME")]
    pub fence_lock: Option<String>,
    /// The fencing token that must still hold --fence-lock.
    #[arg(long, requires = "fence_lock", value_name = "N")]
    pub fence_token: Option<u64>,
}

impl FenceArgs {
    pub fn fence(&self) -> Option<tenure::Fence> {
        match (&self.fence_lock, self.fence_token) {
            (Some(name), Some(token)) => Some(tenure::Fence::new(name.clone(), token)),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The answering node's view: members and roles, leader, term, commit and applied index.
    Status,
    /// Admin: add a node as a learner, wait for it to catch up, then make it a voter
    ///
    /// Start the node first with `--initial-cluster-state existing` and an empty data
    /// directory. Idempotent: adding a voter again at the same address changes nothing. If the
    /// node does not catch up within 60 s it stays a learner: repeat the command, or remove it.
    /// Once the cluster requires auth, this needs a token with the `admin` right.
    Add(AddMemberArgs),
    /// Admin: remove a node (voter or learner) from the cluster
    ///
    /// Refused (QUORUM_AT_RISK) when the voters left would not include a quorum of members
    /// that answer the leader now, or none would be left; --force removes it anyway. The
    /// leader may remove itself (it steps down). Stop the removed node's process afterwards;
    /// to bring it back, wipe its data directory and add it again. Once the cluster requires
    /// auth, this needs a token with the `admin` right.
    Remove(RemoveMemberArgs),
}

#[derive(Debug, Args)]
pub struct AddMemberArgs {
    /// The new node's id (its --id; not 0).
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// The host:port it serves gRPC on (its --advertise).
    pub grpc_addr: String,
    /// The host:port of its HTTP API (its --http); without it the leader asks the node.
    #[arg(long, value_name = "ADDR", default_value = "")]
    pub http: String,
}

#[derive(Debug, Args)]
pub struct RemoveMemberArgs {
    /// The node's id.
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// Remove it even if the voters left would not include a quorum of live members.
    #[arg(long)]
    pub force: bool,
}

/// A lock name as given on the command line: not empty (the cluster checks the length).
fn lock_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the lock name must not be empty (1..=512 bytes)".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tenure").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_options() {
        let cli = parse(&["--endpoints", "a:1,b:2", "run", "job", "--ttl", "2s", "--", "sh", "-c", "exit 7"]).unwrap();
        assert_eq!(cli.global.endpoints, ["a:1", "b:2"]);
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.name, "job");
        assert_eq!(run.lock.ttl, Duration::from_secs(2));
        assert_eq!(run.lock.wait, None);
        assert_eq!(run.command, ["sh", "-c", "exit 7"].map(OsString::from));
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let e = parse(&["acquire", "job", "--ttl", "5"]).unwrap_err().to_string();
        assert!(e.contains("--ttl") && e.contains("no unit"), "{e}");
        let e = parse(&["acquire", "job", "--ttl", "0s"]).unwrap_err().to_string();
        assert!(e.contains("--ttl") && e.contains("more than zero"), "{e}");
        let e = parse(&["describe", ""]).unwrap_err().to_string();
        assert!(e.contains("<NAME>") && e.contains("must not be empty"), "{e}");
        let e = parse(&["acquire", "job", "--limit", "3"]).unwrap_err().to_string();
        assert!(e.contains("--shared"), "{e}");
        let e = parse(&["kv", "put", "k", "v", "--fence-token", "3"]).unwrap_err().to_string();
        assert!(e.contains("--fence-lock"), "{e}");
        let e = parse(&["cluster", "add", "0", "a:1"]).unwrap_err().to_string();
        assert!(e.contains("<ID>"), "{e}");
        let e = parse(&["cluster", "remove", "x"]).unwrap_err().to_string();
        assert!(e.contains("<ID>"), "{e}");
    }
}

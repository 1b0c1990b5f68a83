//! Seeded bugs, for proving that the chaos suite catches what DESIGN §3–4 forbids.
//!
//! Compiled in only with the test-only cargo feature `buggy`; without it [`active`] is a
//! constant `false` and every seeded branch is dead code the compiler removes. With it, the
//! environment variable `TENURE_BUGGY` picks at most one bug for the whole process (read once);
//! `tenured` refuses to start on an unknown name and warns loudly when one is active.
//! `tenure-chaos seeded` runs one deterministic scenario per bug and asserts the checker reports
//! it (docs/RELIABILITY.md).

/// A seeded bug in the server. (The sixth, the client bound taken at receipt, is in the core.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A renewal is acknowledged without any quorum round, so a deposed leader keeps renewing.
    RenewWithoutRound,
    /// A renewal rides the last successful round if that round started less than
    /// [`STALE_ROUND`] before the renewal arrived, instead of waiting for a round that starts
    /// after it.
    RenewRidesEarlierRound,
    /// A new leader gives no grace: it counts every lease as already run out.
    NoLeaderGrace,
    /// An Acquire whose request_id already finished (released, expired, cancelled) is granted
    /// again as a new request.
    AcquireAfterRelease,
    /// A grant passes over the queue's head to the newest waiter.
    GrantSkipsFifoHead,
}

impl Bug {
    pub const ALL: [Bug; 5] = [
        Bug::RenewWithoutRound,
        Bug::RenewRidesEarlierRound,
        Bug::NoLeaderGrace,
        Bug::AcquireAfterRelease,
        Bug::GrantSkipsFifoHead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::RenewWithoutRound => "renew-without-round",
            Bug::RenewRidesEarlierRound => "renew-rides-earlier-round",
            Bug::NoLeaderGrace => "no-leader-grace",
            Bug::AcquireAfterRelease => "acquire-after-release",
            Bug::GrantSkipsFifoHead => "grant-skips-fifo-head",
        }
    }
}

/// How old a round [`Bug::RenewRidesEarlierRound`] still rides.
pub const STALE_ROUND: std::time::Duration = std::time::Duration::from_millis(2000);

/// The variable that selects a bug.
pub const ENV: &str = "TENURE_BUGGY";

#[cfg(feature = "buggy")]
mod selector {
    use std::sync::OnceLock;

    use super::{Bug, ENV};

    static SELECTED: OnceLock<Option<Bug>> = OnceLock::new();

    /// The selected server bug; `Ok(None)` when `TENURE_BUGGY` is unset, empty or names the
    /// core's bug (`bound-from-receipt`, harmless here).
    pub fn selected() -> Result<Option<Bug>, String> {
        let name = std::env::var(ENV).unwrap_or_default();
        if name.is_empty() || name == "bound-from-receipt" {
            return Ok(None);
        }
        Bug::ALL.into_iter().find(|b| b.name() == name).map(Some).ok_or_else(|| {
            let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("{ENV}={name:?} names no seeded bug; known: {}, bound-from-receipt", names.join(", "))
        })
    }

    pub fn active(bug: Bug) -> bool {
        *SELECTED.get_or_init(|| selected().ok().flatten()) == Some(bug)
    }
}

/// Whether `bug` is the seeded bug of this process.
#[cfg(feature = "buggy")]
pub fn active(bug: Bug) -> bool {
    selector::active(bug)
}

/// Whether `bug` is the seeded bug of this process: never, in a build without `buggy`.
#[cfg(not(feature = "buggy"))]
#[inline(always)]
pub fn active(_bug: Bug) -> bool {
    false
}

/// Checks `TENURE_BUGGY` at startup: an error for an unknown name, and the active bug's name.
#[cfg(feature = "buggy")]
pub fn check_selection() -> Result<Option<&'static str>, String> {
    selector::selected().map(|b| b.map(Bug::name))
}

/// Checks `TENURE_BUGGY` at startup: a build without `buggy` ignores it.
#[cfg(not(feature = "buggy"))]
pub fn check_selection() -> Result<Option<&'static str>, String> {
    Ok(None)
}

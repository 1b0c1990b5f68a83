//! The history checker: turns what one run recorded ([`History`]) into a [`Report`] of
//! violations of the lock-safety criteria and the counts the run report prints.
//!
//! Each criterion is one function in its own file, with its own tests; [`check`] runs them all.
//! Client operations are judged in real time (L1 linearizable, L1 exclusive holds); the
//! committed events the nodes reported are merged into one stream in log order and judged on
//! their own (L1 committed exclusion, L2, L6 including FIFO order, L7) and against the clients' acknowledgements (L3,
//! L5).

mod acked;
mod committed;
mod double_grant;
mod events;
mod fence;
mod fifo;
mod holds;
mod linearizable;
mod log_time;
mod mutex_model;
mod still_held;
mod wgl;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod testkit;

use std::fmt;

use crate::history::{AcquireResult, History, Op, PutResult, ReleaseResult};

/// Violations kept per check name; a badly broken run would otherwise print thousands.
const MAX_REPORTED_PER_CHECK: usize = 50;

/// The default search budget per lock: a correct history of a few thousand ops with a dozen
/// in flight takes a few steps per op, and the cache (at most one ~50-byte entry per step)
/// stays near 100 MB.
pub const DEFAULT_MAX_STEPS_PER_LOCK: u64 = 2_000_000;

/// One broken criterion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Starts with the criterion, e.g. `"L1 linearizable"`, `"L2 tokens"`, `"E nodes disagree"`.
    pub check: &'static str,
    /// The lock concerned, when there is one.
    pub lock: Option<String>,
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(check: &'static str, lock: Option<&str>, detail: String) -> Violation {
        Violation { check, lock: lock.map(str::to_owned), detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lock {
            Some(lock) => write!(f, "[{}] lock {lock:?}: {}", self.check, self.detail),
            None => write!(f, "[{}] {}", self.check, self.detail),
        }
    }
}

/// What the run promises, and how hard to look.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// After the run every client released and closed, so every granted hold must have ended
    /// (an end event) in the merged events.
    pub expect_all_ended: bool,
    /// WGL search budget per lock (number of search steps); exceeding it gives an `inconclusive`
    /// entry.
    pub max_steps_per_lock: u64,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions { expect_all_ended: false, max_steps_per_lock: DEFAULT_MAX_STEPS_PER_LOCK }
    }
}

/// The verdict on one run.
#[derive(Clone, Debug)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Locks whose linearizability search ran out of budget (reported, and the runner fails on
    /// them).
    pub inconclusive: Vec<String>,
    pub stats: Stats,
}

impl Report {
    /// No violation and every search finished.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.inconclusive.is_empty()
    }
}

/// How the recorded acquires ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcquireCounts {
    pub granted: usize,
    pub busy: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// How the recorded releases ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReleaseCounts {
    /// `Done { was_held: true }`.
    pub held: usize,
    /// `Done { was_held: false }`.
    pub not_held: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// How the recorded fenced puts ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutCounts {
    pub accepted: usize,
    pub fenced_out: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// Counts for the run report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub acquires: AcquireCounts,
    pub releases: ReleaseCounts,
    pub puts: PutCounts,
    /// Operations whose outcome the client could not know (result `Unknown`, or no return).
    pub unknown_ops: usize,
    pub holds: usize,
    /// Distinct events after merging every node's report.
    pub merged_events: usize,
    /// `Granted` events in the merged stream.
    pub grants: usize,
    /// The highest log index any node reported (0 when none did).
    pub events_max_index: u64,
    /// Whether the nodes' reports together cover every index in `1..=events_max_index`. When
    /// false, L3 and the token-in-hold half of L5 are skipped, and L1 committed exclusion and
    /// L6 only judge what the covered ranges can show.
    pub events_complete: bool,
    /// The index ranges no node covered.
    pub events_uncovered: Vec<(u64, u64)>,
    /// End events the committed walk could not judge, because the hold began in an uncovered
    /// range.
    pub unchecked_end_events: usize,
    /// Locks the linearizability search ran on.
    pub locks_searched: usize,
    /// Search steps over all locks.
    pub search_steps: u64,
}

/// Runs every check on `history`.
pub fn check(history: &History, opts: &CheckOptions) -> Report {
    let mut violations = Vec::new();
    let mut inconclusive = Vec::new();
    let mut stats = count_ops(history);
    stats.holds = history.holds.len();

    let merged = events::merge(&history.events, &mut violations);
    stats.merged_events = merged.events.len();
    stats.grants = merged.events.iter().filter(|e| e.kind == crate::history::EventKind::Granted).count();
    stats.events_max_index = merged.max_index;
    stats.events_complete = merged.complete;
    stats.events_uncovered = merged.uncovered.clone();

    let search = linearizable::check_linearizable(
        history,
        &merged.events,
        merged.complete,
        opts.max_steps_per_lock,
        &mut violations,
    );
    inconclusive.extend(search.inconclusive);
    stats.locks_searched = search.locks;
    stats.search_steps = search.steps;

    holds::check_exclusive_holds(&history.holds, &mut violations);
    stats.unchecked_end_events = committed::check_committed(&merged, &mut violations);
    double_grant::check_double_grant(&merged.events, &mut violations);
    fifo::check_fifo(&merged.events, merged.complete, &mut violations);
    if merged.complete {
        acked::check_acked(&history.ops, &merged.events, &mut violations);
    }
    if opts.expect_all_ended {
        still_held::check_still_held(&merged, &mut violations);
    }
    fence::check_fence(&history.ops, &merged, &mut violations);

    Report { violations: cap_per_check(violations), inconclusive, stats }
}

fn count_ops(history: &History) -> Stats {
    let mut stats = Stats::default();
    for op in &history.ops {
        let (unknown_result, ret) = match op {
            Op::Acquire { result, ret, .. } => {
                let c = &mut stats.acquires;
                match result {
                    AcquireResult::Granted { .. } => c.granted += 1,
                    AcquireResult::Busy => c.busy += 1,
                    AcquireResult::Failed { .. } => c.failed += 1,
                    AcquireResult::Unknown => c.unknown += 1,
                }
                (*result == AcquireResult::Unknown, ret)
            }
            Op::Release { result, ret, .. } => {
                let c = &mut stats.releases;
                match result {
                    ReleaseResult::Done { was_held: true } => c.held += 1,
                    ReleaseResult::Done { was_held: false } => c.not_held += 1,
                    ReleaseResult::Failed { .. } => c.failed += 1,
                    ReleaseResult::Unknown => c.unknown += 1,
                }
                (*result == ReleaseResult::Unknown, ret)
            }
            Op::FencedPut { result, ret, .. } => {
                let c = &mut stats.puts;
                match result {
                    PutResult::Accepted { .. } => c.accepted += 1,
                    PutResult::FencedOut => c.fenced_out += 1,
                    PutResult::Failed { .. } => c.failed += 1,
                    PutResult::Unknown => c.unknown += 1,
                }
                (*result == PutResult::Unknown, ret)
            }
        };
        if unknown_result || ret.is_none() {
            stats.unknown_ops += 1;
        }
    }
    stats
}

/// Keeps the first [`MAX_REPORTED_PER_CHECK`] violations of each check and says how many more
/// there were.
fn cap_per_check(violations: Vec<Violation>) -> Vec<Violation> {
    let mut seen: Vec<(&'static str, usize)> = Vec::new();
    let mut kept = Vec::new();
    for v in violations {
        let n = match seen.iter_mut().find(|(name, _)| *name == v.check) {
            Some((_, n)) => n,
            None => {
                seen.push((v.check, 0));
                let last = seen.len() - 1;
                &mut seen[last].1
            }
        };
        *n += 1;
        if *n <= MAX_REPORTED_PER_CHECK {
            kept.push(v);
        }
    }
    for (check, n) in seen {
        if n > MAX_REPORTED_PER_CHECK {
            let more = n - MAX_REPORTED_PER_CHECK;
            kept.push(Violation::new(check, None, format!("… and {more} more violations of this check not listed")));
        }
    }
    kept
}

/// A time for messages: `1.234s`, or `∞` for an operation that never returned.
pub(crate) fn show_at(at: Option<crate::history::At>) -> String {
    match at {
        Some(at) => format!("{:.3}s", at.as_secs_f64()),
        None => "∞".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    #[test]
    fn a_clean_history_passes_and_is_counted() {
        let history = History {
            ops: vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                acquire(2, "a", "r2", 5, Some(8), AcquireResult::Busy),
                put(1, "a", "k", 1, 12, Some(14), PutResult::Accepted { revision: 2 }),
                release(1, "a", "r1", 20, Some(30), held()),
                put(1, "a", "k", 1, 40, Some(44), PutResult::FencedOut),
                acquire(3, "b", "r3", 0, None, AcquireResult::Unknown),
            ],
            holds: vec![hold(1, "a", "r1", 1, 10, 20)],
            events: vec![node(
                1,
                1,
                3,
                vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Queued, "b", "x", 0), ev(3, 0, Released, "a", "r1", 1)],
            )],
        };
        let report = check(&history, &CheckOptions { expect_all_ended: true, ..CheckOptions::default() });
        assert!(report.passed(), "{:#?}", report.violations);
        let s = &report.stats;
        assert_eq!(s.acquires, AcquireCounts { granted: 1, busy: 1, failed: 0, unknown: 1 });
        assert_eq!(s.releases.held, 1);
        assert_eq!((s.puts.accepted, s.puts.fenced_out), (1, 1));
        assert_eq!(s.unknown_ops, 1);
        assert_eq!((s.holds, s.merged_events, s.grants), (1, 3, 1));
        assert!(s.events_complete);
        assert_eq!(s.locks_searched, 2);
    }

    #[test]
    fn many_violations_of_one_check_are_capped_with_a_summary() {
        let violations = (0..MAX_REPORTED_PER_CHECK + 7)
            .map(|i| Violation::new("L7 double grant", None, format!("{i}")))
            .chain(std::iter::once(Violation::new("L2 tokens", None, "x".to_owned())))
            .collect();
        let kept = cap_per_check(violations);
        assert_eq!(kept.len(), MAX_REPORTED_PER_CHECK + 2);
        assert!(kept.iter().any(|v| v.check == "L2 tokens"));
        assert!(kept.last().is_some_and(|v| v.detail.contains("7 more")));
    }
}

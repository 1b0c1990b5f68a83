//! "L1 linearizable": each lock's recorded acquires and releases, with the committed ends no
//! recorded release explains (expiries, the client core's own releases), must be explainable by
//! a fenced mutex taking effect in an order that respects real time (an op that returned before
//! another was called takes effect first).
//!
//! Locks are independent (P-compositionality), so each lock is searched on its own; the
//! search itself is in [`super::wgl`] and the model in [`super::mutex_model`].

use std::collections::BTreeMap;

use super::log_time::LogTime;
use super::mutex_model::{LockHistory, MutexState, Origin};
use super::wgl::{self, Stuck, Verdict};
use super::{show_at, Violation};
use crate::history::{AcquireResult, Event, History, Op, ReleaseResult};

const CHECK: &str = "L1 linearizable";

/// What the searches cost.
#[derive(Clone, Debug, Default)]
pub(crate) struct SearchSummary {
    pub locks: usize,
    pub steps: u64,
    /// Locks whose search ran out of budget.
    pub inconclusive: Vec<String>,
}

pub(crate) fn check_linearizable(
    history: &History,
    events: &[Event],
    events_complete: bool,
    max_steps: u64,
    out: &mut Vec<Violation>,
) -> SearchSummary {
    type PerLock<'a> = (Vec<usize>, Vec<(usize, &'a Event)>);
    let mut locks: BTreeMap<&str, PerLock> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if let Op::Acquire { lock, .. } | Op::Release { lock, .. } = op {
            locks.entry(lock).or_default().0.push(i);
        }
    }
    for (i, e) in events.iter().enumerate() {
        if let Some((_, evs)) = locks.get_mut(e.lock.as_str()) {
            evs.push((i, e));
        }
    }

    let log_time = LogTime::new(&history.ops, events);
    let mut summary = SearchSummary::default();
    for (lock, (ops, evs)) in locks {
        let h = LockHistory::build(&history.ops, &ops, &evs, events_complete, &log_time);
        let outcome = wgl::search(&h, &h.intervals, max_steps);
        summary.locks += 1;
        summary.steps += outcome.steps;
        match outcome.verdict {
            Verdict::Linearizable => {}
            Verdict::Inconclusive => summary.inconclusive.push(lock.to_owned()),
            Verdict::NotLinearizable(stuck) => {
                out.push(Violation::new(CHECK, Some(lock), explain(history, events, &h, ops.len(), &stuck)))
            }
        }
    }
    summary
}

/// The longest linearizable prefix the search found, and the op it could not fit after it.
fn explain(history: &History, events: &[Event], h: &LockHistory, recorded: usize, stuck: &Stuck<MutexState>) -> String {
    let describe = |op: usize| match h.origins[op] {
        Origin::Op(i) => describe_op(&history.ops[i]),
        Origin::Event(i) => events.get(i).map_or_else(String::new, |e| {
            format!("committed {:?} of {:?} (token {}) at index {}", e.kind, e.request_id, e.token, e.index)
        }),
    };
    let tail: Vec<String> = stuck.tail.iter().map(|&op| describe(op)).collect();
    let prefix = if tail.is_empty() { String::new() } else { format!(", the last of them: {}", tail.join("; ")) };
    format!(
        "no linearization of {} ops ({recorded} recorded, no-ops left out). The longest linearizable prefix has {} ops{prefix}. \
         Then {} cannot take effect in time: the lock is {}",
        h.steps.len(),
        stuck.linearized,
        describe(stuck.op),
        describe_state(h, &stuck.state)
    )
}

fn describe_state(h: &LockHistory, s: &MutexState) -> String {
    let rid = |r: u32| h.rids.get(r as usize).map_or("?", String::as_str);
    match s.holder {
        None => format!("free (last token {})", s.last_token),
        Some((r, Some(t))) => format!("held by {:?} with token {t}", rid(r)),
        Some((r, None)) => format!("held by {:?} (token unknown, last token >= {})", rid(r), s.last_token),
    }
}

/// One recorded op for a message: `client 3 acquire "r1" [0.100s, 0.250s] -> Granted { token: 4 }`.
pub(crate) fn describe_op(op: &Op) -> String {
    let (what, client, rid, call, ret, result) = match op {
        Op::Acquire { client, request_id, call, ret, result, .. } => {
            let r = match result {
                AcquireResult::Granted { token } => format!("granted token {token}"),
                other => format!("{other:?}"),
            };
            ("acquire", client, request_id, call, ret, r)
        }
        Op::Release { client, request_id, call, ret, result, .. } => {
            let r = match result {
                ReleaseResult::Done { was_held } => format!("done, was_held = {was_held}"),
                other => format!("{other:?}"),
            };
            ("release", client, request_id, call, ret, r)
        }
        Op::FencedPut { client, key, call, ret, result, .. } => {
            ("fenced put", client, key, call, ret, format!("{result:?}"))
        }
    };
    format!("client {client} {what} {rid:?} [{}, {}] -> {result}", show_at(Some(*call)), show_at(*ret))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;
    use crate::history::NodeEvents;

    /// No events: the log is unknown. Some events: one node reported the whole log.
    fn run(ops: Vec<Op>, events: Vec<Event>) -> (Vec<Violation>, SearchSummary) {
        let nodes = if events.is_empty() { vec![] } else { vec![NodeEvents { node: 1, from: 1, to: 100, events }] };
        let history = History { ops, holds: vec![], events: nodes };
        let merged = super::super::events::merge(&history.events, &mut Vec::new());
        let mut out = Vec::new();
        let summary = check_linearizable(&history, &merged.events, merged.complete, 100_000, &mut out);
        assert!(summary.inconclusive.is_empty());
        (out, summary)
    }

    fn passes(ops: Vec<Op>, events: Vec<Event>) {
        let (out, _) = run(ops, events);
        assert!(out.is_empty(), "{out:#?}");
    }

    fn fails(ops: Vec<Op>, events: Vec<Event>) -> String {
        let (out, _) = run(ops, events);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].check, CHECK);
        out[0].detail.clone()
    }

    #[test]
    fn a_sequence_of_holds_passes() {
        passes(
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                acquire(2, "a", "r2", 5, Some(8), AcquireResult::Busy),
                release(1, "a", "r1", 20, Some(30), held()),
                acquire(2, "a", "r3", 25, Some(40), granted(3)), // granted while r1's release was in flight
                release(1, "a", "r1", 45, Some(50), not_held()),
                release(2, "a", "r3", 60, Some(70), held()),
                acquire(3, "b", "r4", 0, Some(10), granted(2)), // another lock, another search
            ],
            vec![],
        );
    }

    #[test]
    fn two_overlapping_grants_are_not_linearizable() {
        let detail = fails(
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                acquire(2, "a", "r2", 20, Some(30), granted(2)),
                release(1, "a", "r1", 40, Some(50), held()),
            ],
            vec![],
        );
        assert!(
            detail.contains("client 2 acquire \"r2\" [0.020s, 0.030s] -> granted token 2 cannot take effect"),
            "{detail}"
        );
        assert!(detail.contains("held by \"r1\" with token 1"), "{detail}");
    }

    #[test]
    fn a_later_grant_with_a_lower_token_is_not_linearizable() {
        fails(
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(5)),
                release(1, "a", "r1", 20, Some(30), held()),
                acquire(2, "a", "r2", 40, Some(50), granted(3)),
            ],
            vec![],
        );
    }

    #[test]
    fn a_release_that_found_its_hold_while_another_request_held_the_lock_is_caught() {
        let detail = fails(
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                acquire(2, "a", "r2", 100, Some(110), granted(2)),
                release(1, "a", "r1", 200, Some(210), held()),
                release(2, "a", "r2", 300, Some(310), held()),
            ],
            vec![ev(3, 0, Expired, "a", "r1", 1)],
        );
        assert!(detail.contains("release \"r1\""), "{detail}");
    }

    #[test]
    fn only_the_committed_expiry_makes_a_history_linearizable() {
        let ops = || {
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)), // its client stalled; the lease ran out
                acquire(2, "a", "r2", 100, Some(110), granted(2)),
                release(1, "a", "r1", 200, Some(210), not_held()),
            ]
        };
        fails(ops(), vec![]);
        passes(ops(), vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Expired, "a", "r1", 1)]);
    }

    #[test]
    fn the_log_around_an_expiry_places_it_in_real_time() {
        let ops = |with_later_entry: bool| {
            let mut ops = vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                acquire(2, "a", "r2", 50, Some(60), AcquireResult::Busy),
            ];
            if with_later_entry {
                // committed after the expiry (index 3 > 2) and acknowledged at 30 ms, on another lock
                ops.push(acquire(3, "b", "r3", 20, Some(30), granted(2)));
            }
            ops
        };
        let log =
            || vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Expired, "a", "r1", 1), ev(3, 0, Granted, "b", "r3", 2)];
        // Nothing bounds the expiry: it may have come after the Busy answer.
        passes(ops(false), log());
        // The expiry was committed before 30 ms, so at 50..60 ms nothing held the lock.
        let detail = fails(ops(true), log());
        assert!(detail.contains("acquire \"r2\""), "{detail}");
    }

    #[test]
    fn an_unknown_acquire_constrains_nothing() {
        passes(
            vec![
                acquire(1, "a", "r1", 0, None, AcquireResult::Unknown),
                acquire(2, "a", "r2", 10, Some(20), granted(2)),
                release(2, "a", "r2", 30, Some(40), held()),
            ],
            // it was granted after all, and the client core released it in the background
            vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Released, "a", "r1", 1)],
        );
    }

    #[test]
    fn a_busy_answer_overlapping_an_unsure_acquire_is_excused() {
        let ops = |first: AcquireResult| {
            vec![
                acquire(1, "a", "r1", 0, Some(50), first),
                acquire(2, "a", "r2", 10, Some(20), AcquireResult::Busy),
                acquire(3, "a", "r3", 60, Some(70), granted(3)),
            ]
        };
        passes(ops(failed()), vec![]);
        // nothing held the lock, so Busy was a lie
        let detail = fails(ops(AcquireResult::Busy), vec![]);
        assert!(detail.contains("Busy"), "{detail}");
    }

    #[test]
    fn with_the_whole_log_an_unsure_acquire_never_granted_excuses_nothing() {
        let detail = fails(
            vec![
                acquire(1, "a", "r1", 0, Some(50), failed()),
                acquire(2, "a", "r2", 10, Some(20), AcquireResult::Busy),
                acquire(3, "a", "r3", 60, Some(70), granted(3)),
            ],
            vec![ev(1, 0, Queued, "a", "r1", 0), ev(2, 0, Cancelled, "a", "r1", 0), ev(3, 0, Granted, "a", "r3", 3)],
        );
        assert!(detail.contains("acquire \"r2\""), "{detail}");
    }

    #[test]
    fn a_ghost_grant_in_the_log_is_a_hold_after_its_call() {
        let ops = |busy_at: u64| {
            vec![
                acquire(1, "a", "r1", 5, None, AcquireResult::Unknown),
                acquire(2, "a", "r2", busy_at, Some(busy_at + 2), AcquireResult::Busy),
                acquire(3, "a", "r3", 30, Some(40), granted(2)),
            ]
        };
        let log =
            || vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Released, "a", "r1", 1), ev(3, 0, Granted, "a", "r3", 2)];
        passes(ops(10), log());
        // nothing held the lock before r1 was even asked for
        fails(ops(1), log());
    }

    #[test]
    fn an_unknown_release_may_have_freed_the_lock_or_not() {
        let ops = |third: AcquireResult| {
            vec![
                acquire(1, "a", "r1", 0, Some(10), granted(1)),
                release(1, "a", "r1", 20, Some(30), ReleaseResult::Unknown),
                acquire(2, "a", "r2", 40, Some(50), third),
            ]
        };
        passes(ops(granted(2)), vec![]);
        passes(ops(AcquireResult::Busy), vec![]);
    }

    #[test]
    fn the_search_backtracks_when_ops_take_effect_in_another_order_than_they_return() {
        // r1 is called first but granted second (token 2): it waited for r2's release.
        let (out, summary) = run(
            vec![
                acquire(1, "a", "r1", 0, Some(100), granted(2)),
                acquire(2, "a", "r2", 10, Some(50), granted(1)),
                release(2, "a", "r2", 60, Some(70), held()),
                release(1, "a", "r1", 110, Some(120), held()),
            ],
            vec![],
        );
        assert!(out.is_empty(), "{out:#?}");
        assert!(summary.steps > 4, "the search had to backtrack: {summary:?}");
    }

    #[test]
    fn releases_that_never_returned_do_not_blow_up_the_search() {
        // Each one stays pending forever; once its request's hold is over it can only be a
        // no-op, and the search must linearize it then instead of branching on it ever after.
        let mut ops = Vec::new();
        let mut log = Vec::new();
        for i in 0..60_u64 {
            let rid = format!("r{i}");
            ops.push(acquire(1, "a", &rid, 100 * i, Some(100 * i + 10), granted(i + 1)));
            ops.push(release(1, "a", &rid, 100 * i + 20, None, ReleaseResult::Unknown));
            log.push(ev(2 * i + 1, 0, Granted, "a", &rid, i + 1));
            let end = if i % 2 == 0 { Released } else { Expired };
            log.push(ev(2 * i + 2, 0, end, "a", &rid, i + 1));
        }
        let (out, summary) = run(ops.clone(), log.clone());
        assert!(out.is_empty(), "{out:#?}");
        assert!(summary.steps < 1_000, "{summary:?}");
        // Proving a violation explores every configuration: there must be few. A last hold
        // comes and goes, then a try-lock says Busy although nothing holds the lock.
        ops.push(acquire(2, "a", "last", 6_000, Some(6_010), granted(61)));
        ops.push(release(2, "a", "last", 6_020, Some(6_030), held()));
        ops.push(acquire(3, "a", "busy", 6_100, Some(6_110), AcquireResult::Busy));
        log.push(ev(121, 0, Granted, "a", "last", 61));
        log.push(ev(122, 0, Released, "a", "last", 61));
        let (out, summary) = run(ops, log);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(summary.steps < 5_000, "{summary:?}");
    }

    #[test]
    fn a_was_held_release_of_an_acquire_the_client_gave_up_on_is_a_grant() {
        passes(
            vec![
                acquire(1, "a", "r1", 0, Some(50), failed()),
                release(1, "a", "r1", 60, Some(70), held()),
                acquire(2, "a", "r2", 80, Some(90), granted(2)),
            ],
            vec![],
        );
    }
}

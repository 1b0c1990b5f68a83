//! The committed walk: replays the merged events in log order against an exclusive lock
//! table ("L1 committed exclusion") and the cluster-wide token counter ("L2 tokens").
//!
//! Unlike the linearizability search this needs no timing: the log order is the order the
//! state machine applied, so it must read as a correct lock table on its own.

use std::collections::HashMap;

use super::events::MergedEvents;
use super::Violation;
use crate::history::{Event, EventKind};

const EXCLUSION: &str = "L1 committed exclusion";
const TOKENS: &str = "L2 tokens";

/// What the walk knows about one lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder<'a> {
    /// Past an uncovered range of the log: the events there are not known.
    Unknown,
    Free,
    Held {
        rid: &'a str,
        token: u64,
        index: u64,
    },
}

/// Walks the merged stream; returns how many end events could not be judged because their
/// hold may have begun in an uncovered range.
pub(crate) fn check_committed(merged: &MergedEvents, out: &mut Vec<Violation>) -> usize {
    // lock -> (the coverage segment it was last seen in, its holder then)
    let mut locks: HashMap<&str, (usize, Holder)> = HashMap::new();
    let mut gaps = merged.uncovered.iter().peekable();
    // Segment n is the covered stretch after n gaps; state from an earlier segment is stale.
    let mut segment = 0;
    let mut last_grant: Option<&Event> = None;
    let mut unchecked = 0;

    for e in &merged.events {
        while gaps.next_if(|&&(from, _)| from < e.index).is_some() {
            segment += 1;
        }
        let fresh = if segment == 0 { Holder::Free } else { Holder::Unknown };
        let entry = locks.entry(&e.lock).or_insert((segment, fresh));
        if entry.0 != segment {
            *entry = (segment, Holder::Unknown);
        }
        let holder = &mut entry.1;
        match e.kind {
            EventKind::Queued => {}
            EventKind::Granted => {
                if let Holder::Held { rid, token, index } = *holder {
                    if rid != e.request_id {
                        // (the same rid granted twice is L7's to report)
                        out.push(Violation::new(
                            EXCLUSION,
                            Some(&e.lock),
                            format!(
                                "index {}: granted {:?} (token {}) while {rid:?} (token {token}, granted at index \
                                 {index}) still held it",
                                e.index, e.request_id, e.token
                            ),
                        ));
                    }
                }
                if let Some(prev) = last_grant.filter(|p| p.token >= e.token) {
                    out.push(Violation::new(
                        TOKENS,
                        Some(&e.lock),
                        format!(
                            "index {}: {:?} was granted token {}, not above token {} granted earlier to {:?} on \
                             lock {:?} at index {}",
                            e.index, e.request_id, e.token, prev.token, prev.request_id, prev.lock, prev.index
                        ),
                    ));
                }
                if last_grant.is_none_or(|p| e.token > p.token) {
                    last_grant = Some(e);
                }
                *holder = Holder::Held { rid: &e.request_id, token: e.token, index: e.index };
            }
            EventKind::Released | EventKind::Expired if e.token != 0 => match *holder {
                Holder::Unknown => {
                    unchecked += 1;
                    *holder = Holder::Free;
                }
                Holder::Held { rid, token, .. } if rid == e.request_id && token == e.token => *holder = Holder::Free,
                Holder::Held { rid, token, index } => {
                    out.push(Violation::new(
                        EXCLUSION,
                        Some(&e.lock),
                        format!(
                            "index {}: {:?} of {:?} with token {}, but the holder is {rid:?} with token {token} \
                             (granted at index {index})",
                            e.index, e.kind, e.request_id, e.token
                        ),
                    ));
                    if rid == e.request_id {
                        *holder = Holder::Free;
                    }
                }
                Holder::Free => out.push(Violation::new(
                    EXCLUSION,
                    Some(&e.lock),
                    format!(
                        "index {}: {:?} of {:?} with token {}, but nobody held the lock",
                        e.index, e.kind, e.request_id, e.token
                    ),
                )),
            },
            // A queued request left (released or expired while waiting, or cancelled).
            EventKind::Released | EventKind::Expired | EventKind::Cancelled => {
                if let Holder::Held { rid, token, index } = *holder {
                    if rid == e.request_id {
                        out.push(Violation::new(
                            EXCLUSION,
                            Some(&e.lock),
                            format!(
                                "index {}: {:?} of {rid:?} as a queued request (token 0), but it holds the lock \
                                 with token {token} since index {index}",
                                e.index, e.kind
                            ),
                        ));
                    }
                }
            }
        }
    }
    unchecked
}

#[cfg(test)]
mod tests {
    use super::super::events::merge;
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    fn run(from: u64, to: u64, events: Vec<Event>) -> (Vec<Violation>, usize) {
        let merged = merge(&[node(1, from, to, events)], &mut Vec::new());
        let mut out = Vec::new();
        let unchecked = check_committed(&merged, &mut out);
        (out, unchecked)
    }

    #[test]
    fn a_correct_table_passes() {
        let (out, unchecked) = run(
            1,
            7,
            vec![
                ev(1, 0, Granted, "a", "r1", 1),
                ev(2, 0, Queued, "a", "r2", 0),
                ev(2, 1, Granted, "b", "r3", 2),
                ev(3, 0, Released, "a", "r1", 1),
                ev(3, 1, Granted, "a", "r2", 3),
                ev(4, 0, Queued, "a", "r4", 0),
                ev(5, 0, Cancelled, "a", "r4", 0),
                ev(6, 0, Expired, "a", "r2", 3),
                ev(7, 0, Released, "b", "r3", 2),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(unchecked, 0);
    }

    #[test]
    fn two_overlapping_grants_break_exclusion() {
        let (out, _) = run(1, 2, vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Granted, "a", "r2", 2)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].check, EXCLUSION);
        assert!(out[0].detail.contains("\"r1\" (token 1, granted at index 1) still held it"), "{}", out[0].detail);
    }

    #[test]
    fn a_token_not_above_every_earlier_grant_of_any_lock_is_caught() {
        let (out, _) = run(1, 2, vec![ev(1, 0, Granted, "a", "r1", 5), ev(2, 0, Granted, "b", "r2", 4)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].check, TOKENS);
        assert!(out[0].detail.contains("token 4, not above token 5"), "{}", out[0].detail);
    }

    #[test]
    fn an_end_that_does_not_match_the_holder_is_caught() {
        let (out, _) = run(
            1,
            4,
            vec![
                ev(1, 0, Granted, "a", "r1", 1),
                ev(2, 0, Released, "a", "r1", 9), // wrong token
                ev(3, 0, Expired, "a", "r1", 1),  // nobody holds it any more
                ev(4, 0, Released, "b", "r5", 3), // never granted
            ],
        );
        let checks: Vec<_> = out.iter().map(|v| v.check).collect();
        assert_eq!(checks, vec![EXCLUSION; 3], "{out:?}");
        assert!(out[0].detail.contains("holder is \"r1\" with token 1"));
        assert!(out[1].detail.contains("nobody held"));
    }

    #[test]
    fn a_holder_leaving_as_if_queued_is_caught() {
        let (out, _) = run(1, 2, vec![ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Cancelled, "a", "r1", 0)]);
        assert_eq!(out.len(), 1);
        assert!(out[0].detail.contains("as a queued request"));
    }

    #[test]
    fn ends_of_holds_granted_before_the_covered_range_are_not_judged() {
        // The report starts at index 5: r0 was granted somewhere in 1..=4.
        let (out, unchecked) = run(
            5,
            7,
            vec![ev(5, 0, Released, "a", "r0", 3), ev(6, 0, Granted, "a", "r1", 4), ev(7, 0, Granted, "a", "r2", 5)],
        );
        assert_eq!(unchecked, 1);
        // what can be judged still is: r2 granted while r1 held
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].detail.contains("granted \"r2\""));
    }

    #[test]
    fn a_gap_in_the_middle_forgets_what_was_known() {
        let merged = merge(
            &[
                node(1, 1, 2, vec![ev(1, 0, Granted, "a", "r1", 1)]),
                node(2, 5, 6, vec![ev(5, 0, Granted, "a", "r2", 3), ev(6, 0, Released, "a", "r2", 3)]),
            ],
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        // r1 may have been released at index 3 or 4, which nobody reported
        assert_eq!(check_committed(&merged, &mut out), 0);
        assert!(out.is_empty(), "{out:?}");
    }
}

//! "L6 still held": once every client has released and closed, no hold may live on. A grant
//! with no end after it is a ghost holder: a lost release, or a lease the leader never expired.
//!
//! When the merged events leave gaps, a grant followed by a gap is not judged: its end may be
//! in the gap.

use std::collections::HashMap;

use super::events::MergedEvents;
use super::Violation;
use crate::history::EventKind;

const CHECK: &str = "L6 still held";

pub(crate) fn check_still_held(merged: &MergedEvents, out: &mut Vec<Violation>) {
    // (lock, request_id) -> (index, seq) of its last end event
    let mut last_end: HashMap<(&str, &str), (u64, u32)> = HashMap::new();
    for e in merged.events.iter().filter(|e| matches!(e.kind, EventKind::Released | EventKind::Expired)) {
        last_end.insert((&e.lock, &e.request_id), (e.index, e.seq));
    }
    for g in merged.events.iter().filter(|e| e.kind == EventKind::Granted) {
        let ended = last_end.get(&(g.lock.as_str(), g.request_id.as_str())).is_some_and(|&end| end > (g.index, g.seq));
        if !ended && merged.covers(g.index, merged.max_index) {
            out.push(Violation::new(
                CHECK,
                Some(&g.lock),
                format!(
                    "{:?} was granted token {} at index {} and never released or expired (events up to index {})",
                    g.request_id, g.token, g.index, merged.max_index
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::events::merge;
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    fn run(nodes: &[crate::history::NodeEvents]) -> Vec<Violation> {
        let mut out = Vec::new();
        check_still_held(&merge(nodes, &mut Vec::new()), &mut out);
        out
    }

    #[test]
    fn every_grant_ended_passes() {
        let out = run(&[node(
            1,
            1,
            4,
            vec![
                ev(1, 0, Granted, "a", "r1", 1),
                ev(2, 0, Released, "a", "r1", 1),
                ev(2, 1, Granted, "a", "r2", 2),
                ev(4, 0, Expired, "a", "r2", 2),
            ],
        )]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_grant_never_ended_is_caught() {
        let out = run(&[node(1, 1, 3, vec![ev(1, 0, Granted, "a", "r1", 1), ev(3, 0, Cancelled, "a", "r1", 0)])]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].check, CHECK);
        assert!(out[0].detail.contains("\"r1\" was granted token 1 at index 1"));
    }

    #[test]
    fn a_grant_followed_by_an_uncovered_range_is_not_judged() {
        let out = run(&[node(1, 1, 2, vec![ev(1, 0, Granted, "a", "r1", 1)]), node(2, 5, 6, vec![])]);
        assert!(out.is_empty(), "{out:?}");
    }
}

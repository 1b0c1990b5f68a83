//! Merging the nodes' committed events into one stream in log order ("E nodes disagree").
//!
//! Every node applies the same log, so for a given (index, seq) every node that covers that
//! index must report the same event. The merged stream is the union of the reports; the later
//! checks trust it only as far as the reports cover the log, which [`MergedEvents::complete`]
//! and [`MergedEvents::uncovered`] say.

use std::collections::{BTreeMap, HashSet};

use super::Violation;
use crate::history::{Event, NodeEvents};

const CHECK: &str = "E nodes disagree";

/// The union of every node's events, sorted by (index, seq).
#[derive(Clone, Debug, Default)]
pub(crate) struct MergedEvents {
    pub events: Vec<Event>,
    /// The highest index any node covered or reported.
    pub max_index: u64,
    /// Ranges of `1..=max_index` that no node covered, in order.
    pub uncovered: Vec<(u64, u64)>,
    /// Some node reported, and together they cover `1..=max_index`.
    pub complete: bool,
}

impl MergedEvents {
    /// Whether every index in `from..=to` was covered by some node's report.
    pub fn covers(&self, from: u64, to: u64) -> bool {
        !self.uncovered.iter().any(|&(a, b)| a <= to && from <= b)
    }
}

/// Merges the nodes' reports; a node that reports an event other nodes contradict, or that
/// misses one inside the range it claims to cover, is a violation.
pub(crate) fn merge(nodes: &[NodeEvents], out: &mut Vec<Violation>) -> MergedEvents {
    // key -> (event, the node that first reported it)
    let mut merged: BTreeMap<(u64, u32), (&Event, u64)> = BTreeMap::new();
    for n in nodes {
        for e in &n.events {
            match merged.get(&(e.index, e.seq)) {
                None => {
                    merged.insert((e.index, e.seq), (e, n.node));
                }
                Some((first, by)) if *first != e => out.push(Violation::new(
                    CHECK,
                    Some(&e.lock),
                    format!(
                        "at index {} seq {}: node {by} reported {first:?}, node {} reported {e:?}",
                        e.index, e.seq, n.node
                    ),
                )),
                Some(_) => {}
            }
        }
    }

    // A node that covers an index must report every event of it.
    for n in nodes.iter().filter(|n| n.from.max(1) <= n.to) {
        let has: HashSet<(u64, u32)> = n.events.iter().map(|e| (e.index, e.seq)).collect();
        for (&(index, seq), (e, by)) in merged.range((n.from.max(1), 0)..=(n.to, u32::MAX)) {
            if !has.contains(&(index, seq)) {
                out.push(Violation::new(
                    CHECK,
                    Some(&e.lock),
                    format!(
                        "node {} covers {}..={} but has no event at index {index} seq {seq}, where node {by} \
                         reported {e:?}",
                        n.node, n.from, n.to
                    ),
                ));
            }
        }
    }

    let max_index = nodes.iter().map(|n| n.to).chain(merged.keys().map(|k| k.0)).max().unwrap_or(0);
    let uncovered = uncovered(nodes, max_index);
    let complete = !nodes.is_empty() && uncovered.is_empty();
    let events = merged.into_values().map(|(e, _)| e.clone()).collect();
    MergedEvents { events, max_index, uncovered, complete }
}

/// The ranges of `1..=max_index` outside every node's `from..=to`.
fn uncovered(nodes: &[NodeEvents], max_index: u64) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = nodes.iter().map(|n| (n.from.max(1), n.to)).filter(|(a, b)| a <= b).collect();
    ranges.sort_unstable();
    let mut gaps = Vec::new();
    let mut next = 1; // the first index not yet known to be covered
    for (from, to) in ranges {
        if from > next {
            gaps.push((next, from - 1));
        }
        next = next.max(to.saturating_add(1));
    }
    if next <= max_index {
        gaps.push((next, max_index));
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    #[test]
    fn overlapping_reports_merge_into_one_sorted_stream() {
        let a = node(1, 1, 4, vec![ev(1, 0, Granted, "l", "r1", 1), ev(3, 0, Released, "l", "r1", 1)]);
        let b = node(2, 3, 6, vec![ev(3, 0, Released, "l", "r1", 1), ev(6, 1, Queued, "l", "r3", 0)]);
        let c = node(3, 5, 6, vec![ev(6, 0, Granted, "l", "r2", 2), ev(6, 1, Queued, "l", "r3", 0)]);
        let mut out = Vec::new();
        // node 2 covers index 6 but misses seq 0: that is a disagreement
        let m = merge(&[a, b, c], &mut out);
        let keys: Vec<_> = m.events.iter().map(|e| (e.index, e.seq)).collect();
        assert_eq!(keys, vec![(1, 0), (3, 0), (6, 0), (6, 1)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].detail.contains("node 2 covers 3..=6"));
        assert!(m.complete);
        assert_eq!(m.max_index, 6);
    }

    #[test]
    fn agreeing_nodes_give_no_violation() {
        let events = vec![ev(2, 0, Granted, "l", "r1", 1), ev(2, 1, Queued, "l", "r2", 0)];
        let mut out = Vec::new();
        let m = merge(&[node(1, 1, 2, events.clone()), node(2, 1, 2, events)], &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(m.events.len(), 2);
    }

    #[test]
    fn nodes_reporting_different_events_for_one_key_disagree() {
        let mut out = Vec::new();
        merge(
            &[
                node(1, 1, 2, vec![ev(2, 0, Granted, "l", "r1", 7)]),
                node(2, 1, 2, vec![ev(2, 0, Granted, "l", "r1", 8)]),
            ],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].check, "E nodes disagree");
        assert!(out[0].detail.contains("index 2 seq 0"), "{}", out[0].detail);
    }

    #[test]
    fn gaps_between_reports_make_the_stream_incomplete() {
        let mut out = Vec::new();
        // node 4 has seen nothing yet (from > to)
        let m = merge(
            &[node(1, 3, 5, vec![]), node(2, 8, 9, vec![]), node(3, 4, 6, vec![]), node(4, 9, 8, vec![])],
            &mut out,
        );
        assert_eq!(m.uncovered, vec![(1, 2), (7, 7)]);
        assert!(!m.complete);
        assert!(m.covers(3, 6) && !m.covers(6, 7) && m.covers(8, 9));
    }

    #[test]
    fn no_reports_at_all_is_not_complete() {
        let m = merge(&[], &mut Vec::new());
        assert!(!m.complete);
        assert_eq!(m.max_index, 0);
    }

    #[test]
    fn an_event_past_every_reported_range_is_uncovered() {
        let m = merge(&[node(1, 1, 2, vec![ev(4, 0, Granted, "l", "r", 1)])], &mut Vec::new());
        assert_eq!(m.uncovered, vec![(3, 4)]);
    }
}

//! "L5 fence": tenure's KV is a fenced store (DESIGN §2). A put with `if_fence {lock, token}`
//! may apply only while that token is a current hold of that lock at the put's place in the
//! log. Two consequences are checked:
//!
//! - per (lock, key), accepted puts in revision order carry non-decreasing tokens: a stale
//!   holder never writes after a newer one. Puts sharing a revision (one log entry) are not
//!   ordered among themselves.
//! - when the merged events cover the log, each accepted put's token was granted on that lock
//!   at an index <= its revision and not ended before it (an end in the same entry is allowed:
//!   the order inside one entry is not visible).
//!
//! Keys are grouped with their lock so that a key written under two different locks (which the
//! harness does not do) cannot raise a false alarm.

use std::collections::HashMap;

use super::events::MergedEvents;
use super::{show_at, Violation};
use crate::history::{At, EventKind, Op, PutResult};

const CHECK: &str = "L5 fence";

/// An accepted fenced put.
struct Put<'a> {
    client: u32,
    lock: &'a str,
    key: &'a str,
    token: u64,
    revision: u64,
    ret: Option<At>,
}

pub(crate) fn check_fence(ops: &[Op], merged: &MergedEvents, out: &mut Vec<Violation>) {
    let puts: Vec<Put> = ops
        .iter()
        .filter_map(|op| match op {
            Op::FencedPut { client, lock, key, token, ret, result: PutResult::Accepted { revision }, .. } => {
                Some(Put { client: *client, lock, key, token: *token, revision: *revision, ret: *ret })
            }
            _ => None,
        })
        .collect();
    check_token_order(&puts, out);
    if merged.complete {
        check_token_in_hold(&puts, merged, out);
    }
}

fn check_token_order(puts: &[Put], out: &mut Vec<Violation>) {
    let mut by_key: HashMap<(&str, &str), Vec<&Put>> = HashMap::new();
    for p in puts {
        by_key.entry((p.lock, p.key)).or_default().push(p);
    }
    let mut keys: Vec<_> = by_key.into_iter().collect();
    keys.sort_unstable_by_key(|(k, _)| *k);
    for ((lock, key), mut list) in keys {
        list.sort_by_key(|p| (p.revision, p.token));
        // the put with the highest token among earlier revisions
        let mut newest: Option<&Put> = None;
        let mut i = 0;
        while i < list.len() {
            let revision = list[i].revision;
            let same: Vec<&Put> = list[i..].iter().copied().take_while(|p| p.revision == revision).collect();
            i += same.len();
            for p in &same {
                if let Some(n) = newest.filter(|n| n.token > p.token) {
                    out.push(Violation::new(
                        CHECK,
                        Some(lock),
                        format!(
                            "key {key:?}: client {}'s put with token {} was accepted at revision {} (returned {}), \
                             after client {}'s put with the newer token {} at revision {}",
                            p.client,
                            p.token,
                            p.revision,
                            show_at(p.ret),
                            n.client,
                            n.token,
                            n.revision
                        ),
                    ));
                }
            }
            if let Some(top) = same.last().filter(|top| newest.is_none_or(|n| top.token > n.token)) {
                newest = Some(top);
            }
        }
    }
}

/// Where a token's hold began and ended in the log.
struct HoldSpan<'a> {
    lock: &'a str,
    granted: u64,
    ended: Option<u64>,
}

fn check_token_in_hold(puts: &[Put], merged: &MergedEvents, out: &mut Vec<Violation>) {
    let mut spans: HashMap<u64, HoldSpan> = HashMap::new();
    for e in merged.events.iter().filter(|e| e.token != 0) {
        match e.kind {
            EventKind::Granted => {
                spans.entry(e.token).or_insert(HoldSpan { lock: &e.lock, granted: e.index, ended: None });
            }
            EventKind::Released | EventKind::Expired => {
                if let Some(s) = spans.get_mut(&e.token).filter(|s| s.ended.is_none()) {
                    s.ended = Some(e.index);
                }
            }
            EventKind::Queued | EventKind::Cancelled => {}
        }
    }
    for p in puts {
        let problem = match spans.get(&p.token) {
            // (a put past the reported log may have a grant there too)
            None if p.revision > merged.max_index => continue,
            None => "that token was never granted".to_owned(),
            Some(s) if s.lock != p.lock => format!("token {} was granted on lock {:?}", p.token, s.lock),
            Some(s) if s.granted > p.revision => format!("the token was granted only at index {}", s.granted),
            Some(HoldSpan { ended: Some(end), .. }) if *end < p.revision => {
                format!("the hold had ended at index {end}")
            }
            Some(_) => continue,
        };
        out.push(Violation::new(
            CHECK,
            Some(p.lock),
            format!(
                "key {:?}: client {}'s put with token {} was accepted at revision {}, but {problem}",
                p.key, p.client, p.token, p.revision
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::events::merge;
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;
    use crate::history::NodeEvents;

    fn run(ops: &[Op], nodes: &[NodeEvents]) -> Vec<Violation> {
        let mut out = Vec::new();
        check_fence(ops, &merge(nodes, &mut Vec::new()), &mut out);
        out
    }

    fn log() -> Vec<NodeEvents> {
        vec![node(
            1,
            1,
            9,
            vec![
                ev(1, 0, Granted, "a", "r1", 1),
                ev(4, 0, Released, "a", "r1", 1),
                ev(4, 1, Granted, "a", "r2", 2),
                ev(9, 0, Released, "a", "r2", 2),
            ],
        )]
    }

    #[test]
    fn puts_inside_their_holds_in_token_order_pass() {
        let out = run(
            &[
                put(1, "a", "k", 1, 0, Some(5), accepted(2)),
                put(1, "a", "k", 1, 0, Some(5), accepted(4)), // same entry as the release: allowed
                put(2, "a", "k", 2, 0, Some(5), accepted(4)), // and as the new grant
                put(2, "a", "k", 2, 0, Some(5), accepted(9)),
                put(1, "a", "k", 1, 0, Some(5), PutResult::FencedOut),
            ],
            &log(),
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_older_token_accepted_after_a_newer_one_is_caught() {
        let out = run(
            &[put(2, "a", "k", 2, 0, Some(5), accepted(5)), put(1, "a", "k", 1, 0, Some(9), accepted(6))],
            &[node(1, 2, 4, vec![])], // the token-in-hold half is skipped: events incomplete
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].check, CHECK);
        assert!(out[0].detail.contains("token 1 was accepted at revision 6"), "{}", out[0].detail);
        assert!(out[0].detail.contains("newer token 2 at revision 5"));
    }

    #[test]
    fn puts_outside_their_hold_are_caught() {
        let out = run(
            &[
                put(1, "a", "k1", 1, 0, Some(5), accepted(5)),  // r1 ended at 4
                put(2, "a", "k2", 2, 0, Some(5), accepted(3)),  // r2 granted at 4
                put(3, "b", "k3", 2, 0, Some(5), accepted(5)),  // token of lock a
                put(3, "a", "k4", 7, 0, Some(5), accepted(5)),  // never granted
                put(3, "a", "k5", 8, 0, Some(5), accepted(10)), // past the reported log: not judged
            ],
            &log(),
        );
        let details: Vec<_> = out.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(details.len(), 4, "{details:?}");
        assert!(details[0].ends_with("the hold had ended at index 4"));
        assert!(details[1].ends_with("granted only at index 4"));
        assert!(details[2].ends_with("granted on lock \"a\""));
        assert!(details[3].ends_with("never granted"));
    }
}

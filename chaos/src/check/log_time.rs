//! Real-time bounds for log entries, read off the acknowledged operations whose place in the log
//! is known.
//!
//! An acknowledged operation's entry was committed after the operation was called (the server
//! proposes it only once asked) and before it returned (the server answers only after applying
//! it). The log commits in index order, so entry `i` was committed after the call of every such
//! operation at an index up to `i`, and before the return of every one at an index from `i` on.
//! This gives a committed expiry, which no client observes directly, a window in real time
//! instead of "any time after its grant".

use std::collections::HashMap;

use super::wgl::INF;
use crate::history::{AcquireResult, At, Event, EventKind, Op, PutResult, ReleaseResult};

/// Acknowledged operations by log index: for each, the latest call at or below that index and
/// the earliest return at or above it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogTime {
    /// (index, latest call of an op at an index <= this one, earliest return at >= this one)
    marks: Vec<(u64, u64, u64)>,
}

pub(crate) fn nanos(at: At) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(INF - 1)
}

impl LogTime {
    /// Places the acknowledged grants, releases and fenced puts of `ops` in the log `events`.
    pub fn new(ops: &[Op], events: &[Event]) -> LogTime {
        // (lock, request_id, kind, token) -> index
        let mut at: HashMap<(&str, &str, EventKind), (u64, u64)> = HashMap::new();
        for e in events.iter().filter(|e| e.token != 0) {
            at.entry((&e.lock, &e.request_id, e.kind)).or_insert((e.index, e.token));
        }
        let mut known: Vec<(u64, u64, u64)> = Vec::new();
        for op in ops {
            let placed = match op {
                Op::Acquire {
                    lock,
                    request_id,
                    call,
                    ret: Some(ret),
                    result: AcquireResult::Granted { token },
                    ..
                } => at
                    .get(&(lock.as_str(), request_id.as_str(), EventKind::Granted))
                    .filter(|(_, t)| t == token)
                    .map(|&(index, _)| (index, call, ret)),
                Op::Release {
                    lock,
                    request_id,
                    call,
                    ret: Some(ret),
                    result: ReleaseResult::Done { was_held: true },
                    ..
                } => at
                    .get(&(lock.as_str(), request_id.as_str(), EventKind::Released))
                    .map(|&(index, _)| (index, call, ret)),
                Op::FencedPut { call, ret: Some(ret), result: PutResult::Accepted { revision }, .. } => {
                    Some((*revision, call, ret))
                }
                _ => None,
            };
            if let Some((index, call, ret)) = placed {
                known.push((index, nanos(*call), nanos(*ret)));
            }
        }
        known.sort_unstable();
        let mut marks = known.clone();
        let mut latest_call = 0;
        for m in &mut marks {
            latest_call = latest_call.max(m.1);
            m.1 = latest_call;
        }
        let mut earliest_ret = INF;
        for m in marks.iter_mut().rev() {
            earliest_ret = earliest_ret.min(m.2);
            m.2 = earliest_ret;
        }
        LogTime { marks }
    }

    /// The window in which entry `index` was committed, as far as the acknowledged operations
    /// tell: (after this time, before this time or [`INF`]).
    pub fn window(&self, index: u64) -> (u64, u64) {
        let below = self.marks.partition_point(|m| m.0 <= index);
        let above = self.marks.partition_point(|m| m.0 < index);
        let after = below.checked_sub(1).map_or(0, |i| self.marks[i].1);
        let before = self.marks.get(above).map_or(INF, |m| m.2);
        (after, before)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    fn ns(ms: u64) -> u64 {
        ms * 1_000_000
    }

    #[test]
    fn an_entry_lies_between_the_acknowledged_ops_around_it() {
        let ops = [
            acquire(1, "a", "r1", 0, Some(10), granted(1)),          // index 1
            put(1, "a", "k", 1, 5, Some(30), accepted(4)),           // index 4
            release(1, "a", "r1", 20, Some(25), held()),             // index 6
            acquire(2, "b", "r2", 2, Some(50), granted(2)),          // index 8, another lock
            acquire(3, "b", "r3", 40, None, AcquireResult::Unknown), // unknown: no place
            acquire(4, "b", "r4", 0, Some(99), granted(9)),          // token not in the log
        ];
        let events = [
            ev(1, 0, Granted, "a", "r1", 1),
            ev(6, 0, Released, "a", "r1", 1),
            ev(8, 0, Granted, "b", "r2", 2),
            ev(9, 0, Granted, "b", "r4", 3),
        ];
        let t = LogTime::new(&ops, &events);
        assert_eq!(t.window(5), (ns(5), ns(25)));
        assert_eq!(t.window(4), (ns(5), ns(25)), "an op in the same entry bounds it too");
        assert_eq!(t.window(7), (ns(20), ns(50)));
        assert_eq!(t.window(100), (ns(20), INF));
        assert_eq!(LogTime::default().window(3), (0, INF));
    }
}

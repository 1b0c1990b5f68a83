//! "L6 FIFO": waiters are granted in the order they were queued (DESIGN §4). Per lock, the
//! committed QUEUED events, in log order, form the queue; a waiter leaves it by its grant or by
//! a cancel or expiry. Every grant of a queued request must take the queue's head, so a grant
//! that passes over an earlier waiter still in the queue is a violation. (A SHARED run granted
//! together is a run of heads, one after another, so the same rule holds.)
//!
//! Judged only on a complete merged stream: a waiter queued in an uncovered range would be
//! missing from the queue, and its grant would look out of order.

use std::collections::{HashMap, VecDeque};

use super::Violation;
use crate::history::{Event, EventKind};

const CHECK: &str = "L6 FIFO";

pub(crate) fn check_fifo(events: &[Event], complete: bool, out: &mut Vec<Violation>) {
    if !complete {
        return;
    }
    let mut queues: HashMap<&str, VecDeque<&Event>> = HashMap::new();
    for e in events {
        let queue = queues.entry(e.lock.as_str()).or_default();
        match e.kind {
            EventKind::Queued => queue.push_back(e),
            EventKind::Granted => {
                let Some(at) = queue.iter().position(|w| w.request_id == e.request_id) else {
                    continue; // granted at once, never queued
                };
                if at > 0 {
                    let head = queue[0];
                    out.push(Violation::new(
                        CHECK,
                        Some(&e.lock),
                        format!(
                            "{:?} (queued at index {}) was granted at index {} while {:?} (queued earlier, at index {}) still waited",
                            e.request_id, queue[at].index, e.index, head.request_id, head.index
                        ),
                    ));
                }
                queue.remove(at);
            }
            EventKind::Cancelled | EventKind::Expired | EventKind::Released => {
                queue.retain(|w| w.request_id != e.request_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    #[test]
    fn grants_in_queue_order_pass_and_leaving_the_queue_lets_the_next_go_first() {
        let mut out = Vec::new();
        check_fifo(
            &[
                ev(1, 0, Granted, "a", "h", 1),
                ev(2, 0, Queued, "a", "w1", 0),
                ev(3, 0, Queued, "a", "w2", 0),
                ev(4, 0, Queued, "a", "w3", 0),
                ev(5, 0, Expired, "a", "w1", 0),
                ev(6, 0, Released, "a", "h", 1),
                ev(6, 1, Granted, "a", "w2", 2),
                ev(7, 0, Released, "a", "w2", 2),
                ev(7, 1, Granted, "a", "w3", 3),
                ev(8, 0, Queued, "b", "x", 0),
            ],
            true,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_grant_that_passes_over_the_head_is_caught() {
        let events = [
            ev(1, 0, Granted, "a", "h", 1),
            ev(2, 0, Queued, "a", "w1", 0),
            ev(3, 0, Queued, "a", "w2", 0),
            ev(4, 0, Released, "a", "h", 1),
            ev(4, 1, Granted, "a", "w2", 2),
        ];
        let mut out = Vec::new();
        check_fifo(&events, true, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].detail.contains("\"w1\" (queued earlier, at index 2) still waited"), "{}", out[0].detail);

        let mut skipped = Vec::new();
        check_fifo(&events, false, &mut skipped);
        assert!(skipped.is_empty(), "an incomplete stream is not judged");
    }
}

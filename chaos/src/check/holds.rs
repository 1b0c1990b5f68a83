//! "L1 exclusive holds": the spans in which clients believed they held an EXCLUSIVE lock must
//! not overlap. This is the criterion a user cares about (two workers inside the critical
//! section at once); it holds only if the client core's lease bound (DESIGN §3) is kept.

use std::collections::HashMap;

use super::{show_at, Violation};
use crate::history::Hold;

const CHECK: &str = "L1 exclusive holds";

pub(crate) fn check_exclusive_holds(holds: &[Hold], out: &mut Vec<Violation>) {
    let mut by_lock: HashMap<&str, Vec<&Hold>> = HashMap::new();
    // A span with from >= until (the acquire answered after the lease bound had already passed)
    // is a hold the client never had.
    for h in holds.iter().filter(|h| h.from < h.until) {
        by_lock.entry(&h.lock).or_default().push(h);
    }
    let mut locks: Vec<_> = by_lock.into_iter().collect();
    locks.sort_unstable_by_key(|(lock, _)| *lock);
    for (lock, mut spans) in locks {
        spans.sort_by_key(|h| (h.from, h.until));
        // Sweep in order of start; `open` keeps the spans that have not ended by the current start.
        let mut open: Vec<&Hold> = Vec::new();
        for b in spans {
            open.retain(|a| a.until > b.from);
            for a in open.iter().filter(|a| a.request_id != b.request_id) {
                out.push(Violation::new(
                    CHECK,
                    Some(lock),
                    format!(
                        "client {} ({:?}, token {}) held it {}..{} and client {} ({:?}, token {}) held it {}..{}",
                        a.client,
                        a.request_id,
                        a.token,
                        show_at(Some(a.from)),
                        show_at(Some(a.until)),
                        b.client,
                        b.request_id,
                        b.token,
                        show_at(Some(b.from)),
                        show_at(Some(b.until)),
                    ),
                ));
            }
            open.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn back_to_back_holds_and_holds_of_other_locks_pass() {
        let mut out = Vec::new();
        check_exclusive_holds(
            &[
                hold(1, "a", "r1", 1, 0, 10),
                hold(2, "a", "r2", 2, 10, 20), // starts exactly when r1 ends
                hold(3, "b", "r3", 3, 5, 15),
                hold(4, "a", "r4", 4, 30, 25), // inverted: never held
                hold(5, "a", "r5", 5, 25, 40),
            ],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn overlapping_holds_are_caught() {
        let mut out = Vec::new();
        check_exclusive_holds(
            &[hold(1, "a", "r1", 1, 0, 100), hold(2, "a", "r2", 2, 20, 30), hold(3, "a", "r3", 3, 99, 120)],
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].check, CHECK);
        assert!(out[0].detail.contains("client 1 (\"r1\", token 1) held it 0.000s..0.100s and client 2"));
        assert!(out[1].detail.contains("client 3 (\"r3\""));
    }
}

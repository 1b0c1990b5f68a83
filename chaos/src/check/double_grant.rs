//! "L7 double grant": a request_id is granted at most once. Request ids are the idempotency key
//! (DESIGN §2): a retried or late duplicate Acquire must get the existing outcome, never a
//! second hold. The server keeps request ids in one cluster-wide table, so the key is the id
//! alone, whatever the lock.

use std::collections::HashMap;

use super::Violation;
use crate::history::{Event, EventKind};

const CHECK: &str = "L7 double grant";

pub(crate) fn check_double_grant(events: &[Event], out: &mut Vec<Violation>) {
    let mut first: HashMap<&str, &Event> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Granted) {
        if let Some(f) = first.get(e.request_id.as_str()) {
            out.push(Violation::new(
                CHECK,
                Some(&e.lock),
                format!(
                    "{:?} granted twice: token {} on lock {:?} at index {}, then token {} on lock {:?} at index {}",
                    e.request_id, f.token, f.lock, f.index, e.token, e.lock, e.index
                ),
            ));
        } else {
            first.insert(&e.request_id, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    #[test]
    fn distinct_request_ids_pass() {
        let mut out = Vec::new();
        check_double_grant(
            &[ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Released, "a", "r1", 1), ev(3, 0, Granted, "a", "r2", 2)],
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_request_granted_twice_is_caught() {
        let mut out = Vec::new();
        check_double_grant(
            &[ev(1, 0, Granted, "a", "r1", 1), ev(2, 0, Released, "a", "r1", 1), ev(3, 0, Granted, "a", "r1", 2)],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].check, CHECK);
        assert!(out[0].detail.contains("token 1 on lock \"a\" at index 1, then token 2"), "{}", out[0].detail);
    }
}

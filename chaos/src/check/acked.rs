//! "L3 acked grant lost" and "L3 acked release lost": what the cluster acknowledged to a client
//! must be in the committed log. A grant or release acknowledged by a leader that then lost it
//! (not durable, overwritten by a new leader) shows up here as a missing event.
//!
//! Run only when the merged events cover the whole log: otherwise a missing event may simply
//! sit in a range no node reported.

use std::collections::HashMap;

use super::{show_at, Violation};
use crate::history::{AcquireResult, Event, EventKind, Op, ReleaseResult};

const GRANT_LOST: &str = "L3 acked grant lost";
const RELEASE_LOST: &str = "L3 acked release lost";

pub(crate) fn check_acked(ops: &[Op], events: &[Event], out: &mut Vec<Violation>) {
    // (lock, request_id) -> its events, in log order
    let mut by_request: HashMap<(&str, &str), Vec<&Event>> = HashMap::new();
    for e in events {
        by_request.entry((&e.lock, &e.request_id)).or_default().push(e);
    }

    for op in ops {
        match op {
            Op::Acquire { client, lock, request_id, ret, result: AcquireResult::Granted { token }, .. } => {
                let evs = by_request.get(&(lock.as_str(), request_id.as_str())).map_or(&[][..], Vec::as_slice);
                if evs.iter().any(|e| e.kind == EventKind::Granted && e.token == *token) {
                    continue;
                }
                let seen = match evs.iter().find(|e| e.kind == EventKind::Granted) {
                    Some(e) => format!("the log granted it token {} at index {}", e.token, e.index),
                    None => "the log never granted it".to_owned(),
                };
                out.push(Violation::new(
                    GRANT_LOST,
                    Some(lock),
                    format!(
                        "client {client}'s acquire {request_id:?} returned Granted with token {token} at {}, but {seen}",
                        show_at(*ret)
                    ),
                ));
            }
            Op::Release { client, lock, request_id, ret, result: ReleaseResult::Done { was_held: true }, .. } => {
                let evs = by_request.get(&(lock.as_str(), request_id.as_str())).map_or(&[][..], Vec::as_slice);
                if evs.iter().any(|e| e.kind == EventKind::Released && e.token != 0) {
                    continue;
                }
                let seen = match evs.iter().rfind(|e| e.kind != EventKind::Queued) {
                    Some(e) => format!("the request's last event is {:?} at index {}", e.kind, e.index),
                    None => "the log has no event of the request".to_owned(),
                };
                out.push(Violation::new(
                    RELEASE_LOST,
                    Some(lock),
                    format!(
                        "client {client}'s release of {request_id:?} returned was_held = true at {}, but no Released \
                         event of a hold follows; {seen}",
                        show_at(*ret)
                    ),
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::EventKind::*;

    #[test]
    fn acknowledgements_found_in_the_log_pass() {
        let mut out = Vec::new();
        check_acked(
            &[
                acquire(1, "a", "r1", 0, Some(5), granted(3)),
                release(1, "a", "r1", 6, Some(8), held()),
                release(2, "a", "r2", 6, Some(8), not_held()),
                acquire(2, "a", "r3", 0, None, AcquireResult::Unknown),
            ],
            &[ev(4, 0, Granted, "a", "r1", 3), ev(5, 0, Released, "a", "r1", 3)],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_acked_grant_missing_from_the_log_is_caught() {
        let mut out = Vec::new();
        check_acked(
            &[acquire(1, "a", "r1", 0, Some(5), granted(3)), acquire(2, "a", "r2", 0, Some(5), granted(4))],
            &[ev(4, 0, Granted, "a", "r2", 5)],
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].check, GRANT_LOST);
        assert!(out[0].detail.contains("never granted"));
        assert!(out[1].detail.contains("granted it token 5 at index 4"), "{}", out[1].detail);
    }

    #[test]
    fn an_acked_release_missing_from_the_log_is_caught() {
        let mut out = Vec::new();
        check_acked(
            &[acquire(1, "a", "r1", 0, Some(5), granted(3)), release(1, "a", "r1", 6, Some(8), held())],
            &[ev(4, 0, Granted, "a", "r1", 3), ev(9, 0, Expired, "a", "r1", 3)],
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].check, RELEASE_LOST);
        assert!(out[0].detail.contains("last event is Expired at index 9"), "{}", out[0].detail);
    }
}

//! The fenced-mutex model the linearizability search runs one lock's history against, and the
//! translation of recorded operations (plus committed ends no recorded op explains) into that
//! model's operations.
//!
//! What the clients could not know, the committed log may: an acquire that ended Failed or
//! Unknown but that the log shows granted is a grant (a ghost hold, later ended by the client
//! core's unrecorded release or by expiry), placed in real time where the log puts it (see
//! [`super::log_time`]); so are the committed ends no recorded release explains.
//!
//! Operations that are a no-op in every state constrain nothing and are left out rather than
//! searched: failed releases, Failed/Unknown acquires with no grant to show, Busy answers
//! excused by one of those (only when the log is incomplete: with the whole log, a moment's
//! hold that is not in it never happened), and releases or ends of a request that can never
//! hold the lock in the model.

use std::collections::{HashMap, HashSet};

use super::log_time::{nanos, LogTime};
use super::wgl::{Bitset, Interval, Model, INF};
use crate::history::{AcquireResult, Event, EventKind, Op, ReleaseResult};

/// What one searched operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Needs a free lock; the token, when known, must be above every earlier one. Also an
    /// unsure acquire that the log shows granted, or that a release found held (token unknown).
    Grant { rid: u32, token: Option<u64> },
    /// A try-lock that found the lock held.
    Busy,
    /// `Done { was_held: true }`: this request held the lock and no longer does.
    ReleaseHeld { rid: u32 },
    /// `Done { was_held: false }`: this request did not hold the lock.
    ReleaseNotHeld { rid: u32 },
    /// A release whose outcome is unknown: it ended this request's hold, or did nothing.
    ReleaseMaybe { rid: u32 },
    /// A committed end of this request's hold that no recorded release explains: an Expired
    /// event, or a Released event of a release the client core sent on its own.
    End { rid: u32 },
}

/// Where a searched operation came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Index into `History::ops`.
    Op(usize),
    /// Index into the merged events.
    Event(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MutexState {
    /// The holding request, and its token when the model knows it.
    pub holder: Option<(u32, Option<u64>)>,
    /// A lower bound of the last token granted on this lock.
    pub last_token: u64,
}

/// One lock's operations, ready to search.
pub(crate) struct LockHistory {
    pub steps: Vec<Step>,
    pub intervals: Vec<Interval>,
    pub origins: Vec<Origin>,
    /// Request ids by their number in [`Step`].
    pub rids: Vec<String>,
    /// For each rid, the ops that can make it the holder.
    grants: Vec<Vec<usize>>,
}

impl LockHistory {
    /// Builds the search input from one lock's recorded ops (`ops` are indexes into `all`) and
    /// that lock's merged events (with their indexes in the merged stream).
    pub fn build(
        all: &[Op],
        ops: &[usize],
        events: &[(usize, &Event)],
        events_complete: bool,
        log_time: &LogTime,
    ) -> LockHistory {
        let mut h = LockHistory { steps: vec![], intervals: vec![], origins: vec![], rids: vec![], grants: vec![] };
        let mut ids: HashMap<&str, u32> = HashMap::new();

        // Facts about requests the translation needs first.
        let granted_in_log: HashMap<&str, (u64, u64)> = events
            .iter()
            .filter(|(_, e)| e.kind == EventKind::Granted)
            .map(|(_, e)| (e.request_id.as_str(), (e.index, e.token)))
            .collect();
        let mut released_held: HashSet<&str> = HashSet::new();
        let mut first_call: HashMap<&str, u64> = HashMap::new();
        // [call, ret] of acquires that may have held the lock for a moment without the history
        // knowing: they excuse a concurrent Busy.
        let mut unsure: Vec<(&str, u64, u64)> = Vec::new();
        for &i in ops {
            match &all[i] {
                Op::Release { request_id, result: ReleaseResult::Done { was_held: true }, .. } => {
                    released_held.insert(request_id);
                }
                Op::Acquire { request_id, call, ret, result, .. } => {
                    let call = nanos(*call);
                    let c = first_call.entry(request_id).or_insert(call);
                    *c = (*c).min(call);
                    match result {
                        AcquireResult::Failed { .. } => unsure.push((request_id, call, ret.map_or(INF, nanos))),
                        AcquireResult::Unknown => unsure.push((request_id, call, INF)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // With the whole log at hand, a moment's hold by an unsure acquire is no longer unknown:
        // it is a grant in the log (modeled below) or it never happened.
        if events_complete {
            unsure.clear();
        }

        // Acquires first, so that every rid's grants are known when releases are translated.
        for &i in ops {
            let Op::Acquire { request_id, call, ret, result, .. } = &all[i] else { continue };
            let rid = request_id.as_str();
            let (call, ret) = (nanos(*call), ret.map_or(INF, nanos));
            let (step, interval) = match result {
                AcquireResult::Granted { token } => {
                    (Step::Grant { rid: h.intern(&mut ids, rid), token: Some(*token) }, Interval { call, ret })
                }
                AcquireResult::Busy => {
                    if unsure.iter().any(|&(r, c, e)| r != rid && c <= ret && call <= e) {
                        continue;
                    }
                    (Step::Busy, Interval { call, ret })
                }
                // The client could not know, but the log says it was granted: a ghost hold,
                // taken after the call and where the log places it (a retry may even land after
                // the client gave up).
                AcquireResult::Failed { .. } | AcquireResult::Unknown if granted_in_log.contains_key(rid) => {
                    let (index, token) = granted_in_log.get(rid).copied().unwrap_or_default();
                    (Step::Grant { rid: h.intern(&mut ids, rid), token: Some(token) }, placed(log_time, index, call))
                }
                // The server said a release of this request found it held: it was granted.
                AcquireResult::Failed { .. } | AcquireResult::Unknown if released_held.contains(rid) => {
                    let ret = if *result == AcquireResult::Unknown { INF } else { ret };
                    (Step::Grant { rid: h.intern(&mut ids, rid), token: None }, Interval { call, ret })
                }
                AcquireResult::Failed { .. } | AcquireResult::Unknown => continue,
            };
            h.push(step, interval, Origin::Op(i));
        }
        for &i in ops {
            let Op::Release { request_id, call, ret, result, .. } = &all[i] else { continue };
            let can_hold = ids.get(request_id.as_str()).is_some_and(|&r| !h.grants[r as usize].is_empty());
            let (call, mut ret) = (nanos(*call), ret.map_or(INF, nanos));
            let step = match result {
                ReleaseResult::Done { was_held: true } => Step::ReleaseHeld { rid: h.intern(&mut ids, request_id) },
                ReleaseResult::Failed { .. } => continue,
                _ if !can_hold => continue,
                ReleaseResult::Done { was_held: false } => Step::ReleaseNotHeld { rid: h.intern(&mut ids, request_id) },
                ReleaseResult::Unknown => {
                    // A retry may still be in flight after the client gave up.
                    ret = INF;
                    Step::ReleaseMaybe { rid: h.intern(&mut ids, request_id) }
                }
            };
            h.push(step, Interval { call, ret }, Origin::Op(i));
        }
        for &(index, e) in events {
            let explained = e.kind == EventKind::Released && released_held.contains(e.request_id.as_str());
            if e.token == 0 || !matches!(e.kind, EventKind::Released | EventKind::Expired) || explained {
                continue;
            }
            let Some(&rid) = ids.get(e.request_id.as_str()) else { continue };
            if h.grants[rid as usize].is_empty() {
                continue; // a ghost grant the model never saw
            }
            // The end comes after the acquire's call, and where the log places it in real time
            // (a reply delayed past the TTL can even arrive after the expiry).
            let Some(&call) = first_call.get(e.request_id.as_str()) else { continue };
            h.push(Step::End { rid }, placed(log_time, e.index, call), Origin::Event(index));
        }
        h
    }

    /// The number standing for `rid` in [`Step`].
    fn intern<'a>(&mut self, ids: &mut HashMap<&'a str, u32>, rid: &'a str) -> u32 {
        *ids.entry(rid).or_insert_with(|| {
            self.rids.push(rid.to_owned());
            self.grants.push(Vec::new());
            u32::try_from(self.rids.len() - 1).unwrap_or(u32::MAX)
        })
    }

    fn push(&mut self, step: Step, interval: Interval, origin: Origin) {
        if let Step::Grant { rid, .. } = step {
            self.grants[rid as usize].push(self.steps.len());
        }
        self.steps.push(step);
        self.intervals.push(interval);
        self.origins.push(origin);
    }

    /// `rid` does not hold the lock and never will again: every op that could grant it is
    /// linearized.
    fn finished(&self, state: &MutexState, rid: u32, done: &Bitset) -> bool {
        state.holder.is_none_or(|(h, _)| h != rid) && self.grants[rid as usize].iter().all(|&g| done.get(g))
    }

    fn holds(state: &MutexState, rid: u32) -> bool {
        state.holder.is_some_and(|(h, _)| h == rid)
    }
}

impl Model for LockHistory {
    type State = MutexState;

    fn init(&self) -> MutexState {
        MutexState { holder: None, last_token: 0 }
    }

    fn step(&self, s: &MutexState, op: usize, _: &Bitset, out: &mut Vec<MutexState>) {
        let free = MutexState { holder: None, ..*s };
        match self.steps[op] {
            Step::Grant { rid, token } => {
                if s.holder.is_none() && token.is_none_or(|t| t > s.last_token) {
                    let last_token = token.unwrap_or(s.last_token);
                    out.push(MutexState { holder: Some((rid, token)), last_token });
                }
            }
            Step::Busy if s.holder.is_some() => out.push(*s),
            Step::Busy => {}
            Step::ReleaseHeld { rid } | Step::End { rid } if Self::holds(s, rid) => out.push(free),
            Step::ReleaseHeld { .. } | Step::End { .. } => {}
            Step::ReleaseNotHeld { rid } if !Self::holds(s, rid) => out.push(*s),
            Step::ReleaseNotHeld { .. } => {}
            Step::ReleaseMaybe { rid } => {
                out.push(*s);
                if Self::holds(s, rid) {
                    out.push(free);
                }
            }
        }
    }

    fn inert(&self, s: &MutexState, op: usize, done: &Bitset) -> bool {
        match self.steps[op] {
            Step::ReleaseNotHeld { rid } | Step::ReleaseMaybe { rid } => self.finished(s, rid, done),
            _ => false,
        }
    }

    fn dead(&self, s: &MutexState, op: usize, done: &Bitset) -> bool {
        match self.steps[op] {
            Step::ReleaseHeld { rid } | Step::End { rid } => self.finished(s, rid, done),
            Step::Grant { token: Some(t), .. } => t <= s.last_token,
            _ => false,
        }
    }
}

/// The interval of an op the history knows only as log entry `index`, caused by a request
/// called at `call`: see [`LogTime`].
fn placed(log_time: &LogTime, index: u64, call: u64) -> Interval {
    let (after, before) = log_time.window(index);
    if call.max(after) <= before {
        Interval { call: call.max(after), ret: before }
    } else {
        // The log and the clients' clocks disagree; rather than guess, claim nothing.
        Interval { call, ret: INF }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn build(ops: &[Op], events: &[Event]) -> LockHistory {
        let idx: Vec<usize> = (0..ops.len()).collect();
        let evs: Vec<(usize, &Event)> = events.iter().enumerate().collect();
        LockHistory::build(ops, &idx, &evs, false, &LogTime::default())
    }

    #[test]
    fn no_op_operations_are_left_out() {
        let h = build(
            &[
                acquire(1, "a", "r1", 0, Some(10), failed()),
                acquire(2, "a", "r2", 5, Some(6), AcquireResult::Busy), // excused by r1
                acquire(3, "a", "r3", 0, None, AcquireResult::Unknown),
                release(3, "a", "r3", 20, None, ReleaseResult::Unknown), // r3 can never hold
                release(4, "a", "r4", 20, Some(21), ReleaseResult::Failed { code: "X".into() }),
            ],
            &[ev(5, 0, crate::history::EventKind::Expired, "a", "r3", 4)], // ghost grant of r3
        );
        assert!(h.steps.is_empty(), "{:?}", h.steps);
    }

    #[test]
    fn an_unsure_acquire_whose_release_found_it_held_is_a_grant() {
        let h = build(
            &[acquire(1, "a", "r1", 0, None, AcquireResult::Unknown), release(1, "a", "r1", 20, Some(30), held())],
            &[],
        );
        assert_eq!(h.steps, vec![Step::Grant { rid: 0, token: None }, Step::ReleaseHeld { rid: 0 }]);
        assert_eq!(h.intervals[0].ret, INF);
    }

    #[test]
    fn the_model_follows_a_fenced_mutex() {
        let h = build(
            &[acquire(1, "a", "r1", 0, Some(1), granted(5)), release(1, "a", "r1", 2, Some(3), held())],
            &[ev(4, 0, crate::history::EventKind::Expired, "a", "r1", 5)],
        );
        let done = Bitset::new(3);
        let mut out = Vec::new();
        let held5 = MutexState { holder: Some((0, Some(5))), last_token: 5 };
        h.step(&h.init(), 0, &done, &mut out);
        assert_eq!(out, vec![held5]);
        out.clear();
        h.step(&MutexState { holder: None, last_token: 5 }, 0, &done, &mut out);
        assert!(out.is_empty(), "a token must rise");
        h.step(&held5, 1, &done, &mut out);
        h.step(&held5, 2, &done, &mut out);
        assert_eq!(out, vec![MutexState { holder: None, last_token: 5 }; 2]);
        assert!(h.dead(&MutexState { holder: None, last_token: 5 }, 0, &done));
    }
}

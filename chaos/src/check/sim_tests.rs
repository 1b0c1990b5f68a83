//! End-to-end tests of [`super::check`] on random histories of a correct lock service: every
//! check must pass them, and the linearizability search must finish well within budget. A
//! simulated leader applies one action every 10 ms (its linearization point); each recorded op's
//! call and return are scattered up to 80 ms around that point, so about sixteen ops are in
//! flight at once.

use super::testkit::*;
use super::{check, CheckOptions};
use crate::history::{
    AcquireResult, Event, EventKind, History, Hold, HoldEnd, NodeEvents, Op, PutResult, ReleaseResult,
};

struct Holder {
    client: u32,
    rid: String,
    token: u64,
    /// When its acquire returned (the hold's start as the client sees it).
    from: u64,
    /// Its release never took effect and nobody will release it: it can only expire.
    orphan: bool,
}

struct Sim {
    rng: Rng,
    t: u64,
    index: u64,
    token: u64,
    next_rid: u64,
    ops: Vec<Op>,
    holds: Vec<Hold>,
    events: Vec<Event>,
    holders: Vec<Option<Holder>>,
    /// Clients whose lease expired before they released: (lock, client, rid, token).
    stale: Vec<(usize, u32, String, u64)>,
}

/// How far a recorded call or return lies from the op's linearization point.
const SPREAD_MS: u64 = 80;
const LOCKS: [&str; 2] = ["alpha", "beta"];
const KEY: [&str; 2] = ["k-alpha", "k-beta"];

impl Sim {
    fn around(&mut self) -> (u64, Option<u64>) {
        (self.t - self.rng.below(SPREAD_MS), Some(self.t + self.rng.below(SPREAD_MS)))
    }

    fn rid(&mut self) -> String {
        self.next_rid += 1;
        format!("r{}", self.next_rid)
    }

    fn client(&mut self) -> u32 {
        1 + u32::try_from(self.rng.below(8)).unwrap_or(0)
    }

    fn event(&mut self, kind: EventKind, lock: usize, rid: &str, token: u64) {
        self.index += 1;
        self.events.push(ev(self.index, 0, kind, LOCKS[lock], rid, token));
    }

    fn end_hold(&mut self, lock: usize, h: &Holder, until: u64, end: HoldEnd) {
        let hold = Hold { end, ..hold(h.client, LOCKS[lock], &h.rid, h.token, h.from, until) };
        self.holds.push(hold);
    }

    /// One action of the leader on `lock`, at time `self.t`.
    fn act(&mut self, lock: usize) {
        let name = LOCKS[lock];
        let (call, ret) = self.around();
        let roll = self.rng.below(100);
        match self.holders[lock].take() {
            Some(h) if h.orphan => {
                self.event(EventKind::Expired, lock, &h.rid, h.token);
            }
            Some(h) if roll < 30 => {
                self.ops.push(release(h.client, name, &h.rid, call, ret, held()));
                self.event(EventKind::Released, lock, &h.rid, h.token);
                self.end_hold(lock, &h, call, HoldEnd::Released);
            }
            Some(h) if roll < 40 => {
                // The client stalled past its lease; it learns so and releases later.
                self.event(EventKind::Expired, lock, &h.rid, h.token);
                self.end_hold(lock, &h, self.t - 1, HoldEnd::Lost);
                self.stale.push((lock, h.client, h.rid.clone(), h.token));
            }
            Some(mut h) if roll < 50 => {
                self.ops.push(release(h.client, name, &h.rid, call, None, ReleaseResult::Unknown));
                self.end_hold(lock, &h, call, HoldEnd::Released);
                if self.rng.chance(50) {
                    self.event(EventKind::Released, lock, &h.rid, h.token);
                } else {
                    h.orphan = true;
                    self.holders[lock] = Some(h);
                }
            }
            Some(h) => {
                if roll < 70 {
                    let other = self.rid();
                    let client = self.client();
                    self.ops.push(acquire(client, name, &other, call, ret, AcquireResult::Busy));
                } else if roll < 85 {
                    self.index += 1;
                    self.ops.push(put(h.client, name, KEY[lock], h.token, call, ret, accepted(self.index)));
                } else {
                    let other = self.rid();
                    let client = self.client();
                    let result = if roll < 92 { failed() } else { AcquireResult::Unknown };
                    let ret = if result == AcquireResult::Unknown { None } else { ret };
                    self.ops.push(acquire(client, name, &other, call, ret, result));
                }
                self.holders[lock] = Some(h);
            }
            None => {
                let rid = self.rid();
                let client = self.client();
                if roll < 50 {
                    self.token += 1;
                    self.ops.push(acquire(client, name, &rid, call, ret, granted(self.token)));
                    self.event(EventKind::Granted, lock, &rid, self.token);
                    let from = ret.unwrap_or(call);
                    self.holders[lock] = Some(Holder { client, rid, token: self.token, from, orphan: false });
                } else if roll < 65 {
                    // Granted, but the client never heard; its core released it in the background.
                    self.token += 1;
                    self.ops.push(acquire(client, name, &rid, call, None, AcquireResult::Unknown));
                    self.event(EventKind::Granted, lock, &rid, self.token);
                    self.event(EventKind::Released, lock, &rid, self.token);
                } else if let Some(i) = self.stale.iter().position(|s| s.0 == lock).filter(|_| roll < 85) {
                    let (_, client, rid, token) = self.stale.swap_remove(i);
                    if roll < 75 {
                        self.ops.push(put(client, name, KEY[lock], token, call, ret, PutResult::FencedOut));
                        self.stale.push((lock, client, rid, token));
                    } else {
                        self.ops.push(release(client, name, &rid, call, ret, not_held()));
                    }
                } else {
                    let result = if roll < 90 { failed() } else { AcquireResult::Unknown };
                    let ret = if result == AcquireResult::Unknown { None } else { ret };
                    self.ops.push(acquire(client, name, &rid, call, ret, result));
                }
            }
        }
    }

    /// Every client releases and closes.
    fn finish(&mut self) {
        for (lock, name) in LOCKS.iter().enumerate() {
            self.t += 10;
            let (call, ret) = self.around();
            if let Some(h) = self.holders[lock].take() {
                if h.orphan {
                    self.event(EventKind::Expired, lock, &h.rid, h.token);
                } else {
                    self.ops.push(release(h.client, name, &h.rid, call, ret, held()));
                    self.event(EventKind::Released, lock, &h.rid, h.token);
                    self.end_hold(lock, &h, call, HoldEnd::Released);
                }
            }
        }
        for (lock, client, rid, _) in std::mem::take(&mut self.stale) {
            self.t += 10;
            let (call, ret) = self.around();
            self.ops.push(release(client, LOCKS[lock], &rid, call, ret, not_held()));
        }
    }
}

/// A random history of `actions` leader actions, its events reported by three nodes whose
/// ranges overlap and together cover the log.
fn simulate(seed: u64, actions: usize) -> History {
    let mut sim = Sim {
        rng: Rng(seed),
        t: 1000,
        index: 0,
        token: 0,
        next_rid: 0,
        ops: vec![],
        holds: vec![],
        events: vec![],
        holders: vec![None, None],
        stale: vec![],
    };
    for _ in 0..actions {
        sim.t += 10;
        let lock = usize::try_from(sim.rng.below(2)).unwrap_or(0);
        sim.act(lock);
    }
    sim.finish();
    let max = sim.index;
    let report = |node, from, to| NodeEvents {
        node,
        from,
        to,
        events: sim.events.iter().filter(|e| (from..=to).contains(&e.index)).cloned().collect(),
    };
    let events = vec![report(1, 1, max / 2), report(2, max / 3, max), report(3, max / 2, max)];
    History { ops: sim.ops, holds: sim.holds, events }
}

#[test]
fn random_histories_of_a_correct_lock_service_pass_every_check() {
    for seed in 1..=20 {
        let history = simulate(seed, 300);
        let opts = CheckOptions { expect_all_ended: true, max_steps_per_lock: 200_000 };
        let report = check(&history, &opts);
        assert!(report.passed(), "seed {seed}: {:#?}\n{:#?}", report.violations, report.inconclusive);
        let s = &report.stats;
        assert!(s.events_complete, "seed {seed}");
        assert!(s.acquires.granted > 20 && s.unknown_ops > 5 && s.puts.fenced_out > 0, "seed {seed}: {s:#?}");
        assert!(history.ops.len() > 250, "seed {seed}: {} ops", history.ops.len());
        // a correct history needs little more than one step per op
        assert!(s.search_steps < 20 * history.ops.len() as u64, "seed {seed}: {s:#?}");
    }
}

#[test]
fn a_grant_acknowledged_with_a_reused_token_is_caught() {
    let mut history = simulate(7, 300);
    // Give the first grant's token to a later acquire of the same lock as well: that acquire
    // now claims a grant the lock could not make (its token no longer rises).
    let first =
        history.ops.iter().position(|op| matches!(op, Op::Acquire { result: AcquireResult::Granted { .. }, .. }));
    let Some(Op::Acquire { lock, result: AcquireResult::Granted { token }, .. }) =
        first.map(|i| history.ops[i].clone())
    else {
        panic!("no grant")
    };
    let later = history
        .ops
        .iter_mut()
        .skip(first.unwrap_or(0) + 1)
        .find(|op| matches!(op, Op::Acquire { lock: l, result: AcquireResult::Granted { .. }, .. } if *l == lock));
    if let Some(Op::Acquire { result, .. }) = later {
        *result = AcquireResult::Granted { token };
    }
    let report = check(&history, &CheckOptions { expect_all_ended: true, max_steps_per_lock: 200_000 });
    let checks: Vec<_> = report.violations.iter().map(|v| v.check).collect();
    assert!(checks.contains(&"L1 linearizable"), "{checks:?}");
    assert!(checks.contains(&"L3 acked grant lost"), "{checks:?}");
}

#[test]
fn a_search_out_of_budget_is_reported_inconclusive() {
    let report = check(&simulate(3, 300), &CheckOptions { expect_all_ended: true, max_steps_per_lock: 20 });
    assert_eq!(report.inconclusive, vec!["alpha".to_owned(), "beta".to_owned()]);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(!report.passed());
}

//! Short builders for hand-written histories in the checks' tests. Times are in milliseconds.

use std::time::Duration;

use crate::history::{AcquireResult, Event, EventKind, Hold, HoldEnd, NodeEvents, Op, PutResult, ReleaseResult};

pub fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

pub fn granted(token: u64) -> AcquireResult {
    AcquireResult::Granted { token }
}

pub fn failed() -> AcquireResult {
    AcquireResult::Failed { code: "TIMEOUT".to_owned() }
}

pub fn held() -> ReleaseResult {
    ReleaseResult::Done { was_held: true }
}

pub fn not_held() -> ReleaseResult {
    ReleaseResult::Done { was_held: false }
}

pub fn acquire(client: u32, lock: &str, rid: &str, call: u64, ret: Option<u64>, result: AcquireResult) -> Op {
    Op::Acquire { client, lock: lock.to_owned(), request_id: rid.to_owned(), call: ms(call), ret: ret.map(ms), result }
}

pub fn release(client: u32, lock: &str, rid: &str, call: u64, ret: Option<u64>, result: ReleaseResult) -> Op {
    Op::Release { client, lock: lock.to_owned(), request_id: rid.to_owned(), call: ms(call), ret: ret.map(ms), result }
}

#[allow(clippy::too_many_arguments)]
pub fn put(client: u32, lock: &str, key: &str, token: u64, call: u64, ret: Option<u64>, result: PutResult) -> Op {
    Op::FencedPut {
        client,
        lock: lock.to_owned(),
        key: key.to_owned(),
        token,
        call: ms(call),
        ret: ret.map(ms),
        result,
    }
}

pub fn accepted(revision: u64) -> PutResult {
    PutResult::Accepted { revision }
}

pub fn hold(client: u32, lock: &str, rid: &str, token: u64, from: u64, until: u64) -> Hold {
    Hold {
        client,
        lock: lock.to_owned(),
        request_id: rid.to_owned(),
        token,
        from: ms(from),
        until: ms(until),
        end: HoldEnd::Released,
    }
}

pub fn ev(index: u64, seq: u32, kind: EventKind, lock: &str, rid: &str, token: u64) -> Event {
    Event { index, seq, kind, lock: lock.to_owned(), request_id: rid.to_owned(), token }
}

pub fn node(node: u64, from: u64, to: u64, events: Vec<Event>) -> NodeEvents {
    NodeEvents { node, from, to, events }
}

/// A tiny deterministic generator (splitmix64), so randomised tests replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

//! A Wing–Gong linearizability search with Lowe's cache (as in porcupine and knossos), for
//! models that may be nondeterministic.
//!
//! The history is a list of call and return entries in time order. The search walks it,
//! linearizing any operation whose call comes before the first pending return, and backtracks
//! when it meets the return of an operation it has not linearized. A cache of (set of
//! linearized ops, model state) prunes configurations already explored, so the cost is bounded
//! by the number of distinct configurations, which a step budget caps.
//!
//! Operations whose outcome is unknown return at +∞ and stay pending forever, which without
//! help explodes the search (every one of them may or may not be linearized yet). The model
//! therefore says when a pending operation is *inert* (from here on it can only be a no-op:
//! linearize it now, no branching) or *dead* (it can never be linearized: prune now rather than
//! at the end of the history).

use std::collections::HashSet;
use std::hash::Hash;

/// Return time of an operation that never returned.
pub(crate) const INF: u64 = u64::MAX;

/// An operation's real-time interval (any unit; `ret` may be [`INF`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interval {
    pub call: u64,
    pub ret: u64,
}

/// Which operations are linearized so far.
#[derive(Clone, Debug)]
pub(crate) struct Bitset(Vec<u64>);

impl Bitset {
    pub fn new(n: usize) -> Bitset {
        Bitset(vec![0; n.div_ceil(64)])
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// A sequential specification over operations numbered like the search's intervals.
pub(crate) trait Model {
    type State: Copy + Eq + Hash;
    fn init(&self) -> Self::State;
    /// Pushes onto `out` every state `op` may lead to from `state` (none: not allowed here).
    fn step(&self, state: &Self::State, op: usize, done: &Bitset, out: &mut Vec<Self::State>);
    /// `op` (pending, not linearized) can from here on only be a no-op.
    fn inert(&self, state: &Self::State, op: usize, done: &Bitset) -> bool;
    /// `op` (pending, not linearized) can never be linearized from here on.
    fn dead(&self, state: &Self::State, op: usize, done: &Bitset) -> bool;
}

/// Where the deepest failed attempt got stuck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stuck<S> {
    /// How many operations were linearized.
    pub linearized: usize,
    /// The last few of them, in linearization order.
    pub tail: Vec<usize>,
    /// The operation that could not be linearized in time.
    pub op: usize,
    pub state: S,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict<S> {
    Linearizable,
    NotLinearizable(Stuck<S>),
    /// The budget ran out.
    Inconclusive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome<S> {
    pub verdict: Verdict<S>,
    pub steps: u64,
    pub backtracks: u64,
}

const HEAD: usize = usize::MAX - 1;
const NIL: usize = usize::MAX;
const TAIL_LEN: usize = 4;

/// One linearization decision, to undo on backtrack.
struct Frame<S> {
    op: usize,
    /// The state before it.
    state: S,
    /// Which of `step`'s next states was taken.
    alt: usize,
    /// Inert ops linearized along with it, in order.
    inert: Vec<usize>,
}

/// The entry list: entry `i < n` is op i's call, `n + i` its return. Doubly linked so that
/// linearizing an op removes both of its entries and backtracking puts them back in O(1).
struct Entries {
    n: usize,
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Entries {
    fn new(ops: &[Interval]) -> Entries {
        let n = ops.len();
        // (a return recorded before its call is taken as returning at the call)
        let time = |e: usize| if e < n { ops[e].call } else { ops[e - n].ret.max(ops[e - n].call) };
        let mut order: Vec<usize> = (0..2 * n).collect();
        // At equal times calls come first: ops that touch in time are treated as concurrent.
        order.sort_by_key(|&e| (time(e), e >= n, e));
        let (mut next, mut prev) = (vec![NIL; 2 * n], vec![NIL; 2 * n]);
        let mut last = HEAD;
        let mut head = NIL;
        for &e in &order {
            if last == HEAD {
                head = e;
            } else {
                next[last] = e;
            }
            prev[e] = last;
            last = e;
        }
        Entries { n, next, prev, head }
    }

    fn first(&self) -> usize {
        self.head
    }

    fn remove(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        if p == HEAD {
            self.head = nx;
        } else {
            self.next[p] = nx;
        }
        if nx != NIL {
            self.prev[nx] = p;
        }
    }

    fn restore(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        if p == HEAD {
            self.head = e;
        } else {
            self.next[p] = e;
        }
        if nx != NIL {
            self.prev[nx] = e;
        }
    }

    /// Removes op's call and return entries.
    fn lift(&mut self, op: usize) {
        self.remove(op);
        self.remove(self.n + op);
    }

    /// Undoes the matching [`Entries::lift`] (lifts are undone in reverse order).
    fn unlift(&mut self, op: usize) {
        self.restore(self.n + op);
        self.restore(op);
    }
}

/// The search's mutable configuration.
struct Search<'m, M: Model> {
    model: &'m M,
    entries: Entries,
    done: Bitset,
    linearized: usize,
    /// Zobrist fingerprint of `done`: the cache keeps 16 bytes per configuration, not a bitset.
    fingerprint: u128,
    zobrist: Vec<u128>,
    frames: Vec<Frame<M::State>>,
    stuck: Option<Stuck<M::State>>,
}

impl<M: Model> Search<'_, M> {
    fn mark(&mut self, op: usize) {
        self.done.set(op);
        self.fingerprint ^= self.zobrist[op];
        self.linearized += 1;
        self.entries.lift(op);
    }

    fn unmark(&mut self, op: usize) {
        self.entries.unlift(op);
        self.linearized -= 1;
        self.fingerprint ^= self.zobrist[op];
        self.done.clear(op);
    }

    fn note_stuck(&mut self, op: usize, state: M::State) {
        if self.stuck.as_ref().is_none_or(|s| self.linearized > s.linearized) {
            let from = self.frames.len().saturating_sub(TAIL_LEN);
            let tail = self.frames[from..].iter().map(|f| f.op).collect();
            self.stuck = Some(Stuck { linearized: self.linearized, tail, op, state });
        }
    }

    /// Linearizes every pending inert op, and fails on a dead one. On failure the inert ops
    /// already linearized are left in `inert` for the caller to undo.
    fn settle(&mut self, state: &M::State, inert: &mut Vec<usize>) -> Result<(), usize> {
        loop {
            let mut changed = false;
            let mut e = self.entries.first();
            while e < self.entries.n {
                let after = self.entries.next[e];
                if self.model.dead(state, e, &self.done) {
                    return Err(e);
                }
                if self.model.inert(state, e, &self.done) {
                    self.mark(e);
                    inert.push(e);
                    changed = true;
                }
                e = after;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    fn undo_inert(&mut self, inert: &[usize]) {
        for &op in inert.iter().rev() {
            self.unmark(op);
        }
    }
}

/// Searches for a linearization of `ops` under `model`, in at most `budget` steps.
pub(crate) fn search<M: Model>(model: &M, ops: &[Interval], budget: u64) -> Outcome<M::State> {
    let mut seed = 0x5EED_u64;
    let mut s = Search {
        model,
        entries: Entries::new(ops),
        done: Bitset::new(ops.len()),
        linearized: 0,
        fingerprint: 0,
        zobrist: (0..ops.len())
            .map(|_| (u128::from(splitmix(&mut seed)) << 64) | u128::from(splitmix(&mut seed)))
            .collect(),
        frames: Vec::new(),
        stuck: None,
    };
    let mut outcome = Outcome { verdict: Verdict::Linearizable, steps: 0, backtracks: 0 };
    let mut state = model.init();
    let mut cache: HashSet<(u128, M::State)> = HashSet::new();
    let mut alts = Vec::new();

    // Ops inert from the start are linearized for good.
    if let Err(op) = s.settle(&state, &mut Vec::new()) {
        outcome.verdict = Verdict::NotLinearizable(Stuck { linearized: s.linearized, tail: Vec::new(), op, state });
        return outcome;
    }
    let mut entry = s.entries.first();
    let mut first_alt = 0;
    while s.entries.first() != NIL {
        outcome.steps += 1;
        if outcome.steps > budget {
            outcome.verdict = Verdict::Inconclusive;
            return outcome;
        }
        if entry < s.entries.n {
            // A call: try to linearize the op here, one possible next state at a time.
            let op = entry;
            alts.clear();
            model.step(&state, op, &s.done, &mut alts);
            let mut taken = None;
            for (alt, &next) in alts.iter().enumerate().skip(first_alt) {
                s.mark(op);
                let mut inert = Vec::new();
                match s.settle(&next, &mut inert) {
                    Ok(()) if cache.insert((s.fingerprint, next)) => {
                        taken = Some((alt, next, inert));
                        break;
                    }
                    Ok(()) => {}
                    Err(dead) => s.note_stuck(dead, next),
                }
                s.undo_inert(&inert);
                s.unmark(op);
            }
            first_alt = 0;
            match taken {
                Some((alt, next, inert)) => {
                    s.frames.push(Frame { op, state, alt, inert });
                    state = next;
                    entry = s.entries.first();
                }
                None => entry = s.entries.next[entry],
            }
        } else {
            // The return of an op not linearized: undo the last decision and try its next option.
            s.note_stuck(entry - s.entries.n, state);
            let Some(frame) = s.frames.pop() else {
                let stuck = s.stuck.take().unwrap_or(Stuck { linearized: 0, tail: Vec::new(), op: 0, state });
                outcome.verdict = Verdict::NotLinearizable(stuck);
                return outcome;
            };
            outcome.backtracks += 1;
            s.undo_inert(&frame.inert);
            s.unmark(frame.op);
            state = frame.state;
            entry = frame.op;
            first_alt = frame.alt + 1;
        }
    }
    outcome
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: op = Write(v) or Read(v), or a write that may or may not have happened.
    enum RegOp {
        Write(u8),
        Read(u8),
        MaybeWrite(u8),
    }

    struct Register(Vec<RegOp>);

    impl Model for Register {
        type State = u8;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, state: &u8, op: usize, _: &Bitset, out: &mut Vec<u8>) {
            match self.0[op] {
                RegOp::Write(v) => out.push(v),
                RegOp::Read(v) if v == *state => out.push(v),
                RegOp::Read(_) => {}
                RegOp::MaybeWrite(v) => out.extend([*state, v]),
            }
        }
        fn inert(&self, _: &u8, _: usize, _: &Bitset) -> bool {
            false
        }
        fn dead(&self, _: &u8, _: usize, _: &Bitset) -> bool {
            false
        }
    }

    fn iv(call: u64, ret: u64) -> Interval {
        Interval { call, ret }
    }

    #[test]
    fn sequential_history_is_linearizable_without_backtracking() {
        let m = Register(vec![RegOp::Write(1), RegOp::Read(1), RegOp::Write(2), RegOp::Read(2)]);
        let out = search(&m, &[iv(0, 1), iv(2, 3), iv(4, 5), iv(6, 7)], 100);
        assert_eq!(out.verdict, Verdict::Linearizable);
        assert_eq!(out.backtracks, 0);
    }

    #[test]
    fn concurrent_ops_linearize_in_an_order_other_than_their_returns() {
        // W1 starts first but must take effect after W2: R(1) sees W1, which returned last.
        let m = Register(vec![RegOp::Write(1), RegOp::Write(2), RegOp::Read(2), RegOp::Read(1)]);
        let out = search(&m, &[iv(0, 50), iv(1, 10), iv(11, 12), iv(60, 61)], 100);
        assert_eq!(out.verdict, Verdict::Linearizable);
        assert!(out.backtracks > 0);
    }

    #[test]
    fn a_stale_read_is_not_linearizable_and_says_where() {
        let m = Register(vec![RegOp::Write(1), RegOp::Write(2), RegOp::Read(1)]);
        let out = search(&m, &[iv(0, 1), iv(2, 3), iv(4, 5)], 100);
        let Verdict::NotLinearizable(stuck) = out.verdict else { panic!("{:?}", out.verdict) };
        assert_eq!((stuck.op, stuck.linearized, stuck.tail, stuck.state), (2, 2, vec![0, 1], 2));
    }

    #[test]
    fn a_write_that_never_returned_may_or_may_not_take_effect() {
        let m = Register(vec![RegOp::MaybeWrite(7), RegOp::Read(0), RegOp::Read(7), RegOp::Read(7)]);
        let out = search(&m, &[iv(0, INF), iv(1, 2), iv(3, 4), iv(5, 6)], 100);
        assert_eq!(out.verdict, Verdict::Linearizable);
        let m = Register(vec![RegOp::MaybeWrite(7), RegOp::Read(7), RegOp::Read(0)]);
        let out = search(&m, &[iv(0, INF), iv(1, 2), iv(3, 4)], 100);
        assert!(matches!(out.verdict, Verdict::NotLinearizable(_)), "{:?}", out.verdict);
    }

    #[test]
    fn running_out_of_budget_is_inconclusive() {
        let m = Register((0..40).map(|i| RegOp::Write(i % 3)).collect());
        let ops: Vec<_> = (0..40).map(|i| iv(i, 100 + i)).collect();
        assert_eq!(search(&m, &ops, 10).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(search(&Register(vec![]), &[], 1).verdict, Verdict::Linearizable);
    }
}

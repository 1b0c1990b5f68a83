//! Property tests of [`LockTable`] against a deliberately simple reference model: per lock a Vec
//! of holders and a Vec queue, linear scans everywhere, no indexes and no dirty tracking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::command::*;
use super::table::*;

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Model {
    locks: BTreeMap<String, LockRecord>,
    tombstones: BTreeMap<String, Tombstone>,
    kv: BTreeMap<Vec<u8>, KvEntry>,
    next_token: u64,
}

enum Place {
    Held(String, usize),
    Queued(String, usize),
}

fn invalid(field: &str) -> CommandResult {
    CommandResult::Refused(Refusal::InvalidArgument { field: field.to_owned(), message: String::new() })
}

fn bad_name(name: &str) -> bool {
    name.is_empty() || name.len() > 512 || name.contains('\0')
}

fn bad_id(id: &str) -> bool {
    id.is_empty() || id.len() > 64
}

fn fits(lock: &LockRecord, mode: Mode, limit: u32) -> bool {
    match mode {
        Mode::Exclusive => lock.holders.is_empty(),
        Mode::Shared => {
            lock.holders.iter().all(|h| h.mode == Mode::Shared) && (limit == 0 || lock.holders.len() < limit as usize)
        }
    }
}

impl Model {
    fn new() -> Self {
        Model { locks: BTreeMap::new(), tombstones: BTreeMap::new(), kv: BTreeMap::new(), next_token: 1 }
    }

    fn find(&self, id: &str) -> Option<Place> {
        for (name, lock) in &self.locks {
            if let Some(i) = lock.holders.iter().position(|h| h.request_id == id) {
                return Some(Place::Held(name.clone(), i));
            }
            if let Some(i) = lock.waiters.iter().position(|w| w.request_id == id) {
                return Some(Place::Queued(name.clone(), i));
            }
        }
        None
    }

    fn records(&self) -> BTreeMap<RecordKey, Record> {
        let mut out = BTreeMap::new();
        out.insert(RecordKey::Meta, Record::Meta(Meta { next_token: self.next_token }));
        for (k, v) in &self.locks {
            out.insert(RecordKey::Lock(k.clone()), Record::Lock(v.clone()));
        }
        for (k, v) in &self.tombstones {
            out.insert(RecordKey::Tombstone(k.clone()), Record::Tombstone(v.clone()));
        }
        for (k, v) in &self.kv {
            out.insert(RecordKey::Kv(k.clone()), Record::Kv(v.clone()));
        }
        out
    }

    fn apply(&mut self, index: u64, now: u64, caps: &Caps, cmd: &Command) -> (CommandResult, Vec<Event>) {
        let mut ev = Vec::new();
        let result = match cmd {
            Command::Acquire(a) => self.acquire(now, caps, a, &mut ev),
            Command::Release { name, request_id } => self.release(now, name, request_id, &mut ev),
            Command::Expire { name, request_id } => self.expire(now, name, request_id, &mut ev),
            Command::EndDelay { name } => {
                if bad_name(name) {
                    invalid("name")
                } else {
                    let had = self.locks.get_mut(name).and_then(|l| l.delay.take()).is_some();
                    if had {
                        ev.push(Event::DelayEnded { name: name.clone() });
                        self.pump(name, now, &mut ev);
                        self.cleanup(name);
                    }
                    CommandResult::EndDelay { ended: had }
                }
            }
            Command::Checkpoint { leases } => {
                let bad = leases.iter().find_map(|e| {
                    if bad_name(&e.name) {
                        Some("name")
                    } else if bad_id(&e.request_id) {
                        Some("request_id")
                    } else {
                        None
                    }
                });
                match bad {
                    Some(field) => invalid(field),
                    None => {
                        for e in leases {
                            self.set_checkpoint(&e.name, &e.request_id, Some(e.remaining_ms));
                        }
                        CommandResult::Checkpoint
                    }
                }
            }
            Command::ClearCheckpoint { name, request_id } => {
                if bad_name(name) {
                    invalid("name")
                } else if bad_id(request_id) {
                    invalid("request_id")
                } else {
                    CommandResult::ClearCheckpoint { found: self.set_checkpoint(name, request_id, None) }
                }
            }
            Command::ForgetFinished { before_ms } => {
                let before = self.tombstones.len();
                self.tombstones.retain(|_, t| t.finished_at_ms > *before_ms);
                CommandResult::ForgetFinished { forgotten: (before - self.tombstones.len()) as u64 }
            }
            Command::KvPut { key, value, if_fence } => {
                if key.is_empty() || key.len() > 1024 {
                    invalid("key")
                } else if value.len() > 65_536 {
                    invalid("value")
                } else if let Some(refusal) = self.fence_refusal(if_fence) {
                    refusal
                } else {
                    self.kv.insert(key.clone(), KvEntry { value: value.clone(), revision: index });
                    CommandResult::KvPut { revision: index }
                }
            }
            Command::KvDelete { key, if_fence } => {
                if key.is_empty() || key.len() > 1024 {
                    invalid("key")
                } else if let Some(refusal) = self.fence_refusal(if_fence) {
                    refusal
                } else {
                    CommandResult::KvDelete { existed: self.kv.remove(key).is_some() }
                }
            }
            Command::ForceRelease { name, target, immediate } => {
                self.force_release(now, name, target, *immediate, &mut ev)
            }
        };
        (result, ev)
    }

    fn fence_refusal(&self, fence: &Option<Fence>) -> Option<CommandResult> {
        let f = fence.as_ref()?;
        if bad_name(&f.name) {
            return Some(invalid("if_fence.name"));
        }
        let held = self.locks.get(&f.name).is_some_and(|l| l.holders.iter().any(|h| h.token == f.token));
        (!held).then(|| CommandResult::Refused(Refusal::FencedOut { name: f.name.clone(), token: f.token }))
    }

    fn acquire(&mut self, now: u64, caps: &Caps, a: &Acquire, ev: &mut Vec<Event>) -> CommandResult {
        let field = if bad_name(&a.name) {
            Some("name")
        } else if bad_id(&a.request_id) {
            Some("request_id")
        } else if a.owner.len() > 256 {
            Some("owner")
        } else if a.ttl_ms == 0 {
            Some("ttl_ms")
        } else if a.lock_delay_ms > 60_000 {
            Some("lock_delay_ms")
        } else if a.mode == Mode::Exclusive && a.limit != 0 {
            Some("limit")
        } else {
            None
        };
        if let Some(field) = field {
            return invalid(field);
        }
        if let Some(t) = self.tombstones.get(&a.request_id) {
            return CommandResult::Refused(Refusal::RequestFinished {
                request_id: a.request_id.clone(),
                finish: t.finish,
            });
        }
        match self.find(&a.request_id) {
            Some(Place::Held(name, i)) => {
                let lock = &self.locks[&name];
                let h = &lock.holders[i];
                let limit = if h.mode == Mode::Shared { lock.limit.unwrap() } else { 0 };
                let same = name == a.name
                    && h.owner == a.owner
                    && h.mode == a.mode
                    && limit == a.limit
                    && h.ttl_ms == a.ttl_ms
                    && h.lock_delay_ms == a.lock_delay_ms;
                return if same {
                    CommandResult::Acquire(AcquireOutcome::Granted(h.clone()))
                } else {
                    invalid("request_id")
                };
            }
            Some(Place::Queued(name, i)) => {
                let w = &self.locks[&name].waiters[i];
                let same = name == a.name
                    && w.owner == a.owner
                    && w.mode == a.mode
                    && w.limit == a.limit
                    && w.ttl_ms == a.ttl_ms
                    && w.lock_delay_ms == a.lock_delay_ms;
                return if same {
                    CommandResult::Acquire(AcquireOutcome::Queued { position: i as u64 + 1 })
                } else {
                    invalid("request_id")
                };
            }
            None => {}
        }
        let waiter = Waiter {
            request_id: a.request_id.clone(),
            owner: a.owner.clone(),
            mode: a.mode,
            limit: a.limit,
            ttl_ms: a.ttl_ms,
            lock_delay_ms: a.lock_delay_ms,
            enqueued_at_ms: now,
            checkpoint_ms: None,
        };
        if !self.locks.contains_key(&a.name) {
            if self.locks.len() as u64 >= caps.max_locks {
                return CommandResult::Refused(Refusal::ResourceExhausted(String::new()));
            }
            let record = LockRecord {
                name: a.name.clone(),
                holders: vec![],
                waiters: Default::default(),
                limit: None,
                delay: None,
            };
            self.locks.insert(a.name.clone(), record);
            let lease = self.grant(&a.name, waiter, now, ev);
            return CommandResult::Acquire(AcquireOutcome::Granted(lease));
        }
        let lock = &self.locks[&a.name];
        if a.mode == Mode::Shared {
            if let Some(l) = lock.limit {
                if l != a.limit {
                    return CommandResult::Refused(Refusal::LimitMismatch {
                        name: a.name.clone(),
                        lock_limit: l,
                        requested: a.limit,
                    });
                }
            }
        }
        let limit = lock.limit.unwrap_or(a.limit);
        if lock.waiters.is_empty() && lock.delay.is_none() && fits(lock, a.mode, limit) {
            let lease = self.grant(&a.name, waiter, now, ev);
            return CommandResult::Acquire(AcquireOutcome::Granted(lease));
        }
        if !a.wait {
            return CommandResult::Acquire(AcquireOutcome::Busy {
                holders: lock.holders.clone(),
                queue_length: lock.waiters.len() as u64,
            });
        }
        if lock.waiters.len() >= caps.max_waiters_per_lock as usize {
            return CommandResult::Refused(Refusal::ResourceExhausted(String::new()));
        }
        let lock = self.locks.get_mut(&a.name).unwrap();
        if a.mode == Mode::Shared && lock.limit.is_none() {
            lock.limit = Some(a.limit);
        }
        lock.waiters.push_back(waiter);
        ev.push(Event::Queued {
            name: a.name.clone(),
            request_id: a.request_id.clone(),
            ttl_ms: a.ttl_ms,
            owner: a.owner.clone(),
            mode: a.mode,
            position: lock.waiters.len() as u64,
        });
        CommandResult::Acquire(AcquireOutcome::Queued { position: lock.waiters.len() as u64 })
    }

    fn grant(&mut self, name: &str, w: Waiter, now: u64, ev: &mut Vec<Event>) -> Lease {
        let token = self.next_token;
        self.next_token += 1;
        let lock = self.locks.get_mut(name).unwrap();
        if w.mode == Mode::Shared && lock.limit.is_none() {
            lock.limit = Some(w.limit);
        }
        let lease = Lease {
            name: name.to_owned(),
            request_id: w.request_id,
            owner: w.owner,
            mode: w.mode,
            token,
            ttl_ms: w.ttl_ms,
            lock_delay_ms: w.lock_delay_ms,
            granted_at_ms: now,
            expires_at_ms: now + w.ttl_ms,
            checkpoint_ms: w.checkpoint_ms,
        };
        lock.holders.push(lease.clone());
        ev.push(Event::Granted {
            name: name.to_owned(),
            request_id: lease.request_id.clone(),
            ttl_ms: lease.ttl_ms,
            token,
            owner: lease.owner.clone(),
            mode: lease.mode,
        });
        lease
    }

    /// Grants queue heads while they fit; returns the new leases.
    fn pump(&mut self, name: &str, now: u64, ev: &mut Vec<Event>) -> Vec<Lease> {
        let mut granted = Vec::new();
        loop {
            let Some(lock) = self.locks.get_mut(name) else {
                return granted;
            };
            if lock.delay.is_some() || lock.waiters.is_empty() {
                return granted;
            }
            let head = &lock.waiters[0];
            if !fits(lock, head.mode, lock.limit.unwrap_or(head.limit)) {
                return granted;
            }
            let w = lock.waiters.pop_front().unwrap();
            granted.push(self.grant(name, w, now, ev));
        }
    }

    /// Starts a lock-delay unless one that ends later is in force.
    fn delay(&mut self, name: &str, delay_ms: u64, now: u64, ev: &mut Vec<Event>) {
        let lock = self.locks.get_mut(name).unwrap();
        let until_ms = now + delay_ms;
        let keep_old = lock.delay.as_ref().is_some_and(|d| d.until_ms > until_ms);
        if !keep_old {
            lock.delay = Some(Delay { delay_ms, until_ms });
            ev.push(Event::Delayed { name: name.to_owned(), delay_ms });
        }
    }

    /// Releases holds only: an unknown id is a no-op without a tombstone, a queued one is refused.
    fn force_release(
        &mut self,
        now: u64,
        name: &str,
        target: &ForceTarget,
        immediate: bool,
        ev: &mut Vec<Event>,
    ) -> CommandResult {
        if bad_name(name) {
            return invalid("name");
        }
        let nothing = CommandResult::ForceRelease { released: vec![], granted: vec![] };
        let ids: Vec<String> = match target {
            ForceTarget::Request(id) => {
                if bad_id(id) {
                    return invalid("request_id");
                }
                if let Some(t) = self.tombstones.get(id) {
                    return if t.name == name { nothing } else { invalid("name") };
                }
                match self.find(id) {
                    None => return nothing,
                    Some(Place::Held(n, _)) | Some(Place::Queued(n, _)) if n != name => return invalid("name"),
                    Some(Place::Queued(..)) => return invalid("request_id"),
                    Some(Place::Held(..)) => vec![id.clone()],
                }
            }
            ForceTarget::All { max_token } => self
                .locks
                .get(name)
                .map(|l| {
                    l.holders
                        .iter()
                        .filter(|h| *max_token == 0 || h.token <= *max_token)
                        .map(|h| h.request_id.clone())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut released = Vec::new();
        for id in ids {
            let lock = self.locks.get_mut(name).unwrap();
            let i = lock.holders.iter().position(|h| h.request_id == id).unwrap();
            let lease = lock.holders.remove(i);
            self.tombstone(name, &id, Finish::ForceReleased, now);
            ev.push(Event::Finished {
                name: name.to_owned(),
                request_id: id.clone(),
                how: Finish::ForceReleased,
                token: lease.token,
            });
            released.push(lease);
        }
        let delay = released
            .iter()
            .map(|l| if immediate { l.lock_delay_ms } else { l.ttl_ms.max(l.lock_delay_ms) })
            .max()
            .unwrap_or(0);
        if delay > 0 {
            self.delay(name, delay, now, ev);
        }
        let granted = self.pump(name, now, ev);
        self.cleanup(name);
        CommandResult::ForceRelease { released, granted }
    }

    fn cleanup(&mut self, name: &str) {
        let idle =
            self.locks.get(name).is_some_and(|l| l.holders.is_empty() && l.waiters.is_empty() && l.delay.is_none());
        if idle {
            self.locks.remove(name);
        }
    }

    fn tombstone(&mut self, name: &str, id: &str, finish: Finish, now: u64) {
        let t = Tombstone { name: name.to_owned(), request_id: id.to_owned(), finish, finished_at_ms: now };
        self.tombstones.insert(id.to_owned(), t);
    }

    fn release(&mut self, now: u64, name: &str, id: &str, ev: &mut Vec<Event>) -> CommandResult {
        if bad_name(name) {
            return invalid("name");
        }
        if bad_id(id) {
            return invalid("request_id");
        }
        if let Some(t) = self.tombstones.get(id) {
            return if t.name == name {
                CommandResult::Release { was_held: false, was_queued: false }
            } else {
                invalid("name")
            };
        }
        let (was_held, how, token) = match self.find(id) {
            None => {
                self.tombstone(name, id, Finish::Cancelled, now);
                ev.push(Event::Finished {
                    name: name.to_owned(),
                    request_id: id.to_owned(),
                    how: Finish::Cancelled,
                    token: 0,
                });
                return CommandResult::Release { was_held: false, was_queued: false };
            }
            Some(Place::Held(n, _)) | Some(Place::Queued(n, _)) if n != name => return invalid("name"),
            Some(Place::Held(_, i)) => {
                let lease = self.locks.get_mut(name).unwrap().holders.remove(i);
                (true, Finish::Released, lease.token)
            }
            Some(Place::Queued(_, i)) => {
                self.locks.get_mut(name).unwrap().waiters.remove(i);
                (false, Finish::Cancelled, 0)
            }
        };
        self.tombstone(name, id, how, now);
        ev.push(Event::Finished { name: name.to_owned(), request_id: id.to_owned(), how, token });
        self.pump(name, now, ev);
        self.cleanup(name);
        CommandResult::Release { was_held, was_queued: !was_held }
    }

    fn expire(&mut self, now: u64, name: &str, id: &str, ev: &mut Vec<Event>) -> CommandResult {
        if bad_name(name) {
            return invalid("name");
        }
        if bad_id(id) {
            return invalid("request_id");
        }
        let (delay_ms, token) = match self.find(id) {
            Some(Place::Held(n, i)) if n == name => {
                let lease = self.locks.get_mut(name).unwrap().holders.remove(i);
                (lease.lock_delay_ms, lease.token)
            }
            Some(Place::Queued(n, i)) if n == name => {
                self.locks.get_mut(name).unwrap().waiters.remove(i);
                (0, 0)
            }
            _ => return CommandResult::Expire { expired: false },
        };
        self.tombstone(name, id, Finish::Expired, now);
        ev.push(Event::Finished { name: name.to_owned(), request_id: id.to_owned(), how: Finish::Expired, token });
        if delay_ms > 0 {
            self.delay(name, delay_ms, now, ev);
        }
        self.pump(name, now, ev);
        self.cleanup(name);
        CommandResult::Expire { expired: true }
    }

    fn set_checkpoint(&mut self, name: &str, id: &str, value: Option<u64>) -> bool {
        match self.find(id) {
            Some(Place::Held(n, i)) if n == name => {
                self.locks.get_mut(name).unwrap().holders[i].checkpoint_ms = value;
                true
            }
            Some(Place::Queued(n, i)) if n == name => {
                self.locks.get_mut(name).unwrap().waiters[i].checkpoint_ms = value;
                true
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// "ab" shares a prefix with "a", for list paging.
const NAMES: [&str; 3] = ["a", "b", "ab"];
const IDS: usize = 8;
const NOW0: u64 = 1_000_000;

fn id(i: usize) -> String {
    format!("r{i}")
}

/// Most acquires of an id use the same parameters, so repeats are genuine retries.
fn canonical(i: usize, wait: bool) -> Acquire {
    let shared = i % 2 == 1;
    Acquire {
        name: NAMES[i % 3].to_owned(),
        request_id: id(i),
        owner: format!("worker-{i}"),
        mode: if shared { Mode::Shared } else { Mode::Exclusive },
        limit: if shared { 2 } else { 0 },
        ttl_ms: 1000 + i as u64,
        lock_delay_ms: if i >= 6 { 500 } else { 0 },
        wait,
    }
}

fn arb_acquire() -> impl Strategy<Value = Acquire> {
    let random = (
        0..IDS,
        0..3usize,
        any::<bool>(),
        0..4u32,
        any::<bool>(),
        prop::sample::select(vec![0, 0, 300, 900]),
        any::<bool>(),
    )
        .prop_map(|(i, n, shared, limit, long, lock_delay_ms, wait)| Acquire {
            name: NAMES[n].to_owned(),
            request_id: id(i),
            owner: format!("worker-{i}"),
            mode: if shared { Mode::Shared } else { Mode::Exclusive },
            limit: if shared { limit } else { 0 },
            ttl_ms: if long { 5000 } else { 1000 + i as u64 },
            lock_delay_ms,
            wait,
        });
    let spoiled = (0..IDS, any::<bool>(), 0..8usize).prop_map(|(i, wait, flaw)| {
        let mut a = canonical(i, wait);
        match flaw {
            0 => a.name = String::new(),
            1 => a.name = "a\0".to_owned(),
            2 => a.name = "n".repeat(513),
            3 => a.request_id = "r".repeat(65),
            4 => a.owner = "o".repeat(257),
            5 => a.ttl_ms = 0,
            6 => a.lock_delay_ms = 60_001,
            _ => {
                a.mode = Mode::Exclusive;
                a.limit = 1;
            }
        }
        a
    });
    prop_oneof![
        6 => (0..IDS, any::<bool>()).prop_map(|(i, wait)| canonical(i, wait)),
        3 => random,
        1 => spoiled,
    ]
}

/// A name for a command about request `i`: usually the lock it would live on.
fn arb_name_for(i: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(NAMES[i % 3].to_owned()),
        5 => prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(vec![String::new(), "x\0".to_owned()]),
    ]
}

fn arb_named_id() -> impl Strategy<Value = (String, String)> {
    (0..IDS, prop::bool::weighted(0.05)).prop_flat_map(|(i, spoil)| {
        let rid = if spoil { String::new() } else { id(i) };
        arb_name_for(i).prop_map(move |name| (name, rid.clone()))
    })
}

fn arb_fence() -> impl Strategy<Value = Option<Fence>> {
    prop_oneof![
        2 => Just(None),
        2 => (0..3usize, 0..12u64).prop_map(|(n, token)| Some(Fence { name: NAMES[n].to_owned(), token })),
        1 => Just(Some(Fence { name: String::new(), token: 1 })),
    ]
}

fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::sample::select(vec![b"k1".to_vec(), b"k2".to_vec(), b"j".to_vec()]),
        1 => Just(Vec::new()),
        1 => Just(vec![b'k'; 1025]),
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        10 => arb_acquire().prop_map(Command::Acquire),
        5 => arb_named_id().prop_map(|(name, request_id)| Command::Release { name, request_id }),
        4 => arb_named_id().prop_map(|(name, request_id)| Command::Expire { name, request_id }),
        2 => arb_name_for(0).prop_map(|name| Command::EndDelay { name }),
        1 => prop::collection::vec((arb_named_id(), 0..1000u64), 0..3).prop_map(|entries| Command::Checkpoint {
            leases: entries
                .into_iter()
                .map(|((name, request_id), remaining_ms)| CheckpointEntry { name, request_id, remaining_ms })
                .collect(),
        }),
        1 => arb_named_id().prop_map(|(name, request_id)| Command::ClearCheckpoint { name, request_id }),
        // `before_ms` is an age here; `at` turns it into a time.
        1 => (0..3000u64).prop_map(|age| Command::ForgetFinished { before_ms: age }),
        2 => (arb_key(), prop::collection::vec(any::<u8>(), 0..4), arb_fence(), prop::bool::weighted(0.05))
            .prop_map(|(key, value, if_fence, huge)| Command::KvPut {
                key,
                value: if huge { vec![0; 65_537] } else { value },
                if_fence,
            }),
        1 => (arb_key(), arb_fence()).prop_map(|(key, if_fence)| Command::KvDelete { key, if_fence }),
        2 => (arb_named_id(), any::<bool>()).prop_map(|((name, id), immediate)| Command::ForceRelease {
            name,
            target: ForceTarget::Request(id),
            immediate
        }),
        // max_token 0 releases every holder; a small one only the older holds.
        2 => (arb_name_for(0), prop::sample::select(vec![0, 0, 2, 5, 9]), any::<bool>()).prop_map(
            |(name, max_token, immediate)| Command::ForceRelease {
                name,
                target: ForceTarget::All { max_token },
                immediate
            }
        ),
    ]
}

fn at(cmd: Command, now: u64) -> Command {
    match cmd {
        Command::ForgetFinished { before_ms } => Command::ForgetFinished { before_ms: now.saturating_sub(before_ms) },
        other => other,
    }
}

fn arb_caps() -> impl Strategy<Value = Caps> {
    prop_oneof![
        Just(Caps::default()),
        (1..4u32, 1..4u64).prop_map(|(max_waiters_per_lock, max_locks)| Caps { max_waiters_per_lock, max_locks }),
    ]
}

fn arb_steps() -> impl Strategy<Value = Vec<(Command, u64)>> {
    prop::collection::vec((arb_command(), 0..400u64), 1..60)
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Messages are the table's business (unit-tested there); the model decides everything else.
fn normalize(r: &CommandResult) -> CommandResult {
    match r {
        CommandResult::Refused(Refusal::InvalidArgument { field, .. }) => {
            CommandResult::Refused(Refusal::InvalidArgument { field: field.clone(), message: String::new() })
        }
        CommandResult::Refused(Refusal::ResourceExhausted(_)) => {
            CommandResult::Refused(Refusal::ResourceExhausted(String::new()))
        }
        other => other.clone(),
    }
}

/// Safety invariants of every lock, read through the public API only.
fn check_invariants(table: &LockTable) -> Result<(), TestCaseError> {
    let (locks, more) = table.list("", None, 1000);
    prop_assert!(more.is_none());
    prop_assert_eq!(locks.len(), table.lock_count());
    let held: usize = locks.iter().map(|l| l.holders.len()).sum();
    let queued: usize = locks.iter().map(|l| l.waiters.len()).sum();
    prop_assert_eq!((table.held_count(), table.queued_count()), (held, queued), "held and queued counts drifted");
    for lock in locks {
        let holders = &lock.holders;
        prop_assert!(
            !(holders.is_empty() && lock.waiters.is_empty() && lock.delay.is_none()),
            "idle record kept: {:?}",
            lock
        );
        if holders.iter().any(|h| h.mode == Mode::Exclusive) {
            prop_assert_eq!(holders.len(), 1, "EXCLUSIVE shares the lock: {:?}", lock);
        }
        let shared =
            holders.iter().any(|h| h.mode == Mode::Shared) || lock.waiters.iter().any(|w| w.mode == Mode::Shared);
        if shared {
            prop_assert!(lock.limit.is_some(), "SHARED use without a limit: {:?}", lock);
        }
        if let Some(limit) = lock.limit.filter(|l| *l > 0) {
            prop_assert!(holders.len() <= limit as usize, "more SHARED holders than the limit: {:?}", lock);
        }
        prop_assert!(holders.windows(2).all(|w| w[0].token < w[1].token));
        // Nobody waits behind a free slot: the queue head is blocked by holders or a delay.
        if let (Some(head), None) = (lock.waiters.front(), &lock.delay) {
            let blocked = match head.mode {
                Mode::Exclusive => !holders.is_empty(),
                Mode::Shared => {
                    let limit = lock.limit.unwrap_or(head.limit);
                    holders.iter().any(|h| h.mode == Mode::Exclusive) || (limit > 0 && holders.len() >= limit as usize)
                }
            };
            prop_assert!(blocked, "queue head could be granted: {:?}", lock);
        }
    }
    Ok(())
}

/// Watches events for FIFO order, no barging and strictly increasing tokens.
#[derive(Default)]
struct GrantOrder {
    queued: BTreeMap<String, Vec<String>>,
    last_token: u64,
}

impl GrantOrder {
    fn observe(&mut self, events: &[Event]) -> Result<(), TestCaseError> {
        for e in events {
            match e {
                Event::Queued { name, request_id, .. } => {
                    self.queued.entry(name.clone()).or_default().push(request_id.clone())
                }
                Event::Finished { name, request_id, .. } => {
                    self.queued.entry(name.clone()).or_default().retain(|id| id != request_id);
                }
                Event::Granted { name, request_id, token, .. } => {
                    prop_assert!(*token > self.last_token, "token {} after {}", token, self.last_token);
                    self.last_token = *token;
                    let queue = self.queued.entry(name.clone()).or_default();
                    match queue.iter().position(|id| id == request_id) {
                        Some(0) => {
                            queue.remove(0);
                        }
                        Some(p) => prop_assert!(false, "{} granted from queue position {}", request_id, p + 1),
                        None => {
                            prop_assert!(queue.is_empty(), "{} barged past {:?}", request_id, queue)
                        }
                    }
                }
                Event::Delayed { .. } | Event::DelayEnded { .. } => {}
            }
        }
        Ok(())
    }
}

/// Reads agree with the model.
fn check_reads(table: &LockTable, model: &Model) -> Result<(), TestCaseError> {
    for i in 0..IDS {
        let rid = id(i);
        match (table.request(&rid), model.find(&rid)) {
            (Some(RequestState::Finished(t)), None) => {
                prop_assert_eq!(Some(t), model.tombstones.get(&rid))
            }
            (Some(RequestState::Held(l)), Some(Place::Held(n, j))) => {
                prop_assert_eq!(l, &model.locks[&n].holders[j])
            }
            (Some(RequestState::Queued { name, position, waiter }), Some(Place::Queued(n, j))) => {
                prop_assert_eq!(name, n.as_str());
                prop_assert_eq!(position, j as u64 + 1);
                prop_assert_eq!(waiter, &model.locks[&n].waiters[j]);
            }
            (None, None) => prop_assert!(!model.tombstones.contains_key(&rid)),
            (got, _) => prop_assert!(false, "request {} is {:?} in the table", rid, got),
        }
    }
    for name in NAMES {
        for token in 0..model.next_token + 1 {
            let held = model.locks.get(name).is_some_and(|l| l.holders.iter().any(|h| h.token == token));
            prop_assert_eq!(table.validate_fence(name, token).0, held);
        }
    }
    let leases = table.leases().count();
    let want: usize = model.locks.values().map(|l| l.holders.len() + l.waiters.len()).sum();
    prop_assert_eq!(leases, want);
    prop_assert_eq!(table.delayed().count(), model.locks.values().filter(|l| l.delay.is_some()).count());
    prop_assert_eq!(table.next_token(), model.next_token);
    Ok(())
}

fn config() -> ProptestConfig {
    // No regression files written beside the sources.
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn table_matches_the_reference_model_and_keeps_its_invariants(caps in arb_caps(), steps in arb_steps()) {
        let mut table = LockTable::new();
        let mut model = Model::new();
        let mut order = GrantOrder::default();
        // What the Raft layer would have in sled, maintained only through the dirty set.
        let mut stored: BTreeMap<RecordKey, Record> = table.records().collect();
        let mut now = NOW0;
        for (step, (cmd, dt)) in steps.into_iter().enumerate() {
            now += dt;
            let index = step as u64 + 1;
            let cmd = at(cmd, now);
            let batch = Batch { now_ms: now, caps, commands: vec![cmd.clone()] };
            let before = table.clone();
            let mut events = Vec::new();
            let results = table.apply(index, &batch, &mut events);
            let (want, want_events) = model.apply(index, now, &caps, &cmd);
            prop_assert_eq!(results.len(), 1);
            prop_assert_eq!(normalize(&results[0]), want, "command {:?}", cmd);
            prop_assert_eq!(&events, &want_events, "command {:?}", cmd);
            let records: BTreeMap<RecordKey, Record> = table.records().collect();
            prop_assert_eq!(&records, &model.records(), "command {:?}", cmd);
            check_invariants(&table)?;
            check_reads(&table, &model)?;
            order.observe(&events)?;

            let dirty = table.take_dirty();
            if matches!(results[0], CommandResult::Refused(_)) {
                prop_assert_eq!(&table, &before, "refused {:?} changed the table", cmd);
                prop_assert!(events.is_empty());
                prop_assert!(dirty.is_empty(), "refused {:?} dirtied {:?}", cmd, dirty);
            }
            for key in dirty {
                match table.record(&key) {
                    Some(record) => stored.insert(key, record),
                    None => stored.remove(&key),
                };
            }
            prop_assert_eq!(&stored, &records, "dirty tracking missed a change of {:?}", cmd);

            // Repeating an Acquire (a client retry) answers the same and changes nothing.
            if let Command::Acquire(_) = cmd {
                let settled = table.clone();
                let mut again = Vec::new();
                let repeat = table.apply(index, &batch, &mut again);
                prop_assert_eq!(&repeat, &results, "retry of {:?}", cmd);
                prop_assert!(again.is_empty());
                prop_assert_eq!(&table, &settled);
                prop_assert!(table.take_dirty().is_empty());
            }
        }
        let rebuilt = LockTable::from_records(stored).unwrap();
        prop_assert_eq!(&rebuilt, &table);
        let mut rebuilt = LockTable::from_records(table.records()).unwrap();
        prop_assert!(rebuilt.take_dirty().is_empty());
        prop_assert_eq!(&rebuilt, &table);
        // The rebuilt indexes work: both tables go on identically.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..IDS {
            let batch = Batch { now_ms: now, caps, commands: vec![
                Command::Release { name: NAMES[i % 3].to_owned(), request_id: id(i) },
                Command::Acquire(canonical(i, true)),
            ] };
            prop_assert_eq!(table.apply(1000, &batch, &mut a), rebuilt.apply(1000, &batch, &mut b));
        }
        prop_assert_eq!(a, b);
        prop_assert_eq!(&rebuilt, &table);
    }

    #[test]
    fn one_batch_applies_like_its_commands_one_by_one(caps in arb_caps(), steps in arb_steps()) {
        let commands: Vec<Command> = steps.into_iter().map(|(cmd, _)| at(cmd, NOW0)).collect();
        let mut batched = LockTable::new();
        let mut batched_events = Vec::new();
        let batch = Batch { now_ms: NOW0, caps, commands: commands.clone() };
        let results = batched.apply(7, &batch, &mut batched_events);
        let mut single = LockTable::new();
        let mut single_events = Vec::new();
        let mut single_results = Vec::new();
        for cmd in commands {
            let batch = Batch { now_ms: NOW0, caps, commands: vec![cmd] };
            single_results.extend(single.apply(7, &batch, &mut single_events));
        }
        prop_assert_eq!(results, single_results);
        prop_assert_eq!(batched_events, single_events);
        prop_assert_eq!(&batched, &single);
        prop_assert_eq!(batched.take_dirty(), single.take_dirty());
    }

    #[test]
    fn record_keys_round_trip_through_bytes(key in prop_oneof![
        ".{0,8}".prop_map(RecordKey::Lock),
        ".{0,8}".prop_map(RecordKey::Tombstone),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(RecordKey::Kv),
        Just(RecordKey::Meta),
    ]) {
        prop_assert_eq!(RecordKey::from_bytes(&key.to_bytes()).unwrap(), key);
    }

    #[test]
    fn loading_arbitrary_key_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..6)) {
        if let Ok(key) = RecordKey::from_bytes(&bytes) {
            prop_assert_eq!(key.to_bytes(), bytes);
        }
    }
}

#[test]
fn a_release_that_overtakes_its_acquire_wins() {
    let mut table = LockTable::new();
    let mut model = Model::new();
    let caps = Caps::default();
    let cmds = [Command::Release { name: "a".into(), request_id: id(0) }, Command::Acquire(canonical(0, true))];
    for (i, cmd) in cmds.iter().enumerate() {
        let batch = Batch { now_ms: NOW0, caps, commands: vec![cmd.clone()] };
        let got = table.apply(i as u64 + 1, &batch, &mut Vec::new());
        assert_eq!(normalize(&got[0]), model.apply(i as u64 + 1, NOW0, &caps, cmd).0);
    }
    assert!(matches!(table.request(&id(0)), Some(RequestState::Finished(t)) if t.finish == Finish::Cancelled));
    assert_eq!(table.lock_count(), 0);
}

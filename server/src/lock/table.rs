//! [`LockTable`]: locks, tombstones, KV and the fencing-token counter, changed only by
//! [`LockTable::apply`].
//!
//! The persisted state is the records ([`Record`]); everything else here (the request index, queue
//! sequence numbers, the dirty set) is derived and rebuilt by [`LockTable::from_records`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::command::*;
use super::limits::{check_acquire_shape, check_key, check_name, check_request_id, check_value};
use crate::buggy::{self, Bug};

/// A lock-delay in force after a lease expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    pub delay_ms: u64,
    /// Leader wall clock when the delay ends, for humans only; the leader's monotonic clock decides.
    pub until_ms: u64,
}

/// One lock: its holders, its queue, its SHARED limit and any lock-delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub name: String,
    /// In grant order, which is also ascending token order.
    pub holders: Vec<Lease>,
    /// FIFO.
    pub waiters: VecDeque<Waiter>,
    /// Set by the first SHARED request on a free lock (0 = unlimited); forgotten with the record.
    pub limit: Option<u32>,
    pub delay: Option<Delay>,
}

/// The final outcome of a request that is no longer held or queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub name: String,
    pub request_id: String,
    pub finish: Finish,
    pub finished_at_ms: u64,
}

/// A KV value and the log index that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub revision: u64,
}

/// Table-wide counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The next fencing token to hand out; starts at 1.
    pub next_token: u64,
}

/// Key of one persisted record. Byte form (the sled key): `b'l'` + name, `b't'` + request_id,
/// `b'k'` + KV key, `b'm'` for [`Meta`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    Lock(String),
    Tombstone(String),
    Kv(Vec<u8>),
    Meta,
}

const LOCK_TAG: u8 = b'l';
const TOMBSTONE_TAG: u8 = b't';
const KV_TAG: u8 = b'k';
const META_TAG: u8 = b'm';

impl RecordKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, body): (u8, &[u8]) = match self {
            RecordKey::Lock(name) => (LOCK_TAG, name.as_bytes()),
            RecordKey::Tombstone(id) => (TOMBSTONE_TAG, id.as_bytes()),
            RecordKey::Kv(key) => (KV_TAG, key),
            RecordKey::Meta => (META_TAG, &[]),
        };
        let mut bytes = Vec::with_capacity(1 + body.len());
        bytes.push(tag);
        bytes.extend_from_slice(body);
        bytes
    }

    pub fn from_bytes(b: &[u8]) -> Result<RecordKey, LoadError> {
        let bad = |reason: &str| LoadError::BadKey { key: b.escape_ascii().to_string(), reason: reason.to_owned() };
        let utf8 = |rest: &[u8], what: &str| {
            String::from_utf8(rest.to_vec()).map_err(|_| bad(&format!("{what} is not UTF-8")))
        };
        match b.split_first() {
            None => Err(bad("empty key")),
            Some((&LOCK_TAG, rest)) => utf8(rest, "lock name").map(RecordKey::Lock),
            Some((&TOMBSTONE_TAG, rest)) => utf8(rest, "request_id").map(RecordKey::Tombstone),
            Some((&KV_TAG, rest)) => Ok(RecordKey::Kv(rest.to_vec())),
            Some((&META_TAG, [])) => Ok(RecordKey::Meta),
            Some((&META_TAG, _)) => Err(bad("meta key has trailing bytes")),
            Some((tag, _)) => Err(bad(&format!("unknown record tag {:?}", char::from(*tag)))),
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordKey::Lock(name) => write!(f, "lock {name:?}"),
            RecordKey::Tombstone(id) => write!(f, "tombstone {id:?}"),
            RecordKey::Kv(key) => write!(f, "kv key \"{}\"", key.escape_ascii()),
            RecordKey::Meta => f.write_str("meta"),
        }
    }
}

/// One persisted record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Lock(LockRecord),
    Tombstone(Tombstone),
    Kv(KvEntry),
    Meta(Meta),
}

/// A [`Record`] borrowed from the table: serializes exactly as the `Record` it stands for, so a
/// snapshot can be encoded without cloning every record first.
#[derive(Debug, Serialize)]
pub enum RecordRef<'a> {
    Lock(&'a LockRecord),
    Tombstone(&'a Tombstone),
    Kv(&'a KvEntry),
    Meta(Meta),
}

impl RecordRef<'_> {
    /// The owned record.
    pub fn to_owned(&self) -> Record {
        match self {
            RecordRef::Lock(r) => Record::Lock((*r).clone()),
            RecordRef::Tombstone(t) => Record::Tombstone((*t).clone()),
            RecordRef::Kv(e) => Record::Kv((*e).clone()),
            RecordRef::Meta(m) => Record::Meta(m.clone()),
        }
    }
}

impl Record {
    fn kind(&self) -> &'static str {
        match self {
            Record::Lock(_) => "lock",
            Record::Tombstone(_) => "tombstone",
            Record::Kv(_) => "kv entry",
            Record::Meta(_) => "meta",
        }
    }
}

/// Why stored records do not make a lock table.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad record key \"{key}\": {reason}")]
    BadKey { key: String, reason: String },
    #[error("record under key {key} is a {found} record")]
    KindMismatch { key: RecordKey, found: &'static str },
    #[error("record under key {key} names {found:?}")]
    NameMismatch { key: RecordKey, found: String },
    #[error("two records under key {key}")]
    DuplicateKey { key: RecordKey },
    #[error("request_id {request_id:?} appears twice: in {first} and in {second}")]
    DuplicateRequest { request_id: String, first: RecordKey, second: RecordKey },
    #[error("record under key {key} is inconsistent: {reason}")]
    Inconsistent { key: RecordKey, reason: String },
}

/// A page of [`LockTable::kv_list`]: entries, and the key to resume after when more remain.
pub type KvPage<'a> = (Vec<(&'a [u8], &'a KvEntry)>, Option<Vec<u8>>);

/// Where a request_id stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState<'a> {
    Held(&'a Lease),
    /// `position` is 1-based.
    Queued {
        name: &'a str,
        position: u64,
        waiter: &'a Waiter,
    },
    Finished(&'a Tombstone),
}

/// One lease, held or queued, as the leader's deadline table needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseInfo<'a> {
    pub name: &'a str,
    pub request_id: &'a str,
    pub ttl_ms: u64,
    pub checkpoint_ms: Option<u64>,
    pub held: bool,
}

/// A lock record plus the sequence numbers of its waiters (derived, parallel to `waiters`,
/// ascending), so a queued request's position is a binary search rather than a scan.
#[derive(Clone, Debug)]
struct LockState {
    record: LockRecord,
    seqs: VecDeque<u64>,
}

impl LockState {
    fn holder_index(&self, token: u64) -> Option<usize> {
        self.record.holders.binary_search_by_key(&token, |l| l.token).ok()
    }

    fn waiter_index(&self, seq: u64) -> Option<usize> {
        self.seqs.binary_search(&seq).ok()
    }

    fn is_idle(&self) -> bool {
        let r = &self.record;
        r.holders.is_empty() && r.waiters.is_empty() && r.delay.is_none()
    }

    /// Whether a request of `mode` fits beside the current holders (ignoring queue and delay).
    fn admits(&self, mode: Mode, limit: u32) -> bool {
        let holders = &self.record.holders;
        match mode {
            Mode::Exclusive => holders.is_empty(),
            Mode::Shared => {
                holders.iter().all(|l| l.mode == Mode::Shared) && (limit == 0 || holders.len() < limit as usize)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Held { token: u64 },
    Queued { seq: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RequestLoc {
    name: String,
    slot: Slot,
}

/// Counters, the request index and the dirty set: what grants and queueing update besides the
/// lock record itself.
#[derive(Clone, Debug)]
struct Ledger {
    next_token: u64,
    next_seq: u64,
    requests: HashMap<String, RequestLoc>,
    /// How many entries of `requests` are held and queued, for the metrics.
    held: usize,
    queued: usize,
    dirty: BTreeSet<RecordKey>,
}

impl Ledger {
    fn issue_token(&mut self) -> u64 {
        let token = self.next_token;
        // 2^64 grants do not happen; saturating keeps apply panic-free regardless.
        self.next_token = token.saturating_add(1);
        self.dirty.insert(RecordKey::Meta);
        token
    }

    /// Points `request_id` at `loc` in the request index, keeping the held and queued counts.
    fn index(&mut self, request_id: String, loc: RequestLoc) {
        let slot = loc.slot;
        if let Some(old) = self.requests.insert(request_id, loc) {
            self.uncount(old.slot);
        }
        match slot {
            Slot::Held { .. } => self.held += 1,
            Slot::Queued { .. } => self.queued += 1,
        }
    }

    fn unindex(&mut self, request_id: &str) {
        if let Some(old) = self.requests.remove(request_id) {
            self.uncount(old.slot);
        }
    }

    fn uncount(&mut self, slot: Slot) {
        match slot {
            Slot::Held { .. } => self.held = self.held.saturating_sub(1),
            Slot::Queued { .. } => self.queued = self.queued.saturating_sub(1),
        }
    }

    fn mark_lock(&mut self, name: &str) {
        self.dirty.insert(RecordKey::Lock(name.to_owned()));
    }
}

/// Grants `w` on `st` and returns the new lease.
fn grant(st: &mut LockState, ledger: &mut Ledger, w: Waiter, now_ms: u64, events: &mut Vec<Event>) -> Lease {
    let name = st.record.name.clone();
    let token = ledger.issue_token();
    let lease = Lease {
        name: name.clone(),
        request_id: w.request_id,
        owner: w.owner,
        mode: w.mode,
        token,
        ttl_ms: w.ttl_ms,
        lock_delay_ms: w.lock_delay_ms,
        granted_at_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(w.ttl_ms),
        checkpoint_ms: w.checkpoint_ms,
    };
    if lease.mode == Mode::Shared && st.record.limit.is_none() {
        st.record.limit = Some(w.limit);
    }
    ledger.index(lease.request_id.clone(), RequestLoc { name: name.clone(), slot: Slot::Held { token } });
    ledger.mark_lock(&name);
    events.push(Event::Granted {
        name,
        request_id: lease.request_id.clone(),
        ttl_ms: lease.ttl_ms,
        token,
        owner: lease.owner.clone(),
        mode: lease.mode,
    });
    if st.record.holders.is_empty() {
        // Most locks have one holder: room for exactly one, where a plain push would make room
        // for four leases (about 400 bytes more per held lock).
        st.record.holders.reserve_exact(1);
    }
    st.record.holders.push(lease.clone());
    lease
}

/// Appends `w` to the queue of `st` and returns its 1-based position.
fn enqueue(st: &mut LockState, ledger: &mut Ledger, w: Waiter, events: &mut Vec<Event>) -> u64 {
    let name = st.record.name.clone();
    let seq = ledger.next_seq;
    ledger.next_seq += 1;
    if w.mode == Mode::Shared && st.record.limit.is_none() {
        st.record.limit = Some(w.limit);
    }
    ledger.index(w.request_id.clone(), RequestLoc { name: name.clone(), slot: Slot::Queued { seq } });
    ledger.mark_lock(&name);
    let position = st.record.waiters.len() as u64 + 1;
    events.push(Event::Queued {
        name,
        request_id: w.request_id.clone(),
        ttl_ms: w.ttl_ms,
        owner: w.owner.clone(),
        mode: w.mode,
        position,
    });
    st.record.waiters.push_back(w);
    st.seqs.push_back(seq);
    position
}

enum Removed {
    Held(Lease),
    Queued,
}

impl Removed {
    /// The hold's token, 0 for a queued request.
    fn token(&self) -> u64 {
        match self {
            Removed::Held(lease) => lease.token,
            Removed::Queued => 0,
        }
    }
}

/// The replicated lock state. Equality compares the state (locks, tombstones, KV, next token),
/// not the dirty set or derived indexes.
#[derive(Clone, Debug)]
pub struct LockTable {
    locks: BTreeMap<String, LockState>,
    tombstones: BTreeMap<String, Tombstone>,
    kv: BTreeMap<Vec<u8>, KvEntry>,
    ledger: Ledger,
}

impl Default for LockTable {
    fn default() -> Self {
        Self {
            locks: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            kv: BTreeMap::new(),
            ledger: Ledger {
                next_token: 1,
                next_seq: 0,
                requests: HashMap::new(),
                held: 0,
                queued: 0,
                dirty: BTreeSet::new(),
            },
        }
    }
}

impl PartialEq for LockTable {
    fn eq(&self, other: &Self) -> bool {
        self.ledger.next_token == other.ledger.next_token
            && self.tombstones == other.tombstones
            && self.kv == other.kv
            && self.locks.len() == other.locks.len()
            && self.locks.values().zip(other.locks.values()).all(|(a, b)| a.record == b.record)
    }
}

impl Eq for LockTable {}

fn invalid(field: &str, message: String) -> Refusal {
    Refusal::InvalidArgument { field: field.to_owned(), message }
}

fn wrong_lock(request_id: &str, actual: &str, given: &str) -> Refusal {
    invalid("name", format!("request_id {request_id:?} belongs to lock {actual:?}, not {given:?}"))
}

fn reused(request_id: &str, what: &str) -> Refusal {
    invalid("request_id", format!("request_id {request_id:?} was reused with different parameters ({what} differs)"))
}

impl LockTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed batch at Raft log index `index`. One result per command, in order.
    /// Events are appended to `events`.
    pub fn apply(&mut self, index: u64, batch: &Batch, events: &mut Vec<Event>) -> Vec<CommandResult> {
        batch
            .commands
            .iter()
            .map(|cmd| {
                self.apply_one(index, batch.now_ms, &batch.caps, cmd, events).unwrap_or_else(CommandResult::Refused)
            })
            .collect()
    }

    /// Every refusal is decided before the first change, so a refused command changes nothing.
    fn apply_one(
        &mut self,
        index: u64,
        now_ms: u64,
        caps: &Caps,
        cmd: &Command,
        events: &mut Vec<Event>,
    ) -> Result<CommandResult, Refusal> {
        match cmd {
            Command::Acquire(a) => self.acquire(now_ms, caps, a, events).map(CommandResult::Acquire),
            Command::Release { name, request_id } => self.release(now_ms, name, request_id, events),
            Command::Expire { name, request_id } => self.expire(now_ms, name, request_id, events),
            Command::EndDelay { name } => {
                check_name("name", name)?;
                Ok(CommandResult::EndDelay { ended: self.end_delay(now_ms, name, events) })
            }
            Command::Checkpoint { leases } => {
                for entry in leases {
                    check_name("name", &entry.name)?;
                    check_request_id(&entry.request_id)?;
                }
                for entry in leases {
                    self.set_checkpoint(&entry.name, &entry.request_id, Some(entry.remaining_ms));
                }
                Ok(CommandResult::Checkpoint)
            }
            Command::ClearCheckpoint { name, request_id } => {
                check_name("name", name)?;
                check_request_id(request_id)?;
                Ok(CommandResult::ClearCheckpoint { found: self.set_checkpoint(name, request_id, None) })
            }
            Command::ForgetFinished { before_ms } => {
                Ok(CommandResult::ForgetFinished { forgotten: self.forget_finished(*before_ms) })
            }
            Command::KvPut { key, value, if_fence } => {
                check_key(key)?;
                check_value(value)?;
                self.check_fence(if_fence.as_ref())?;
                let entry = KvEntry { value: value.clone(), revision: index };
                self.kv.insert(key.clone(), entry);
                self.ledger.dirty.insert(RecordKey::Kv(key.clone()));
                Ok(CommandResult::KvPut { revision: index })
            }
            Command::KvDelete { key, if_fence } => {
                check_key(key)?;
                self.check_fence(if_fence.as_ref())?;
                let existed = self.kv.remove(key).is_some();
                if existed {
                    self.ledger.dirty.insert(RecordKey::Kv(key.clone()));
                }
                Ok(CommandResult::KvDelete { existed })
            }
            Command::ForceRelease { name, target, immediate } => {
                self.force_release(now_ms, name, target, *immediate, events)
            }
        }
    }

    /// Deletes tombstones that finished at or before `before_ms`; returns how many.
    fn forget_finished(&mut self, before_ms: u64) -> u64 {
        let before = self.tombstones.len();
        let dirty = &mut self.ledger.dirty;
        self.tombstones.retain(|id, ts| {
            let keep = ts.finished_at_ms > before_ms;
            if !keep {
                dirty.insert(RecordKey::Tombstone(id.clone()));
            }
            keep
        });
        (before - self.tombstones.len()) as u64
    }

    fn acquire(
        &mut self,
        now_ms: u64,
        caps: &Caps,
        a: &Acquire,
        events: &mut Vec<Event>,
    ) -> Result<AcquireOutcome, Refusal> {
        check_acquire_shape(a)?;
        if let Some(known) = self.request(&a.request_id) {
            let finished = matches!(known, RequestState::Finished(_));
            if !(finished && buggy::active(Bug::AcquireAfterRelease)) {
                return self.repeated_acquire(a, known);
            }
            self.tombstones.remove(&a.request_id);
            self.ledger.dirty.insert(RecordKey::Tombstone(a.request_id.clone()));
        }
        let shared = a.mode == Mode::Shared;
        let waiter = Waiter {
            request_id: a.request_id.clone(),
            owner: a.owner.clone(),
            mode: a.mode,
            limit: a.limit,
            ttl_ms: a.ttl_ms,
            lock_delay_ms: a.lock_delay_ms,
            enqueued_at_ms: now_ms,
            checkpoint_ms: None,
        };
        let lock_count = self.locks.len() as u64;
        let Some(st) = self.locks.get_mut(&a.name) else {
            if lock_count >= caps.max_locks {
                return Err(Refusal::ResourceExhausted(format!(
                    "cannot create lock {:?}: max_locks ({}) locks already exist",
                    a.name, caps.max_locks
                )));
            }
            let mut st = LockState {
                record: LockRecord {
                    name: a.name.clone(),
                    holders: Vec::new(),
                    waiters: VecDeque::new(),
                    limit: None,
                    delay: None,
                },
                seqs: VecDeque::new(),
            };
            let lease = grant(&mut st, &mut self.ledger, waiter, now_ms, events);
            self.locks.insert(a.name.clone(), st);
            return Ok(AcquireOutcome::Granted(lease));
        };
        let limit = match (shared, st.record.limit) {
            (true, Some(lock_limit)) if lock_limit != a.limit => {
                return Err(Refusal::LimitMismatch { name: a.name.clone(), lock_limit, requested: a.limit });
            }
            (_, lock_limit) => lock_limit.unwrap_or(a.limit),
        };
        // No barging: anyone queued, or a lock-delay, means no immediate grant.
        if st.record.waiters.is_empty() && st.record.delay.is_none() && st.admits(a.mode, limit) {
            return Ok(AcquireOutcome::Granted(grant(st, &mut self.ledger, waiter, now_ms, events)));
        }
        if !a.wait {
            return Ok(AcquireOutcome::Busy {
                holders: st.record.holders.clone(),
                queue_length: st.record.waiters.len() as u64,
            });
        }
        if st.record.waiters.len() >= caps.max_waiters_per_lock as usize {
            return Err(Refusal::ResourceExhausted(format!(
                "lock {:?} already has max_waiters_per_lock ({}) waiters",
                a.name, caps.max_waiters_per_lock
            )));
        }
        let position = enqueue(st, &mut self.ledger, waiter, events);
        Ok(AcquireOutcome::Queued { position })
    }

    /// An Acquire whose request_id is already known: its current outcome, changing nothing.
    fn repeated_acquire(&self, a: &Acquire, known: RequestState<'_>) -> Result<AcquireOutcome, Refusal> {
        let (name, owner, mode, limit, ttl_ms, lock_delay_ms, outcome) = match known {
            RequestState::Finished(ts) => {
                return Err(Refusal::RequestFinished { request_id: a.request_id.clone(), finish: ts.finish });
            }
            RequestState::Held(l) => {
                // A lease does not carry its limit; a SHARED hold's limit is its lock's.
                let limit = match l.mode {
                    Mode::Shared => self.lock(&l.name).and_then(|r| r.limit).unwrap_or(0),
                    Mode::Exclusive => 0,
                };
                let outcome = AcquireOutcome::Granted(l.clone());
                (l.name.as_str(), &l.owner, l.mode, limit, l.ttl_ms, l.lock_delay_ms, outcome)
            }
            RequestState::Queued { name, position, waiter: w } => {
                let outcome = AcquireOutcome::Queued { position };
                (name, &w.owner, w.mode, w.limit, w.ttl_ms, w.lock_delay_ms, outcome)
            }
        };
        let same = [
            ("name", name == a.name),
            ("owner", *owner == a.owner),
            ("mode", mode == a.mode),
            ("limit", limit == a.limit),
            ("ttl_ms", ttl_ms == a.ttl_ms),
            ("lock_delay_ms", lock_delay_ms == a.lock_delay_ms),
        ];
        match same.iter().find(|(_, same)| !same) {
            Some((what, _)) => Err(reused(&a.request_id, what)),
            None => Ok(outcome),
        }
    }

    fn release(
        &mut self,
        now_ms: u64,
        name: &str,
        request_id: &str,
        events: &mut Vec<Event>,
    ) -> Result<CommandResult, Refusal> {
        check_name("name", name)?;
        check_request_id(request_id)?;
        let how = match self.request(request_id) {
            None => {
                // A Release that overtook its Acquire: the tombstone makes the Acquire lose, and
                // watchers see the request cancelled.
                self.finish(name, request_id, Finish::Cancelled, 0, now_ms, events);
                return Ok(CommandResult::Release { was_held: false, was_queued: false });
            }
            Some(RequestState::Finished(ts)) if ts.name != name => {
                return Err(wrong_lock(request_id, &ts.name, name));
            }
            Some(RequestState::Finished(_)) => {
                return Ok(CommandResult::Release { was_held: false, was_queued: false });
            }
            Some(RequestState::Held(Lease { name: actual, .. })) if actual != name => {
                return Err(wrong_lock(request_id, actual, name));
            }
            Some(RequestState::Queued { name: actual, .. }) if actual != name => {
                return Err(wrong_lock(request_id, actual, name));
            }
            Some(RequestState::Held(_)) => Finish::Released,
            Some(RequestState::Queued { .. }) => Finish::Cancelled,
        };
        let Some(removed) = self.remove_request(name, request_id) else {
            return Ok(CommandResult::Release { was_held: false, was_queued: false });
        };
        let was_held = matches!(removed, Removed::Held(_));
        self.finish(name, request_id, how, removed.token(), now_ms, events);
        self.grant_waiters(name, now_ms, events);
        self.drop_if_idle(name);
        Ok(CommandResult::Release { was_held, was_queued: !was_held })
    }

    fn expire(
        &mut self,
        now_ms: u64,
        name: &str,
        request_id: &str,
        events: &mut Vec<Event>,
    ) -> Result<CommandResult, Refusal> {
        check_name("name", name)?;
        check_request_id(request_id)?;
        let Some(removed) = self.remove_request(name, request_id) else {
            return Ok(CommandResult::Expire { expired: false });
        };
        self.finish(name, request_id, Finish::Expired, removed.token(), now_ms, events);
        if let Removed::Held(lease) = removed {
            if lease.lock_delay_ms > 0 {
                self.start_delay(name, lease.lock_delay_ms, now_ms, events);
            }
        }
        self.grant_waiters(name, now_ms, events);
        self.drop_if_idle(name);
        Ok(CommandResult::Expire { expired: true })
    }

    /// An admin's release of holds. Refusals come first (bad input, a request of another lock,
    /// a request that is queued rather than held); an id never seen is a no-op that leaves no
    /// tombstone, since the admin does not own it and must not poison a future Acquire with it.
    fn force_release(
        &mut self,
        now_ms: u64,
        name: &str,
        target: &ForceTarget,
        immediate: bool,
        events: &mut Vec<Event>,
    ) -> Result<CommandResult, Refusal> {
        check_name("name", name)?;
        let nothing = CommandResult::ForceRelease { released: Vec::new(), granted: Vec::new() };
        let ids: Vec<String> = match target {
            ForceTarget::Request(request_id) => {
                check_request_id(request_id)?;
                match self.request(request_id) {
                    None => return Ok(nothing),
                    Some(RequestState::Finished(ts)) if ts.name != name => {
                        return Err(wrong_lock(request_id, &ts.name, name));
                    }
                    Some(RequestState::Finished(_)) => return Ok(nothing),
                    Some(RequestState::Held(Lease { name: actual, .. })) if actual != name => {
                        return Err(wrong_lock(request_id, actual, name));
                    }
                    Some(RequestState::Queued { name: actual, .. }) if actual != name => {
                        return Err(wrong_lock(request_id, actual, name));
                    }
                    Some(RequestState::Queued { position, .. }) => {
                        return Err(invalid(
                            "request_id",
                            format!(
                                "request_id {request_id:?} is queued on lock {name:?} (position {position}), not holding it; \
                                 ForceRelease releases holds only (Release cancels a queued request)"
                            ),
                        ));
                    }
                    Some(RequestState::Held(_)) => vec![request_id.clone()],
                }
            }
            ForceTarget::All { max_token } => match self.locks.get(name) {
                None => return Ok(nothing),
                Some(st) => st
                    .record
                    .holders
                    .iter()
                    .filter(|l| *max_token == 0 || l.token <= *max_token)
                    .map(|l| l.request_id.clone())
                    .collect(),
            },
        };
        let mut released = Vec::with_capacity(ids.len());
        for request_id in &ids {
            if let Some(Removed::Held(lease)) = self.remove_request(name, request_id) {
                self.finish(name, request_id, Finish::ForceReleased, lease.token, now_ms, events);
                released.push(lease);
            }
        }
        // The holders did not let go themselves and may still be running: their renewals fail
        // from now on, and the lock waits out their TTL (or lock-delay, if longer) as after an
        // expiry, unless the admin asked for an immediate handover.
        let delay_ms = released
            .iter()
            .map(|l| if immediate { l.lock_delay_ms } else { l.ttl_ms.max(l.lock_delay_ms) })
            .max()
            .unwrap_or(0);
        if delay_ms > 0 {
            self.start_delay(name, delay_ms, now_ms, events);
        }
        let granted = self.grant_waiters(name, now_ms, events);
        self.drop_if_idle(name);
        Ok(CommandResult::ForceRelease { released, granted })
    }

    /// Sets a lock-delay; one already in force that ends later is kept.
    fn start_delay(&mut self, name: &str, delay_ms: u64, now_ms: u64, events: &mut Vec<Event>) {
        let Some(st) = self.locks.get_mut(name) else {
            return;
        };
        let until_ms = now_ms.saturating_add(delay_ms);
        if st.record.delay.as_ref().is_some_and(|d| d.until_ms > until_ms) {
            return;
        }
        st.record.delay = Some(Delay { delay_ms, until_ms });
        self.ledger.mark_lock(name);
        events.push(Event::Delayed { name: name.to_owned(), delay_ms });
    }

    fn end_delay(&mut self, now_ms: u64, name: &str, events: &mut Vec<Event>) -> bool {
        let Some(st) = self.locks.get_mut(name) else {
            return false;
        };
        if st.record.delay.take().is_none() {
            return false;
        }
        self.ledger.mark_lock(name);
        events.push(Event::DelayEnded { name: name.to_owned() });
        self.grant_waiters(name, now_ms, events);
        self.drop_if_idle(name);
        true
    }

    /// Grants the head of the queue while it fits: consecutive SHARED waiters together, an
    /// EXCLUSIVE one only alone, nobody while a lock-delay is in force. Returns the new leases.
    fn grant_waiters(&mut self, name: &str, now_ms: u64, events: &mut Vec<Event>) -> Vec<Lease> {
        let mut granted = Vec::new();
        let Some(st) = self.locks.get_mut(name) else {
            return granted;
        };
        while st.record.delay.is_none() {
            let Some(head) = st.record.waiters.front() else {
                break;
            };
            let limit = st.record.limit.unwrap_or(head.limit);
            if !st.admits(head.mode, limit) {
                break;
            }
            let skip_head = st.record.waiters.len() > 1 && buggy::active(Bug::GrantSkipsFifoHead);
            let next = if skip_head { st.record.waiters.pop_back() } else { st.record.waiters.pop_front() };
            let Some(w) = next else {
                break;
            };
            if skip_head {
                st.seqs.pop_back();
            } else {
                st.seqs.pop_front();
            }
            granted.push(grant(st, &mut self.ledger, w, now_ms, events));
        }
        granted
    }

    fn drop_if_idle(&mut self, name: &str) {
        if self.locks.get(name).is_some_and(LockState::is_idle) {
            self.locks.remove(name);
            self.ledger.mark_lock(name);
        }
    }

    /// Takes `request_id` out of lock `name` (held or queued), without granting anyone.
    fn remove_request(&mut self, name: &str, request_id: &str) -> Option<Removed> {
        let loc = self.ledger.requests.get(request_id).filter(|loc| loc.name == name)?;
        let st = self.locks.get_mut(name)?;
        let removed = match loc.slot {
            Slot::Held { token } => {
                let i = st.holder_index(token)?;
                Removed::Held(st.record.holders.remove(i))
            }
            Slot::Queued { seq } => {
                let i = st.waiter_index(seq)?;
                st.record.waiters.remove(i);
                st.seqs.remove(i);
                Removed::Queued
            }
        };
        self.ledger.unindex(request_id);
        self.ledger.mark_lock(name);
        Some(removed)
    }

    fn bury(&mut self, name: &str, request_id: &str, finish: Finish, now_ms: u64) {
        let tombstone =
            Tombstone { name: name.to_owned(), request_id: request_id.to_owned(), finish, finished_at_ms: now_ms };
        self.tombstones.insert(request_id.to_owned(), tombstone);
        self.ledger.dirty.insert(RecordKey::Tombstone(request_id.to_owned()));
    }

    fn finish(&mut self, name: &str, request_id: &str, how: Finish, token: u64, now_ms: u64, events: &mut Vec<Event>) {
        self.bury(name, request_id, how, now_ms);
        events.push(Event::Finished { name: name.to_owned(), request_id: request_id.to_owned(), how, token });
    }

    /// Sets the checkpoint of a held or queued lease; false if there is no such lease.
    fn set_checkpoint(&mut self, name: &str, request_id: &str, value: Option<u64>) -> bool {
        let Some(loc) = self.ledger.requests.get(request_id).filter(|loc| loc.name == name) else {
            return false;
        };
        let Some(st) = self.locks.get_mut(name) else {
            return false;
        };
        let slot = match loc.slot {
            Slot::Held { token } => {
                st.holder_index(token).and_then(|i| st.record.holders.get_mut(i)).map(|l| &mut l.checkpoint_ms)
            }
            Slot::Queued { seq } => {
                st.waiter_index(seq).and_then(|i| st.record.waiters.get_mut(i)).map(|w| &mut w.checkpoint_ms)
            }
        };
        let Some(slot) = slot else { return false };
        if *slot != value {
            *slot = value;
            self.ledger.mark_lock(name);
        }
        true
    }

    fn check_fence(&self, fence: Option<&Fence>) -> Result<(), Refusal> {
        let Some(fence) = fence else { return Ok(()) };
        check_name("if_fence.name", &fence.name)?;
        if self.holds(&fence.name, fence.token) {
            Ok(())
        } else {
            Err(Refusal::FencedOut { name: fence.name.clone(), token: fence.token })
        }
    }

    fn holds(&self, name: &str, token: u64) -> bool {
        self.locks.get(name).is_some_and(|st| st.holder_index(token).is_some())
    }

    // ---- reads ----

    pub fn lock(&self, name: &str) -> Option<&LockRecord> {
        self.locks.get(name).map(|st| &st.record)
    }

    pub fn request(&self, request_id: &str) -> Option<RequestState<'_>> {
        if let Some(ts) = self.tombstones.get(request_id) {
            return Some(RequestState::Finished(ts));
        }
        let loc = self.ledger.requests.get(request_id)?;
        let st = self.locks.get(&loc.name)?;
        match loc.slot {
            Slot::Held { token } => {
                st.holder_index(token).and_then(|i| st.record.holders.get(i)).map(RequestState::Held)
            }
            Slot::Queued { seq } => {
                let i = st.waiter_index(seq)?;
                let waiter = st.record.waiters.get(i)?;
                Some(RequestState::Queued { name: &st.record.name, position: i as u64 + 1, waiter })
            }
        }
    }

    /// Locks whose name starts with `prefix`, in byte order, strictly after `after` if given; at
    /// most `limit` (at least one), plus the name to resume after when more remain.
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> (Vec<&LockRecord>, Option<String>) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .locks
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, st)| &st.record);
        let page: Vec<&LockRecord> = matching.by_ref().take(limit.max(1)).collect();
        let resume = match (matching.next(), page.last()) {
            (Some(_), Some(last)) => Some(last.name.clone()),
            _ => None,
        };
        (page, resume)
    }

    /// (is `token` a current hold of `name`, the tokens of the current holders)
    pub fn validate_fence(&self, name: &str, token: u64) -> (bool, Vec<u64>) {
        let tokens = self.lock(name).map(|r| r.holders.iter().map(|l| l.token).collect()).unwrap_or_default();
        (self.holds(name, token), tokens)
    }

    pub fn kv_get(&self, key: &[u8]) -> Option<&KvEntry> {
        self.kv.get(key)
    }

    /// KV entries whose key starts with `prefix`, in byte order, strictly after `after` if given;
    /// at most `limit` (at least one), plus the key to resume after when more remain.
    pub fn kv_list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> KvPage<'_> {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .kv
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, entry)| (key.as_slice(), entry));
        let page: Vec<(&[u8], &KvEntry)> = matching.by_ref().take(limit.max(1)).collect();
        let resume = match (matching.next(), page.last()) {
            (Some(_), Some((last, _))) => Some(last.to_vec()),
            _ => None,
        };
        (page, resume)
    }

    pub fn next_token(&self) -> u64 {
        self.ledger.next_token
    }

    /// Whether any tombstone finished at or before `before_ms` (so `ForgetFinished` would act).
    pub fn has_tombstones_finished_by(&self, before_ms: u64) -> bool {
        self.tombstones.values().any(|t| t.finished_at_ms <= before_ms)
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    /// Held leases, in every lock.
    pub fn held_count(&self) -> usize {
        self.ledger.held
    }

    /// Queued requests, in every lock.
    pub fn queued_count(&self) -> usize {
        self.ledger.queued
    }

    /// Every lease, held or queued: for the leader's deadline table.
    pub fn leases(&self) -> impl Iterator<Item = LeaseInfo<'_>> + '_ {
        self.locks.values().flat_map(|st| {
            let name = st.record.name.as_str();
            let held = st.record.holders.iter().map(move |l| LeaseInfo {
                name,
                request_id: &l.request_id,
                ttl_ms: l.ttl_ms,
                checkpoint_ms: l.checkpoint_ms,
                held: true,
            });
            let queued = st.record.waiters.iter().map(move |w| LeaseInfo {
                name,
                request_id: &w.request_id,
                ttl_ms: w.ttl_ms,
                checkpoint_ms: w.checkpoint_ms,
                held: false,
            });
            held.chain(queued)
        })
    }

    /// Every lock under a lock-delay: (name, delay).
    pub fn delayed(&self) -> impl Iterator<Item = (&str, &Delay)> + '_ {
        self.locks.iter().filter_map(|(name, st)| st.record.delay.as_ref().map(|d| (name.as_str(), d)))
    }

    // ---- persistence ----

    /// Keys of records changed since the last call (deduplicated, sorted). A key whose
    /// [`record`](Self::record) is `None` was deleted.
    pub fn take_dirty(&mut self) -> Vec<RecordKey> {
        std::mem::take(&mut self.ledger.dirty).into_iter().collect()
    }

    pub fn record(&self, key: &RecordKey) -> Option<Record> {
        match key {
            RecordKey::Lock(name) => self.lock(name).cloned().map(Record::Lock),
            RecordKey::Tombstone(id) => self.tombstones.get(id).cloned().map(Record::Tombstone),
            RecordKey::Kv(key) => self.kv.get(key).cloned().map(Record::Kv),
            RecordKey::Meta => Some(Record::Meta(Meta { next_token: self.ledger.next_token })),
        }
    }

    /// All records, for snapshots.
    pub fn records(&self) -> impl Iterator<Item = (RecordKey, Record)> + '_ {
        self.record_refs().1.map(|(key, record)| (key, record.to_owned()))
    }

    /// Every record, borrowed, and how many there are; [`records`](Self::records) clones them.
    pub fn record_refs(&self) -> (usize, impl Iterator<Item = (RecordKey, RecordRef<'_>)> + '_) {
        let count = 1 + self.locks.len() + self.tombstones.len() + self.kv.len();
        let meta = (RecordKey::Meta, RecordRef::Meta(Meta { next_token: self.ledger.next_token }));
        let locks = self.locks.iter().map(|(name, st)| (RecordKey::Lock(name.clone()), RecordRef::Lock(&st.record)));
        let tombstones =
            self.tombstones.iter().map(|(id, ts)| (RecordKey::Tombstone(id.clone()), RecordRef::Tombstone(ts)));
        let kv = self.kv.iter().map(|(k, e)| (RecordKey::Kv(k.clone()), RecordRef::Kv(e)));
        (count, std::iter::once(meta).chain(locks).chain(tombstones).chain(kv))
    }

    /// Rebuilds a table from records (the inverse of [`records`](Self::records)), checking that
    /// they are consistent. The rebuilt table has no dirty keys.
    pub fn from_records(records: impl IntoIterator<Item = (RecordKey, Record)>) -> Result<Self, LoadError> {
        let mut table = LockTable::new();
        let mut meta_seen = false;
        for (key, record) in records {
            let duplicate = match (&key, record) {
                (RecordKey::Lock(name), Record::Lock(r)) => {
                    if r.name != *name {
                        return Err(LoadError::NameMismatch { key, found: r.name });
                    }
                    let st = LockState { record: r, seqs: VecDeque::new() };
                    table.locks.insert(name.clone(), st).is_some()
                }
                (RecordKey::Tombstone(id), Record::Tombstone(ts)) => {
                    if ts.request_id != *id {
                        return Err(LoadError::NameMismatch { key, found: ts.request_id });
                    }
                    table.tombstones.insert(id.clone(), ts).is_some()
                }
                (RecordKey::Kv(k), Record::Kv(entry)) => table.kv.insert(k.clone(), entry).is_some(),
                (RecordKey::Meta, Record::Meta(meta)) => {
                    table.ledger.next_token = meta.next_token;
                    std::mem::replace(&mut meta_seen, true)
                }
                (_, record) => return Err(LoadError::KindMismatch { found: record.kind(), key }),
            };
            if duplicate {
                return Err(LoadError::DuplicateKey { key });
            }
        }
        if table.ledger.next_token == 0 {
            return Err(LoadError::Inconsistent {
                key: RecordKey::Meta,
                reason: "next_token is 0; tokens start at 1".to_owned(),
            });
        }
        table.index_requests()?;
        Ok(table)
    }

    /// Builds the request index and queue sequence numbers of freshly loaded locks.
    fn index_requests(&mut self) -> Result<(), LoadError> {
        let ledger = &mut self.ledger;
        for (name, st) in &mut self.locks {
            let key = || RecordKey::Lock(name.clone());
            let inconsistent = |reason: String| LoadError::Inconsistent { key: key(), reason };
            if st.is_idle() {
                return Err(inconsistent("no holders, no waiters and no delay".to_owned()));
            }
            let mut last_token = 0;
            for lease in &st.record.holders {
                if lease.name != *name {
                    return Err(inconsistent(format!("holds a lease of lock {:?}", lease.name)));
                }
                if lease.token <= last_token || lease.token >= ledger.next_token {
                    return Err(inconsistent(format!(
                        "holder token {} is out of order or not below next_token {}",
                        lease.token, ledger.next_token
                    )));
                }
                last_token = lease.token;
            }
            let holders = st.record.holders.iter().map(|l| (&l.request_id, Slot::Held { token: l.token }));
            let waiters = st.record.waiters.iter().map(|w| {
                let seq = ledger.next_seq;
                ledger.next_seq += 1;
                st.seqs.push_back(seq);
                (&w.request_id, Slot::Queued { seq })
            });
            for (id, slot) in holders.chain(waiters) {
                let first = if self.tombstones.contains_key(id) {
                    Some(RecordKey::Tombstone(id.clone()))
                } else {
                    ledger.requests.get(id).map(|loc| RecordKey::Lock(loc.name.clone()))
                };
                if let Some(first) = first {
                    return Err(LoadError::DuplicateRequest { request_id: id.clone(), first, second: key() });
                }
                ledger.requests.insert(id.clone(), RequestLoc { name: name.clone(), slot });
            }
        }
        ledger.held = ledger.requests.values().filter(|l| matches!(l.slot, Slot::Held { .. })).count();
        ledger.queued = ledger.requests.len() - ledger.held;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000;

    fn exclusive(name: &str, id: &str) -> Acquire {
        Acquire {
            name: name.into(),
            request_id: id.into(),
            owner: format!("owner-{id}"),
            mode: Mode::Exclusive,
            limit: 0,
            ttl_ms: 10_000,
            lock_delay_ms: 0,
            wait: true,
        }
    }

    fn shared(name: &str, id: &str, limit: u32) -> Acquire {
        Acquire { mode: Mode::Shared, limit, ..exclusive(name, id) }
    }

    fn release(name: &str, id: &str) -> Command {
        Command::Release { name: name.into(), request_id: id.into() }
    }

    fn expire(name: &str, id: &str) -> Command {
        Command::Expire { name: name.into(), request_id: id.into() }
    }

    /// Applies one command at `NOW` with `caps`; returns its result and events.
    fn apply_with(table: &mut LockTable, caps: Caps, cmd: Command) -> (CommandResult, Vec<Event>) {
        let mut events = Vec::new();
        let batch = Batch { now_ms: NOW, caps, commands: vec![cmd] };
        let mut results = table.apply(1, &batch, &mut events);
        assert_eq!(results.len(), 1);
        (results.remove(0), events)
    }

    fn apply(table: &mut LockTable, cmd: Command) -> CommandResult {
        apply_with(table, Caps::default(), cmd).0
    }

    fn acquire(table: &mut LockTable, a: Acquire) -> AcquireOutcome {
        match apply(table, Command::Acquire(a)) {
            CommandResult::Acquire(outcome) => outcome,
            other => panic!("expected an acquire outcome, got {other:?}"),
        }
    }

    fn token(outcome: &AcquireOutcome) -> u64 {
        match outcome {
            AcquireOutcome::Granted(lease) => lease.token,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn holders(table: &LockTable, name: &str) -> Vec<String> {
        let lock = table.lock(name);
        lock.map(|l| l.holders.iter().map(|h| h.request_id.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn borrowed_records_encode_exactly_as_the_records() {
        let mut t = LockTable::default();
        token(&acquire(&mut t, exclusive("a", "1")));
        acquire(&mut t, exclusive("a", "2"));
        apply(&mut t, release("b", "never-seen"));
        let owned: Vec<(Vec<u8>, Vec<u8>)> =
            t.records().map(|(k, r)| (k.to_bytes(), postcard::to_stdvec(&r).unwrap())).collect();
        let (count, refs) = t.record_refs();
        let borrowed: Vec<(Vec<u8>, Vec<u8>)> =
            refs.map(|(k, r)| (k.to_bytes(), postcard::to_stdvec(&r).unwrap())).collect();
        assert_eq!(count, owned.len());
        assert!(owned.len() >= 3, "meta, a lock and a tombstone: {owned:?}");
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn a_lock_with_one_holder_keeps_room_for_one_lease() {
        // A million held locks must not each carry room for four leases.
        let mut t = LockTable::default();
        token(&acquire(&mut t, exclusive("solo", "a")));
        assert_eq!(t.lock("solo").unwrap().holders.capacity(), 1);
        // Shared holders still grow as a Vec does.
        for id in ["s1", "s2", "s3"] {
            token(&acquire(&mut t, shared("many", id, 0)));
        }
        assert_eq!(holders(&t, "many"), ["s1", "s2", "s3"]);
    }

    fn refusal(result: CommandResult) -> Refusal {
        match result {
            CommandResult::Refused(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn three_waiters_are_granted_in_fifo_order() {
        let mut t = LockTable::new();
        let first = token(&acquire(&mut t, exclusive("job", "h")));
        for (i, id) in ["w1", "w2", "w3"].iter().enumerate() {
            let position = i as u64 + 1;
            assert_eq!(acquire(&mut t, exclusive("job", id)), AcquireOutcome::Queued { position });
        }
        let mut last = first;
        for (holder, next) in [("h", "w1"), ("w1", "w2"), ("w2", "w3")] {
            let (result, events) = apply_with(&mut t, Caps::default(), release("job", holder));
            assert_eq!(result, CommandResult::Release { was_held: true, was_queued: false });
            assert_eq!(holders(&t, "job"), [next]);
            let granted = t.lock("job").unwrap().holders[0].token;
            assert!(granted > last);
            let finished =
                Event::Finished { name: "job".into(), request_id: holder.into(), how: Finish::Released, token: last };
            assert_eq!(events[0], finished);
            last = granted;
            assert!(matches!(&events[1], Event::Granted { request_id, .. } if request_id == next));
        }
        apply(&mut t, release("job", "w3"));
        assert_eq!(t.lock_count(), 0);
    }

    #[test]
    fn shared_limit_two_grants_two_and_queues_the_third() {
        let mut t = LockTable::new();
        let a = token(&acquire(&mut t, shared("sem", "a", 2)));
        let b = token(&acquire(&mut t, shared("sem", "b", 2)));
        assert_ne!(a, b, "shared holders get distinct tokens");
        assert_eq!(acquire(&mut t, shared("sem", "c", 2)), AcquireOutcome::Queued { position: 1 });
        assert_eq!(t.lock("sem").unwrap().limit, Some(2));
        let mismatch = refusal(apply(&mut t, Command::Acquire(shared("sem", "d", 3))));
        assert_eq!(mismatch, Refusal::LimitMismatch { name: "sem".into(), lock_limit: 2, requested: 3 });
        apply(&mut t, release("sem", "a"));
        assert_eq!(holders(&t, "sem"), ["b", "c"]);
    }

    #[test]
    fn a_queued_exclusive_blocks_a_later_shared_request() {
        let mut t = LockTable::new();
        acquire(&mut t, shared("rw", "reader1", 0));
        assert_eq!(acquire(&mut t, exclusive("rw", "writer")), AcquireOutcome::Queued { position: 1 });
        // The lock has room for readers, but no barging past the writer.
        assert_eq!(acquire(&mut t, shared("rw", "reader2", 0)), AcquireOutcome::Queued { position: 2 });
        let try_lock = Acquire { wait: false, ..shared("rw", "reader3", 0) };
        assert!(matches!(acquire(&mut t, try_lock), AcquireOutcome::Busy { queue_length: 2, .. }));
        apply(&mut t, release("rw", "reader1"));
        assert_eq!(holders(&t, "rw"), ["writer"]);
        apply(&mut t, release("rw", "writer"));
        assert_eq!(holders(&t, "rw"), ["reader2"]);
    }

    #[test]
    fn consecutive_shared_waiters_are_granted_together() {
        let mut t = LockTable::new();
        acquire(&mut t, exclusive("rw", "writer"));
        for id in ["r1", "r2", "r3"] {
            acquire(&mut t, shared("rw", id, 0));
        }
        acquire(&mut t, exclusive("rw", "writer2"));
        let (_, events) = apply_with(&mut t, Caps::default(), release("rw", "writer"));
        assert_eq!(holders(&t, "rw"), ["r1", "r2", "r3"]);
        let grants = events.iter().filter(|e| matches!(e, Event::Granted { .. })).count();
        assert_eq!(grants, 3, "only the waiters granted are woken");
        assert_eq!(t.lock("rw").unwrap().waiters.len(), 1);
    }

    #[test]
    fn cancelling_the_queue_head_grants_the_waiters_behind_it() {
        let mut t = LockTable::new();
        acquire(&mut t, shared("rw", "reader", 0));
        acquire(&mut t, exclusive("rw", "writer"));
        acquire(&mut t, shared("rw", "reader2", 0));
        let result = apply(&mut t, release("rw", "writer"));
        assert_eq!(result, CommandResult::Release { was_held: false, was_queued: true });
        assert_eq!(holders(&t, "rw"), ["reader", "reader2"]);
        assert!(matches!(t.request("writer"), Some(RequestState::Finished(ts)) if ts.finish == Finish::Cancelled));
    }

    #[test]
    fn lock_delay_after_expiry_blocks_grants_until_end_delay() {
        let mut t = LockTable::new();
        acquire(&mut t, Acquire { lock_delay_ms: 5_000, ..exclusive("db", "old") });
        acquire(&mut t, exclusive("db", "next"));
        let (result, events) = apply_with(&mut t, Caps::default(), expire("db", "old"));
        assert_eq!(result, CommandResult::Expire { expired: true });
        assert_eq!(events[1], Event::Delayed { name: "db".into(), delay_ms: 5_000 });
        assert!(holders(&t, "db").is_empty());
        assert_eq!(t.lock("db").unwrap().delay, Some(Delay { delay_ms: 5_000, until_ms: NOW + 5_000 }));
        assert_eq!(t.delayed().count(), 1);
        // Nobody is granted during the delay, not even a fresh request on the idle lock.
        let try_lock = Acquire { wait: false, ..exclusive("db", "eager") };
        assert!(matches!(acquire(&mut t, try_lock), AcquireOutcome::Busy { .. }));

        let end = Command::EndDelay { name: "db".into() };
        let (result, events) = apply_with(&mut t, Caps::default(), end.clone());
        assert_eq!(result, CommandResult::EndDelay { ended: true });
        assert_eq!(events[0], Event::DelayEnded { name: "db".into() });
        assert_eq!(holders(&t, "db"), ["next"]);
        assert_eq!(apply(&mut t, end), CommandResult::EndDelay { ended: false });
    }

    #[test]
    fn a_clean_release_never_delays_the_lock() {
        let mut t = LockTable::new();
        acquire(&mut t, Acquire { lock_delay_ms: 5_000, ..exclusive("db", "old") });
        acquire(&mut t, exclusive("db", "next"));
        apply(&mut t, release("db", "old"));
        assert_eq!(holders(&t, "db"), ["next"]);
        assert_eq!(t.lock("db").unwrap().delay, None);
    }

    #[test]
    fn a_delayed_lock_with_nobody_left_stays_until_its_delay_ends() {
        let mut t = LockTable::new();
        acquire(&mut t, Acquire { lock_delay_ms: 100, ..exclusive("db", "old") });
        apply(&mut t, expire("db", "old"));
        assert_eq!(t.lock_count(), 1);
        apply(&mut t, Command::EndDelay { name: "db".into() });
        assert_eq!(t.lock_count(), 0);
    }

    #[test]
    fn a_shorter_second_delay_does_not_cut_the_first_one_short() {
        let mut t = LockTable::new();
        acquire(&mut t, Acquire { lock_delay_ms: 5_000, ..shared("db", "long", 0) });
        acquire(&mut t, Acquire { lock_delay_ms: 100, ..shared("db", "short", 0) });
        apply(&mut t, expire("db", "long"));
        let (_, events) = apply_with(&mut t, Caps::default(), expire("db", "short"));
        assert!(!events.iter().any(|e| matches!(e, Event::Delayed { .. })));
        assert_eq!(t.lock("db").unwrap().delay, Some(Delay { delay_ms: 5_000, until_ms: NOW + 5_000 }));
    }

    #[test]
    fn a_longer_second_delay_extends_the_first_one() {
        let mut t = LockTable::new();
        acquire(&mut t, Acquire { lock_delay_ms: 100, ..shared("db", "short", 0) });
        acquire(&mut t, Acquire { lock_delay_ms: 5_000, ..shared("db", "long", 0) });
        apply(&mut t, expire("db", "short"));
        let (_, events) = apply_with(&mut t, Caps::default(), expire("db", "long"));
        let delayed = Event::Delayed { name: "db".into(), delay_ms: 5_000 };
        assert!(events.contains(&delayed));
        let delay = Delay { delay_ms: 5_000, until_ms: NOW + 5_000 };
        assert_eq!(t.lock("db").unwrap().delay, Some(delay));
    }

    #[test]
    fn kv_write_with_if_fence_accepts_the_current_token_and_rejects_a_stale_one() {
        let mut t = LockTable::new();
        let stale = token(&acquire(&mut t, exclusive("job", "first")));
        apply(&mut t, release("job", "first"));
        let current = token(&acquire(&mut t, exclusive("job", "second")));
        let put = |token| Command::KvPut {
            key: b"out".to_vec(),
            value: b"v".to_vec(),
            if_fence: Some(Fence { name: "job".into(), token }),
        };
        let refused = refusal(apply(&mut t, put(stale)));
        assert_eq!(refused, Refusal::FencedOut { name: "job".into(), token: stale });
        assert_eq!(t.kv_get(b"out"), None);
        let mut events = Vec::new();
        let batch = Batch { now_ms: NOW, caps: Caps::default(), commands: vec![put(current)] };
        assert_eq!(t.apply(42, &batch, &mut events), [CommandResult::KvPut { revision: 42 }]);
        assert_eq!(t.kv_get(b"out"), Some(&KvEntry { value: b"v".to_vec(), revision: 42 }));
        assert_eq!(t.validate_fence("job", current), (true, vec![current]));
        assert_eq!(t.validate_fence("job", stale), (false, vec![current]));
        let delete = Command::KvDelete { key: b"out".to_vec(), if_fence: None };
        assert_eq!(apply(&mut t, delete.clone()), CommandResult::KvDelete { existed: true });
        assert_eq!(apply(&mut t, delete), CommandResult::KvDelete { existed: false });
    }

    #[test]
    fn list_pages_through_a_prefix_in_byte_order() {
        let mut t = LockTable::new();
        for name in ["job/3", "job/1", "other", "job/2", "jobs"] {
            acquire(&mut t, exclusive(name, &format!("id-{name}")));
        }
        let names = |page: &[&LockRecord]| page.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        let (page, next) = t.list("job/", None, 2);
        assert_eq!(names(&page), ["job/1", "job/2"]);
        assert_eq!(next.as_deref(), Some("job/2"));
        let (page, next) = t.list("job/", next.as_deref(), 2);
        assert_eq!(names(&page), ["job/3"]);
        assert_eq!(next, None);
        let (page, _) = t.list("", Some("jobs"), 10);
        assert_eq!(names(&page), ["other"]);
        assert_eq!(t.list("zzz", None, 10).0.len(), 0);
    }

    #[test]
    fn kv_list_pages_through_a_prefix() {
        let mut t = LockTable::new();
        for key in [&b"a/2"[..], b"a/1", b"b", b"a/3"] {
            apply(&mut t, Command::KvPut { key: key.to_vec(), value: vec![], if_fence: None });
        }
        let (page, next) = t.kv_list(b"a/", None, 2);
        assert_eq!(page.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [&b"a/1"[..], b"a/2"]);
        let (page, next) = t.kv_list(b"a/", next.as_deref(), 2);
        assert_eq!(page.len(), 1);
        assert_eq!(next, None);
    }

    #[test]
    fn repeating_an_acquire_returns_the_current_outcome_without_changing_anything() {
        let mut t = LockTable::new();
        let granted = acquire(&mut t, exclusive("job", "a"));
        acquire(&mut t, exclusive("job", "b"));
        t.take_dirty();
        let before = t.clone();
        assert_eq!(acquire(&mut t, exclusive("job", "a")), granted);
        let try_again = Acquire { wait: false, ..exclusive("job", "b") };
        assert_eq!(acquire(&mut t, try_again), AcquireOutcome::Queued { position: 1 });
        assert_eq!(t, before);
        assert!(t.take_dirty().is_empty());
    }

    #[test]
    fn a_request_id_reused_with_other_parameters_is_invalid() {
        let mut t = LockTable::new();
        acquire(&mut t, exclusive("job", "a"));
        let other_ttl = Acquire { ttl_ms: 1, ..exclusive("job", "a") };
        match refusal(apply(&mut t, Command::Acquire(other_ttl))) {
            Refusal::InvalidArgument { field, message } => {
                assert_eq!(field, "request_id");
                assert!(message.contains("reused with different parameters"), "{message}");
                assert!(message.contains("ttl_ms"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let other_lock = refusal(apply(&mut t, Command::Acquire(exclusive("elsewhere", "a"))));
        assert!(matches!(other_lock, Refusal::InvalidArgument { field, .. } if field == "request_id"));
        let wrong_release = refusal(apply(&mut t, release("elsewhere", "a")));
        assert!(matches!(wrong_release, Refusal::InvalidArgument { field, .. } if field == "name"));
        assert_eq!(holders(&t, "job"), ["a"]);
    }

    #[test]
    fn a_finished_request_cannot_be_acquired_again_until_forgotten() {
        let mut t = LockTable::new();
        acquire(&mut t, exclusive("job", "a"));
        apply(&mut t, release("job", "a"));
        let again = refusal(apply(&mut t, Command::Acquire(exclusive("job", "a"))));
        assert_eq!(again, Refusal::RequestFinished { request_id: "a".into(), finish: Finish::Released });
        assert_eq!(apply(&mut t, release("job", "a")), CommandResult::Release { was_held: false, was_queued: false });
        assert_eq!(
            apply(&mut t, Command::ForgetFinished { before_ms: NOW - 1 }),
            CommandResult::ForgetFinished { forgotten: 0 }
        );
        assert_eq!(
            apply(&mut t, Command::ForgetFinished { before_ms: NOW }),
            CommandResult::ForgetFinished { forgotten: 1 }
        );
        assert!(matches!(acquire(&mut t, exclusive("job", "a")), AcquireOutcome::Granted(_)));
    }

    #[test]
    fn caps_refuse_new_locks_and_waiters_and_name_the_cap() {
        let mut t = LockTable::new();
        let caps = Caps { max_waiters_per_lock: 1, max_locks: 1 };
        apply_with(&mut t, caps, Command::Acquire(exclusive("one", "a")));
        apply_with(&mut t, caps, Command::Acquire(exclusive("one", "b")));
        t.take_dirty();
        let before = t.clone();
        let (r, events) = apply_with(&mut t, caps, Command::Acquire(exclusive("two", "c")));
        assert!(matches!(refusal(r), Refusal::ResourceExhausted(m) if m.contains("max_locks (1)")));
        let (r, _) = apply_with(&mut t, caps, Command::Acquire(exclusive("one", "d")));
        assert!(matches!(refusal(r), Refusal::ResourceExhausted(m) if m.contains("max_waiters_per_lock (1)")));
        assert!(events.is_empty());
        assert_eq!(t, before);
        assert!(t.take_dirty().is_empty());
    }

    #[test]
    fn invalid_input_is_refused_naming_the_field() {
        let mut t = LockTable::new();
        let bad = [
            (Command::Acquire(exclusive("", "a")), "name"),
            (Command::Acquire(Acquire { ttl_ms: 0, ..exclusive("job", "a") }), "ttl_ms"),
            (release("job", &"r".repeat(65)), "request_id"),
            (Command::KvPut { key: vec![], value: vec![], if_fence: None }, "key"),
            (Command::EndDelay { name: "a\0".into() }, "name"),
        ];
        for (cmd, want) in bad {
            match refusal(apply(&mut t, cmd)) {
                Refusal::InvalidArgument { field, .. } => assert_eq!(field, want),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(t, LockTable::new());
        assert!(t.take_dirty().is_empty());
    }

    #[test]
    fn a_checkpoint_of_a_waiter_carries_over_to_its_lease() {
        let mut t = LockTable::new();
        acquire(&mut t, exclusive("job", "a"));
        acquire(&mut t, exclusive("job", "b"));
        let entry = |id: &str| CheckpointEntry { name: "job".into(), request_id: id.into(), remaining_ms: 700 };
        let cmd = Command::Checkpoint { leases: vec![entry("b"), entry("missing")] };
        assert_eq!(apply(&mut t, cmd), CommandResult::Checkpoint);
        apply(&mut t, release("job", "a"));
        let lease = &t.lock("job").unwrap().holders[0];
        assert_eq!(lease.checkpoint_ms, Some(700));
        let info: Vec<_> = t.leases().collect();
        assert_eq!(info.len(), 1);
        assert!(info[0].held && info[0].checkpoint_ms == Some(700));
        let clear = |id: &str| Command::ClearCheckpoint { name: "job".into(), request_id: id.into() };
        assert_eq!(apply(&mut t, clear("b")), CommandResult::ClearCheckpoint { found: true });
        assert_eq!(apply(&mut t, clear("a")), CommandResult::ClearCheckpoint { found: false });
        assert_eq!(t.lock("job").unwrap().holders[0].checkpoint_ms, None);
    }

    #[test]
    fn tokens_keep_increasing_across_a_reload() {
        let mut t = LockTable::new();
        let first = token(&acquire(&mut t, exclusive("job", "a")));
        apply(&mut t, release("job", "a"));
        let mut reloaded = LockTable::from_records(t.records()).unwrap();
        assert_eq!(reloaded, t);
        assert!(reloaded.take_dirty().is_empty());
        let next = token(&acquire(&mut reloaded, exclusive("job", "b")));
        assert!(next > first);
        assert_eq!(reloaded.take_dirty(), [RecordKey::Lock("job".into()), RecordKey::Meta]);
    }

    #[test]
    fn records_survive_postcard_and_key_bytes() {
        let mut t = LockTable::new();
        acquire(&mut t, shared("sem", "a", 3));
        acquire(&mut t, exclusive("sem", "b"));
        apply(&mut t, release("gone", "c"));
        apply(&mut t, Command::KvPut { key: b"k".to_vec(), value: b"v".to_vec(), if_fence: None });
        let stored: Vec<(Vec<u8>, Vec<u8>)> =
            t.records().map(|(k, r)| (k.to_bytes(), postcard::to_stdvec(&r).unwrap())).collect();
        let loaded =
            stored.iter().map(|(k, r)| (RecordKey::from_bytes(k).unwrap(), postcard::from_bytes::<Record>(r).unwrap()));
        let reloaded = LockTable::from_records(loaded.collect::<Vec<_>>()).unwrap();
        assert_eq!(reloaded, t);
        assert!(matches!(reloaded.request("b"), Some(RequestState::Queued { position: 1, .. })));
        assert!(matches!(reloaded.request("c"), Some(RequestState::Finished(_))));
    }

    #[test]
    fn inconsistent_records_are_refused_with_the_key() {
        let mut t = LockTable::new();
        acquire(&mut t, exclusive("x", "a"));
        acquire(&mut t, exclusive("y", "b"));
        let mut records: Vec<_> = t.records().collect();
        // Move b's hold into lock x as well: one request in two locks.
        let mut y = t.lock("y").unwrap().clone();
        y.name = "x2".into();
        for h in &mut y.holders {
            h.name = "x2".into();
        }
        records.push((RecordKey::Lock("x2".into()), Record::Lock(y)));
        let err = LockTable::from_records(records).unwrap_err();
        assert!(matches!(err, LoadError::DuplicateRequest { ref request_id, .. } if request_id == "b"), "{err}");

        let mismatch = [(RecordKey::Meta, Record::Kv(KvEntry { value: vec![], revision: 1 }))];
        let err = LockTable::from_records(mismatch).unwrap_err();
        assert_eq!(err.to_string(), "record under key meta is a kv entry record");

        let lock = t.lock("x").unwrap().clone();
        let renamed = [(RecordKey::Lock("other".into()), Record::Lock(lock))];
        assert!(matches!(LockTable::from_records(renamed), Err(LoadError::NameMismatch { .. })));

        let stale_meta = t.records().chain([(RecordKey::Meta, Record::Meta(Meta { next_token: 1 }))]);
        assert!(matches!(LockTable::from_records(stale_meta), Err(LoadError::DuplicateKey { .. })));
        let low_meta = t
            .records()
            .filter(|(k, _)| *k != RecordKey::Meta)
            .chain([(RecordKey::Meta, Record::Meta(Meta { next_token: 2 }))]);
        assert!(matches!(LockTable::from_records(low_meta), Err(LoadError::Inconsistent { .. })));
    }

    #[test]
    fn bad_key_bytes_are_refused_with_the_bytes() {
        assert!(RecordKey::from_bytes(b"").is_err());
        let err = RecordKey::from_bytes(b"q123").unwrap_err();
        assert!(err.to_string().contains("q123"), "{err}");
        assert!(RecordKey::from_bytes(b"mx").is_err());
        assert!(RecordKey::from_bytes(b"l\xff").is_err());
        assert_eq!(RecordKey::Lock("a".into()).to_bytes(), b"la");
        assert_eq!(RecordKey::Meta.to_bytes(), b"m");
    }
}

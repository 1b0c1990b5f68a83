//! The leader's clock over leases (DESIGN §3): the deadline table, expiry and lock-delay
//! proposals, renewals and checkpoints. Followers keep no deadlines and expire nothing.
//!
//! The table is derived from applied state only: apply reports events through
//! [`ApplyObserver`], and on becoming leader (after its first quorum round) the node gives every
//! lease a full TTL again (or its checkpointed remainder), so a leader change can delay an expiry
//! but never bring it forward.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::Notify;

use crate::buggy::{self, Bug};
use crate::lock::{CheckpointEntry, Command, CommandResult, Event, RequestState};
use crate::propose::{now_ms, Proposer, RaftCallError, ReadRounds};
use crate::raft::state_machine::{ApplyObserver, SharedState};
use crate::raft::Raft;

/// How often the leader looks at its deadlines.
const TICK: Duration = Duration::from_millis(25);
/// An Expire or EndDelay whose lease or delay is still there after this is proposed again.
const REPROPOSE_AFTER: Duration = Duration::from_secs(2);
/// How often old tombstones are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(30);

struct Tracked {
    name: String,
    ttl: Duration,
    deadline: Instant,
    /// When an Expire was proposed; renewals are refused from then on.
    expire_proposed: Option<Instant>,
    /// When to log this lease's remaining time if it stays silent.
    next_checkpoint: Instant,
    /// A Checkpoint naming this lease is proposed but not applied yet. A renewal must wait for
    /// it: the checkpoint carries a remaining time computed before the renewal.
    checkpoint_in_flight: bool,
}

struct Delayed {
    wake: Instant,
    proposed: Option<Instant>,
}

#[derive(Default)]
struct ClockState {
    /// The term in which this node's deadline table is live (it is leader and ran a round).
    ready_term: Option<u64>,
    leases: HashMap<String, Tracked>,
    delays: HashMap<String, Delayed>,
    /// When this leader received Acquires it proposed, so a new lease's clock starts at receipt.
    receipts: HashMap<String, Instant>,
}

/// Whether a renewed lease is still alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    Alive { held: bool, ttl_ms: u64 },
    Lost,
}

/// The deadline table plus wake-ups for calls waiting on a grant.
pub struct LeaseClock {
    state: Mutex<ClockState>,
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    /// Never notified; stands in for a watch's handle after it is released.
    spare: Notify,
}

impl Default for LeaseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaseClock {
    pub fn new() -> Self {
        Self { state: Mutex::default(), waiting: Mutex::default(), spare: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes when an Acquire for `request_id` arrived, before it is proposed; the note goes
    /// when the returned guard is dropped (the proposal applied, failed or was cancelled).
    pub fn note_receipt<'a>(&'a self, request_id: &str, at: Instant) -> ReceiptNote<'a> {
        let mut s = self.lock();
        if s.ready_term.is_some() {
            s.receipts.insert(request_id.to_string(), at);
        }
        ReceiptNote { clock: self, request_id: request_id.to_string() }
    }

    /// A handle woken when `request_id` is granted or finishes; unregistered on drop.
    pub fn watch<'a>(&'a self, request_id: &str) -> GrantWatch<'a> {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let notify = w.entry(request_id.to_string()).or_insert_with(|| Arc::new(Notify::new())).clone();
        GrantWatch { clock: self, request_id: request_id.to_string(), notify: Some(notify) }
    }

    fn wake(&self, request_id: &str) {
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = w.get(request_id) {
            n.notify_waiters();
        }
    }

    /// Becomes the live deadline table for `term`: every lease gets a full TTL (or its
    /// checkpointed remainder) from now, every delayed lock its full delay.
    fn promote(&self, term: u64, shared: &SharedState) {
        let mut s = self.lock();
        let applied = shared.read();
        let now = Instant::now();
        s.leases.clear();
        s.delays.clear();
        s.receipts.clear();
        for l in applied.table.leases() {
            let ttl = Duration::from_millis(l.ttl_ms);
            let mut left = l.checkpoint_ms.map_or(ttl, Duration::from_millis);
            if buggy::active(Bug::NoLeaderGrace) {
                left = Duration::ZERO;
            }
            s.leases.insert(
                l.request_id.to_string(),
                Tracked {
                    name: l.name.to_string(),
                    ttl,
                    deadline: now + left,
                    expire_proposed: None,
                    next_checkpoint: now + ttl / 2,
                    checkpoint_in_flight: false,
                },
            );
        }
        for (name, d) in applied.table.delayed() {
            s.delays
                .insert(name.to_string(), Delayed { wake: now + Duration::from_millis(d.delay_ms), proposed: None });
        }
        s.ready_term = Some(term);
        tracing::info!(term, leases = s.leases.len(), "leader lease clock started");
    }

    fn demote(&self) {
        let mut s = self.lock();
        if s.ready_term.take().is_some() {
            s.leases.clear();
            s.delays.clear();
            s.receipts.clear();
            tracing::info!("leader lease clock stopped");
        }
    }

    /// Checks each `(name, request_id)` against applied state and, if alive and not being
    /// expired, moves its deadline to `receipt + ttl`. The caller must have completed a quorum
    /// round that started after `receipt`. Returns the outcomes and the leases that carry a
    /// checkpoint (their renewal must go through the log first).
    fn renew_checked(
        &self,
        shared: &SharedState,
        leases: &[(String, String)],
        receipt: Instant,
    ) -> Result<Vec<(Renewal, Path)>, RaftCallError> {
        let mut s = self.lock();
        if s.ready_term.is_none() {
            return Err(RaftCallError::NoQuorum("the leader is still starting its lease clock".into()));
        }
        let applied = shared.read();
        let mut out = Vec::with_capacity(leases.len());
        for (name, request_id) in leases {
            let (held, ttl_ms, checkpointed) = match applied.table.request(request_id) {
                Some(RequestState::Held(l)) if &l.name == name => (true, l.ttl_ms, l.checkpoint_ms.is_some()),
                Some(RequestState::Queued { name: n, waiter, .. }) if n == name => {
                    (false, waiter.ttl_ms, waiter.checkpoint_ms.is_some())
                }
                _ => {
                    out.push((Renewal::Lost, Path::Done));
                    continue;
                }
            };
            let ttl = Duration::from_millis(ttl_ms);
            let tracked = s.leases.entry(request_id.clone()).or_insert_with(|| Tracked {
                name: name.clone(),
                ttl,
                deadline: receipt + ttl,
                expire_proposed: None,
                next_checkpoint: receipt + ttl / 2,
                checkpoint_in_flight: false,
            });
            if tracked.expire_proposed.is_some() {
                out.push((Renewal::Lost, Path::Done));
                continue;
            }
            // No new checkpoint of this lease until this renewal is through.
            tracked.next_checkpoint = tracked.next_checkpoint.max(receipt + ttl / 2);
            let path = if tracked.checkpoint_in_flight {
                Path::AwaitCheckpoint
            } else if checkpointed {
                Path::ClearCheckpoint
            } else {
                tracked.deadline = tracked.deadline.max(receipt + ttl);
                tracing::debug!(request_id = %request_id, received_ms_ago = receipt.elapsed().as_millis() as u64, "renewed");
                Path::Done
            };
            out.push((Renewal::Alive { held, ttl_ms }, path));
        }
        Ok(out)
    }

    /// Renews leases (DESIGN §3): one shared quorum round that started after `receipt`, then the
    /// check under the deadline table's lock. Never writes to the log, except for the first
    /// renewal of a checkpointed lease, which clears the checkpoint through a committed entry.
    pub async fn renew(
        &self,
        shared: &SharedState,
        rounds: &ReadRounds,
        proposer: &Proposer,
        leases: &[(String, String)],
        receipt: Instant,
    ) -> Result<Vec<Renewal>, RaftCallError> {
        let rides_earlier = buggy::active(Bug::RenewRidesEarlierRound)
            && rounds.last_success_started().is_some_and(|t| t + buggy::STALE_ROUND >= receipt);
        if !buggy::active(Bug::RenewWithoutRound) && !rides_earlier {
            rounds.round().await?;
        }
        let checked = self.renew_checked(shared, leases, receipt)?;
        let mut out = Vec::with_capacity(checked.len());
        for ((name, request_id), (renewal, path)) in leases.iter().zip(checked) {
            match path {
                Path::Done => out.push(renewal),
                _ => out.push(self.renew_through_log(shared, proposer, name, request_id, receipt).await?),
            }
        }
        Ok(out)
    }

    /// Renews a lease that carries (or is about to carry) a checkpoint: waits for an in-flight
    /// Checkpoint to be applied, then clears it through a committed entry, so the renewal is
    /// ordered after every checkpoint of the lease.
    async fn renew_through_log(
        &self,
        shared: &SharedState,
        proposer: &Proposer,
        name: &str,
        request_id: &str,
        receipt: Instant,
    ) -> Result<Renewal, RaftCallError> {
        let lease = [(name.to_string(), request_id.to_string())];
        let deadline = Instant::now() + CHECKPOINT_WAIT;
        loop {
            let (renewal, path) =
                self.renew_checked(shared, &lease, receipt)?.pop().unwrap_or((Renewal::Lost, Path::Done));
            match path {
                Path::Done => return Ok(renewal),
                Path::AwaitCheckpoint => {
                    if Instant::now() > deadline {
                        return Err(RaftCallError::NoQuorum(
                            "a checkpoint of this lease is still being committed".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Path::ClearCheckpoint => {
                    let cmd = Command::ClearCheckpoint { name: name.to_string(), request_id: request_id.to_string() };
                    // Committed after receipt, so it was a quorum round that started after it.
                    match proposer.propose(cmd).await? {
                        (CommandResult::ClearCheckpoint { found: true }, _) => {}
                        _ => return Ok(Renewal::Lost),
                    }
                    if Instant::now() > deadline {
                        return Err(RaftCallError::NoQuorum("the lease keeps being checkpointed".into()));
                    }
                }
            }
        }
    }

    fn checkpoint_applied(&self, request_ids: &[String]) {
        let mut s = self.lock();
        for id in request_ids {
            if let Some(t) = s.leases.get_mut(id) {
                t.checkpoint_in_flight = false;
            }
        }
    }
}

/// How a renewal proceeds after its quorum round.
enum Path {
    /// Answered (deadline moved, or lost).
    Done,
    /// A Checkpoint of the lease is being proposed: wait for it.
    AwaitCheckpoint,
    /// The lease carries a checkpoint: clear it through the log first.
    ClearCheckpoint,
}

/// Longest a renewal waits on a lease's checkpoint before answering NO_LEADER (retry).
const CHECKPOINT_WAIT: Duration = Duration::from_secs(2);

/// Removes an Acquire's receipt time when dropped.
pub struct ReceiptNote<'a> {
    clock: &'a LeaseClock,
    request_id: String,
}

impl Drop for ReceiptNote<'_> {
    fn drop(&mut self) {
        self.clock.lock().receipts.remove(&self.request_id);
    }
}

/// A registration for grant wake-ups of one request id.
pub struct GrantWatch<'a> {
    clock: &'a LeaseClock,
    request_id: String,
    notify: Option<Arc<Notify>>,
}

impl GrantWatch<'_> {
    pub fn notify(&self) -> &Notify {
        // Always Some until drop.
        self.notify.as_deref().unwrap_or(&self.clock.spare)
    }
}

impl Drop for GrantWatch<'_> {
    fn drop(&mut self) {
        let mut w = self.clock.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Release our handle under the map's lock, so of two watchers dropping at once exactly
        // the last one sees only the map's reference left.
        drop(self.notify.take());
        if w.get(&self.request_id).is_some_and(|n| Arc::strong_count(n) == 1) {
            w.remove(&self.request_id);
        }
    }
}

impl ApplyObserver for LeaseClock {
    fn applied(&self, _last_applied: u64, events: Vec<Event>) {
        {
            let mut s = self.lock();
            if s.ready_term.is_some() {
                let now = Instant::now();
                for e in &events {
                    match e {
                        Event::Queued { name, request_id, ttl_ms, .. }
                        | Event::Granted { name, request_id, ttl_ms, .. } => {
                            let start = s.receipts.remove(request_id).unwrap_or(now);
                            let ttl = Duration::from_millis(*ttl_ms);
                            // A grant from the queue keeps the clock the waiter already had.
                            s.leases.entry(request_id.clone()).or_insert_with(|| Tracked {
                                name: name.clone(),
                                ttl,
                                deadline: start + ttl,
                                expire_proposed: None,
                                next_checkpoint: start + ttl / 2,
                                checkpoint_in_flight: false,
                            });
                        }
                        Event::Finished { request_id, .. } => {
                            s.leases.remove(request_id);
                        }
                        Event::Delayed { name, delay_ms } => {
                            let wake = now + Duration::from_millis(*delay_ms);
                            s.delays.insert(name.clone(), Delayed { wake, proposed: None });
                        }
                        Event::DelayEnded { name } => {
                            s.delays.remove(name);
                        }
                    }
                }
            }
        }
        for e in &events {
            match e {
                Event::Granted { request_id, .. } | Event::Finished { request_id, .. } => self.wake(request_id),
                _ => {}
            }
        }
    }

    fn reset(&self) {
        // A leader never installs a snapshot; a follower keeps no deadlines. Wake every waiting
        // call so it re-reads the new state.
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for n in w.values() {
            n.notify_waiters();
        }
    }
}

/// Settings of the leader's duties.
#[derive(Clone, Debug)]
pub struct DutySettings {
    /// Tombstones older than this are forgotten.
    pub tombstone_ttl: Duration,
}

/// Runs the leader's duties until the node stops: follows leadership, and while leader proposes
/// expiries, lock-delay ends, checkpoints and tombstone clean-up.
pub async fn run_duties(
    clock: Arc<LeaseClock>,
    raft: Raft,
    shared: Arc<SharedState>,
    proposer: Proposer,
    rounds: ReadRounds,
    settings: DutySettings,
) {
    let mut metrics = raft.metrics();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_forget = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = metrics.changed() => if changed.is_err() { return },
        }
        let (state, term, running) = {
            let m = metrics.borrow();
            (m.state, m.current_term, m.running_state.is_ok())
        };
        if !running {
            clock.demote();
            return;
        }
        if state != ServerState::Leader {
            clock.demote();
            continue;
        }
        let ready_term = clock.lock().ready_term;
        if ready_term != Some(term) {
            clock.demote();
            // The first quorum round of the term also waits until every entry of earlier terms
            // is applied, so the table below sees them all.
            if rounds.round().await.is_ok() {
                let m = raft.metrics().borrow().clone();
                if m.state == ServerState::Leader && m.current_term == term {
                    clock.promote(term, &shared);
                }
            }
            continue;
        }
        let due = due_work(&clock, Instant::now());
        for cmd in due {
            let proposer = proposer.clone();
            let clock = clock.clone();
            tokio::spawn(async move {
                let checkpointed: Vec<String> = match &cmd {
                    Command::Checkpoint { leases } => leases.iter().map(|l| l.request_id.clone()).collect(),
                    _ => Vec::new(),
                };
                if let Err(e) = proposer.propose(cmd).await {
                    tracing::debug!(error = %e, "leader duty proposal failed");
                }
                // Applied (or failed, and then possibly never applied while we lead): renewals
                // waiting on it may go on; an applied one makes them clear it through the log.
                clock.checkpoint_applied(&checkpointed);
            });
        }
        if last_forget.elapsed() >= FORGET_EVERY {
            last_forget = Instant::now();
            let before_ms = now_ms().saturating_sub(settings.tombstone_ttl.as_millis() as u64);
            if !shared.read().table.has_tombstones_finished_by(before_ms) {
                continue;
            }
            let proposer = proposer.clone();
            tokio::spawn(async move {
                let _ = proposer.propose(Command::ForgetFinished { before_ms }).await;
            });
        }
    }
}

/// Expiries, lock-delay ends and checkpoints due at `now`; marks them proposed.
fn due_work(clock: &LeaseClock, now: Instant) -> Vec<Command> {
    let mut s = clock.lock();
    let mut out = Vec::new();
    let mut checkpoints = Vec::new();
    for (request_id, t) in s.leases.iter_mut() {
        if t.deadline <= now {
            let repropose = t.expire_proposed.is_some_and(|at| now.duration_since(at) >= REPROPOSE_AFTER);
            if t.expire_proposed.is_none() || repropose {
                tracing::info!(name = %t.name, request_id = %request_id, ttl_ms = t.ttl.as_millis() as u64, "lease ran out; proposing its expiry");
                t.expire_proposed = Some(now);
                out.push(Command::Expire { name: t.name.clone(), request_id: request_id.clone() });
            }
        } else if t.next_checkpoint <= now && t.expire_proposed.is_none() && !t.checkpoint_in_flight {
            t.checkpoint_in_flight = true;
            checkpoints.push(CheckpointEntry {
                name: t.name.clone(),
                request_id: request_id.clone(),
                remaining_ms: t.deadline.duration_since(now).as_millis() as u64,
            });
            t.next_checkpoint = now + t.ttl / 2;
        }
    }
    for (name, d) in s.delays.iter_mut() {
        let repropose = d.proposed.is_some_and(|at| now.duration_since(at) >= REPROPOSE_AFTER);
        if d.wake <= now && (d.proposed.is_none() || repropose) {
            d.proposed = Some(now);
            out.push(Command::EndDelay { name: name.clone() });
        }
    }
    if !checkpoints.is_empty() {
        checkpoints.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        out.push(Command::Checkpoint { leases: checkpoints });
    }
    out.sort_by_key(|c| matches!(c, Command::Checkpoint { .. }));
    out
}

//! Commands the lock table applies, their results, and the events apply emits.
//!
//! These types are persisted (inside Raft log entries and snapshots) with postcard, which is not
//! self-describing: never reorder or remove fields or variants; add new variants at the end and
//! bump the entry format version in `raft::codec` when a layout must change.

use serde::{Deserialize, Serialize};

/// Lock mode of a request or hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Excludes every other holder.
    Exclusive,
    /// Coexists with other SHARED holders, up to the lock's limit.
    Shared,
}

/// A fence condition on a KV write: `token` must be a current hold of lock `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub name: String,
    pub token: u64,
}

/// An acquire attempt, identified by its client-chosen `request_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquire {
    pub name: String,
    pub request_id: String,
    pub owner: String,
    pub mode: Mode,
    /// SHARED only: most holders at once, 0 = unlimited. Must be 0 for EXCLUSIVE.
    pub limit: u32,
    pub ttl_ms: u64,
    pub lock_delay_ms: u64,
    /// false = try-lock: answer `Busy` instead of joining the queue.
    pub wait: bool,
}

/// A leader's checkpoint of one silent lease: how much of its TTL was left when logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointEntry {
    pub name: String,
    pub request_id: String,
    pub remaining_ms: u64,
}

/// One state change, proposed by the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Acquire(Acquire),
    /// Releases a hold or cancels a queued request; of an unknown id, leaves a tombstone.
    Release {
        name: String,
        request_id: String,
    },
    /// The leader's clock says this lease (held or queued) ran out.
    Expire {
        name: String,
        request_id: String,
    },
    /// The leader's clock says the lock-delay of `name` has passed: grant the next waiters.
    EndDelay {
        name: String,
    },
    /// Remaining TTL of leases not renewed since the last checkpoint.
    Checkpoint {
        leases: Vec<CheckpointEntry>,
    },
    /// The first renewal of a checkpointed lease: clears its checkpoint.
    ClearCheckpoint {
        name: String,
        request_id: String,
    },
    /// Forget tombstones of requests that finished at or before `before_ms` (leader wall clock).
    ForgetFinished {
        before_ms: u64,
    },
    KvPut {
        key: Vec<u8>,
        value: Vec<u8>,
        if_fence: Option<Fence>,
    },
    KvDelete {
        key: Vec<u8>,
        if_fence: Option<Fence>,
    },
    /// An admin releases holds of `name` on their holders' behalf. Like a Release it leaves
    /// tombstones (finish [`Finish::ForceReleased`]), so the holders' renewals fail at once;
    /// unless `immediate`, the lock then stays delayed for the longest TTL (or lock-delay) of the
    /// released holds before the next waiters are granted, so each old holder's client has
    /// found its lease lost (at a renewal, or by its own clock) before anyone else holds the
    /// lock (DESIGN §3), as after an expiry. Waiters are never released.
    ForceRelease {
        name: String,
        target: ForceTarget,
        immediate: bool,
    },
}

/// Which holds a [`Command::ForceRelease`] releases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForceTarget {
    /// The hold of this request_id. Refused if the request is queued, not held.
    Request(String),
    /// Every holder whose token is <= `max_token` (0 = every holder), so that a client's retry
    /// cannot release a hold the first attempt granted.
    All { max_token: u64 },
}

impl Command {
    /// Roughly how many bytes the command takes in a log entry (for sizing batches).
    pub fn approx_size(&self) -> usize {
        const FIXED: usize = 32;
        FIXED
            + match self {
                Command::Acquire(a) => a.name.len() + a.request_id.len() + a.owner.len(),
                Command::Release { name, request_id }
                | Command::Expire { name, request_id }
                | Command::ClearCheckpoint { name, request_id } => name.len() + request_id.len(),
                Command::EndDelay { name } => name.len(),
                Command::Checkpoint { leases } => leases.iter().map(|l| l.name.len() + l.request_id.len() + 16).sum(),
                Command::ForgetFinished { .. } => 0,
                Command::KvPut { key, value, if_fence } => {
                    key.len() + value.len() + if_fence.as_ref().map_or(0, |f| f.name.len())
                }
                Command::KvDelete { key, if_fence } => key.len() + if_fence.as_ref().map_or(0, |f| f.name.len()),
                Command::ForceRelease { name, target, .. } => {
                    name.len()
                        + match target {
                            ForceTarget::Request(id) => id.len(),
                            ForceTarget::All { .. } => 8,
                        }
                }
            }
    }
}

/// Caps the leader stamps into every batch, so apply is deterministic whatever each node's own
/// configuration says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    /// Most waiters one lock may queue.
    pub max_waiters_per_lock: u32,
    /// Most lock records that may exist at once.
    pub max_locks: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Self { max_waiters_per_lock: 10_000, max_locks: 1_000_000 }
    }
}

/// The application payload of one Raft entry: commands coalesced by group commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The leader's wall clock (Unix ms) when it proposed the batch. Used for the human-readable
    /// `granted_at`/`expires_at` and tombstone ages only; never for expiry decisions.
    pub now_ms: u64,
    pub caps: Caps,
    pub commands: Vec<Command>,
}

/// A hold of a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: String,
    pub request_id: String,
    pub owner: String,
    pub mode: Mode,
    pub token: u64,
    pub ttl_ms: u64,
    pub lock_delay_ms: u64,
    pub granted_at_ms: u64,
    pub expires_at_ms: u64,
    /// Set by a checkpoint: remaining TTL when it was logged.
    pub checkpoint_ms: Option<u64>,
}

/// A queued request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub request_id: String,
    pub owner: String,
    pub mode: Mode,
    pub limit: u32,
    pub ttl_ms: u64,
    pub lock_delay_ms: u64,
    pub enqueued_at_ms: u64,
    pub checkpoint_ms: Option<u64>,
}

/// How a request finished (kept in its tombstone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// Released by its holder.
    Released,
    /// Cancelled while queued, or released before it was ever seen.
    Cancelled,
    /// Its lease (held or queued) expired.
    Expired,
    /// Its hold was released by an admin's ForceRelease, not by its holder.
    ForceReleased,
}

/// What an Acquire decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcquireOutcome {
    Granted(Lease),
    /// Try-lock refused: the current holders and how many wait.
    Busy {
        holders: Vec<Lease>,
        queue_length: u64,
    },
    /// Waiting; 1-based position.
    Queued {
        position: u64,
    },
}

/// A business refusal. These are responses, never storage errors: the entry is applied and
/// nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("lock {name:?} has limit {lock_limit}, request asked for {requested}")]
    LimitMismatch { name: String, lock_limit: u32, requested: u32 },
    #[error("request_id {request_id:?} already finished ({finish:?})")]
    RequestFinished { request_id: String, finish: Finish },
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("token {token} is not a current hold of lock {name:?}")]
    FencedOut { name: String, token: u64 },
}

/// The result of one command, in the same position as the command in its batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Acquire(AcquireOutcome),
    Release {
        was_held: bool,
        was_queued: bool,
    },
    Expire {
        expired: bool,
    },
    EndDelay {
        ended: bool,
    },
    Checkpoint,
    ClearCheckpoint {
        found: bool,
    },
    ForgetFinished {
        forgotten: u64,
    },
    KvPut {
        revision: u64,
    },
    KvDelete {
        existed: bool,
    },
    Refused(Refusal),
    /// The holds a ForceRelease released (as they were, in token order) and the waiters it
    /// granted. Both empty when there was nothing to release.
    ForceRelease {
        released: Vec<Lease>,
        granted: Vec<Lease>,
    },
}

/// What changed, for the leader's deadline table and for calls waiting on a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request joined a queue (its lease clock starts) at 1-based `position`.
    Queued { name: String, request_id: String, ttl_ms: u64, owner: String, mode: Mode, position: u64 },
    /// A request was granted, immediately or from the queue.
    Granted { name: String, request_id: String, ttl_ms: u64, token: u64, owner: String, mode: Mode },
    /// A held or queued request left: released (by its holder or forced by an admin),
    /// cancelled or expired. `token` is the hold's token, 0 if the request was queued.
    Finished { name: String, request_id: String, how: Finish, token: u64 },
    /// A lease expired with a lock-delay: no grants on `name` until `EndDelay`.
    Delayed { name: String, delay_ms: u64 },
    /// The lock-delay of `name` ended.
    DelayEnded { name: String },
}

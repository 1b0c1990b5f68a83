//! What the recording clients saw, and what the cluster committed.
//!
//! Every time is a [`Duration`] since the run started, on the harness's monotonic clock; all
//! recording clients live in the harness process, so their times are comparable.

use std::time::Duration;

/// Time since the run started.
pub type At = Duration;

/// How an acquire ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireResult {
    /// The lock was granted with this fencing token.
    Granted { token: u64 },
    /// A try-lock (wait 0) found the lock held.
    Busy,
    /// A definite failure (e.g. `TIMEOUT` after the client cancelled its wait): no hold remains.
    Failed { code: String },
    /// The client cannot know whether it was granted (e.g. `UNAVAILABLE`).
    Unknown,
}

/// How a release ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseResult {
    /// Acknowledged; `was_held` says whether the request held the lock at that point.
    Done {
        was_held: bool,
    },
    Failed {
        code: String,
    },
    Unknown,
}

/// How a fenced KV put ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutResult {
    /// Accepted at this KV revision (the put's place in the log).
    Accepted {
        revision: u64,
    },
    /// Refused with `FENCED_OUT`: the token was not a current hold.
    FencedOut,
    Failed {
        code: String,
    },
    Unknown,
}

/// One client operation. `ret` is `None` when the outcome is unknown: like etcd's robustness
/// checker, such an operation may take effect at any time after `call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Acquire {
        client: u32,
        lock: String,
        request_id: String,
        call: At,
        ret: Option<At>,
        result: AcquireResult,
    },
    Release {
        client: u32,
        lock: String,
        request_id: String,
        call: At,
        ret: Option<At>,
        result: ReleaseResult,
    },
    /// A KV put of `key` with `if_fence {lock, token}`.
    FencedPut {
        client: u32,
        lock: String,
        key: String,
        token: u64,
        call: At,
        ret: Option<At>,
        result: PutResult,
    },
}

/// Why a hold ended, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldEnd {
    /// The client called release at `until`.
    Released,
    /// The client's lease bound ran out, or the leader said the lease was gone.
    Lost,
    /// Still held when the run stopped recording.
    RunEnded,
}

/// The span in which a client believed it held an EXCLUSIVE lock: from the acquire's return to
/// the earlier of its release call and the end of its lease bound (the client core's
/// `valid_until`, not the moment the lost signal was noticed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub client: u32,
    pub lock: String,
    pub request_id: String,
    pub token: u64,
    pub from: At,
    pub until: At,
    pub end: HoldEnd,
}

/// Kind of a committed lock event (the `Locks.Watch` kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Queued,
    Granted,
    Released,
    Expired,
    Cancelled,
}

/// One committed lock event, as a node's `Locks.Watch` reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Log index of the entry that produced it.
    pub index: u64,
    /// Position among the events of that entry.
    pub seq: u32,
    pub kind: EventKind,
    pub lock: String,
    pub request_id: String,
    /// The hold's token for GRANTED, and for RELEASED/EXPIRED of a hold; 0 when the request
    /// was only queued.
    pub token: u64,
}

/// Everything one run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub holds: Vec<Hold>,
    /// Each node's committed events.
    pub events: Vec<NodeEvents>,
}

/// The committed events one node reported for log indexes `from..=to` (its watch history
/// begins at `from`; entries without lock events leave gaps in `index`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeEvents {
    pub node: u64,
    pub from: u64,
    pub to: u64,
    pub events: Vec<Event>,
}

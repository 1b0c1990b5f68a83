//! The values calls return: leases, lock descriptions, cluster status. Plain data converted from
//! the wire types, with times as `SystemTime` and durations as `Duration`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenure_proto::v1 as pb;

/// How a lock is held.
///
/// ```
/// assert_eq!(tenure::Mode::default(), tenure::Mode::Exclusive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Excludes everyone else (a mutex, or the writer side of a read-write lock).
    #[default]
    Exclusive,
    /// Coexists with other SHARED holders, up to the lock's limit (readers, or a semaphore).
    Shared,
}

impl Mode {
    pub(crate) fn from_pb(mode: i32) -> Mode {
        if mode == pb::LockMode::Shared as i32 {
            Mode::Shared
        } else {
            Mode::Exclusive
        }
    }

    pub(crate) fn to_pb(self) -> i32 {
        match self {
            Mode::Exclusive => pb::LockMode::Exclusive as i32,
            Mode::Shared => pb::LockMode::Shared as i32,
        }
    }

    /// `"EXCLUSIVE"` or `"SHARED"`.
    ///
    /// ```
    /// assert_eq!(tenure::Mode::Shared.as_str(), "SHARED");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "EXCLUSIVE",
            Mode::Shared => "SHARED",
        }
    }
}

/// How a read is served.
///
/// ```
/// assert_eq!(tenure::Consistency::default(), tenure::Consistency::Linearizable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// The leader confirms it still leads, then answers with every earlier committed write.
    #[default]
    Linearizable,
    /// Any node answers from its own applied state, which may be slightly behind.
    Stale,
}

impl Consistency {
    pub(crate) fn to_pb(self) -> i32 {
        match self {
            Consistency::Linearizable => pb::Consistency::Linearizable as i32,
            Consistency::Stale => pb::Consistency::Stale as i32,
        }
    }
}

pub(crate) fn unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// One hold of a lock, as the server recorded it.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// for holder in c.describe("job").await?.holders {
///     println!("{} holds with token {}", holder.owner, holder.token);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lock's name.
    pub name: String,
    /// The id the holder's client chose for this acquire.
    pub request_id: String,
    /// Free text naming the holder, e.g. `worker-42@host`.
    pub owner: String,
    /// Exclusive or shared.
    pub mode: Mode,
    /// The fencing token: unique and strictly increasing across every grant of the cluster.
    pub token: u64,
    /// The lease's time to live, fixed at acquire.
    pub ttl: Duration,
    /// When the lock was granted (the leader's wall clock).
    pub granted_at: SystemTime,
    /// When the lease would expire without renewal, as of the last time the server logged it
    /// (the leader's wall clock; informational — the leader's monotonic clock decides).
    pub expires_at: SystemTime,
}

impl LeaseInfo {
    pub(crate) fn from_pb(l: pb::Lease) -> LeaseInfo {
        LeaseInfo {
            name: l.name,
            request_id: l.request_id,
            owner: l.owner,
            mode: Mode::from_pb(l.mode),
            token: l.token,
            ttl: Duration::from_millis(l.ttl_ms),
            granted_at: unix_ms(l.granted_at_ms),
            expires_at: unix_ms(l.expires_at_ms),
        }
    }
}

/// A request waiting in a lock's queue.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// for w in c.describe("job").await?.waiters {
///     println!("#{} {}", w.position, w.owner);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    /// The id the waiter's client chose for this acquire.
    pub request_id: String,
    /// Free text naming the waiter.
    pub owner: String,
    /// The mode it asked for.
    pub mode: Mode,
    /// 1-based place in the queue.
    pub position: u64,
    /// Its lease's time to live.
    pub ttl: Duration,
    /// When it joined the queue (the leader's wall clock).
    pub enqueued_at: SystemTime,
}

/// Holders, waiters and settings of one lock.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let d = c.describe("job").await?;
/// if !d.exists {
///     println!("nobody holds or waits for job");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockDescription {
    /// False when the lock has no holder, no waiter and no lock-delay in force.
    pub exists: bool,
    /// Current holders (one unless the lock is SHARED).
    pub holders: Vec<LeaseInfo>,
    /// Waiters, first in line first.
    pub waiters: Vec<WaiterInfo>,
    /// The SHARED limit (0 = unlimited).
    pub limit: u32,
    /// When a lock-delay is in force: the leader wall-clock time it ends.
    pub delayed_until: Option<SystemTime>,
}

impl LockDescription {
    pub(crate) fn from_pb(d: pb::DescribeResponse) -> LockDescription {
        LockDescription {
            exists: d.exists,
            holders: d.holders.into_iter().map(LeaseInfo::from_pb).collect(),
            waiters: d
                .waiters
                .into_iter()
                .map(|w| WaiterInfo {
                    request_id: w.request_id,
                    owner: w.owner,
                    mode: Mode::from_pb(w.mode),
                    position: w.position,
                    ttl: Duration::from_millis(w.ttl_ms),
                    enqueued_at: unix_ms(w.enqueued_at_ms),
                })
                .collect(),
            limit: d.limit,
            delayed_until: (d.delayed_until_ms > 0).then(|| unix_ms(d.delayed_until_ms)),
        }
    }
}

/// One line of [`Client::list`](crate::Client::list).
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// for l in c.list("jobs/").await? {
///     println!("{}: {} holders, {} waiting", l.name, l.holders, l.waiters);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSummary {
    /// The lock's name.
    pub name: String,
    /// How many hold it.
    pub holders: u32,
    /// How many wait for it.
    pub waiters: u32,
    /// The mode of its holders (meaningless when `holders` is 0).
    pub mode: Mode,
    /// The SHARED limit (0 = unlimited).
    pub limit: u32,
}

/// The answer of [`Client::validate_fence`](crate::Client::validate_fence).
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// if !c.validate_fence("job", 42).await?.current {
///     println!("token 42 no longer holds job");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceStatus {
    /// Whether the token is a current hold of the lock.
    pub current: bool,
    /// The tokens of the lock's current holders.
    pub current_tokens: Vec<u64>,
}

/// A fence condition on a KV write: it applies only if `token` is a current hold of lock `name`
/// at the write's place in the log; otherwise the write fails with `FENCED_OUT`.
///
/// ```no_run
/// # async fn f(c: tenure::Client, g: tenure::LockGuard) -> Result<(), tenure::Error> {
/// c.kv().put("job/result", "done", Some(g.fence())).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The lock's name.
    pub name: String,
    /// A fencing token of that lock.
    pub token: u64,
}

impl Fence {
    /// A fence on `token` of lock `name`.
    ///
    /// ```
    /// let f = tenure::Fence::new("job", 7);
    /// assert_eq!((f.name.as_str(), f.token), ("job", 7));
    /// ```
    pub fn new(name: impl Into<String>, token: u64) -> Fence {
        Fence { name: name.into(), token }
    }

    pub(crate) fn to_pb(&self) -> pb::Fence {
        pb::Fence { name: self.name.clone(), token: self.token }
    }
}

/// One key of the KV store.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// if let Some(e) = c.kv().get("config/owner").await? {
///     println!("{} (revision {})", String::from_utf8_lossy(&e.value), e.revision);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The log index of the key's last write.
    pub revision: u64,
}

/// A node's role in the Raft group.
///
/// ```
/// assert_eq!(tenure::Role::Leader.as_str(), "leader");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes and linearizable reads.
    Leader,
    /// Replicates the leader's log and votes.
    Follower,
    /// Replicates the log without voting (joining or catching up).
    Learner,
    /// Asking for votes.
    Candidate,
    /// The node did not say.
    Unknown,
}

impl Role {
    fn from_pb(role: i32) -> Role {
        match pb::MemberRole::try_from(role) {
            Ok(pb::MemberRole::Leader) => Role::Leader,
            Ok(pb::MemberRole::Follower) => Role::Follower,
            Ok(pb::MemberRole::Learner) => Role::Learner,
            Ok(pb::MemberRole::Candidate) => Role::Candidate,
            _ => Role::Unknown,
        }
    }

    /// `"leader"`, `"follower"`, `"learner"`, `"candidate"` or `"unknown"`.
    ///
    /// ```
    /// assert_eq!(tenure::Role::Follower.as_str(), "follower");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
            Role::Candidate => "candidate",
            Role::Unknown => "unknown",
        }
    }
}

/// A member of the cluster.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// for m in c.cluster_status().await?.members {
///     println!("node {} at {} is {}", m.id, m.grpc_addr, m.role.as_str());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Its gRPC address (clients and peers).
    pub grpc_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
    /// Its role, as the answering node sees it.
    pub role: Role,
    /// Highest log index known replicated to it (leader's view only; else 0).
    pub matched_index: u64,
}

impl Member {
    pub(crate) fn from_pb(m: pb::Member) -> Member {
        Member {
            id: m.id,
            grpc_addr: m.grpc_addr,
            http_addr: m.http_addr,
            role: Role::from_pb(m.role),
            matched_index: m.matched_index,
        }
    }
}

/// One node's view of the cluster.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let s = c.cluster_status().await?;
/// println!("leader {:?}, term {}, {} members", s.leader_id, s.term, s.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: u64,
    /// Its role.
    pub role: Role,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// The leader's gRPC address (empty when none is known).
    pub leader_addr: String,
    /// Current Raft term.
    pub term: u64,
    /// Voters and learners.
    pub members: Vec<Member>,
    /// Highest committed log index this node knows.
    pub commit_index: u64,
    /// Highest log index applied to its state.
    pub applied_index: u64,
    /// Its last log index.
    pub last_log_index: u64,
    /// Votes needed for a quorum.
    pub quorum_size: u32,
    /// Leader: a quorum answered recently. Follower: it hears from a leader.
    pub has_quorum: bool,
    /// The cluster's random id.
    pub cluster_id: String,
    /// Index of its latest snapshot (0 = none).
    pub snapshot_index: u64,
    /// Index of its last purged log entry.
    pub purged_index: u64,
}

impl ClusterStatus {
    pub(crate) fn from_pb(s: pb::StatusResponse) -> ClusterStatus {
        ClusterStatus {
            node_id: s.node_id,
            role: Role::from_pb(s.role),
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
            leader_addr: s.leader_addr,
            term: s.term,
            members: s.members.into_iter().map(Member::from_pb).collect(),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            last_log_index: s.last_log_index,
            quorum_size: s.quorum_size,
            has_quorum: s.has_quorum,
            cluster_id: s.cluster_id,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
        }
    }
}

//! Admin operations: [`Client::force_release`], [`Client::add_member`],
//! [`Client::remove_member`].
//!
//! On a cluster started with `--auth-config`, these need a token with the `admin` right on the
//! lock's name; the client sends the token given to [`crate::ClientBuilder::bearer_token`].

use std::time::Duration;

use tenure_proto::v1 as pb;
use tenure_proto::v1::cluster_client::ClusterClient;
use tenure_proto::v1::force_release_request::Target;
use tenure_proto::v1::locks_client::LocksClient;

use crate::client::Client;
use crate::conn::Route;
use crate::types::{Consistency, LeaseInfo, Member};
use crate::Error;

/// How long [`Client::add_member`] lets the new node catch up before it is promoted; the call's
/// deadline is the client's timeout plus this.
pub const ADD_MEMBER_CATCH_UP: Duration = Duration::from_secs(60);

/// What [`Client::add_member`] or [`Client::remove_member`] did.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let r = c.remove_member(5, false).await?;
/// println!("changed: {}, now {} members", r.changed, r.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembershipChange {
    /// The membership after the call, voters and learners, as the leader sees it.
    pub members: Vec<Member>,
    /// False when nothing had to change (already a voter at that address; not a member).
    pub changed: bool,
}

/// Which holds [`Client::force_release`] releases.
///
/// ```
/// let one = tenure::ForceReleaseTarget::Request("01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B".into());
/// let every = tenure::ForceReleaseTarget::All;
/// # let _ = (one, every);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceReleaseTarget {
    /// The hold of this request id (it must be held, not queued).
    Request(String),
    /// Every current holder of the lock. Waiters stay queued and are granted in order.
    All,
}

/// When the waiters of a force-released lock get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handover {
    /// After the longest TTL (or lock-delay, if longer) of the released holds, as after an
    /// expiry: by then each old holder's client has found its lease lost, at a renewal or by
    /// its own clock, so nobody else holds the lock while an old holder may still think it does.
    #[default]
    AfterTtl,
    /// At once, in the same log entry. An old holder may still believe it holds the lock until
    /// its next renewal (up to a third of its TTL, longer if its renewals stall); only fencing
    /// tokens then protect the resource.
    Immediate,
}

/// What [`Client::force_release`] did.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let r = c.force_release("job", tenure::ForceReleaseTarget::All, tenure::Handover::AfterTtl).await?;
/// for l in &r.released {
///     println!("released {} (token {})", l.request_id, l.token);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForceReleased {
    /// The holds released, as they were (empty: there was nothing to release).
    pub released: Vec<LeaseInfo>,
    /// The waiters granted in their place, with higher fencing tokens: with
    /// [`Handover::Immediate`] only; empty when nobody waited or a lock-delay runs. With
    /// [`Handover::AfterTtl`] they are granted when the delay ends.
    pub granted: Vec<LeaseInfo>,
    /// The Raft log index that applied it; 0 when no call was needed (`All` on a free lock).
    pub log_index: u64,
}

impl ForceReleased {
    /// Whether any hold was released.
    ///
    /// ```
    /// assert!(!tenure::ForceReleased::default().was_held());
    /// ```
    pub fn was_held(&self) -> bool {
        !self.released.is_empty()
    }
}

impl Client {
    /// Admin: releases a hold of lock `name` on its holder's behalf, or every holder's with
    /// [`ForceReleaseTarget::All`]. The old holder's client finds its lease gone at its next
    /// renewal and reports it lost; the next waiters are granted when `handover` says.
    ///
    /// Idempotent: releasing what is already gone answers with nothing released. A request
    /// id that is queued rather than held fails with [`Error::InvalidArgument`]. With `All`,
    /// the client first reads the holders (linearizably) and releases only holds up to the
    /// highest token it saw, so a retry inside the call cannot release a hold that the first
    /// attempt granted; a hold granted after that read is left alone.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// use tenure::ForceReleaseTarget;
    /// use tenure::Handover;
    /// let id = ForceReleaseTarget::Request("01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B".into());
    /// let r = c.force_release("job", id, Handover::Immediate).await?;
    /// if let Some(next) = r.granted.first() {
    ///     println!("now held by {} with token {}", next.owner, next.token);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn force_release(
        &self,
        name: &str,
        target: ForceReleaseTarget,
        handover: Handover,
    ) -> Result<ForceReleased, Error> {
        let (target, max_token) = match target {
            ForceReleaseTarget::Request(id) => (Target::RequestId(id), 0),
            ForceReleaseTarget::All => {
                let holders = self.describe_with(name, Consistency::Linearizable).await?.holders;
                match holders.iter().map(|l| l.token).max() {
                    Some(max) => (Target::All(true), max),
                    None => return Ok(ForceReleased::default()),
                }
            }
        };
        let immediate = handover == Handover::Immediate;
        let req = pb::ForceReleaseRequest { name: name.to_string(), target: Some(target), max_token, immediate };
        let conn = &self.inner.conn;
        let r = conn
            .call("force_release", Route::Leader, self.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { LocksClient::new(ch).force_release(r).await }
            })
            .await?
            .into_inner();
        Ok(ForceReleased {
            released: r.released.into_iter().map(LeaseInfo::from_pb).collect(),
            granted: r.granted.into_iter().map(LeaseInfo::from_pb).collect(),
            log_index: r.log_index,
        })
    }

    /// Admin: adds node `id`, serving gRPC at `grpc_addr` (and HTTP at `http_addr`, or `""` to
    /// let the leader ask the node), to the cluster: as a learner first, then, once it has
    /// caught up (within [`ADD_MEMBER_CATCH_UP`]), as a voter. The node must be running with
    /// `--initial-cluster-state existing` on an empty data directory.
    ///
    /// Idempotent: adding a voter again at the same address changes nothing; a node left a
    /// learner by a call that timed out is caught up and promoted. An id that is a member at
    /// another address fails with [`Error::InvalidArgument`] (remove it first).
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let r = c.add_member(4, "10.0.0.4:7070", "10.0.0.4:7080").await?;
    /// assert!(r.members.iter().any(|m| m.id == 4));
    /// # Ok(()) }
    /// ```
    pub async fn add_member(&self, id: u64, grpc_addr: &str, http_addr: &str) -> Result<MembershipChange, Error> {
        let req = pb::AddMemberRequest {
            node_id: id,
            grpc_addr: grpc_addr.to_string(),
            http_addr: http_addr.to_string(),
            catch_up_timeout_ms: ADD_MEMBER_CATCH_UP.as_millis() as u64,
        };
        let conn = &self.inner.conn;
        let r = conn
            .call("add_member", Route::Leader, self.inner.timeout + ADD_MEMBER_CATCH_UP, |ch| {
                let r = conn.request(req.clone());
                async move { ClusterClient::new(ch).add_member(r).await }
            })
            .await?
            .into_inner();
        Ok(MembershipChange { members: r.members.into_iter().map(Member::from_pb).collect(), changed: r.changed })
    }

    /// Admin: removes node `id` (voter or learner) from the cluster. Unless `force`, fails with
    /// [`Error::QuorumAtRisk`] when the voters left would not include a quorum of members that
    /// answer the leader now, or when none would be left. Removing a node that is not a member
    /// changes nothing. The leader may remove itself; it steps down once the change commits.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// match c.remove_member(3, false).await {
    ///     Err(tenure::Error::QuorumAtRisk(why)) => eprintln!("refused: {why}"),
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn remove_member(&self, id: u64, force: bool) -> Result<MembershipChange, Error> {
        let req = pb::RemoveMemberRequest { node_id: id, force };
        let conn = &self.inner.conn;
        let r = conn
            .call("remove_member", Route::Leader, self.inner.timeout, |ch| {
                let r = conn.request(req);
                async move { ClusterClient::new(ch).remove_member(r).await }
            })
            .await?
            .into_inner();
        Ok(MembershipChange { members: r.members.into_iter().map(Member::from_pb).collect(), changed: r.changed })
    }
}

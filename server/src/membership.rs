//! Runtime membership changes on the leader: add a node (learner, catch up, promote to voter),
//! remove one (refused when the remaining voters would not include a quorum of live members).
//! One change at a time: the leader's other membership writers (recording HTTP addresses) wait
//! for the change in progress, so they never touch a node that is being added or removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use tokio::sync::{Mutex, MutexGuard};

use crate::propose::RaftCallError;
use crate::raft::identity::Identity;
use crate::raft::network::Network;
use crate::raft::state_machine::SharedState;
use crate::raft::{NodeId, Raft, TenureNode};

/// How long a new node may take to catch up when the request does not say.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);
/// The longest catch-up a request may ask for.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(600);
/// How long the leader waits for a member's answer when it checks which members are live.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a membership change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    QuorumAtRisk(String),
    /// The node was added as a learner but did not catch up in time.
    #[error("{0}")]
    NotCaughtUp(String),
    /// Raft refused or could not commit the change (not leader, no quorum, stopping).
    #[error(transparent)]
    Raft(#[from] RaftCallError),
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, TenureNode>>;

fn raft_error(e: WriteError) -> ChangeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ChangeError::Raft(RaftCallError::NotLeader { leader: f.leader_id.zip(f.leader_node) })
        }
        // Another change is still being committed: NO_LEADER, so clients retry.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e))) => {
            ChangeError::Raft(RaftCallError::NoQuorum(format!("another membership change is in progress: {e}")))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ChangeError::Invalid { field: "node_id", message: e.to_string() }
        }
        RaftError::Fatal(f) => ChangeError::Raft(RaftCallError::Stopped(f.to_string())),
    }
}

/// The outcome of a change: whether the membership changed.
pub struct Changed(pub bool);

/// The leader's membership changes, and the lock every membership writer takes.
#[derive(Clone)]
pub struct MembershipChanges {
    node_id: NodeId,
    raft: Raft,
    network: Network,
    identity: Identity,
    /// Node-local dial overrides (test proxies), as for Raft messages.
    dial: Arc<BTreeMap<NodeId, String>>,
    lock: Arc<Mutex<()>>,
}

impl MembershipChanges {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        network: Network,
        identity: Identity,
        dial: BTreeMap<NodeId, String>,
    ) -> Self {
        Self { node_id, raft, network, identity, dial: Arc::new(dial), lock: Arc::new(Mutex::new(())) }
    }

    /// The lock of membership writers, if no change is in progress.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, ()>> {
        self.lock.try_lock().ok()
    }

    fn membership(&self) -> openraft::Membership<NodeId, TenureNode> {
        self.raft.metrics().borrow().membership_config.membership().clone()
    }

    /// Adds `id` at `node` as a learner, waits up to `catch_up` for it to catch up, then makes
    /// it a voter. Idempotent (see the proto's AddMember).
    pub async fn add(&self, id: NodeId, node: TenureNode, catch_up: Duration) -> Result<Changed, ChangeError> {
        let guard = self.lock.clone().lock_owned().await;
        let this = self.clone();
        detached(async move {
            let _guard = guard;
            this.add_locked(id, node, catch_up).await
        })
        .await
    }

    async fn add_locked(&self, id: NodeId, node: TenureNode, catch_up: Duration) -> Result<Changed, ChangeError> {
        let membership = self.membership();
        let is_voter = membership.voter_ids().any(|v| v == id);
        let log_index = match membership.get_node(&id) {
            Some(existing) if existing.grpc_addr != node.grpc_addr => {
                return Err(ChangeError::Invalid {
                    field: "grpc_addr",
                    message: format!(
                        "node {id} is already a member at {}; remove it first to add it at {}",
                        existing.grpc_addr, node.grpc_addr
                    ),
                });
            }
            Some(_) if is_voter => return Ok(Changed(false)),
            // A learner left by an earlier call that timed out: resume.
            Some(_) => self.raft.metrics().borrow().membership_config.log_id().map_or(0, |l| l.index),
            None => {
                // A removed node comes back with a new data directory: do not expect the old
                // one (every node forgets it once the removal is applied; this covers a leader
                // that has not got to it yet).
                if let Err(e) = self.identity.forget_peer(id) {
                    tracing::warn!(node = id, error = %e, "cannot forget the node's old data directory");
                }
                tracing::info!(node = id, addr = %node.grpc_addr, "adding a learner");
                let r = self.raft.add_learner(id, node, false).await.map_err(raft_error)?;
                r.log_id.index
            }
        };
        let deadline = Instant::now() + catch_up;
        let wait = self
            .raft
            .wait(Some(catch_up))
            .metrics(
                |m| {
                    let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten());
                    matched.is_some_and(|l| l.index >= log_index)
                },
                "the new learner to catch up",
            )
            .await;
        if wait.is_err() {
            let state = if Instant::now() >= deadline { "did not catch up" } else { "lost track of the learner" };
            return Err(ChangeError::NotCaughtUp(format!(
                "node {id} {state} within {catch_up:?} (it stays a learner; check that it runs with --initial-cluster-state existing and is reachable, then repeat AddMember, or remove it)"
            )));
        }
        tracing::info!(node = id, "the learner caught up; promoting it to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(raft_error)?;
        tracing::info!(node = id, "member change: added a voter");
        Ok(Changed(true))
    }

    /// Removes `id` (voter or learner). Unless `force`, refuses when the remaining voters would
    /// be empty or would not include a quorum of live members.
    pub async fn remove(&self, id: NodeId, force: bool) -> Result<Changed, ChangeError> {
        let guard = self.lock.clone().lock_owned().await;
        let this = self.clone();
        detached(async move {
            let _guard = guard;
            this.remove_locked(id, force).await
        })
        .await
    }

    async fn remove_locked(&self, id: NodeId, force: bool) -> Result<Changed, ChangeError> {
        let membership = self.membership();
        if membership.get_node(&id).is_none() {
            return Ok(Changed(false));
        }
        let remaining: Vec<NodeId> = membership.voter_ids().filter(|v| *v != id).collect();
        let is_voter = membership.voter_ids().any(|v| v == id);
        if is_voter && !force {
            if remaining.is_empty() {
                return Err(ChangeError::QuorumAtRisk(format!(
                    "removing node {id} would leave no voter; pass force to remove it anyway"
                )));
            }
            let voters: Vec<NodeId> = membership.voter_ids().collect();
            let mut live = Vec::new();
            for &v in &voters {
                if v == self.node_id || self.answers(v, membership.get_node(&v)).await {
                    live.push(v);
                }
            }
            // The change commits through both configurations (joint consensus): the voters
            // now must have a live quorum too, or the change would wait for members to return.
            for (which, set) in [("the voters now", &voters), ("the voters left", &remaining)] {
                let quorum = set.len() / 2 + 1;
                let alive: Vec<NodeId> = set.iter().copied().filter(|v| live.contains(v)).collect();
                if alive.len() < quorum {
                    return Err(ChangeError::QuorumAtRisk(format!(
                        "cannot remove node {id}: of {which} {set:?}, only {alive:?} answer the leader now, {} of the {quorum} a quorum needs; bring members back first, or pass force to propose it anyway (it commits once enough of them are back)",
                        alive.len()
                    )));
                }
            }
        }
        tracing::info!(node = id, force, "removing a member");
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        // retain = false: a removed voter leaves the membership, not just the voters.
        self.raft.change_membership(change, false).await.map_err(raft_error)?;
        tracing::info!(node = id, "member change: removed");
        Ok(Changed(true))
    }

    /// Whether member `id` answers a probe now, as itself.
    async fn answers(&self, id: NodeId, node: Option<&TenureNode>) -> bool {
        let Some(node) = node else { return false };
        let addr = self.dial.get(&id).unwrap_or(&node.grpc_addr);
        let probe = crate::node::probe(&self.network, addr, &self.identity);
        matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Some(r)) if r.node_id == id)
    }
}

/// Runs a change on a task of its own, so it finishes even if the caller goes away: openraft
/// 0.9's `change_membership` proposes the joint configuration and then, from the same future,
/// the final one; dropping it in between (a client that timed out) would leave the cluster in
/// the joint configuration.
async fn detached(
    change: impl std::future::Future<Output = Result<Changed, ChangeError>> + Send + 'static,
) -> Result<Changed, ChangeError> {
    tokio::spawn(change)
        .await
        .unwrap_or_else(|e| Err(ChangeError::Raft(RaftCallError::Stopped(format!("membership change failed: {e}")))))
}

/// On every node: keeps [`Identity`]'s remembered incarnations to the applied membership, so a
/// removed node can come back as a new member with a new data directory.
pub async fn forget_removed_members(raft: Raft, state: Arc<SharedState>, identity: Identity) {
    let mut metrics = raft.metrics();
    let mut last: Option<BTreeSet<NodeId>> = None;
    loop {
        let members: BTreeSet<NodeId> = state.read().membership.membership().nodes().map(|(id, _)| *id).collect();
        if !members.is_empty() && last.as_ref() != Some(&members) {
            match identity.retain_members(members.clone()) {
                Ok(()) => last = Some(members),
                Err(e) => tracing::warn!(error = %e, "cannot forget removed members"),
            }
        }
        if metrics.changed().await.is_err() || metrics.borrow().running_state.is_err() {
            return;
        }
    }
}

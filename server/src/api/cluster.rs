//! `tenure.v1.Cluster`.

use std::sync::Arc;
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use tenure_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::auth::Right;
use super::error::ApiError;
use super::Api;
use crate::membership::{ChangeError, DEFAULT_CATCH_UP, MAX_CATCH_UP};
use crate::raft::{NodeId, TenureNode};

pub struct ClusterService {
    api: Arc<Api>,
}

impl ClusterService {
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// The membership as this node sees it, with roles and (on the leader) replication progress.
    fn members(&self) -> Vec<pb::Member> {
        members(&self.api.raft.metrics().borrow())
    }
}

fn members(m: &RaftMetrics<NodeId, TenureNode>) -> Vec<pb::Member> {
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| {
            let role = if Some(*id) == m.current_leader {
                pb::MemberRole::Leader
            } else if voters.contains(id) {
                pb::MemberRole::Follower
            } else {
                pb::MemberRole::Learner
            };
            let matched_index =
                m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map_or(0, |l| l.index);
            pb::Member {
                id: *id,
                grpc_addr: node.grpc_addr.clone(),
                http_addr: node.http_addr.clone(),
                role: role as i32,
                matched_index,
            }
        })
        .collect()
}

/// Checks a `host:port` address field (empty allowed only where `optional`).
fn check_addr(field: &str, addr: &str, optional: bool) -> Result<(), ApiError> {
    if addr.is_empty() {
        return if optional {
            Ok(())
        } else {
            Err(ApiError::invalid(field, format!("{field} is required (host:port)")))
        };
    }
    let ok = addr.len() <= 256
        && !addr.contains("://")
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be host:port (at most 256 bytes, port 1-65535), got {addr:?}"),
        ))
    }
}

fn check_node_id(id: NodeId) -> Result<(), ApiError> {
    if id == 0 {
        return Err(ApiError::invalid("node_id", "node_id must not be 0"));
    }
    Ok(())
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid { field, message } => ApiError::invalid(field, message),
            ChangeError::QuorumAtRisk(m) => ApiError::QuorumAtRisk(m),
            ChangeError::NotCaughtUp(m) => ApiError::NoLeader(m),
            ChangeError::Raft(e) => e.into(),
        }
    }
}

fn role(state: ServerState) -> pb::MemberRole {
    match state {
        ServerState::Leader => pb::MemberRole::Leader,
        ServerState::Follower => pb::MemberRole::Follower,
        ServerState::Learner => pb::MemberRole::Learner,
        ServerState::Candidate => pb::MemberRole::Candidate,
        ServerState::Shutdown => pb::MemberRole::Unspecified,
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        // Names no lock: any `read` grant will do.
        self.api.access.caller(request.metadata())?.may_any(Right::Read)?;
        let m = self.api.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let leader_id = m.current_leader.unwrap_or(0);
        let leader_addr =
            m.current_leader.and_then(|id| membership.get_node(&id)).map(|n| n.grpc_addr.clone()).unwrap_or_default();
        let members = members(&m);
        let has_quorum = match m.state {
            ServerState::Leader => m.millis_since_quorum_ack.is_some_and(|ms| ms < self.api.election_timeout_ms),
            _ => m.current_leader.is_some(),
        };
        let commit_index = {
            let s = self.api.state.read();
            s.last_applied.map_or(0, |l| l.index)
        };
        Ok(Response::new(pb::StatusResponse {
            node_id: self.api.node_id,
            leader_id,
            leader_addr,
            term: m.current_term,
            members,
            commit_index,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            quorum_size: (voters.len() / 2 + 1) as u32,
            has_quorum,
            role: role(m.state) as i32,
            cluster_id: (self.api.cluster_id)(),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        self.api.access.caller(request.metadata())?.may_all(Right::Admin)?;
        let r = request.into_inner();
        check_node_id(r.node_id)?;
        check_addr("grpc_addr", &r.grpc_addr, false)?;
        check_addr("http_addr", &r.http_addr, true)?;
        let catch_up = match r.catch_up_timeout_ms {
            0 => DEFAULT_CATCH_UP,
            ms if Duration::from_millis(ms) > MAX_CATCH_UP => {
                return Err(ApiError::invalid(
                    "catch_up_timeout_ms",
                    format!("catch_up_timeout_ms must be at most {} ms, got {ms}", MAX_CATCH_UP.as_millis()),
                )
                .into())
            }
            ms => Duration::from_millis(ms),
        };
        self.api.require_leader()?;
        let node = TenureNode { grpc_addr: r.grpc_addr, http_addr: r.http_addr };
        let changed = self.api.membership.add(r.node_id, node, catch_up).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::AddMemberResponse { members: self.members(), changed: changed.0 }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        self.api.access.caller(request.metadata())?.may_all(Right::Admin)?;
        let r = request.into_inner();
        check_node_id(r.node_id)?;
        self.api.require_leader()?;
        let changed = self.api.membership.remove(r.node_id, r.force).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveMemberResponse { members: self.members(), changed: changed.0 }))
    }
}

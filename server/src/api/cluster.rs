//! `tenure.v1.Cluster`.

use std::sync::Arc;

use openraft::ServerState;
use tenure_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::auth::Right;
use super::Api;

pub struct ClusterService {
    api: Arc<Api>,
}

impl ClusterService {
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
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
        let members = membership
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
            .collect();
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
}

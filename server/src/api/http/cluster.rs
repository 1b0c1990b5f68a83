//! `GET /v1/cluster`: the Cluster.Status of the node asked.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tenure_proto::v1 as pb;
use tenure_proto::v1::cluster_server::Cluster;

use super::{grpc, Auth, Reply, Shared};

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/cluster", get(status))
}

fn role_text(role: i32) -> &'static str {
    match pb::MemberRole::try_from(role) {
        Ok(pb::MemberRole::Leader) => "LEADER",
        Ok(pb::MemberRole::Follower) => "FOLLOWER",
        Ok(pb::MemberRole::Learner) => "LEARNER",
        Ok(pb::MemberRole::Candidate) => "CANDIDATE",
        _ => "UNSPECIFIED",
    }
}

#[derive(Serialize)]
struct MemberJson {
    id: u64,
    grpc_addr: String,
    http_addr: String,
    role: &'static str,
    matched_index: u64,
}

#[derive(Serialize)]
struct StatusJson {
    node_id: u64,
    cluster_id: String,
    role: &'static str,
    /// 0 when no leader is known.
    leader_id: u64,
    leader_addr: String,
    leader_http_addr: String,
    term: u64,
    members: Vec<MemberJson>,
    commit_index: u64,
    applied_index: u64,
    last_log_index: u64,
    snapshot_index: u64,
    purged_index: u64,
    quorum_size: u32,
    has_quorum: bool,
}

async fn status(State(http): State<Shared>, auth: Auth) -> Reply<StatusJson> {
    let r = grpc(&http.api, http.cluster.status(auth.request(pb::StatusRequest {})).await)?;
    let leader_http_addr = r
        .members
        .iter()
        .find(|m| m.id == r.leader_id && r.leader_id != 0)
        .map(|m| m.http_addr.clone())
        .unwrap_or_default();
    Ok(Json(StatusJson {
        node_id: r.node_id,
        cluster_id: r.cluster_id,
        role: role_text(r.role),
        leader_id: r.leader_id,
        leader_addr: r.leader_addr,
        leader_http_addr,
        term: r.term,
        members: r
            .members
            .into_iter()
            .map(|m| MemberJson {
                id: m.id,
                role: role_text(m.role),
                grpc_addr: m.grpc_addr,
                http_addr: m.http_addr,
                matched_index: m.matched_index,
            })
            .collect(),
        commit_index: r.commit_index,
        applied_index: r.applied_index,
        last_log_index: r.last_log_index,
        snapshot_index: r.snapshot_index,
        purged_index: r.purged_index,
        quorum_size: r.quorum_size,
        has_quorum: r.has_quorum,
    }))
}

//! Incoming Raft RPCs: check identity, decode, hand to openraft, encode the answer.

use serde::Serialize;
use tenure_proto::raft::v1 as pb;
use tonic::{Request, Response, Status};

use super::codec;
use super::identity::Identity;
use super::state_machine::SharedState;
use super::Raft;

pub struct RaftService {
    raft: Raft,
    identity: Identity,
    state: std::sync::Arc<SharedState>,
    me: super::TenureNode,
    /// `--tls-peer-client-auth`: only callers with a client certificate signed by the CA.
    require_client_cert: bool,
}

impl RaftService {
    pub fn new(raft: Raft, identity: Identity, state: std::sync::Arc<SharedState>, me: super::TenureNode) -> Self {
        Self { raft, identity, state, me, require_client_cert: false }
    }

    /// Refuses every call whose connection did not present a client certificate (the TLS
    /// handshake has already verified any that was presented against the CA).
    pub fn require_client_cert(self, require: bool) -> Self {
        Self { require_client_cert: require, ..self }
    }

    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.require_client_cert && request.peer_certs().is_none_or(|c| c.is_empty()) {
            return Err(Status::unauthenticated(
                "this node accepts Raft traffic only from peers with a TLS client certificate signed by the cluster CA (--tls-peer-client-auth)",
            ));
        }
        Ok(())
    }

    fn check(&self, req: &pb::RaftRequest) -> Result<(), Status> {
        self.identity
            .check_incoming(
                &req.cluster_id,
                req.from,
                req.to,
                &req.from_incarnation,
                &req.to_incarnation,
                &req.known_incarnations,
            )
            .map_err(|e| Status::failed_precondition(e.to_string()))
    }

    fn reply<T: Serialize, E: Serialize>(&self, result: Result<T, E>) -> Result<Response<pb::RaftReply>, Status> {
        let incarnation = self.identity.incarnation();
        let reply = match result {
            Ok(v) => pb::RaftReply { ok: encode(&v)?, err: Vec::new(), incarnation },
            Err(e) => pb::RaftReply { ok: Vec::new(), err: encode(&e)?, incarnation },
        };
        Ok(Response::new(reply))
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    codec::encode(v).map_err(|e| Status::internal(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    codec::decode(bytes).map_err(|e| Status::invalid_argument(format!("payload: {e}")))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        self.admit(&request)?;
        let req = request.into_inner();
        self.check(&req)?;
        let result = self.raft.append_entries(decode(&req.payload)?).await;
        self.reply(result)
    }

    async fn vote(&self, request: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        self.admit(&request)?;
        let req = request.into_inner();
        self.check(&req)?;
        let result = self.raft.vote(decode(&req.payload)?).await;
        self.reply(result)
    }

    async fn install_snapshot(&self, request: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        self.admit(&request)?;
        let req = request.into_inner();
        self.check(&req)?;
        let result = self.raft.install_snapshot(decode(&req.payload)?).await;
        self.reply(result)
    }

    async fn probe(&self, request: Request<pb::ProbeRequest>) -> Result<Response<pb::ProbeReply>, Status> {
        self.admit(&request)?;
        let req = request.into_inner();
        // Remember the prober, so a later start on a wiped directory is recognised.
        let known = self.identity.peer_incarnation(req.from);
        if known.is_empty() && req.from != self.identity.node_id() {
            let _ = self.identity.remember_peer(req.from, &req.incarnation);
        }
        // Raft's view includes a membership that is in the log but not applied yet.
        let members = self.raft.metrics().borrow().membership_config.membership().nodes().map(|(id, _)| *id).collect();
        let last = self.state.read().last_applied.map_or(0, |l| l.index);
        Ok(Response::new(pb::ProbeReply {
            node_id: self.identity.node_id(),
            cluster_id: self.identity.cluster_id(),
            members,
            known_incarnation: known,
            last_log_index: last,
            grpc_addr: self.me.grpc_addr.clone(),
            http_addr: self.me.http_addr.clone(),
        }))
    }
}

//! Outgoing Raft RPCs over gRPC. One lazily connected channel per peer address, reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use tenure_proto::raft::v1 as pb;
use tenure_proto::raft::v1::raft_client::RaftClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::codec;
use super::identity::Identity;
use super::{NodeId, TenureNode, TypeConfig};

/// Largest node-to-node message, both ways.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Builds per-peer clients; shares channels between them.
#[derive(Clone)]
pub struct Network {
    identity: Identity,
    /// Node-local dial overrides (e.g. a test proxy in front of a peer), by node id.
    dial_overrides: Arc<HashMap<NodeId, String>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Peers are dialled over https with this (`--tls-ca`, and the node's certificate with
    /// `--tls-peer-client-auth`); plain http without.
    tls: Option<ClientTlsConfig>,
}

impl Network {
    pub fn new(identity: Identity, dial_overrides: HashMap<NodeId, String>) -> Self {
        Self { identity, dial_overrides: Arc::new(dial_overrides), channels: Arc::default(), tls: None }
    }

    /// Dials peers over TLS.
    pub fn with_tls(self, tls: Option<ClientTlsConfig>) -> Self {
        Self { tls, ..self }
    }

    /// The address to dial for `target`: an override, else the membership's gRPC address.
    pub fn dial_addr(&self, target: NodeId, node: &TenureNode) -> String {
        self.dial_overrides.get(&target).cloned().unwrap_or_else(|| node.grpc_addr.clone())
    }

    /// A lazily connected channel to `addr`, shared by every client of that address.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let uri = if addr.contains("://") { addr.to_string() } else { format!("{scheme}://{addr}") };
        let mut endpoint = Endpoint::from_shared(uri)?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &TenureNode) -> PeerClient {
        let addr = self.dial_addr(target, node);
        PeerClient { target, addr: addr.clone(), channel: self.channel(&addr), identity: self.identity.clone() }
    }
}

/// Raft RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    channel: Result<Channel, tonic::transport::Error>,
    identity: Identity,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, TenureNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = match &self.channel {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Msg(format!("{}: {e}", self.addr))))),
        };
        let payload = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(pb::RaftRequest {
            cluster_id: self.identity.cluster_id(),
            from: self.identity.node_id(),
            to: self.target,
            payload,
            from_incarnation: self.identity.incarnation(),
            to_incarnation: self.identity.peer_incarnation(self.target),
            known_incarnations: self.identity.known_incarnations(),
        });
        request.set_timeout(option.hard_ttl());
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let msg = Msg(format!("{} ({}): {}", self.addr, status.code(), status.message()));
                if status.code() == tonic::Code::FailedPrecondition {
                    tracing::warn!(target = self.target, error = %msg, "peer refused a Raft message");
                }
                return Err(rpc_error(status.code(), msg));
            }
        };
        if let Err(e) = self.identity.remember_peer(self.target, &reply.incarnation) {
            tracing::warn!(target = self.target, error = %e, "peer identity changed");
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        if !reply.err.is_empty() {
            let err: E = codec::decode(&reply.err).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            return Err(RPCError::RemoteError(RemoteError::new(self.target, err)));
        }
        codec::decode(&reply.ok).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

/// The openraft error for a failed call. openraft backs off for 500 ms after `Unreachable`,
/// longer than a follower's election timeout, so a slow answer (a peer's disk under load) must
/// not be one: as `Unreachable` it turned one slow append into an election. A timeout is a
/// transient `Network` error, retried at the next heartbeat; a peer that is down or refuses us
/// is `Unreachable`.
fn rpc_error<E: std::error::Error>(code: tonic::Code, msg: Msg) -> RPCError<NodeId, TenureNode, E> {
    match code {
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => RPCError::Network(NetworkError::new(&msg)),
        _ => RPCError::Unreachable(Unreachable::new(&msg)),
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, TenureNode, E>>;

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }

    /// How long replication to an unreachable peer pauses. openraft's default, 500 ms, is longer
    /// than an election timeout: a node restarting after a crash (which starts as a follower, see
    /// `LogStore::read_vote`) timed out and stood for election before the leader tried it again,
    /// unseating a healthy leader (seen in the failover benchmark as an extra election).
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}

/// See [`PeerClient::backoff`]; below the shortest election timeout tenure accepts by default.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_out_call_is_transient_and_a_refused_one_unreachable() {
        let err = |code| rpc_error::<RaftError<NodeId>>(code, Msg("peer".into()));
        // tonic's own request timeout reports Cancelled ("Timeout expired").
        assert!(matches!(err(tonic::Code::Cancelled), RPCError::Network(_)));
        assert!(matches!(err(tonic::Code::DeadlineExceeded), RPCError::Network(_)));
        assert!(matches!(err(tonic::Code::Unavailable), RPCError::Unreachable(_)));
        assert!(matches!(err(tonic::Code::FailedPrecondition), RPCError::Unreachable(_)));
    }
}

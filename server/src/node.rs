//! Wiring: check and open the data directory, start Raft, serve gRPC, bootstrap once, run the
//! leader's duties, shut down cleanly.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use openraft::SnapshotPolicy;
use tenure_proto::raft::v1 as rpb;
use tenure_proto::v1 as pb;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;

use crate::api::cluster::ClusterService;
use crate::api::http::Http;
use crate::api::kv::KvService;
use crate::api::locks::LocksService;
use crate::api::Api;
use crate::config::{ClusterState, Config};
use crate::lease_clock::{run_duties, DutySettings, LeaseClock};
use crate::membership::MembershipChanges;
use crate::propose::{Proposer, ReadRounds};
use crate::raft::identity::Identity;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, MAX_MESSAGE_BYTES};
use crate::raft::node_file::{random_id, NodeFile};
use crate::raft::service::RaftService;
use crate::raft::state_machine::StateMachine;
use crate::raft::storage::Storage;
use crate::raft::{NodeId, Raft, TenureNode};

/// HTTP/2 receive window of each client connection. h2 closes a connection (GOAWAY
/// ENHANCE_YOUR_CALM, "too_many_data_frames") once the small DATA frames it holds unread would
/// cost more than half this window at 256 bytes apiece, and one client legitimately sends
/// thousands of small Acquires at once: each waiter's long poll is a stream of its own. hyper's
/// default (1 MiB) let about 3,700 through before dropping the connection with every waiter and
/// the client's keepalive stream on it; 16 MiB allows about 58,000.
const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Opens `node.toml`, creating it for an empty directory, and checks it belongs to this node.
fn open_node_file(config: &Config) -> anyhow::Result<NodeFile> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    match NodeFile::open(dir)? {
        Some(f) => {
            if f.state().node_id != config.id {
                bail!(
                    "data directory {} belongs to node {}, not node {} (--id); point --data-dir at this node's own directory",
                    dir.display(),
                    f.state().node_id,
                    config.id
                );
            }
            Ok(f)
        }
        None => {
            let non_empty = std::fs::read_dir(dir)?.next().is_some();
            if non_empty {
                bail!(
                    "data directory {} has files but no node.toml: it is damaged or not a tenure data directory; wipe it and re-add this node as a new member",
                    dir.display()
                );
            }
            Ok(NodeFile::create(dir, config.id)?)
        }
    }
}

/// Refuses a Db that sled recovered to an earlier state than this node acknowledged. sled stops
/// its recovery at the first damaged or missing part of its data file and opens what came before
/// without an error; only a torn tail (never acknowledged, as every append is fsynced before it
/// is) may be dropped that way.
fn check_recovered(log: &LogStore, applied: u64, acked: u64, data_file: &Path) -> anyhow::Result<()> {
    let read = |e: crate::raft::StorageError| anyhow!("{}: reading the raft log: {e}", data_file.display());
    let last = log.last_index().map_err(read)?;
    let purged = log.last_purged_index().map_err(read)?;
    if applied < purged {
        bail!(
            "{}: the state machine is at log index {applied}, but the log is purged up to {purged}: the data directory lost data; wipe it and re-add this node as a new member",
            data_file.display()
        );
    }
    if last.max(applied) < acked {
        bail!(
            "{}: the raft log ends at index {last} (state machine at {applied}), but this node acknowledged entries up to {acked} (node.toml): the data file was truncated or damaged and lost acknowledged entries; wipe the data directory and re-add this node as a new member",
            data_file.display()
        );
    }
    Ok(())
}

fn raft_config(config: &Config) -> anyhow::Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: "tenure".into(),
        heartbeat_interval: config.heartbeat.as_millis() as u64,
        election_timeout_min: config.election_min.as_millis() as u64,
        election_timeout_max: config.election_max.as_millis() as u64,
        install_snapshot_timeout: 5_000,
        // An append to a follower must finish within one heartbeat (openraft 0.9 times it out
        // there). openraft's default of 300 entries is up to ~30 MiB of group-committed batches:
        // a follower that fell behind under load then timed out on every catch-up append, for
        // good. 8 entries is at most ~800 KiB; at steady state the leader sends 1 or 2 anyway.
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_interval),
        max_in_snapshot_log_to_keep: config.snapshot_keep_logs,
        replication_lag_threshold: config.snapshot_interval.max(config.snapshot_keep_logs) + 1,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().map_err(|e| anyhow!("raft timings: {e}"))?))
}

/// Most entries in one append to a follower (see [`raft_config`]).
const MAX_PAYLOAD_ENTRIES: u64 = 8;

/// Pause after a failed accept (out of file descriptors or memory) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Runs a node until `shutdown` resolves or Raft stops on a fatal error.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let node_file = open_node_file(&config)?;
    let acked = node_file.state().last_acked_index;
    let stored_before = {
        let s = node_file.state();
        !s.cluster_id.is_empty() || s.vote.is_some() || acked > 0
    };
    let identity = Identity::new(config.id, Arc::new(Mutex::new(node_file)));
    let db_dir = config.data_dir.join("db");
    if stored_before {
        // sled would silently create a missing Db afresh.
        Storage::check_present(&db_dir)?;
    }
    let storage = Storage::open(&db_dir, config.cache_bytes)?;
    let mut log_store = LogStore::open(storage.clone(), identity.file()).context("opening the raft log")?;
    let committed = log_store.committed_index();
    let clock = Arc::new(LeaseClock::new());
    let sm =
        StateMachine::open(storage.clone(), &config.data_dir.join("snapshots"), clock.clone(), config.watch_history)
            .with_context(|| format!("{}: the state machine cannot be loaded", db_dir.display()))?;
    let applied = sm.shared().read().last_applied.map_or(0, |l| l.index);
    check_recovered(&log_store, applied, acked, storage.data_path())?;
    log_store.purge_behind(sm.shared().applied_index(), sm.staged_writes());
    let shared = sm.shared();
    let network = Network::new(identity.clone(), config.peer_dial.clone().into_iter().collect::<HashMap<_, _>>())
        .with_tls(config.tls.as_ref().map(|t| t.grpc_peer_client()));
    let raft = Raft::new(config.id, raft_config(&config)?, network.clone(), log_store, sm)
        .await
        .map_err(|e| anyhow!("raft failed to start: {e}"))?;

    let proposer = Proposer::start(raft.clone(), config.caps);
    let rounds = ReadRounds::start(raft.clone());
    let cluster_identity = identity.clone();
    let changes =
        MembershipChanges::new(config.id, raft.clone(), network.clone(), identity.clone(), config.peer_dial.clone());
    let api = Arc::new(Api {
        node_id: config.id,
        raft: raft.clone(),
        state: shared.clone(),
        proposer: proposer.clone(),
        rounds: rounds.clone(),
        clock: clock.clone(),
        limits: config.limits.clone(),
        cluster_id: Arc::new(move || cluster_identity.cluster_id()),
        election_timeout_ms: config.election_max.as_millis() as u64,
        access: config.access.clone(),
        membership: changes.clone(),
    });
    let me = TenureNode { grpc_addr: config.advertise.clone(), http_addr: config.http.clone() };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let http_listener = tokio::net::TcpListener::bind(&config.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", config.http))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut stop = stop_rx.clone();
        // `tcp_nodelay` of the builder only reaches sockets tonic accepts itself; ours come from
        // our own listener, so set it on each. Without it a small reply (a grant to a long-polling
        // waiter, a Raft append answer) waits for the peer's delayed ACK: ~40 ms per handoff.
        let failing = Arc::new(AtomicBool::new(false));
        let incoming = TcpListenerStream::new(listener).then(move |s| {
            let failing = failing.clone();
            async move {
                let s = match s {
                    Ok(s) => s,
                    Err(e) => {
                        // tonic accepts again at once, and the connection that failed is still in
                        // the backlog: without a pause, running out of file descriptors would spin
                        // this loop on a core. Said once per run of failures.
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "cannot accept connections; retrying every {ACCEPT_BACKOFF:?}");
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        return Err(e);
                    }
                };
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("accepting connections again");
                }
                if let Err(e) = s.set_nodelay(true) {
                    // A socket that cannot change options is still a working connection.
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
                }
                Ok::<_, std::io::Error>(s)
            }
        });
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &config.tls {
            builder = builder.tls_config(tls.grpc_server()).context("TLS setup of the gRPC port")?;
        }
        builder
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .add_service(
                rpb::raft_server::RaftServer::new(
                    RaftService::new(raft.clone(), identity.clone(), shared.clone(), me.clone())
                        .require_client_cert(config.tls.as_ref().is_some_and(|t| t.peer_client_auth)),
                )
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(pb::locks_server::LocksServer::new(LocksService::new(api.clone())))
            .add_service(pb::kv_server::KvServer::new(KvService::new(api.clone())))
            .add_service(pb::cluster_server::ClusterServer::new(ClusterService::new(api.clone())))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
    };
    let server = tokio::spawn(server);
    let http_server = {
        let mut stop = stop_rx.clone();
        let tls = match &config.tls {
            Some(t) => Some(t.http_acceptor().context("TLS setup of the HTTP port")?),
            None => None,
        };
        tokio::spawn(crate::api::http::serve(http_listener, tls, Http::new(api.clone(), committed), async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };
    tracing::info!(node = config.id, listen = %config.listen, advertise = %config.advertise, http = %config.http, data_dir = %config.data_dir.display(), tls = config.tls.is_some(), auth = config.access.enabled(), "tenured serving");

    // Read before bootstrap: a node with a cluster id is already a member (or was one).
    let fresh = identity.cluster_id().is_empty();
    if let Err(e) = bootstrap(&config, &identity, &raft, &network, &me).await {
        let _ = stop_tx.send(true);
        let _ = raft.shutdown().await;
        return Err(e);
    }
    let joining = fresh && !config.join.is_empty();
    let join_refused = async {
        if joining {
            join_cluster(&config).await
        } else {
            std::future::pending().await
        }
    };

    tokio::spawn(crate::metrics::count_elections(raft.clone()));
    tokio::spawn(fill_http_addrs(raft.clone(), network.clone(), identity.clone(), config.peer_dial.clone(), changes));
    tokio::spawn(crate::membership::forget_removed_members(raft.clone(), shared.clone(), identity.clone()));
    tokio::spawn(run_duties(
        clock,
        raft.clone(),
        shared,
        proposer,
        rounds,
        DutySettings { tombstone_ttl: config.tombstone_ttl },
    ));

    let fatal = {
        let mut metrics = raft.metrics();
        async move {
            loop {
                if let Err(e) = &metrics.borrow().running_state {
                    return e.to_string();
                }
                if metrics.changed().await.is_err() {
                    return "raft stopped".to_string();
                }
            }
        }
    };
    let mut replaced = identity.replaced();
    let result = tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        reason = fatal => Err(anyhow!("raft stopped: {reason}; the node stops rather than serve state it may not have")),
        refusal = join_refused => Err(refusal),
        reason = replaced.wait_for(Option::is_some) => {
            let reason = reason.map(|r| r.clone().unwrap_or_default()).unwrap_or_default();
            Err(anyhow!("{reason}. This node's data directory {} was wiped or replaced: it cannot rejoin as if nothing happened (it could vote twice in a term)", config.data_dir.display()))
        }
    };
    let _ = stop_tx.send(true);
    let _ = raft.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), http_server).await;
    result
}

/// `--join`: asks the cluster (through any of `config.join`) to add this node with AddMember,
/// until it answers. Unreachable members, no leader, or a catch-up still running are retried
/// every second; a refusal (bad address, id in use, auth) is final and returned, and the node
/// stops rather than wait for an add that will not come. Returns nothing once joined.
async fn join_cluster(config: &Config) -> anyhow::Error {
    let mut builder = tenure::Client::builder()
        .endpoints(config.join.clone())
        .owner(format!("tenured-{}", config.id))
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &config.tls_ca_file {
        builder = builder.tls_ca_file(ca);
    }
    if let Some(token) = &config.join_token {
        builder = builder.bearer_token(token);
    }
    let mut warned = false;
    loop {
        let added = match builder.clone().connect().await {
            Ok(client) => client.add_member(config.id, &config.advertise, &config.http).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(change) => {
                tracing::info!(node = config.id, changed = change.changed, "joined the cluster (--join)");
                return std::future::pending().await;
            }
            Err(e) if matches!(e.code(), "INVALID_ARGUMENT" | "PERMISSION_DENIED" | "UNAUTHENTICATED") => {
                return anyhow!(
                    "--join: the cluster at {} refused to add node {}: {e}",
                    config.join.join(","),
                    config.id
                );
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "--join: cannot join the cluster yet; retrying every second");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Bootstraps the cluster exactly once (DESIGN §9).
async fn bootstrap(
    config: &Config,
    identity: &Identity,
    raft: &Raft,
    network: &Network,
    me: &TenureNode,
) -> anyhow::Result<()> {
    if !identity.cluster_id().is_empty() {
        return Ok(()); // a restart: resume from the data directory
    }
    if config.initial_cluster_state == ClusterState::Existing {
        tracing::info!("waiting to be added to an existing cluster");
        return Ok(());
    }
    let mut members: BTreeMap<NodeId, TenureNode> = BTreeMap::new();
    members.insert(config.id, me.clone());
    let mut cluster_exists = false;
    for (&peer, addr) in config.peers.iter().filter(|(id, _)| **id != config.id) {
        let dial = config.peer_dial.get(&peer).cloned().unwrap_or_else(|| addr.clone());
        let reply = probe(network, &dial, identity).await;
        let mut node = TenureNode { grpc_addr: addr.clone(), http_addr: String::new() };
        if let Some(r) = reply {
            if r.node_id != peer {
                bail!("--peers says node {peer} is at {addr}, but node {} answered there", r.node_id);
            }
            if !r.known_incarnation.is_empty() && r.known_incarnation != identity.incarnation() {
                bail!(
                    "node {peer} knows node {} with another data directory: this node's data directory {} was wiped or replaced. It cannot rejoin as if nothing happened (it could vote twice in a term): remove it from the cluster and add it back as a new member with --initial-cluster-state existing",
                    config.id,
                    config.data_dir.display()
                );
            }
            if !r.cluster_id.is_empty() {
                if excluded_by_peer(&r.members, config.id, &identity.cluster_id()) {
                    bail!(
                        "node {peer} already belongs to cluster {} that does not include node {}; to join it use --initial-cluster-state existing and add this node as a member",
                        r.cluster_id,
                        config.id
                    );
                }
                cluster_exists = true;
            }
            node.http_addr = r.http_addr;
        }
        members.insert(peer, node);
    }
    let lowest = config.peers.keys().next().copied().unwrap_or(config.id);
    if cluster_exists || lowest != config.id {
        tracing::info!(lowest, "waiting for the cluster to be formed");
        return Ok(());
    }
    // Initialize first, record the id second: a peer probing in between sees no cluster id
    // (and waits), never an id whose membership it cannot see yet.
    match raft.initialize(members).await {
        Ok(()) => {}
        // A crash between initialize and recording the id leaves an initialized log behind:
        // that is this same bootstrap, so only the id is missing.
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {
            tracing::info!("the log was already initialized; recording the cluster id");
        }
        Err(e) => bail!("cannot initialize the cluster: {e}"),
    }
    let cluster_id = random_id();
    identity.set_cluster_id(&cluster_id)?;
    tracing::info!(cluster_id, "bootstrapped a new cluster");
    Ok(())
}

/// Whether a peer that is in a cluster shows that this node is not a member. A peer can learn
/// the cluster id (from the leader's first vote request) before the membership entry reaches it,
/// so an empty member list proves nothing; and once this node has been contacted by the cluster
/// itself (`own_cluster_id` set while probing), it is a member.
fn excluded_by_peer(peer_members: &[NodeId], me: NodeId, own_cluster_id: &str) -> bool {
    own_cluster_id.is_empty() && !peer_members.is_empty() && !peer_members.contains(&me)
}

/// Asks a peer whether it is in a cluster; `None` if it does not answer (not started yet).
pub(crate) async fn probe(network: &Network, addr: &str, identity: &Identity) -> Option<rpb::ProbeReply> {
    let channel = network.channel(addr).ok()?;
    let mut client = rpb::raft_client::RaftClient::new(channel);
    let mut req =
        tonic::Request::new(rpb::ProbeRequest { from: identity.node_id(), incarnation: identity.incarnation() });
    req.set_timeout(Duration::from_secs(2));
    client.probe(req).await.ok().map(|r| r.into_inner())
}

/// On the leader, fills in the HTTP address of members whose membership entry lacks one.
///
/// Bootstrap records a peer's HTTP address only if the peer answered its probe, and a peer that
/// started later is in the membership without one; a follower's NOT_LEADER over HTTP needs the
/// leader's. Only the HTTP address changes (`SetNodes` with the same gRPC address), and only to
/// what the member itself reports, so no member is replaced. Skipped while an AddMember or
/// RemoveMember is in progress (`changes`' lock), so it never touches a node being added or
/// removed.
async fn fill_http_addrs(
    raft: Raft,
    network: Network,
    identity: Identity,
    dial: BTreeMap<NodeId, String>,
    changes: MembershipChanges,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A probe of a member that is down takes its 2 s timeout: tick a second after it, not at once.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let m = raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            return;
        }
        if m.state != openraft::ServerState::Leader {
            continue;
        }
        let Some(_change) = changes.try_lock() else { continue };
        let m = raft.metrics().borrow().clone();
        let missing: Vec<(NodeId, TenureNode)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(_, n)| n.http_addr.is_empty())
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let mut update = BTreeMap::new();
        for (id, node) in missing {
            let addr = dial.get(&id).unwrap_or(&node.grpc_addr);
            let Some(reply) = probe(&network, addr, &identity).await else { continue };
            if reply.node_id == id && !reply.http_addr.is_empty() {
                update.insert(id, TenureNode { http_addr: reply.http_addr, ..node });
            }
        }
        if update.is_empty() {
            continue;
        }
        let ids: Vec<NodeId> = update.keys().copied().collect();
        match raft.change_membership(openraft::ChangeMembers::SetNodes(update), false).await {
            Ok(_) => tracing::info!(?ids, "recorded the HTTP address of members"),
            Err(e) => tracing::debug!(error = %e, "cannot record members' HTTP addresses yet"),
        }
    }
}

/// Returns when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::excluded_by_peer;

    #[test]
    fn a_peer_that_knows_the_cluster_but_not_yet_its_members_does_not_exclude_a_node() {
        // Found by the chaos harness: node 2 had adopted the cluster id from node 1's vote
        // request but not yet the membership, and node 3 refused to start.
        assert!(!excluded_by_peer(&[], 3, ""));
        assert!(!excluded_by_peer(&[1, 2, 3], 3, ""));
        assert!(excluded_by_peer(&[1, 2], 3, ""));
        // Contacted by the cluster while probing: a member, whatever a lagging peer says.
        assert!(!excluded_by_peer(&[1, 2], 3, "c0ffee"));
    }
}

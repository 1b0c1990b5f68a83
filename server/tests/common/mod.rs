//! Test harness: real `tenured` processes on free loopback ports, talked to over real gRPC.
//! Every wait polls a condition against a deadline; every process is killed when the cluster
//! is dropped, even when a test fails.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tenure_proto::v1 as pb;
use tenure_proto::v1::cluster_client::ClusterClient;
use tenure_proto::v1::kv_client::KvClient;
use tenure_proto::v1::locks_client::LocksClient;
use tonic::transport::{Channel, ClientTlsConfig};

pub mod certs;
pub mod disk;
pub mod frames;
pub mod proxy;
pub mod web;

pub const TENURED: &str = env!("CARGO_BIN_EXE_tenured");

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port not handed out before in this process. The OS may give a port just
/// released to the next `bind(0)`, so without the record two nodes (say one's gRPC and
/// another's HTTP port) could be given the same one.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port that was not handed out already")
}

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub http: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Started with `--initial-cluster-state existing` (no `--peers`): it waits to be added.
    pub join: bool,
    /// Flags for this node only, after the cluster's.
    pub args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub peers: String,
    pub extra: Vec<String>,
    pub dir: tempfile::TempDir,
    /// How the harness itself talks to the nodes (TLS and a bearer token, when the cluster
    /// requires them).
    pub client: HarnessClient,
}

/// The harness's own credentials: https with this TLS config, and this bearer token (it needs
/// `read` and `lock` on every name).
#[derive(Clone, Default)]
pub struct HarnessClient {
    pub tls: Option<ClientTlsConfig>,
    pub token: Option<String>,
}

/// Arguments that make tests fast without changing semantics.
pub const FAST: &[&str] = &["--heartbeat-ms", "50", "--election-min-ms", "300", "--election-max-ms", "600"];

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with `extra` flags and waits for a leader.
    pub async fn start(n: u64, extra: &[&str]) -> Cluster {
        Self::start_in(tempfile::tempdir().expect("tempdir"), n, extra, HarnessClient::default()).await
    }

    /// As [`Cluster::start`], in `dir` (which may hold certificates or an auth file the flags
    /// name), with the harness talking to the nodes as `client` says.
    pub async fn start_in(dir: tempfile::TempDir, n: u64, extra: &[&str], client: HarnessClient) -> Cluster {
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                addr: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node{id}")),
                log: dir.path().join(format!("node{id}.log")),
                join: false,
                args: Vec::new(),
                child: None,
            })
            .collect();
        let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(FAST.iter().map(|s| s.to_string()));
        let mut cluster = Cluster { nodes, peers, extra, dir, client };
        for id in 1..=n {
            cluster.spawn(id);
        }
        let leader = cluster.leader().await;
        // The leader records the HTTP address of members that started after the bootstrapping
        // node with a membership change: wait for it, so tests that count log entries start
        // after it.
        eventually("every member's HTTP address in the membership", Duration::from_secs(20), || async {
            let s = cluster.status(leader).await?;
            (s.members.len() == n as usize && s.members.iter().all(|m| !m.http_addr.is_empty())).then_some(())
        })
        .await;
        cluster
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[(id - 1) as usize].addr.clone()
    }

    /// The command line for node `id` (used to start it, or to try starting it wrongly).
    pub fn command(&self, id: u64, data_dir: &Path) -> Command {
        let n = &self.nodes[(id - 1) as usize];
        let mut cmd = Command::new(TENURED);
        cmd.arg("--id").arg(id.to_string()).arg("--listen").arg(&n.addr).arg("--http").arg(&n.http);
        if n.join {
            cmd.arg("--initial-cluster-state").arg("existing");
        } else {
            cmd.arg("--peers").arg(&self.peers);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(&self.extra)
            .args(&n.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts node `id` on its own data directory, appending to its log file.
    pub fn spawn(&mut self, id: u64) {
        let data_dir = self.nodes[(id - 1) as usize].data_dir.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.nodes[(id - 1) as usize].log)
            .expect("log file");
        let mut cmd = self.command(id, &data_dir);
        cmd.stdout(log.try_clone().expect("log")).stderr(log);
        let child = cmd.spawn().expect("spawn tenured");
        self.node(id).child = Some(child);
    }

    /// Starts a new node (the next id) with `--initial-cluster-state existing` and an empty
    /// data directory: it waits to be added with AddMember. Returns its id.
    pub fn add_node(&mut self) -> u64 {
        self.add_node_with(&[])
    }

    /// [`Cluster::add_node`] with flags of its own (e.g. `--join`).
    pub fn add_node_with(&mut self, args: &[&str]) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        self.nodes.push(Node {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node{id}")),
            log: self.dir.path().join(format!("node{id}.log")),
            join: true,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        });
        self.spawn(id);
        id
    }

    /// Kills node `id` and deletes its data directory; it starts again (with [`Cluster::spawn`])
    /// as a node that waits to be added.
    pub fn wipe(&mut self, id: u64) {
        self.kill(id);
        let n = self.node(id);
        let _ = std::fs::remove_dir_all(&n.data_dir);
        n.join = true;
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.node(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns the exit status success.
    pub fn terminate(&mut self, id: u64) -> bool {
        let Some(mut c) = self.node(id).child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn channel(&self, id: u64) -> Channel {
        let scheme = if self.client.tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", self.addr(id)))
            .expect("uri")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10));
        if let Some(tls) = &self.client.tls {
            endpoint = endpoint.tls_config(tls.clone()).expect("TLS config");
        }
        endpoint.connect_lazy()
    }

    /// A request carrying the harness's bearer token, if it has one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(t) = &self.client.token {
            r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().expect("token"));
        }
        r
    }

    pub async fn locks(&self, id: u64) -> LocksClient<Channel> {
        LocksClient::new(self.channel(id).await)
    }

    pub async fn kv(&self, id: u64) -> KvClient<Channel> {
        KvClient::new(self.channel(id).await)
    }

    pub async fn status(&self, id: u64) -> Option<pb::StatusResponse> {
        let mut c = ClusterClient::new(self.channel(id).await);
        c.status(self.request(pb::StatusRequest {})).await.ok().map(|r| r.into_inner())
    }

    /// Waits until the running nodes agree on a leader whose lease clock is live (a Renew of an
    /// unknown lease answers LEASE_NOT_FOUND rather than UNAVAILABLE); returns its id.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for n in &self.nodes {
                let Some(s) = self.status(n.id).await else { continue };
                if s.role != pb::MemberRole::Leader as i32 {
                    continue;
                }
                let mut c = self.locks(n.id).await;
                let probe = pb::RenewRequest { name: "harness-probe".into(), request_id: "harness-probe".into() };
                if let Err(st) = c.renew(self.request(probe)).await {
                    if st.code() == tonic::Code::NotFound {
                        return n.id;
                    }
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> =
                    self.nodes.iter().map(|n| format!("--- node {}:\n{}", n.id, self.log_of(n.id))).collect();
                panic!("no leader serving renewals after 20s\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn last_log_index(&self, id: u64) -> u64 {
        self.status(id).await.expect("status").last_log_index
    }

    /// The log of node `id`, for failure messages.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[(id - 1) as usize].log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The `ErrorDetail` of a status, if it carries one.
pub fn detail(status: &tonic::Status) -> pb::ErrorDetail {
    <pb::ErrorDetail as prost::Message>::decode(status.details()).unwrap_or_default()
}

pub fn acquire_req(name: &str, request_id: &str, ttl_ms: u64, wait_ms: u64) -> pb::AcquireRequest {
    pb::AcquireRequest {
        name: name.into(),
        owner: format!("owner-of-{request_id}"),
        request_id: request_id.into(),
        ttl_ms,
        wait_ms,
        ..Default::default()
    }
}

pub fn shared_req(name: &str, request_id: &str, limit: u32, wait_ms: u64) -> pb::AcquireRequest {
    pb::AcquireRequest { mode: pb::LockMode::Shared as i32, limit, ..acquire_req(name, request_id, 30_000, wait_ms) }
}

pub fn outcome(r: &pb::AcquireResponse) -> pb::AcquireOutcome {
    pb::AcquireOutcome::try_from(r.outcome).unwrap_or(pb::AcquireOutcome::Unspecified)
}

/// Describe's holders and waiters (request ids, in order), read linearizably from `id`.
pub async fn holders_and_waiters(c: &mut LocksClient<Channel>, name: &str) -> (Vec<String>, Vec<String>) {
    let d = c.describe(pb::DescribeRequest { name: name.into(), consistency: 0 }).await.expect("describe").into_inner();
    (d.holders.into_iter().map(|h| h.request_id).collect(), d.waiters.into_iter().map(|w| w.request_id).collect())
}

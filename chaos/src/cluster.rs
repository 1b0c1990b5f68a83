//! Real `tenured` processes on loopback, with every peer link going through its own
//! [`LinkProxy`], so the harness can kill, pause, restart and partition them one at a time.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rustix::process::{kill_process, Pid, Signal};
use tenure_proto::v1 as pb;
use tenure_proto::v1::cluster_client::ClusterClient;
use tenure_proto::v1::locks_client::LocksClient;
use tonic::transport::{Channel, Endpoint};

use crate::history::{Event, EventKind, NodeEvents};
use crate::proxy::{Dir, Flow, LinkProxy};

/// How a node is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// SIGSTOPped.
    Paused,
    /// SIGKILLed (or never started).
    Down,
}

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub state: NodeState,
    /// Started with `--initial-cluster-state existing` (no `--peers`): waits to be added.
    pub join: bool,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// `links[(from, to)]`: the proxy `from` dials to reach `to`.
    pub links: BTreeMap<(u64, u64), LinkProxy>,
    tenured: PathBuf,
    peers: String,
    extra: Vec<String>,
    /// Extra environment of every `tenured` (e.g. `TENURE_BUGGY`).
    env: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
}

/// A free loopback port not handed out before in this process: the OS may give a port just
/// released to the next `bind(0)`, and two nodes must not be given the same one.
fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port that was not handed out already")
}

fn pid(child: &Child) -> Option<Pid> {
    Pid::from_raw(i32::try_from(child.id()).ok()?)
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) of `tenured` with `extra` flags and waits for a leader.
    pub async fn start(tenured: PathBuf, n: u64, extra: &[String]) -> anyhow::Result<Cluster> {
        Cluster::start_with_env(tenured, n, extra, &[]).await
    }

    /// [`Cluster::start`], with extra environment variables for every node.
    pub async fn start_with_env(
        tenured: PathBuf,
        n: u64,
        extra: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("tenure-chaos-").tempdir()?;
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(Node {
                id,
                addr: format!("127.0.0.1:{}", free_port()?),
                data_dir: dir.path().join(format!("node{id}")),
                log: dir.path().join(format!("node{id}.log")),
                child: None,
                state: NodeState::Down,
                join: false,
            });
        }
        let mut links = BTreeMap::new();
        for from in 1..=n {
            for to in (1..=n).filter(|&to| to != from) {
                let proxy = LinkProxy::start("127.0.0.1", nodes[(to - 1) as usize].addr.clone()).await?;
                links.insert((from, to), proxy);
            }
        }
        let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster { nodes, links, tenured, peers, extra: extra.to_vec(), env: env.to_vec(), dir };
        for id in 1..=n {
            cluster.spawn(id)?;
        }
        if let Err(e) = cluster.leader(Duration::from_secs(30)).await {
            return Err(e.context(format!("a new cluster; its logs are kept in {}", cluster.keep().display())));
        }
        Ok(cluster)
    }

    pub fn size(&self) -> u64 {
        self.nodes.len() as u64
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Starts node `id` on its data directory, appending to its log file.
    pub fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let dial: Vec<String> = self
            .links
            .iter()
            .filter(|((from, _), _)| *from == id)
            .map(|((_, to), p)| format!("{to}={}", p.addr()))
            .collect();
        let node = self.node(id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let mut cmd = Command::new(&self.tenured);
        cmd.arg("--id").arg(id.to_string()).arg("--listen").arg(&node.addr);
        cmd.arg("--http").arg(format!("127.0.0.1:{}", free_port()?));
        if node.join {
            cmd.arg("--initial-cluster-state").arg("existing");
        } else {
            cmd.arg("--peers").arg(&self.peers);
        }
        let child = cmd
            .arg("--peer-dial")
            .arg(dial.join(","))
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&self.extra)
            // Renewal and expiry decisions are logged, so a violation can be traced to its node.
            .env("RUST_LOG", "info,openraft=warn,tenure_server::lease_clock=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.tenured.display()))?;
        let node = self.node_mut(id);
        node.child = Some(child);
        node.state = NodeState::Running;
        Ok(())
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.state = NodeState::Down;
    }

    /// Kills node `id` and deletes its data directory; [`Cluster::spawn`] then starts it as a
    /// new node that waits to be added.
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill(id);
        let node = self.node_mut(id);
        node.join = true;
        match std::fs::remove_dir_all(&node.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("wiping {}", node.data_dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// SIGSTOP: the process freezes with its sockets open; peers see silence.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(p) = node.child.as_ref().and_then(pid) {
            let _ = kill_process(p, Signal::STOP);
            node.state = NodeState::Paused;
        }
    }

    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(p) = node.child.as_ref().and_then(pid) {
            let _ = kill_process(p, Signal::CONT);
            node.state = NodeState::Running;
        }
    }

    /// Every link between `a` and `b` (both directions) holds its traffic.
    pub fn cut(&self, a: u64, b: u64) {
        for key in [(a, b), (b, a)] {
            if let Some(l) = self.links.get(&key) {
                l.set(Dir::Up, Flow::Hold);
                l.set(Dir::Down, Flow::Hold);
            }
        }
    }

    /// Messages from `from` no longer reach `to`; `to`'s still reach `from`.
    pub fn cut_one_way(&self, from: u64, to: u64) {
        if let Some(l) = self.links.get(&(from, to)) {
            l.set(Dir::Up, Flow::Hold);
        }
        if let Some(l) = self.links.get(&(to, from)) {
            l.set(Dir::Down, Flow::Hold);
        }
    }

    /// Every peer link of `id` (both ways) waits `base ± jitter`.
    pub fn delay(&self, id: u64, base: Duration, jitter: Duration) {
        for ((from, to), l) in &self.links {
            if *from == id || *to == id {
                l.set(Dir::Up, Flow::Delay { base, jitter });
                l.set(Dir::Down, Flow::Delay { base, jitter });
            }
        }
    }

    /// Every peer link (both ways) waits `base ± jitter`.
    pub fn delay_all(&self, base: Duration, jitter: Duration) {
        for l in self.links.values() {
            l.set(Dir::Up, Flow::Delay { base, jitter });
            l.set(Dir::Down, Flow::Delay { base, jitter });
        }
    }

    pub fn heal_network(&self) {
        for l in self.links.values() {
            l.heal();
        }
    }

    fn channel(&self, id: u64) -> anyhow::Result<Channel> {
        Ok(Endpoint::from_shared(format!("http://{}", self.node(id).addr))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .connect_lazy())
    }

    pub async fn status(&self, id: u64) -> Option<pb::StatusResponse> {
        if self.node(id).state != NodeState::Running {
            return None;
        }
        let mut c = ClusterClient::new(self.channel(id).ok()?);
        c.status(pb::StatusRequest {}).await.ok().map(|r| r.into_inner())
    }

    /// The leader that the running nodes agree on, waiting up to `timeout`.
    pub async fn leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            for n in &self.nodes {
                if let Some(s) = self.status(n.id).await {
                    if s.role == pb::MemberRole::Leader as i32 && s.has_quorum {
                        return Ok(n.id);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no leader with a quorum within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has applied at least what the leader had applied when the
    /// wait began.
    pub async fn converge(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        let leader = self.leader(timeout).await?;
        let target = self.status(leader).await.map(|s| s.applied_index).unwrap_or(0);
        loop {
            let mut behind = Vec::new();
            for n in self.nodes.iter().filter(|n| n.state == NodeState::Running) {
                match self.status(n.id).await {
                    Some(s) if s.applied_index >= target => {}
                    other => behind.push((n.id, other.map(|s| s.applied_index))),
                }
            }
            if behind.is_empty() {
                return Ok(target);
            }
            if Instant::now() > deadline {
                bail!("nodes did not reach applied index {target} within {timeout:?}: {behind:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every committed lock event node `id` still has, up to its applied index `to`.
    pub async fn events(&self, id: u64, to: u64) -> anyhow::Result<NodeEvents> {
        let mut c = LocksClient::new(
            Endpoint::from_shared(format!("http://{}", self.node(id).addr))?
                .connect_timeout(Duration::from_millis(500))
                .connect_lazy(),
        );
        let mut from = 1;
        let stream = loop {
            let req = pb::WatchRequest {
                selector: Some(pb::watch_request::Selector::Prefix(String::new())),
                start_index: from,
            };
            match c.watch(req).await {
                Ok(s) => break s.into_inner(),
                Err(st) if st.code() == tonic::Code::OutOfRange => {
                    // "... starts at index N": begin there.
                    from = st
                        .message()
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| anyhow!("node {id}: unexpected COMPACTED message {:?}", st.message()))?;
                }
                Err(st) => bail!("node {id}: watch: {st}"),
            }
        };
        let mut stream = stream;
        let mut out = NodeEvents { node: id, from, to, events: Vec::new() };
        let mut seq = BTreeMap::<u64, u32>::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(msg) = tokio::time::timeout_at(deadline.into(), stream.message()).await?? {
            for e in msg.events {
                let kind = match pb::WatchEventKind::try_from(e.kind) {
                    Ok(pb::WatchEventKind::Queued) => EventKind::Queued,
                    Ok(pb::WatchEventKind::Granted) => EventKind::Granted,
                    Ok(pb::WatchEventKind::Released) => EventKind::Released,
                    Ok(pb::WatchEventKind::Expired) => EventKind::Expired,
                    Ok(pb::WatchEventKind::Cancelled) => EventKind::Cancelled,
                    _ => bail!("node {id}: unknown event kind {}", e.kind),
                };
                if e.index > to {
                    continue;
                }
                let s = seq.entry(e.index).or_default();
                out.events.push(Event {
                    index: e.index,
                    seq: *s,
                    kind,
                    lock: e.name,
                    request_id: e.request_id,
                    token: e.token,
                });
                *s += 1;
            }
            if msg.applied_index >= to {
                return Ok(out);
            }
        }
        bail!("node {id}: the watch ended before index {to}")
    }

    /// Keeps the data directories and logs after the cluster is dropped; returns where.
    pub fn keep(&mut self) -> PathBuf {
        let dir = std::mem::replace(
            &mut self.dir,
            tempfile::Builder::new()
                .prefix("tenure-chaos-empty-")
                .tempdir()
                .unwrap_or_else(|_| tempfile::TempDir::new().expect("tempdir")),
        );
        dir.keep()
    }

    /// The log of node `id`, for reports.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                if let Some(p) = pid(&c) {
                    let _ = kill_process(p, Signal::CONT);
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

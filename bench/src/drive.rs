//! One driver per server, with the operations the workloads need, so every workload runs the
//! same steps against tenure (its Rust client) and etcd (etcd-client, its Lock/Unlock API with a
//! lease, the way etcd's own `concurrency.Mutex` users drive it).

use std::time::Duration;

use anyhow::anyhow;
use etcd_client::{GetOptions, LockOptions};

use crate::procs::{poll, Cluster, Kind};

// One of each per run; the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Driver {
    Tenure {
        client: tenure::Client,
        /// One client per member, in member order, for questions to that member alone.
        nodes: Vec<tenure::Client>,
    },
    Etcd {
        client: etcd_client::Client,
        /// Without a request timeout, for Lock: etcd-client's timeout also ends a Lock that is
        /// still waiting its turn, which broke the 10k-waiter run.
        patient: etcd_client::Client,
        nodes: Vec<etcd_client::Client>,
        /// etcd's member id of each member, in member order.
        member_ids: Vec<u64>,
    },
}

/// What a worker holds between its acquires: nothing for tenure (every acquire carries its TTL),
/// a lease kept alive in the background for etcd.
pub enum Session {
    Tenure,
    Etcd { lease: i64, keeper: Option<tokio::task::JoinHandle<()>> },
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Session::Etcd { keeper: Some(k), .. } = self {
            k.abort();
        }
    }
}

pub enum Hold {
    Tenure(tenure::LockGuard),
    Etcd(Vec<u8>),
}

impl Driver {
    pub async fn connect(cluster: &Cluster) -> anyhow::Result<Driver> {
        let eps = cluster.endpoints();
        match cluster.kind {
            Kind::Tenure => {
                let build = |eps: Vec<String>| async move {
                    tenure::Client::builder()
                        .endpoints(eps)
                        .owner("tenure-bench")
                        .timeout(Duration::from_secs(5))
                        .connect()
                        .await
                        .map_err(anyhow::Error::from)
                };
                let client = build(eps.clone()).await?;
                let mut nodes = Vec::new();
                for e in &eps {
                    nodes.push(build(vec![e.clone()]).await?);
                }
                Ok(Driver::Tenure { client, nodes })
            }
            Kind::Etcd => {
                let opts = || Some(etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(5)));
                // etcd-client dials lazily and fails at once while the members still start.
                let client = poll("etcd: connect", Duration::from_secs(30), || {
                    let eps = eps.clone();
                    async move { etcd_client::Client::connect(eps, opts()).await.ok() }
                })
                .await?;
                let patient = etcd_client::Client::connect(eps.clone(), None).await?;
                let mut nodes = Vec::new();
                for e in &eps {
                    nodes.push(etcd_client::Client::connect([e.clone()], opts()).await?);
                }
                let mut member_ids = Vec::new();
                for n in &nodes {
                    let mut n = n.clone();
                    let id = poll("etcd: member status", Duration::from_secs(30), || {
                        let mut n = n.clone();
                        async move { n.status().await.ok()?.header().map(|h| h.member_id()) }
                    })
                    .await?;
                    member_ids.push(id);
                    let _ = &mut n;
                }
                Ok(Driver::Etcd { client, patient, nodes, member_ids })
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Driver::Tenure { .. } => Kind::Tenure,
            Driver::Etcd { .. } => Kind::Etcd,
        }
    }

    /// The member (1-based) that member `i` (0-based) believes leads, if it answers.
    async fn leader_seen_by(&self, i: usize) -> Option<u64> {
        match self {
            Driver::Tenure { nodes, .. } => nodes[i].cluster_status().await.ok()?.leader_id,
            Driver::Etcd { nodes, member_ids, .. } => {
                let s = nodes[i].clone().status().await.ok()?;
                member_ids.iter().position(|&m| m == s.leader()).map(|p| p as u64 + 1)
            }
        }
    }

    /// The leader every answering member agrees on, among `running` members (1-based).
    pub async fn leader(&self, running: &[u64]) -> Option<u64> {
        let mut seen = None;
        for &id in running {
            let l = self.leader_seen_by((id - 1) as usize).await?;
            if seen.is_some_and(|s| s != l) {
                return None;
            }
            seen = Some(l);
        }
        seen.filter(|l| running.contains(l))
    }

    /// Waits until the `running` members agree on a leader and a lock can be taken and given
    /// back (etcd-client does not retry, so every step is retried here until `timeout`).
    pub async fn ready(&self, running: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let what = format!("{}: a leader that grants a lock", self.kind().name());
        poll(&what, timeout, || async {
            let leader = self.leader(running).await?;
            let session = self.session(Duration::from_secs(10)).await.ok()?;
            let acquire = self.acquire(&session, "bench/ready", Duration::from_secs(10));
            let hold = tokio::time::timeout(Duration::from_secs(5), acquire).await.ok()?.ok()?;
            self.release(hold).await.ok()?;
            Some(leader)
        })
        .await
    }

    /// Waits until every member in `running` has applied what the leader had committed.
    pub async fn converged(&self, running: &[u64], timeout: Duration) -> anyhow::Result<()> {
        // No lock taken here: with a million held, one more is over the default cap.
        let what = format!("{}: a leader", self.kind().name());
        let leader = poll(&what, timeout, || self.leader(running)).await?;
        let target = self.commit_index_of(leader).await?;
        poll("members catch up", timeout, || async {
            for &id in running {
                if self.applied_index_of(id).await.ok()? < target {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    async fn commit_index_of(&self, id: u64) -> anyhow::Result<u64> {
        let i = (id - 1) as usize;
        match self {
            Driver::Tenure { nodes, .. } => Ok(nodes[i].cluster_status().await?.commit_index),
            Driver::Etcd { nodes, .. } => Ok(nodes[i].clone().status().await?.raft_index()),
        }
    }

    async fn applied_index_of(&self, id: u64) -> anyhow::Result<u64> {
        let i = (id - 1) as usize;
        match self {
            Driver::Tenure { nodes, .. } => Ok(nodes[i].cluster_status().await?.applied_index),
            // etcd 3.4's status has no applied index; its raft index is what the member has.
            Driver::Etcd { nodes, .. } => Ok(nodes[i].clone().status().await?.raft_index()),
        }
    }

    /// The leader's last committed Raft log index.
    pub async fn log_index(&self, running: &[u64]) -> anyhow::Result<u64> {
        let leader = self.leader(running).await.ok_or_else(|| anyhow!("no leader"))?;
        self.commit_index_of(leader).await
    }

    /// A worker's session: for etcd a lease of `ttl`, kept alive at ttl/3 in the background.
    pub async fn session(&self, ttl: Duration) -> anyhow::Result<Session> {
        match self {
            Driver::Tenure { .. } => Ok(Session::Tenure),
            Driver::Etcd { client, .. } => {
                let lease = client.clone().lease_grant(ttl.as_secs() as i64, None).await?.id();
                let mut c = client.clone();
                let keeper = tokio::spawn(async move {
                    let Ok((mut keeper, mut answers)) = c.lease_keep_alive(lease).await else { return };
                    loop {
                        tokio::time::sleep(ttl / 3).await;
                        if keeper.keep_alive().await.is_err() {
                            // A member died under the stream: open a new one.
                            match c.lease_keep_alive(lease).await {
                                Ok((k, a)) => (keeper, answers) = (k, a),
                                Err(_) => continue,
                            }
                            continue;
                        }
                        let _ = answers.message().await;
                    }
                });
                Ok(Session::Etcd { lease, keeper: Some(keeper) })
            }
        }
    }

    /// An etcd lease that nobody keeps alive (for holds that outlive the run's phase).
    pub async fn bare_session(&self, ttl: Duration) -> anyhow::Result<Session> {
        match self {
            Driver::Tenure { .. } => Ok(Session::Tenure),
            Driver::Etcd { client, .. } => {
                let lease = client.clone().lease_grant(ttl.as_secs() as i64, None).await?.id();
                Ok(Session::Etcd { lease, keeper: None })
            }
        }
    }

    /// Takes `name`, waiting as long as it takes. `ttl` is tenure's per-acquire TTL (etcd's is
    /// the session's).
    pub async fn acquire(&self, session: &Session, name: &str, ttl: Duration) -> anyhow::Result<Hold> {
        match (self, session) {
            (Driver::Tenure { client, .. }, _) => {
                Ok(Hold::Tenure(client.lock(name).ttl(ttl).wait_forever().acquire().await?))
            }
            (Driver::Etcd { patient, .. }, Session::Etcd { lease, .. }) => {
                let r = patient.clone().lock(name, Some(LockOptions::new().with_lease(*lease))).await?;
                Ok(Hold::Etcd(r.key().to_vec()))
            }
            (Driver::Etcd { .. }, Session::Tenure) => Err(anyhow!("an etcd acquire needs an etcd session")),
        }
    }

    pub async fn release(&self, hold: Hold) -> anyhow::Result<()> {
        match (self, hold) {
            (_, Hold::Tenure(g)) => {
                g.release().await?;
            }
            (Driver::Etcd { client, .. }, Hold::Etcd(key)) => {
                client.clone().unlock(key).await?;
            }
            (Driver::Tenure { .. }, Hold::Etcd(_)) => return Err(anyhow!("an etcd hold given to tenure")),
        }
        Ok(())
    }

    /// Reads a lock's state: linearizable (through the leader) or stale (any member's own state).
    pub async fn describe(&self, name: &str, linearizable: bool) -> anyhow::Result<()> {
        match self {
            Driver::Tenure { client, .. } => {
                let c = if linearizable { tenure::Consistency::Linearizable } else { tenure::Consistency::Stale };
                client.describe_with(name, c).await?;
            }
            Driver::Etcd { client, .. } => {
                // etcd's lock keys are `<name>/<lease id>`.
                let mut opts = GetOptions::new().with_prefix();
                if !linearizable {
                    opts = opts.with_serializable();
                }
                client.clone().get(format!("{name}/"), Some(opts)).await?;
            }
        }
        Ok(())
    }

    /// How many requests wait for `name` (stale read).
    pub async fn waiters(&self, name: &str) -> anyhow::Result<usize> {
        match self {
            Driver::Tenure { client, .. } => {
                Ok(client.describe_with(name, tenure::Consistency::Stale).await?.waiters.len())
            }
            Driver::Etcd { client, .. } => {
                let opts = GetOptions::new().with_prefix().with_count_only();
                let n = client.clone().get(format!("{name}/"), Some(opts)).await?.count();
                // One key is the holder's.
                Ok(usize::try_from(n).unwrap_or(0).saturating_sub(1))
            }
        }
    }

    /// etcd: streams a snapshot of the backend and returns its size (tenure builds its own).
    pub async fn etcd_snapshot_bytes(&self) -> anyhow::Result<u64> {
        let Driver::Etcd { client, .. } = self else { return Err(anyhow!("not etcd")) };
        let mut stream = client.clone().snapshot().await?;
        let mut bytes = 0u64;
        while let Some(part) = stream.message().await? {
            bytes += part.blob().len() as u64;
        }
        Ok(bytes)
    }

    pub fn tenure_client(&self) -> Option<&tenure::Client> {
        match self {
            Driver::Tenure { client, .. } => Some(client),
            Driver::Etcd { .. } => None,
        }
    }
}

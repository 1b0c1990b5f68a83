//! The faults, injected one at a time, each followed by its heal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use tenure::Client;

use crate::cluster::Cluster;
use crate::history::{AcquireResult, Hold, HoldEnd, Op, ReleaseResult};
use crate::workload::{put_op, Recorder};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    KillLeader,
    KillFollower,
    KillMajority,
    KillAll,
    PauseLeader,
    PartitionLeader,
    OneWayCutFromLeader,
    DelayLeaderLinks,
    DelayAllLinks,
    PausedClientWrites,
    KillDuringSnapshotInstall,
    ReplaceFollower,
}

impl Fault {
    pub const ALL: &'static [Fault] = &[
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillMajority,
        Fault::KillAll,
        Fault::PauseLeader,
        Fault::PartitionLeader,
        Fault::OneWayCutFromLeader,
        Fault::DelayLeaderLinks,
        Fault::DelayAllLinks,
        Fault::PausedClientWrites,
        Fault::KillDuringSnapshotInstall,
        Fault::ReplaceFollower,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::KillMajority => "kill-majority",
            Fault::KillAll => "kill-all",
            Fault::PauseLeader => "pause-leader",
            Fault::PartitionLeader => "partition-leader",
            Fault::OneWayCutFromLeader => "one-way-cut-from-leader",
            Fault::DelayLeaderLinks => "delay-leader-links",
            Fault::DelayAllLinks => "delay-all-links",
            Fault::PausedClientWrites => "paused-client-writes",
            Fault::KillDuringSnapshotInstall => "kill-during-snapshot-install",
            Fault::ReplaceFollower => "replace-follower",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.name() == s)
    }
}

/// What one injected fault did.
#[derive(Clone, Debug)]
pub struct Injection {
    pub fault: Fault,
    pub at: Duration,
    pub healed_at: Duration,
    pub nodes: Vec<u64>,
    /// Stale fenced writes refused (paused client).
    pub stale_rejected: u32,
    pub stale_accepted: u32,
    /// kill-during-snapshot-install: the follower was killed after it began receiving a
    /// snapshot and before it logged the install as done.
    pub killed_mid_install: bool,
}

/// Injects `fault`, keeps it for `hold`, heals it, and waits for the cluster to converge.
pub async fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    hold: Duration,
    rec: &Arc<Recorder>,
    client_id: u32,
) -> anyhow::Result<Injection> {
    let leader = cluster.leader(Duration::from_secs(30)).await.context("before the fault")?;
    let mut followers: Vec<u64> = (1..=cluster.size()).filter(|&id| id != leader).collect();
    followers.shuffle(&mut rand::thread_rng());
    let at = rec.now();
    let mut inj = Injection {
        fault,
        at,
        healed_at: at,
        nodes: Vec::new(),
        stale_rejected: 0,
        stale_accepted: 0,
        killed_mid_install: false,
    };
    match fault {
        Fault::KillLeader | Fault::KillFollower | Fault::KillMajority | Fault::KillAll => {
            let majority = cluster.size() / 2 + 1;
            inj.nodes = match fault {
                Fault::KillLeader => vec![leader],
                Fault::KillFollower => vec![followers[0]],
                Fault::KillMajority => {
                    let mut v = vec![leader];
                    v.extend(followers.iter().take(majority as usize - 1));
                    v
                }
                _ => (1..=cluster.size()).collect(),
            };
            for &id in &inj.nodes {
                cluster.kill(id);
            }
            tokio::time::sleep(hold).await;
            for &id in &inj.nodes {
                cluster.spawn(id)?;
            }
        }
        Fault::PauseLeader => {
            inj.nodes = vec![leader];
            cluster.pause(leader);
            tokio::time::sleep(hold).await;
            cluster.resume(leader);
        }
        Fault::PartitionLeader => {
            inj.nodes = vec![leader];
            for &f in &followers {
                cluster.cut(leader, f);
            }
            tokio::time::sleep(hold).await;
            cluster.heal_network();
        }
        Fault::OneWayCutFromLeader => {
            inj.nodes = vec![leader];
            for &f in &followers {
                cluster.cut_one_way(leader, f);
            }
            tokio::time::sleep(hold).await;
            cluster.heal_network();
        }
        Fault::DelayLeaderLinks => {
            inj.nodes = vec![leader];
            cluster.delay(leader, Duration::from_millis(60), Duration::from_millis(50));
            tokio::time::sleep(hold).await;
            cluster.heal_network();
        }
        Fault::DelayAllLinks => {
            inj.nodes = (1..=cluster.size()).collect();
            cluster.delay_all(Duration::from_millis(50), Duration::from_millis(40));
            tokio::time::sleep(hold).await;
            cluster.heal_network();
        }
        Fault::KillDuringSnapshotInstall => {
            let f = followers[0];
            inj.nodes = vec![f];
            inj.killed_mid_install = kill_during_snapshot_install(cluster, leader, f, hold).await?;
        }
        Fault::ReplaceFollower => {
            let f = followers[0];
            inj.nodes = vec![f];
            replace_follower(cluster, f, hold).await?;
        }
        Fault::PausedClientWrites => {
            let (rejected, accepted) = paused_client_writes(cluster.endpoints(), rec.clone(), client_id).await?;
            inj.stale_rejected = rejected;
            inj.stale_accepted = accepted;
        }
    }
    inj.healed_at = rec.now();
    cluster
        .leader(Duration::from_secs(60))
        .await
        .with_context(|| format!("no leader after healing {}", fault.name()))?;
    cluster.converge(Duration::from_secs(60)).await.with_context(|| format!("after healing {}", fault.name()))?;
    Ok(inj)
}

/// The flags under which [`Fault::KillDuringSnapshotInstall`] can happen within a fault's time:
/// the leader snapshots and purges its log every few hundred entries.
pub const SNAPSHOT_FLAGS: [&str; 4] = ["--snapshot-interval", "300", "--snapshot-keep-logs", "30"];

/// Cuts follower `f` off until the leader has purged the log past what `f` applied (so `f` can
/// only catch up from a snapshot), heals, and SIGKILLs `f` as soon as its log says it began
/// receiving the snapshot; restarts it after `hold`. Returns whether the kill landed before
/// the install was logged as done. Without the small snapshot interval of [`SNAPSHOT_FLAGS`]
/// the purge does not come in time and `f` is only killed and restarted.
async fn kill_during_snapshot_install(
    cluster: &mut Cluster,
    leader: u64,
    f: u64,
    hold: Duration,
) -> anyhow::Result<bool> {
    let applied = cluster.status(f).await.map_or(0, |s| s.applied_index);
    for id in (1..=cluster.size()).filter(|&id| id != f) {
        cluster.cut(f, id);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster.status(leader).await.is_none_or(|s| s.purged_index <= applied) && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = |log: &str, what: &str| log.matches(what).count();
    let before = cluster.log_of(f);
    let (received, installed) =
        (count(&before, "receiving a snapshot from the leader"), count(&before, "installed snapshot"));
    cluster.heal_network();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut mid = false;
    loop {
        let log = cluster.log_of(f);
        if count(&log, "receiving a snapshot from the leader") > received {
            cluster.kill(f);
            mid = count(&cluster.log_of(f), "installed snapshot") == installed;
            break;
        }
        if std::time::Instant::now() > deadline {
            cluster.kill(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(hold).await;
    cluster.spawn(f)?;
    Ok(mid)
}

/// Membership change: removes follower `f` (RemoveMember), kills it and wipes its data
/// directory, runs `hold` without it, then starts it empty with `--initial-cluster-state
/// existing` and adds it back as a new member (AddMember: learner, catch up, voter).
async fn replace_follower(cluster: &mut Cluster, f: u64, hold: Duration) -> anyhow::Result<()> {
    let admin = Client::builder().endpoints(cluster.endpoints()).owner("chaos-admin").connect().await?;
    // A member that was just healed may not answer the leader's liveness probe at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match admin.remove_member(f, false).await {
            Ok(_) => break,
            Err(tenure::Error::QuorumAtRisk(why)) if std::time::Instant::now() < deadline => {
                eprintln!("chaos: removing node {f} refused for now: {why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("removing node {f}"))),
        }
    }
    cluster.wipe(f)?;
    tokio::time::sleep(hold).await;
    cluster.spawn(f)?;
    let addr = cluster.node(f).addr.clone();
    let r = admin.add_member(f, &addr, "").await.with_context(|| format!("adding node {f} back"))?;
    if !r.members.iter().any(|m| m.id == f && m.role == tenure::Role::Follower) {
        bail!("node {f} is not a voter after AddMember: {:?}", r.members);
    }
    admin.close().await.ok();
    Ok(())
}

const PAUSED_TTL: Duration = Duration::from_secs(2);

/// Kleppmann's scenario: client P takes a lock, then its whole process stops (here: its own
/// single-threaded runtime is blocked, so not even its keepalive runs) past the TTL; client Q
/// gets the lock and writes; P wakes and writes with its old token. The fenced store must refuse
/// P. Returns (stale writes refused, stale writes accepted).
async fn paused_client_writes(endpoints: Vec<String>, rec: Arc<Recorder>, id: u32) -> anyhow::Result<(u32, u32)> {
    let lock = "paused/0".to_string();
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (p_endpoints, p_rec, p_lock) = (endpoints.clone(), rec.clone(), lock.clone());
    let paused = std::thread::spawn(move || -> anyhow::Result<bool> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let client = Client::builder().endpoints(p_endpoints).owner("paused").connect().await?;
            let call = p_rec.now();
            let g = client.lock(p_lock.clone()).ttl(PAUSED_TTL).wait(Duration::from_secs(30)).acquire().await?;
            let from = p_rec.now();
            let result = AcquireResult::Granted { token: g.token() };
            p_rec.op(Op::Acquire {
                client: id,
                lock: p_lock.clone(),
                request_id: g.request_id().into(),
                call,
                ret: Some(from),
                result,
            });
            let _ = token_tx.send(g.token());
            // Stop the world: nothing of this client runs until told to go on.
            let _ = go_rx.recv_timeout(Duration::from_secs(60));
            let until = p_rec.at(g.valid_until());
            p_rec.hold(Hold {
                client: id,
                lock: p_lock.clone(),
                request_id: g.request_id().into(),
                token: g.token(),
                from,
                until,
                end: HoldEnd::Lost,
            });
            let call = p_rec.now();
            let key = format!("fenced/{p_lock}");
            let r = client.kv().put(&key, format!("{id}:{}", g.token()), Some(g.fence())).await;
            let refused = matches!(r, Err(tenure::Error::FencedOut(_)));
            p_rec.op(put_op(id, &p_lock, key, g.token(), call, p_rec.now(), r));
            let call = p_rec.now();
            let r = g.release().await;
            let result = match r {
                Ok(was_held) => ReleaseResult::Done { was_held },
                Err(e) => ReleaseResult::Failed { code: e.code().into() },
            };
            p_rec.op(Op::Release {
                client: id,
                lock: p_lock,
                request_id: g.request_id().into(),
                call,
                ret: Some(p_rec.now()),
                result,
            });
            client.close().await.ok();
            Ok(refused)
        })
    });
    let p_token = tokio::time::timeout(Duration::from_secs(40), token_rx).await??;
    // Q waits for the lock; it can only be granted once P's lease expired on the leader.
    let q = Client::builder().endpoints(endpoints).owner("after-pause").connect().await?;
    let q_id = id + 1;
    let call = rec.now();
    let g = q.lock(lock.clone()).ttl(Duration::from_secs(30)).wait(Duration::from_secs(30)).acquire().await?;
    let from = rec.now();
    rec.op(Op::Acquire {
        client: q_id,
        lock: lock.clone(),
        request_id: g.request_id().into(),
        call,
        ret: Some(from),
        result: AcquireResult::Granted { token: g.token() },
    });
    if g.token() <= p_token {
        bail!("the lock went to token {} after the paused holder's {p_token}", g.token());
    }
    let key = format!("fenced/{lock}");
    let call = rec.now();
    let r = q.kv().put(&key, format!("{q_id}:{}", g.token()), Some(g.fence())).await;
    rec.op(put_op(q_id, &lock, key, g.token(), call, rec.now(), r));
    // P wakes up and writes with its stale token while Q still holds the lock.
    let _ = go_tx.send(());
    let refused = tokio::task::spawn_blocking(move || paused.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the paused client panicked"))??;
    let call = rec.now();
    let until = rec.at(g.valid_until()).min(call);
    rec.hold(Hold {
        client: q_id,
        lock: lock.clone(),
        request_id: g.request_id().into(),
        token: g.token(),
        from,
        until,
        end: HoldEnd::Released,
    });
    let was_held = g.release().await?;
    rec.op(Op::Release {
        client: q_id,
        lock,
        request_id: g.request_id().into(),
        call,
        ret: Some(rec.now()),
        result: ReleaseResult::Done { was_held },
    });
    q.close().await.ok();
    Ok(if refused { (1, 0) } else { (0, 1) })
}

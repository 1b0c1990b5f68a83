//! Seeded bugs: one deterministic scenario per bug of DESIGN §3–4 that the suite must catch.
//!
//! Each scenario runs twice on a fresh 3-node cluster: with its bug selected (`TENURE_BUGGY` for
//! the nodes, [`tenure::set_bound_from_receipt`] for the client) the checker must report the
//! bug under the check named by [`Seed::caught_by`]; without it (the control) the same steps
//! must pass with no violation at all, so a scenario that flags everything proves nothing.
//! Needs `tenured` and this crate built with the test-only feature `buggy`.
//!
//! The scenarios are timed with margins of several hundred milliseconds around the fast
//! election timeouts in [`FLAGS`]: a holder keeps working until its own bound
//! ([`tenure::LockGuard::valid_until`]) before it stops, which is exactly what the lease promise
//! allows, and the check is that nobody else was granted the lock inside that bound.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tenure::{Client, LockGuard};
use tenure_proto::v1 as pb;
use tenure_proto::v1::locks_client::LocksClient;
use tonic::transport::Endpoint;

use crate::check::{self, CheckOptions, Report};
use crate::cluster::Cluster;
use crate::history::{AcquireResult, At, History, Hold, HoldEnd, Op, ReleaseResult};
use crate::proxy::{Dir, Flow, LinkProxy};
use crate::workload::Recorder;

/// A seeded bug, named as `TENURE_BUGGY` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seed {
    /// A renewal acknowledged without a quorum round.
    RenewWithoutRound,
    /// A renewal riding a round that started before it arrived.
    RenewRidesEarlierRound,
    /// No grace on a new leader.
    NoLeaderGrace,
    /// The client's bound taken from receipt instead of send time.
    BoundFromReceipt,
    /// A late Acquire honoured after its Release.
    AcquireAfterRelease,
    /// A grant that skips the FIFO head.
    GrantSkipsFifoHead,
}

impl Seed {
    pub const ALL: [Seed; 6] = [
        Seed::RenewWithoutRound,
        Seed::RenewRidesEarlierRound,
        Seed::NoLeaderGrace,
        Seed::BoundFromReceipt,
        Seed::AcquireAfterRelease,
        Seed::GrantSkipsFifoHead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Seed::RenewWithoutRound => "renew-without-round",
            Seed::RenewRidesEarlierRound => "renew-rides-earlier-round",
            Seed::NoLeaderGrace => "no-leader-grace",
            Seed::BoundFromReceipt => "bound-from-receipt",
            Seed::AcquireAfterRelease => "acquire-after-release",
            Seed::GrantSkipsFifoHead => "grant-skips-fifo-head",
        }
    }

    pub fn parse(s: &str) -> Option<Seed> {
        Seed::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The check that must report this bug.
    pub fn caught_by(self) -> &'static str {
        match self {
            Seed::RenewWithoutRound | Seed::RenewRidesEarlierRound | Seed::NoLeaderGrace | Seed::BoundFromReceipt => {
                "L1 exclusive holds"
            }
            Seed::AcquireAfterRelease => "L7 double grant",
            Seed::GrantSkipsFifoHead => "L6 FIFO",
        }
    }

    fn in_client(self) -> bool {
        self == Seed::BoundFromReceipt
    }
}

/// Fast elections, so the scenarios' margins are wide.
const FLAGS: [&str; 6] = ["--heartbeat-ms", "100", "--election-min-ms", "300", "--election-max-ms", "450"];
/// Bound on every wait of a scenario.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs `seed`'s scenario with the bug on (`buggy`) or off, and checks what it recorded.
pub async fn trial(tenured: &Path, seed: Seed, buggy: bool) -> anyhow::Result<Report> {
    let mut env = Vec::new();
    if buggy && !seed.in_client() {
        env.push(("TENURE_BUGGY".to_string(), seed.name().to_string()));
    }
    let flags: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
    let mut cluster = Cluster::start_with_env(tenured.to_path_buf(), 3, &flags, &env).await?;
    if buggy && !seed.in_client() && !cluster.log_of(1).contains("SEEDED BUG ACTIVE") {
        bail!("{} does not have seeded bugs: build it with `--features buggy`", tenured.display());
    }
    tenure::set_bound_from_receipt(buggy && seed.in_client());
    let rec = Recorder::new(Instant::now());
    let steps = match seed {
        Seed::RenewWithoutRound | Seed::RenewRidesEarlierRound => deposed_leader_renews(&mut cluster, &rec).await,
        Seed::NoLeaderGrace => leader_killed_under_a_waiter(&mut cluster, &rec).await,
        Seed::BoundFromReceipt => slow_answer_to_the_holder(&mut cluster, &rec).await,
        Seed::AcquireAfterRelease => late_duplicate_acquire(&cluster).await,
        Seed::GrantSkipsFifoHead => two_waiters(&cluster, &rec).await,
    };
    tenure::set_bound_from_receipt(false);
    let steps =
        steps.with_context(|| format!("scenario {} ({})", seed.name(), if buggy { "bug on" } else { "control" }));
    if steps.is_err() {
        eprintln!("seeded: data directories and logs kept in {}", cluster.keep().display());
    }
    steps?;

    cluster.heal_network();
    let applied = cluster.converge(PATIENCE).await?;
    let mut events = Vec::new();
    for id in 1..=cluster.size() {
        events.push(cluster.events(id, applied).await?);
    }
    let (ops, holds) = rec.take();
    Ok(check::check(&History { ops, holds, events }, &CheckOptions::default()))
}

async fn client(endpoints: Vec<String>, owner: &str) -> anyhow::Result<Client> {
    Ok(Client::builder().endpoints(endpoints).owner(owner).connect().await?)
}

/// A grant, with when its acquire returned.
struct Held {
    client: u32,
    guard: LockGuard,
    from: At,
}

async fn acquire(
    rec: Arc<Recorder>,
    id: u32,
    c: Client,
    lock: &str,
    ttl: Duration,
    wait: Duration,
) -> anyhow::Result<Held> {
    let call = rec.now();
    let r = c.lock(lock).ttl(ttl).wait(wait).acquire().await;
    let ret = rec.now();
    let (request_id, result) = match &r {
        Ok(g) => (g.request_id().to_string(), AcquireResult::Granted { token: g.token() }),
        Err(e) => (String::new(), AcquireResult::Failed { code: e.code().into() }),
    };
    rec.op(Op::Acquire { client: id, lock: lock.into(), request_id, call, ret: Some(ret), result });
    let guard = r.with_context(|| format!("client {id} acquiring {lock}"))?;
    Ok(Held { client: id, guard, from: ret })
}

/// The holder works until it stops (now) or its bound passes, whichever is first; that span is
/// its hold. Records it and returns the guard for the release.
fn stop_working(rec: &Recorder, h: Held) -> (u32, LockGuard) {
    let until = rec.now().min(rec.at(h.guard.valid_until()));
    rec.hold(Hold {
        client: h.client,
        lock: h.guard.name().to_string(),
        request_id: h.guard.request_id().to_string(),
        token: h.guard.token(),
        from: h.from,
        until,
        end: HoldEnd::Released,
    });
    (h.client, h.guard)
}

async fn release(rec: &Recorder, (id, guard): (u32, LockGuard)) {
    let call = rec.now();
    let r = tokio::time::timeout(PATIENCE, guard.release()).await;
    let ret = rec.now();
    let (ret, result) = match r {
        Ok(Ok(was_held)) => (Some(ret), ReleaseResult::Done { was_held }),
        Ok(Err(e)) if !e.is_retryable() => (Some(ret), ReleaseResult::Failed { code: e.code().into() }),
        _ => (None, ReleaseResult::Unknown),
    };
    rec.op(Op::Release {
        client: id,
        lock: guard.name().to_string(),
        request_id: guard.request_id().to_string(),
        call,
        ret,
        result,
    });
}

/// Waits (bounded) until `lock` has `waiters` waiters.
async fn wait_queued(c: &Client, lock: &str, waiters: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if c.describe(lock).await.is_ok_and(|d| d.waiters.len() == waiters) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{lock} never had {waiters} waiters");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded) until `lock` has a holder.
async fn wait_held(c: &Client, lock: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if c.describe(lock).await.is_ok_and(|d| !d.holders.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{lock} never got a holder");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until a node other than `old` is leader.
async fn new_leader(cluster: &Cluster, old: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for id in (1..=cluster.size()).filter(|&i| i != old) {
            if cluster.status(id).await.is_some_and(|s| s.role == pb::MemberRole::Leader as i32) {
                return Ok(id);
            }
        }
        if Instant::now() > deadline {
            bail!("no node other than {old} became leader");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sleeps until the holder's bound has passed (at most `cap`), so its hold is as long as the
/// lease promise lets it be.
async fn work_until_bound(h: &Held, cap: Duration) {
    let until = h.guard.valid_until().min(Instant::now() + cap);
    tokio::time::sleep_until(until.into()).await;
}

/// Bugs 1 and 2. A holds a 2 s lease through the leader only; the leader is cut off from both
/// followers right after a successful renewal round. B waits on the majority side and is granted
/// once the new leader has given A's lease its full TTL. 1.9 s into the partition A renews once
/// more on the old leader: a correct leader cannot confirm it (no quorum), so A's bound ends
/// 1.8 s after the last confirmed renewal, before B's grant. With bug 1 the old leader confirms
/// every renewal; with bug 2 it confirms this one from the round that started before the cut.
async fn deposed_leader_renews(cluster: &mut Cluster, rec: &Arc<Recorder>) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(2);
    let old = cluster.leader(PATIENCE).await?;
    let others: Vec<u64> = (1..=cluster.size()).filter(|&i| i != old).collect();
    let a = client(vec![cluster.node(old).addr.clone()], "seed-a").await?;
    let held_a = acquire(rec.clone(), 1, a, "s/0", ttl, PATIENCE).await?;
    held_a.guard.renew().await.context("renewal before the cut")?;
    for &o in &others {
        cluster.cut(old, o);
    }
    let cut_at = Instant::now();
    let new = new_leader(cluster, old).await?;
    let b = client(vec![cluster.node(new).addr.clone()], "seed-b").await?;
    let waiter = tokio::spawn(acquire(rec.clone(), 2, b, "s/0", ttl, PATIENCE));
    tokio::time::sleep_until((cut_at + Duration::from_millis(1900)).into()).await;
    // Bounded: a correct old leader never answers it.
    let _ = tokio::time::timeout(Duration::from_millis(500), held_a.guard.renew()).await;
    let held_b = waiter.await??;
    work_until_bound(&held_a, Duration::from_secs(3)).await;
    let a = stop_working(rec, held_a);
    cluster.heal_network();
    release(rec, a).await;
    release(rec, stop_working(rec, held_b)).await;
    Ok(())
}

/// Bug 3. A holds a 4 s lease through the leader only and renews it every 1.3 s. The leader is
/// killed and stays down until B is granted, so A cannot renew and works until its own bound (at
/// least 2.2 s after the kill). B asks the new leader as soon as there is one. A correct new
/// leader gives A's lease a full TTL from its election and grants B about 4.5 s after the kill;
/// one without grace has expired it at once.
async fn leader_killed_under_a_waiter(cluster: &mut Cluster, rec: &Arc<Recorder>) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(4);
    let old = cluster.leader(PATIENCE).await?;
    let a = client(vec![cluster.node(old).addr.clone()], "seed-a").await?;
    let held_a = acquire(rec.clone(), 1, a, "g/0", ttl, PATIENCE).await?;
    held_a.guard.renew().await.context("renewal before the kill")?;
    cluster.kill(old);
    let new = new_leader(cluster, old).await?;
    let b = client(vec![cluster.node(new).addr.clone()], "seed-b").await?;
    let held_b = acquire(rec.clone(), 2, b, "g/0", ttl, PATIENCE).await?;
    work_until_bound(&held_a, Duration::from_secs(5)).await;
    let a = stop_working(rec, held_a);
    cluster.spawn(old)?;
    release(rec, a).await;
    release(rec, stop_working(rec, held_b)).await;
    Ok(())
}

/// Bug 4. A reaches the leader through a proxy that delays every answer by 1 s. Once the leader
/// has granted A a 2 s lease, the proxy also holds A's requests, so no renewal arrives and the
/// leader expires the lease 2 s after it received the Acquire, granting the waiting B. A's
/// correct bound ends 1.8 s after it *sent* the Acquire, before that; a bound taken from the
/// answer's receipt ends 1 s later, after B's grant.
async fn slow_answer_to_the_holder(cluster: &mut Cluster, rec: &Arc<Recorder>) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(2);
    let leader = cluster.leader(PATIENCE).await?;
    let proxy = LinkProxy::start("127.0.0.1", cluster.node(leader).addr.clone()).await?;
    proxy.set(Dir::Down, Flow::Delay { base: Duration::from_secs(1), jitter: Duration::ZERO });
    let a = client(vec![proxy.addr().to_string()], "seed-a").await?;
    let b = client(cluster.endpoints(), "seed-b").await?;
    let holder = tokio::spawn(acquire(rec.clone(), 1, a, "r/0", ttl, PATIENCE));
    wait_held(&b, "r/0").await?;
    proxy.set(Dir::Up, Flow::Hold);
    let waiter = tokio::spawn(acquire(rec.clone(), 2, b, "r/0", ttl, PATIENCE));
    let held_a = holder.await??;
    let held_b = waiter.await??;
    work_until_bound(&held_a, Duration::from_secs(3)).await;
    let a = stop_working(rec, held_a);
    proxy.heal();
    release(rec, a).await;
    release(rec, stop_working(rec, held_b)).await;
    Ok(())
}

/// Bug 5. An Acquire is granted and released; then the same Acquire (same request_id) arrives
/// again, as a late duplicate from the network would. It must be answered REQUEST_FINISHED,
/// never granted a second time.
async fn late_duplicate_acquire(cluster: &Cluster) -> anyhow::Result<()> {
    let leader = cluster.leader(PATIENCE).await?;
    let channel = Endpoint::from_shared(format!("http://{}", cluster.node(leader).addr))?
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut c = LocksClient::new(channel);
    let acquire = pb::AcquireRequest {
        name: "d/0".into(),
        owner: "seed-d".into(),
        request_id: "seed-late-duplicate".into(),
        ttl_ms: 5_000,
        wait_ms: 0,
        mode: pb::LockMode::Exclusive as i32,
        ..Default::default()
    };
    let release = pb::ReleaseRequest { name: "d/0".into(), request_id: "seed-late-duplicate".into() };
    let first = c.acquire(acquire.clone()).await?.into_inner();
    if first.outcome != pb::AcquireOutcome::Granted as i32 {
        bail!("the first acquire was not granted: {first:?}");
    }
    c.release(release.clone()).await?;
    match c.acquire(acquire).await {
        Ok(again) if again.get_ref().outcome == pb::AcquireOutcome::Granted as i32 => {
            c.release(release).await?;
        }
        Ok(again) => bail!("unexpected answer to the late duplicate: {:?}", again.into_inner()),
        Err(st) if st.code() == tonic::Code::FailedPrecondition => {}
        Err(st) => return Err(anyhow!("unexpected error for the late duplicate: {st}")),
    }
    Ok(())
}

/// Bug 6. H holds; W1 then W2 queue; H releases. W1 must be granted first.
async fn two_waiters(cluster: &Cluster, rec: &Arc<Recorder>) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(10);
    let h = client(cluster.endpoints(), "seed-h").await?;
    let w1 = client(cluster.endpoints(), "seed-w1").await?;
    let w2 = client(cluster.endpoints(), "seed-w2").await?;
    let held_h = acquire(rec.clone(), 1, h.clone(), "f/0", ttl, PATIENCE).await?;
    let mut first = tokio::spawn(acquire(rec.clone(), 2, w1, "f/0", ttl, PATIENCE));
    wait_queued(&h, "f/0", 1).await?;
    let mut second = tokio::spawn(acquire(rec.clone(), 3, w2, "f/0", ttl, PATIENCE));
    wait_queued(&h, "f/0", 2).await?;
    release(rec, stop_working(rec, held_h)).await;
    let (granted, other) = tokio::select! {
        r = &mut first => (r, second),
        r = &mut second => (r, first),
    };
    release(rec, stop_working(rec, granted??)).await;
    release(rec, stop_working(rec, other.await??)).await;
    Ok(())
}

//! One chaos run: a cluster, recording clients, a schedule of faults, then the checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tenure::Client;
use tokio::sync::watch;

use crate::check::{self, CheckOptions};
use crate::cluster::Cluster;
use crate::history::{AcquireResult, Event, EventKind, History, NodeEvents, Op, PutResult, ReleaseResult};
use crate::nemesis::{self, Fault, Injection};
use crate::workload::{self, Group, Recorder};

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub tenured: PathBuf,
    pub nodes: u64,
    pub faults: Vec<Fault>,
    /// How long each fault lasts before its heal.
    pub hold: Duration,
    /// Extra `tenured` flags.
    pub server_flags: Vec<String>,
    /// A run with fewer operations is invalid.
    pub min_ops: usize,
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    pub nodes: u64,
    pub injections: Vec<Injection>,
    pub report: check::Report,
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Kill of the leader → first acknowledged write of any client, per leader kill.
    pub failovers: Vec<Duration>,
    /// Why the run does not count (it did too little to prove anything).
    pub invalid: Vec<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.report.violations.is_empty() && self.report.inconclusive.is_empty() && self.invalid.is_empty()
    }
}

fn groups() -> Vec<Group> {
    vec![
        // Long leases: holds survive every fault, so the mutex history is fully checkable.
        Group {
            name: "w1",
            clients: 6,
            locks: 4,
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(3),
            max_hold: Duration::from_millis(30),
        },
        // Short leases: faults longer than the TTL make them expire and be granted again.
        Group {
            name: "w2",
            clients: 4,
            locks: 2,
            ttl: Duration::from_secs(2),
            wait: Duration::from_secs(3),
            max_hold: Duration::from_millis(300),
        },
    ]
}

/// The source id of [`follow_events`]' report among the nodes' ones.
pub const LIVE_SOURCE: u64 = 0;

/// Follows every committed lock event from index 1 while the run goes on, through the client
/// core's watch, which resumes on another node from where it was when its node fails. A node
/// that installs a snapshot loses the history before it, so after a run with many faults no node
/// may still hold all of it; this stream, read as the run goes, does. Ends once it has every
/// event up to the index sent on `to` (0 until the run is over); reported as source
/// [`LIVE_SOURCE`], so the merge also checks it against every node's own report.
async fn follow_events(endpoints: Vec<String>, mut to: watch::Receiver<u64>) -> anyhow::Result<NodeEvents> {
    let client = Client::builder().endpoints(endpoints).owner("chaos-events").connect().await?;
    let mut w = client.watch_prefix("").from_index(1).start().await?;
    let mut out = NodeEvents { node: LIVE_SOURCE, from: 1, to: 0, events: Vec::new() };
    let mut seqs = BTreeMap::<u64, u32>::new();
    let mut push = |out: &mut NodeEvents, e: tenure::LockEvent| {
        let seq = seqs.entry(e.index).or_default();
        let kind = match e.kind {
            tenure::LockEventKind::Queued => EventKind::Queued,
            tenure::LockEventKind::Granted => EventKind::Granted,
            tenure::LockEventKind::Released => EventKind::Released,
            tenure::LockEventKind::Expired => EventKind::Expired,
            tenure::LockEventKind::Cancelled => EventKind::Cancelled,
        };
        out.events.push(Event {
            index: e.index,
            seq: *seq,
            kind,
            lock: e.name,
            request_id: e.request_id,
            token: e.token,
        });
        *seq += 1;
    };
    loop {
        let target = *to.borrow_and_update();
        if target > 0 && w.applied_index() >= target {
            // Every event up to `target` has arrived; those not returned yet are buffered and
            // come back at once.
            while let Ok(Some(next)) = tokio::time::timeout(Duration::from_millis(100), w.next()).await {
                match next {
                    Ok(e) if e.index <= target => push(&mut out, e),
                    _ => break,
                }
            }
            out.to = target;
            return Ok(out);
        }
        tokio::select! {
            next = w.next() => match next {
                Some(Ok(e)) => push(&mut out, e),
                Some(Err(e)) if e.is_retryable() => {}
                Some(Err(e)) => anyhow::bail!("at index {}: {e}", w.applied_index()),
                None => anyhow::bail!("ended at index {}", w.applied_index()),
            },
            changed = to.changed() => if changed.is_err() { anyhow::bail!("the run ended without a final index") },
        }
    }
}

/// Runs once; on a failure keeps the nodes' data directories and logs and says where.
pub async fn run(cfg: &RunConfig) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut flags = vec!["--watch-history".to_string(), "100000000".to_string()];
    if cfg.faults.contains(&Fault::KillDuringSnapshotInstall) {
        flags.extend(nemesis::SNAPSHOT_FLAGS.iter().map(|f| f.to_string()));
    }
    flags.extend(cfg.server_flags.iter().cloned());
    let mut cluster = Cluster::start(cfg.tenured.clone(), cfg.nodes, &flags).await?;
    let result = run_on(&mut cluster, cfg, started).await;
    if !result.as_ref().is_ok_and(Outcome::passed) {
        eprintln!("chaos: data directories and logs kept in {}", cluster.keep().display());
    }
    result
}

async fn run_on(cluster: &mut Cluster, cfg: &RunConfig, started: Instant) -> anyhow::Result<Outcome> {
    let rec = Recorder::new(Instant::now());
    let (events_to_tx, events_to_rx) = watch::channel(0u64);
    let live_events = tokio::spawn(follow_events(cluster.endpoints(), events_to_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    let mut next_id = 0;
    for g in groups() {
        for _ in 0..g.clients {
            next_id += 1;
            let task = workload::run_client(next_id, g.clone(), cluster.endpoints(), rec.clone(), stop_rx.clone());
            clients.push(tokio::spawn(task));
        }
    }
    // Warm up, and make sure traffic flows before anything is broken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rec.count();

    let mut injections = Vec::new();
    for (i, &fault) in cfg.faults.iter().enumerate() {
        eprintln!("chaos: [{:>6.1}s] {} ({} nodes)", rec.now().as_secs_f64(), fault.name(), cfg.nodes);
        let client_id = 1000 + 2 * i as u32;
        let inj = nemesis::inject(cluster, fault, cfg.hold, &rec, client_id)
            .await
            .with_context(|| format!("fault {}", fault.name()))?;
        injections.push(inj);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Stop: every client must finish its current operation and release within a bound.
    let _ = stop_tx.send(true);
    let mut stuck = 0;
    for c in clients {
        match tokio::time::timeout(Duration::from_secs(60), c).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("chaos: a client failed: {e:#}"),
            Ok(Err(e)) => eprintln!("chaos: a client panicked: {e}"),
            Err(_) => stuck += 1,
        }
    }
    let applied = cluster.converge(Duration::from_secs(60)).await.context("final convergence")?;
    let all_ended = wait_no_locks(cluster).await;
    let applied = applied.max(cluster.converge(Duration::from_secs(60)).await.context("final convergence")?);

    let mut events = Vec::new();
    for id in 1..=cfg.nodes {
        events.push(cluster.events(id, applied).await?);
    }
    let _ = events_to_tx.send(applied);
    match tokio::time::timeout(Duration::from_secs(60), live_events).await {
        Ok(Ok(Ok(live))) => events.push(live),
        Ok(Ok(Err(e))) => eprintln!("chaos: the live event stream failed: {e:#}"),
        Ok(Err(e)) => eprintln!("chaos: the live event stream panicked: {e}"),
        Err(_) => eprintln!("chaos: the live event stream did not reach index {applied} within 60 s"),
    }
    let (ops, holds) = rec.take();
    let history = History { ops, holds, events };
    let mut report = check::check(&history, &CheckOptions { expect_all_ended: true, max_steps_per_lock: 5_000_000 });
    if stuck > 0 {
        report.violations.push(check::Violation {
            check: "L6 client stuck",
            lock: None,
            detail: format!("{stuck} clients did not finish within 60 s after the heal"),
        });
    }
    if !all_ended {
        report.violations.push(check::Violation {
            check: "L6 still held",
            lock: None,
            detail: "locks were still held or queued 45 s after every client released".into(),
        });
    }

    let (mut ok, mut failed, mut unknown) = (0, 0, 0);
    for op in &history.ops {
        match op {
            Op::Acquire { result: AcquireResult::Unknown, .. }
            | Op::Release { result: ReleaseResult::Unknown, .. }
            | Op::FencedPut { result: PutResult::Unknown, .. } => unknown += 1,
            Op::Acquire { result: AcquireResult::Granted { .. }, .. }
            | Op::Release { result: ReleaseResult::Done { .. }, .. }
            | Op::FencedPut { result: PutResult::Accepted { .. }, .. } => ok += 1,
            _ => failed += 1,
        }
    }
    let failovers = failovers(&history.ops, &injections);
    let mut invalid = Vec::new();
    if history.ops.len() < cfg.min_ops {
        invalid.push(format!("only {} operations (at least {} needed)", history.ops.len(), cfg.min_ops));
    }
    if before < 20 {
        invalid.push(format!("only {before} operations before the first fault"));
    }
    if injections.is_empty() {
        invalid.push("no fault was injected and healed".into());
    }
    if cfg.faults.contains(&Fault::PausedClientWrites) && injections.iter().map(|i| i.stale_rejected).sum::<u32>() == 0
    {
        invalid.push("no stale fenced write was rejected".into());
    }
    if !report.stats.events_complete {
        invalid.push(format!(
            "the committed events are not complete (no source covered {:?})",
            report.stats.events_uncovered
        ));
    }
    let accepted: u32 = injections.iter().map(|i| i.stale_accepted).sum();
    if accepted > 0 {
        report.violations.push(check::Violation {
            check: "L5 fence",
            lock: None,
            detail: format!("{accepted} stale fenced writes of a paused client were accepted"),
        });
    }
    Ok(Outcome {
        nodes: cfg.nodes,
        injections,
        report,
        ops: history.ops.len(),
        ok,
        failed,
        unknown,
        failovers,
        invalid,
        elapsed: started.elapsed(),
    })
}

/// Polls until no lock exists (everything released, expired or cancelled); false after 45 s.
async fn wait_no_locks(cluster: &Cluster) -> bool {
    let Ok(client) = Client::connect(cluster.endpoints()).await else { return false };
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Ok(locks) = client.list("").await {
            if locks.is_empty() {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For each leader kill: from the kill to the first acknowledged write called after it.
fn failovers(ops: &[Op], injections: &[Injection]) -> Vec<Duration> {
    let mut out = Vec::new();
    for inj in injections.iter().filter(|i| i.fault == Fault::KillLeader) {
        let first = ops
            .iter()
            .filter_map(|op| match op {
                Op::Acquire { call, ret: Some(ret), result: AcquireResult::Granted { .. }, .. }
                | Op::Release { call, ret: Some(ret), result: ReleaseResult::Done { .. }, .. }
                    if *call >= inj.at =>
                {
                    Some(*ret)
                }
                _ => None,
            })
            .min();
        if let Some(first) = first {
            out.push(first - inj.at);
        }
    }
    out
}

/// Counts per fault kind, for the report.
pub fn fault_counts(outcomes: &[Outcome]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes {
        for i in &o.injections {
            *m.entry(i.fault.name()).or_default() += 1;
        }
    }
    m
}

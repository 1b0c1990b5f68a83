//! The workloads. Each runs the same steps on tenure and on etcd, one after the other, and adds
//! its figures to the report.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::drive::{Driver, Hold, Session};
use crate::procs::{poll, Cluster, Kind};
use crate::stats::{Better, Latencies, Report};
use crate::Plan;

const TTL: Duration = Duration::from_secs(30);
/// Locks taken before a measurement starts, so connections and sessions are warm.
const WARMUP: Duration = Duration::from_millis(500);
/// An acquire that takes longer than this in a throughput run is a failure, not a figure.
const STUCK: Duration = Duration::from_secs(60);

/// What a run of acquire+release pairs measured.
#[derive(Default)]
struct Pairs {
    count: u64,
    secs: f64,
    acquire: Latencies,
    release: Latencies,
    pair: Latencies,
}

/// `workers` tasks, each taking and giving back `name(worker)` for `secs` after a warm-up.
async fn pairs(d: &Driver, workers: usize, secs: Duration, name: impl Fn(usize) -> String) -> anyhow::Result<Pairs> {
    let start = Instant::now() + WARMUP;
    let end = start + secs;
    let tasks = (0..workers).map(|w| {
        let name = name(w);
        async move {
            let session = d.session(TTL).await?;
            let mut out = Pairs::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return anyhow::Ok(out);
                }
                let acquire = tokio::time::timeout(STUCK, d.acquire(&session, &name, TTL));
                let hold = acquire.await.with_context(|| format!("acquire {name}: no answer"))??;
                let t1 = Instant::now();
                d.release(hold).await.with_context(|| format!("release {name}"))?;
                let t2 = Instant::now();
                // Throughput: every pair that ends in the window; latency: pairs wholly inside it.
                if t2 >= start && t2 <= end {
                    out.count += 1;
                }
                if t0 >= start && t2 <= end {
                    out.acquire.push(t1 - t0);
                    out.release.push(t2 - t1);
                    out.pair.push(t2 - t0);
                }
            }
        }
    });
    let results = futures::future::try_join_all(tasks).await?;
    let mut total = Pairs { secs: secs.as_secs_f64(), ..Pairs::default() };
    for r in results {
        total.count += r.count;
        total.acquire.merge(r.acquire);
        total.release.merge(r.release);
        total.pair.merge(r.pair);
    }
    Ok(total)
}

pub async fn uncontended(report: &mut Report, plan: &Plan, t: &Driver, e: &Driver, out: &Path) -> anyhow::Result<()> {
    let mut dat = String::from("# workers tenure_pairs_per_s etcd_pairs_per_s\n");
    for &w in &plan.workers {
        let ti0 = t.log_index(&[1, 2, 3]).await?;
        let mut tp = pairs(t, w, plan.secs, |i| format!("u{w}/{i}")).await?;
        let ti1 = t.log_index(&[1, 2, 3]).await?;
        let ei0 = e.log_index(&[1, 2, 3]).await?;
        let mut ep = pairs(e, w, plan.secs, |i| format!("u{w}/{i}")).await?;
        let ei1 = e.log_index(&[1, 2, 3]).await?;
        // Both runs include the warm-up; entries per pair is what the comparison needs.
        let (tpairs, epairs) = (tp.count.max(1) as f64, ep.count.max(1) as f64);
        let wl = format!("uncontended/{w}");
        let (tr, er) = (tp.count as f64 / tp.secs, ep.count as f64 / ep.secs);
        report.add(&wl, "pairs/s", "1/s", Better::Higher, Some(tr), Some(er));
        report.add(&wl, "acquire p50", "ms", Better::Lower, Some(tp.acquire.ms(50.0)), Some(ep.acquire.ms(50.0)));
        report.add(&wl, "acquire p99", "ms", Better::Lower, Some(tp.acquire.ms(99.0)), Some(ep.acquire.ms(99.0)));
        report.add(&wl, "pair p50", "ms", Better::Lower, Some(tp.pair.ms(50.0)), Some(ep.pair.ms(50.0)));
        report.add(&wl, "pair p99", "ms", Better::Lower, Some(tp.pair.ms(99.0)), Some(ep.pair.ms(99.0)));
        if w == 1 {
            report.add(&wl, "release p50", "ms", Better::Lower, Some(tp.release.ms(50.0)), Some(ep.release.ms(50.0)));
        }
        let t_entries = (ti1 - ti0) as f64 * tp.secs / (tp.secs + WARMUP.as_secs_f64()) / tpairs;
        let e_entries = (ei1 - ei0) as f64 * ep.secs / (ep.secs + WARMUP.as_secs_f64()) / epairs;
        report.add(&wl, "log entries per pair", "count", Better::Info, Some(t_entries), Some(e_entries));
        dat.push_str(&format!("{w} {tr:.1} {er:.1}\n"));
    }
    std::fs::write(out.join("pairs.dat"), dat)?;
    Ok(())
}

/// 16 workers on one lock. For tenure, a watch on the lock records every QUEUED and GRANTED as
/// committed, and the grants must follow the queue.
pub async fn contended(report: &mut Report, plan: &Plan, t: &Driver, e: &Driver) -> anyhow::Result<()> {
    const WORKERS: usize = 16;
    let name = "contended";
    let client = t.tenure_client().context("tenure driver")?.clone();
    let mut watch = client.watch(name).start().await?;
    // Where the watch may stop: the leader's commit index once the workers are done.
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let until = until.clone();
        tokio::spawn(async move {
            let mut events = Vec::new();
            while watch.applied_index() < until.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), watch.next()).await {
                    Ok(Some(Ok(ev))) => events.push(ev),
                    Ok(Some(Err(err))) => return Err(anyhow::Error::from(err)),
                    Ok(None) => bail!("the watch on {name} ended before the run did"),
                    Err(_) => {}
                }
            }
            Ok(events)
        })
    };
    let mut tp = pairs(t, WORKERS, plan.secs, |_| name.to_string()).await?;
    until.store(t.log_index(&[1, 2, 3]).await?, Ordering::Relaxed);
    let events =
        tokio::time::timeout(Duration::from_secs(30), watcher).await.context("the watch did not catch up")???;
    let (queued, out_of_order) = fifo_check(&events);
    if queued == 0 {
        bail!("contended: the watch saw no grant of a queued request ({} events)", events.len());
    }
    let mut ep = pairs(e, WORKERS, plan.secs, |_| name.to_string()).await?;
    let wl = "contended/16";
    report.add(
        wl,
        "handoffs/s",
        "1/s",
        Better::Higher,
        Some(tp.count as f64 / tp.secs),
        Some(ep.count as f64 / ep.secs),
    );
    report.add(wl, "wait p50", "ms", Better::Lower, Some(tp.acquire.ms(50.0)), Some(ep.acquire.ms(50.0)));
    report.add(wl, "wait p99", "ms", Better::Lower, Some(tp.acquire.ms(99.0)), Some(ep.acquire.ms(99.0)));
    report.add(wl, "queued grants checked", "count", Better::Info, Some(queued as f64), None);
    report.add(wl, "grants out of queue order", "count", Better::Info, Some(out_of_order as f64), None);
    if out_of_order > 0 {
        bail!("contended: {out_of_order} of {queued} queued grants did not follow the queue");
    }
    Ok(())
}

/// Replays QUEUED/GRANTED/CANCELLED/EXPIRED events of one lock (exclusive requests only): every
/// grant of a queued request must go to the head of the queue, and a request that never queued
/// may be granted only while the queue is empty (else it barged). Returns (queued grants seen,
/// grants out of order).
fn fifo_check(events: &[tenure::LockEvent]) -> (usize, usize) {
    use tenure::LockEventKind as K;
    let mut queue: VecDeque<&str> = VecDeque::new();
    let (mut checked, mut bad) = (0, 0);
    for ev in events {
        match ev.kind {
            K::Queued => {
                // The position the server gave must be the queue's length with this request.
                if ev.position != queue.len() as u64 + 1 {
                    bad += 1;
                }
                queue.push_back(&ev.request_id);
            }
            K::Granted => {
                if let Some(at) = queue.iter().position(|r| *r == ev.request_id) {
                    checked += 1;
                    if at != 0 {
                        bad += 1;
                    }
                    queue.remove(at);
                } else if !queue.is_empty() {
                    bad += 1;
                }
            }
            K::Cancelled | K::Expired => queue.retain(|r| *r != ev.request_id),
            K::Released => {}
        }
    }
    (checked, bad)
}

pub async fn reads(report: &mut Report, plan: &Plan, t: &Driver, e: &Driver) -> anyhow::Result<()> {
    const WORKERS: usize = 16;
    for linearizable in [true, false] {
        let mut rates = Vec::new();
        for d in [t, e] {
            let session = d.session(TTL).await?;
            let hold = d.acquire(&session, "reads", TTL).await?;
            let count = AtomicU64::new(0);
            let start = Instant::now() + WARMUP;
            let end = start + plan.secs;
            let count = &count;
            futures::future::try_join_all((0..WORKERS).map(|_| async move {
                while Instant::now() < end {
                    d.describe("reads", linearizable).await?;
                    if Instant::now() >= start {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            }))
            .await?;
            d.release(hold).await?;
            rates.push(count.load(Ordering::Relaxed) as f64 / plan.secs.as_secs_f64());
        }
        let what = if linearizable { "linearizable describe/s" } else { "stale describe/s" };
        report.add("reads/16", what, "1/s", Better::Higher, Some(rates[0]), Some(rates[1]));
    }
    Ok(())
}

/// `n` held leases kept alive for a while: CPU per member, and Raft log entries per second
/// (renewals are not logged, so this should be ~0 for both).
pub async fn keepalive(
    report: &mut Report,
    plan: &Plan,
    (tc, t): (&Cluster, &Driver),
    (ec, e): (&Cluster, &Driver),
) -> anyhow::Result<()> {
    const KA_TTL: Duration = Duration::from_secs(10);
    let n = plan.keepalive_leases;
    let mut cpu = Vec::new();
    let mut entries = Vec::new();
    let mut lost = 0usize;
    for (c, d) in [(tc, t), (ec, e)] {
        // etcd: one lease per lock, each kept alive by its own stream (etcd-client's LeaseKeeper);
        // tenure: the client renews all of them on one KeepAlive stream.
        let holds: Vec<(Session, Hold)> = stream::iter(0..n)
            .map(|i| async move {
                let s = d.session(KA_TTL).await?;
                let h = d.acquire(&s, &format!("ka/{i}"), KA_TTL).await?;
                anyhow::Ok((s, h))
            })
            .buffer_unordered(256)
            .try_collect()
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu0, idx0) = (c.cpu_seconds(), d.log_index(&[1, 2, 3]).await?);
        let t0 = Instant::now();
        tokio::time::sleep(plan.keepalive_secs).await;
        let (cpu1, idx1) = (c.cpu_seconds(), d.log_index(&[1, 2, 3]).await?);
        let secs = t0.elapsed().as_secs_f64();
        let per_node: Vec<f64> = cpu0.iter().zip(&cpu1).map(|(a, b)| (b - a) / secs * 100.0).collect();
        cpu.push(per_node.iter().cloned().fold(0.0, f64::max));
        entries.push((idx1 - idx0) as f64 / secs);
        if c.kind == Kind::Tenure {
            lost = holds.iter().filter(|(_, h)| matches!(h, Hold::Tenure(g) if !g.is_held())).count();
        }
        stream::iter(holds)
            .map(|(s, h)| async move {
                d.release(h).await?;
                drop(s);
                anyhow::Ok(())
            })
            .buffer_unordered(256)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let wl = format!("keepalive/{}", n);
    report.add(&wl, "CPU of the busiest member", "%", Better::Lower, Some(cpu[0]), Some(cpu[1]));
    report.add(&wl, "log entries written", "1/s", Better::Info, Some(entries[0]), Some(entries[1]));
    report.add(&wl, "leases lost", "count", Better::Info, Some(lost as f64), None);
    if lost > 0 {
        bail!("keepalive: {lost} of {n} tenure leases were lost while kept alive");
    }
    Ok(())
}

/// SIGKILL the leader, then time until a client's acquire of a free lock succeeds. The killed
/// member is restarted and caught up before the next kill.
pub async fn failover(
    report: &mut Report,
    plan: &Plan,
    (tc, t): (&mut Cluster, &Driver),
    (ec, e): (&mut Cluster, &Driver),
) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for (c, d) in [(tc, t), (ec, e)] {
        let mut lat = Latencies::default();
        for k in 0..plan.kills {
            d.converged(&[1, 2, 3], Duration::from_secs(60)).await?;
            let leader = d.ready(&[1, 2, 3], Duration::from_secs(30)).await?;
            // etcd-client may pick the member restarted a moment ago, and does not retry.
            let session = poll("a lease", Duration::from_secs(30), || async { d.bare_session(TTL).await.ok() }).await?;
            let name = format!("failover/{k}");
            c.kill(leader);
            let t0 = Instant::now();
            let wall0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            // tenure's client retries by itself within its call; etcd-client does not, and waits
            // out its 5 s request timeout on a dead member, so its attempts get 100 ms each (a
            // healthy etcd answers a Lock in ~1 ms here) and are retried, as a careful etcd user
            // would; that rounds etcd's figure up by at most ~110 ms.
            let attempt = match c.kind {
                Kind::Tenure => Duration::from_secs(30),
                Kind::Etcd => Duration::from_millis(100),
            };
            let hold = loop {
                match tokio::time::timeout(attempt, d.acquire(&session, &name, TTL)).await {
                    Ok(Ok(h)) => break h,
                    _ if t0.elapsed() < Duration::from_secs(30) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(Err(err)) => return Err(err.context(format!("{}: acquire after kill {k}", c.kind.name()))),
                    Err(_) => bail!("{}: no acquire within 30 s of killing the leader (kill {k})", c.kind.name()),
                }
            };
            let took = t0.elapsed();
            lat.push(took);
            println!(
                "   {} kill {k}: leader {leader} killed, first acquire after {} ms (killed at unix {:.3})",
                c.kind.name(),
                took.as_millis(),
                wall0.as_secs_f64()
            );
            let _ = d.release(hold).await;
            c.start(leader)?;
        }
        d.converged(&[1, 2, 3], Duration::from_secs(60)).await?;
        figures.push(lat);
    }
    let wl = format!("failover/{}", plan.kills);
    let (mut tl, mut el) = (figures.remove(0), figures.remove(0));
    report.add(&wl, "kill → acquire p50", "ms", Better::Lower, Some(tl.ms(50.0)), Some(el.ms(50.0)));
    report.add(&wl, "kill → acquire p99", "ms", Better::Lower, Some(tl.ms(99.0)), Some(el.ms(99.0)));
    report.add(&wl, "kill → acquire max", "ms", Better::Lower, Some(tl.ms(100.0)), Some(el.ms(100.0)));
    Ok(())
}

/// `n` waiters queue on one held lock; then the holder lets go and each waiter takes the lock
/// and gives it back at once.
pub async fn waiters(
    report: &mut Report,
    plan: &Plan,
    (tc, t): (&Cluster, &Driver),
    (ec, e): (&Cluster, &Driver),
) -> anyhow::Result<()> {
    let n = plan.waiters;
    let mut drain = Vec::new();
    let mut rss = Vec::new();
    for (c, d) in [(tc, t), (ec, e)] {
        let name = "waiters";
        let holder_session = d.session(TTL).await?;
        let holder = d.acquire(&holder_session, name, TTL).await?;
        // etcd waiters need a lease each (a lock key is `<name>/<lease>`).
        let sessions: Vec<Session> = stream::iter(0..n)
            .map(|_| d.bare_session(Duration::from_secs(600)))
            .buffer_unordered(64)
            .try_collect()
            .await?;
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = sessions
            .into_iter()
            .map(|s| {
                let done = done.clone();
                let d = d.clone();
                tokio::spawn(async move {
                    let h = d.acquire(&s, name, TTL).await?;
                    d.release(h).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    anyhow::Ok(())
                })
            })
            .collect();
        poll(&format!("{}: {n} waiters queued", c.kind.name()), Duration::from_secs(300), || async {
            (d.waiters(name).await.ok()? >= n).then_some(())
        })
        .await?;
        let mem = c.rss_mib().into_iter().fold(0.0, f64::max);
        let t0 = Instant::now();
        d.release(holder).await?;
        let drained = tokio::time::Instant::now() + Duration::from_secs(600);
        for task in tasks {
            tokio::time::timeout_at(drained, task).await.context("waiters: drain")???;
        }
        let took = t0.elapsed();
        println!("   {}: {n} waiters drained in {took:.1?}", c.kind.name());
        drain.push(took.as_secs_f64());
        rss.push(mem);
    }
    let wl = format!("waiters/{n}");
    report.add(&wl, "time to drain", "s", Better::Lower, Some(drain[0]), Some(drain[1]));
    report.add(
        &wl,
        "grants/s while draining",
        "1/s",
        Better::Higher,
        Some(n as f64 / drain[0]),
        Some(n as f64 / drain[1]),
    );
    report.add(&wl, "RSS of the busiest member, queued", "MiB", Better::Lower, Some(rss[0]), Some(rss[1]));
    Ok(())
}

/// `n` locks taken and held (long TTL, no renewals): RSS per member, snapshot size and build
/// time, and how long a full restart takes until a linearizable read answers.
pub async fn scale(
    report: &mut Report,
    plan: &Plan,
    (tc, t): (&mut Cluster, &Driver),
    (ec, e): (&mut Cluster, &Driver),
) -> anyhow::Result<()> {
    let n = plan.scale_locks;
    let hold_ttl = Duration::from_secs(3600);
    let mut rows: Vec<[f64; 6]> = Vec::new();
    for (c, d) in [(tc, t), (ec, e)] {
        let sessions: Vec<Session> = futures::future::try_join_all((0..64).map(|_| d.bare_session(hold_ttl))).await?;
        let sessions = &sessions;
        let t0 = Instant::now();
        let taken = AtomicU64::new(0);
        let taken = &taken;
        let kind = c.kind.name();
        stream::iter(0..n)
            .map(|i| async move {
                let h = d.acquire(&sessions[i % sessions.len()], &scale_name(i), hold_ttl).await?;
                if let Hold::Tenure(g) = h {
                    // Held, with no renewals: the TTL outlasts the run.
                    g.detach();
                }
                let k = taken.fetch_add(1, Ordering::Relaxed) + 1;
                if k.checked_rem(100_000) == Some(0) {
                    println!("   {kind}: {k} locks held after {:.0?}", t0.elapsed());
                }
                anyhow::Ok(())
            })
            .buffer_unordered(512)
            .try_collect::<Vec<()>>()
            .await?;
        let load_rate = n as f64 / t0.elapsed().as_secs_f64();
        d.converged(&[1, 2, 3], Duration::from_secs(120)).await?;
        let rss = c.rss_mib().into_iter().fold(0.0, f64::max);
        let (snap_bytes, snap_secs) = match c.kind {
            Kind::Tenure => tenure_snapshot(c, d, n).await?,
            Kind::Etcd => {
                let s0 = Instant::now();
                let bytes = d.etcd_snapshot_bytes().await?;
                (bytes as f64, s0.elapsed().as_secs_f64())
            }
        };
        c.stop_all();
        let r0 = Instant::now();
        for id in 1..=3 {
            c.start(id)?;
        }
        poll(&format!("{}: ready after restart", c.kind.name()), Duration::from_secs(300), || async {
            d.describe(&scale_name(n - 1), true).await.ok()
        })
        .await?;
        let restart = r0.elapsed().as_secs_f64();
        let rss_after = c.rss_mib().into_iter().fold(0.0, f64::max);
        println!(
            "   {}: {n} locks at {load_rate:.0}/s; RSS {rss:.0} MiB; snapshot {:.1} MiB in {snap_secs:.2} s; restart {restart:.2} s",
            c.kind.name(),
            snap_bytes / 1048576.0
        );
        rows.push([load_rate, rss, snap_bytes / 1048576.0, snap_secs, restart, rss_after]);
        d.converged(&[1, 2, 3], Duration::from_secs(120)).await?;
    }
    let wl = format!("scale/{n}");
    let (tr, er) = (rows[0], rows[1]);
    report.add(&wl, "locks taken/s while loading", "1/s", Better::Higher, Some(tr[0]), Some(er[0]));
    report.add(&wl, "RSS of the busiest member", "MiB", Better::Lower, Some(tr[1]), Some(er[1]));
    report.add(&wl, "snapshot size", "MiB", Better::Lower, Some(tr[2]), Some(er[2]));
    report.add(&wl, "snapshot build time", "s", Better::Lower, Some(tr[3]), Some(er[3]));
    report.add(&wl, "restart to ready", "s", Better::Lower, Some(tr[4]), Some(er[4]));
    report.add(&wl, "RSS after restart", "MiB", Better::Lower, Some(tr[5]), Some(er[5]));
    Ok(())
}

fn scale_name(i: usize) -> String {
    format!("scale/{i:07}")
}

/// Writes entries until every node has built a snapshot holding at least `n` records; returns
/// the newest snapshot's size and build time, from the node's log.
async fn tenure_snapshot(c: &Cluster, d: &Driver, n: usize) -> anyhow::Result<(f64, f64)> {
    let client = d.tenure_client().context("tenure driver")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    // Only snapshots built after the load count: an earlier one may hold tombstones and KV
    // records enough to pass `n` with fewer locks.
    let before: Vec<usize> = c.members.iter().map(|m| snapshot_lines(&m.log).len()).collect();
    loop {
        let built: Vec<Option<(u64, u64, u64)>> =
            c.members.iter().zip(&before).map(|(m, &b)| snapshot_lines(&m.log).get(b..)?.last().copied()).collect();
        if built.iter().all(|b| b.is_some_and(|(records, _, _)| records >= n as u64)) {
            let (_, bytes, ms) = built[0].unwrap_or_default();
            return Ok((bytes as f64, ms as f64 / 1000.0));
        }
        if Instant::now() > deadline {
            bail!("tenure: no snapshot of {n} records within 300 s: {built:?}");
        }
        // KV writes: log entries that add no lock (a million locks is the default cap).
        for i in 0..200 {
            client.kv().put("bench/scale-churn", i.to_string(), None).await?;
        }
    }
}

/// (records, bytes, took_ms) of every "built snapshot" line of a tenured log, in order.
fn snapshot_lines(log: &Path) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("built snapshot"))
        .filter_map(|l| {
            let line = strip_ansi(l);
            let field = |key: &str| -> Option<u64> {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.trim_end_matches(',').parse().ok())
            };
            Some((field("records=")?, field("bytes=")?, field("took_ms=")?))
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// tenure alone, for `plan.soak`: 16 workers taking and releasing 1000 locks while 1000 other
/// leases are kept alive. Every minute: RSS and data-directory size of every member.
pub async fn soak(report: &mut Report, plan: &Plan, c: &Cluster, d: &Driver, out: &Path) -> anyhow::Result<()> {
    const WORKERS: usize = 16;
    let held: Vec<Hold> = stream::iter(0..1000)
        .map(|i| async move { d.acquire(&Session::Tenure, &format!("soak-held/{i}"), Duration::from_secs(10)).await })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let end = Instant::now() + plan.soak;
    let pairs_done = AtomicU64::new(0);
    let pairs_done = &pairs_done;
    let sample = Duration::from_secs(60).min(plan.soak / 4).max(Duration::from_secs(1));
    let sampler = async {
        let mut tsv = String::from("# seconds pairs rss_mib_max disk_mib_total\n");
        let mut samples = Vec::new();
        let t0 = Instant::now();
        while Instant::now() < end {
            tokio::time::sleep(sample.min(end.saturating_duration_since(Instant::now()))).await;
            let rss = c.rss_mib().into_iter().fold(0.0, f64::max);
            let disk = c.disk_bytes().iter().sum::<u64>() as f64 / 1048576.0;
            let s = t0.elapsed().as_secs_f64();
            let p = pairs_done.load(Ordering::Relaxed);
            println!("   soak {s:>6.0} s: {p} pairs, RSS {rss:.0} MiB, disk {disk:.1} MiB");
            tsv.push_str(&format!("{s:.0} {p} {rss:.1} {disk:.1}\n"));
            samples.push((rss, disk));
        }
        std::fs::write(out.join("soak.tsv"), tsv)?;
        anyhow::Ok(samples)
    };
    let workers = futures::future::try_join_all((0..WORKERS).map(|w| async move {
        let mut i = w;
        while Instant::now() < end {
            let h = d.acquire(&Session::Tenure, &format!("soak/{}", i % 1000), TTL).await?;
            d.release(h).await?;
            pairs_done.fetch_add(1, Ordering::Relaxed);
            i += WORKERS;
        }
        anyhow::Ok(())
    }));
    let (samples, _) = tokio::try_join!(sampler, workers)?;
    let lost = held.iter().filter(|h| matches!(h, Hold::Tenure(g) if !g.is_held())).count();
    for h in held {
        d.release(h).await?;
    }
    let secs = plan.soak.as_secs_f64();
    let wl = format!("soak/{}s", plan.soak.as_secs());
    // Flat: compare the last quarter with the second quarter (after start-up growth).
    let q = samples.len() / 4;
    let (early, late) = (&samples[q.min(samples.len() - 1)], &samples[samples.len() - 1]);
    report.add(&wl, "pairs/s", "1/s", Better::Info, Some(pairs_done.load(Ordering::Relaxed) as f64 / secs), None);
    report.add(&wl, "RSS max member, at 1/4", "MiB", Better::Info, Some(early.0), None);
    report.add(&wl, "RSS max member, at end", "MiB", Better::Info, Some(late.0), None);
    report.add(&wl, "disk all members, at 1/4", "MiB", Better::Info, Some(early.1), None);
    report.add(&wl, "disk all members, at end", "MiB", Better::Info, Some(late.1), None);
    report.add(&wl, "kept-alive leases lost", "count", Better::Info, Some(lost as f64), None);
    if lost > 0 {
        bail!("soak: {lost} of 1000 kept-alive leases were lost");
    }
    Ok(())
}

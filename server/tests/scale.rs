//! Scale: a million distinct held locks on a 3-node cluster (converged on every node, listed
//! whole, unchanged across a restart of every node), and ten thousand waiters on one lock
//! (granted strictly in queue order, one per release). Slow, so ignored by default:
//!
//! ```text
//! cargo test -p tenure-server --test scale -- --ignored --nocapture
//! ```
//!
//! `TENURE_SCALE_LOCKS` overrides the million (for trying the test on a slow machine; the test
//! prints the size it used).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::frames::rss_of;
use common::*;
use tenure_proto::v1 as pb;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Locks = pb::locks_client::LocksClient<Channel>;

const HOUR_MS: u64 = 3_600_000;
const LONG_TTL_MS: u64 = 24 * HOUR_MS;
/// The server's defaults, which these tests fill exactly.
const DEFAULT_MAX_LOCKS: usize = 1_000_000;
const DEFAULT_MAX_WAITERS: usize = 10_000;

/// Waits (up to `within`) for a leader whose lease clock is live, as `Cluster::leader` does,
/// but with room for nodes that take a while to load a million locks.
async fn serving_leader(cluster: &Cluster, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        for n in &cluster.nodes {
            let Some(s) = cluster.status(n.id).await else { continue };
            if s.role != pb::MemberRole::Leader as i32 {
                continue;
            }
            let probe = pb::RenewRequest { name: "scale-probe".into(), request_id: "scale-probe".into() };
            if let Err(st) = cluster.locks(n.id).await.renew(probe).await {
                if st.code() == Code::NotFound {
                    return n.id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader serving renewals within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_line(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| match rss_of(n) {
            Some((rss, hwm)) => format!("node {}: RSS {} MiB (peak {} MiB)", n.id, rss / 1024, hwm / 1024),
            None => format!("node {}: RSS unknown", n.id),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a failed call is worth repeating (same request id, so never a second acquire), and
/// which node to repeat it on.
fn retry_on(st: &Status, leader: u64) -> Option<u64> {
    let d = detail(st);
    match (st.code(), d.code.as_str()) {
        (Code::Unavailable, "NOT_LEADER") => Some(d.leader_id),
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown, _) => Some(leader),
        _ => None,
    }
}

/// Acquires, following redirects and retrying transient failures with the same request id.
async fn acquire_retrying(clients: &BTreeMap<u64, Locks>, leader: &AtomicU64, req: pb::AcquireRequest) -> pb::Lease {
    for attempt in 0..50 {
        let id = leader.load(Ordering::Relaxed);
        let mut c = clients[&id].clone();
        match c.acquire(req.clone()).await {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(outcome(&r), pb::AcquireOutcome::Granted, "{}: {r:?}", req.name);
                return r.lease.unwrap();
            }
            Err(st) => match retry_on(&st, id) {
                Some(next) => {
                    leader.store(next, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
                }
                None => panic!("acquire {}: {:?} {}", req.name, st.code(), st.message()),
            },
        }
    }
    panic!("acquire {} kept failing", req.name);
}

fn scale_name(i: usize) -> String {
    format!("scale/{i:07}")
}

/// Lists every lock under `prefix` from node `id` (STALE: that node's own state), checking
/// each is held once with no waiters; answers the names in order.
async fn list_all(cluster: &Cluster, id: u64, prefix: &str, consistency: pb::Consistency) -> Vec<String> {
    let mut c = cluster.locks(id).await;
    let mut names = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        assert!(page <= 2_000_000, "List never ended");
        let req = pb::ListLocksRequest {
            prefix: prefix.into(),
            page_size: 1000,
            page_token: token,
            consistency: consistency as i32,
        };
        let r = c.list(req).await.unwrap_or_else(|e| panic!("List page {page} on node {id}: {e:?}")).into_inner();
        for l in &r.locks {
            assert_eq!((l.holders, l.waiters), (1, 0), "{} on node {id}", l.name);
        }
        names.extend(r.locks.into_iter().map(|l| l.name));
        if r.next_page_token.is_empty() {
            return names;
        }
        token = r.next_page_token;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale: run with --ignored (ci/chaos.sh --long)"]
async fn a_million_held_locks_converge_list_whole_and_survive_a_restart_of_every_node() {
    let n: usize = std::env::var("TENURE_SCALE_LOCKS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_MAX_LOCKS);
    println!("scale: {n} locks (TENURE_SCALE_LOCKS overrides)");
    // For the full run both are the defaults (1 000 000 locks, a snapshot every 10 000 entries);
    // set explicitly so that a smaller run still fills the cap exactly and builds snapshots.
    let max_locks = n.to_string();
    let snapshot_interval = (n / 100).clamp(1000, 10_000).to_string();
    // Leases of a day, so that nothing expires however slow the machine is.
    let max_ttl = LONG_TTL_MS.to_string();
    let flags = ["--max-locks", &max_locks, "--snapshot-interval", &snapshot_interval, "--max-ttl-ms", &max_ttl];
    let mut cluster = Cluster::start(3, &flags).await;
    let leader = Arc::new(AtomicU64::new(cluster.leader().await));
    let mut clients = BTreeMap::new();
    for id in 1..=3 {
        clients.insert(id, cluster.locks(id).await);
    }
    let clients = Arc::new(clients);

    // 1. Acquire n distinct locks from 64 concurrent tasks.
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 64;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (clients, leader, done) = (clients.clone(), leader.clone(), done.clone());
            tokio::spawn(async move {
                let mut tokens = Vec::with_capacity(n / TASKS + 1);
                for i in (t..n).step_by(TASKS) {
                    let req = pb::AcquireRequest {
                        name: scale_name(i),
                        owner: "scale".into(),
                        request_id: format!("s{i:07}"),
                        ttl_ms: LONG_TTL_MS,
                        ..Default::default()
                    };
                    tokens.push((i, acquire_retrying(&clients, &leader, req).await.token));
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d % 100_000 == 0 {
                        println!("  {d} acquired after {:.1?}", started.elapsed());
                    }
                }
                tokens
            })
        })
        .collect();
    let mut tokens = vec![0u64; n];
    for t in tasks {
        for (i, token) in t.await.unwrap() {
            tokens[i] = token;
        }
    }
    let acquire_time = started.elapsed();
    let leader_id = leader.load(Ordering::Relaxed);
    let entries = cluster.last_log_index(leader_id).await;
    println!(
        "acquired {n} locks in {acquire_time:.1?} ({:.0}/s) in {entries} log entries; {}",
        n as f64 / acquire_time.as_secs_f64(),
        rss_line(&cluster)
    );
    let mut sorted = tokens.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "every grant has its own token");
    assert!(sorted[0] > 0);

    // The cap is reached exactly: one lock more is refused, naming the cap.
    let mut c = clients[&leader_id].clone();
    let st = c.acquire(acquire_req("scale-one-too-many", "s-extra", HOUR_MS, 0)).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).code.as_str()), (Code::ResourceExhausted, "RESOURCE_EXHAUSTED"));
    assert!(st.message().contains(&format!("max_locks ({n})")), "{}", st.message());

    // 2. Every node converges, and lists exactly the same n locks from its own state.
    let t = Instant::now();
    let target = cluster.last_log_index(leader_id).await;
    for id in 1..=3 {
        eventually(&format!("node {id} applies up to {target}"), Duration::from_secs(300), || async {
            cluster.status(id).await.filter(|s| s.applied_index >= target).map(|_| ())
        })
        .await;
    }
    println!("converged in {:.1?}", t.elapsed());
    let expected: Vec<String> = (0..n).map(scale_name).collect();
    for id in 1..=3 {
        let t = Instant::now();
        let names = list_all(&cluster, id, "scale/", pb::Consistency::Stale).await;
        assert!(names == expected, "node {id} lists {} locks, not the {n} acquired", names.len());
        println!("node {id}: List paged through {} locks in {:.1?}", names.len(), t.elapsed());
    }

    // 3. Snapshots were built.
    for id in 1..=3 {
        let s = cluster.status(id).await.unwrap();
        println!("node {id}: snapshot_index {} purged_index {}", s.snapshot_index, s.purged_index);
        assert!(s.snapshot_index > 0, "node {id} built no snapshot");
        assert!(cluster.log_of(id).contains("built snapshot"), "node {id} logged no snapshot");
    }

    // 4. Restart every node at once (SIGKILL), and find everything as it was.
    let sample: Vec<usize> = (0..n).step_by(997).chain([n - 1]).collect();
    let t = Instant::now();
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    let leader_id = serving_leader(&cluster, Duration::from_secs(300)).await;
    println!("restarted all three nodes; leader {leader_id} serving after {:.1?}; {}", t.elapsed(), rss_line(&cluster));
    for id in 1..=3 {
        let s = eventually(&format!("node {id} answers status"), Duration::from_secs(60), || cluster.status(id)).await;
        println!("node {id} after restart: snapshot_index {} applied_index {}", s.snapshot_index, s.applied_index);
        assert!(s.snapshot_index > 0, "node {id} lost its snapshot across the restart");
    }
    let t = Instant::now();
    let names = list_all(&cluster, leader_id, "scale/", pb::Consistency::Linearizable).await;
    assert!(names == expected, "after the restart the leader lists {} locks, not {n}", names.len());
    println!("after restart: leader lists all {n} locks in {:.1?}", t.elapsed());
    let target = cluster.last_log_index(leader_id).await;
    for id in 1..=3 {
        eventually(&format!("node {id} applies up to {target}"), Duration::from_secs(300), || async {
            cluster.status(id).await.filter(|s| s.applied_index >= target).map(|_| ())
        })
        .await;
        let names = list_all(&cluster, id, "scale/", pb::Consistency::Stale).await;
        assert!(names == expected, "after the restart node {id} lists {} locks, not {n}", names.len());
    }
    let leader = AtomicU64::new(leader_id);
    for &i in &sample {
        let d = describe_on_leader(&clients, &leader, &scale_name(i)).await;
        let holders: Vec<(String, u64)> = d.holders.into_iter().map(|h| (h.request_id, h.token)).collect();
        assert_eq!(holders, vec![(format!("s{i:07}"), tokens[i])], "lock {i} after the restart");
    }
    println!("{} sampled locks kept their holder and token; total {:.1?}", sample.len(), started.elapsed());
    for id in 1..=3 {
        let log = cluster.log_of(id);
        let terms: Vec<String> = log
            .lines()
            .filter(|l| l.contains("leader lease clock started"))
            .map(|l| {
                let words: Vec<String> = plain(l)
                    .split_whitespace()
                    .filter(|w| w.starts_with("term=") || w.starts_with("leases="))
                    .map(str::to_string)
                    .collect();
                format!("({})", words.join(" "))
            })
            .collect();
        println!("node {id} became leader {} time(s): {}", terms.len(), terms.join(", "));
    }
}

/// A log line without its colour codes.
fn plain(line: &str) -> String {
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

/// A linearizable Describe, following the leader if it moves.
async fn describe_on_leader(clients: &BTreeMap<u64, Locks>, leader: &AtomicU64, name: &str) -> pb::DescribeResponse {
    for attempt in 0..50 {
        let id = leader.load(Ordering::Relaxed);
        let mut c = clients[&id].clone();
        match c.describe(pb::DescribeRequest { name: name.into(), consistency: 0 }).await {
            Ok(d) => return d.into_inner(),
            Err(st) => match retry_on(&st, id) {
                Some(next) => {
                    println!(
                        "  describe {name} on node {id}: {:?} {}; now asking node {next}",
                        st.code(),
                        st.message()
                    );
                    leader.store(next, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
                }
                None => panic!("describe {name}: {:?} {}", st.code(), st.message()),
            },
        }
    }
    panic!("describe {name} kept failing");
}

/// One waiter's place: (position it was given, request id).
type Place = (u64, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale: run with --ignored (ci/chaos.sh --long)"]
async fn ten_thousand_waiters_are_granted_in_queue_order_one_per_release() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let mut c = cluster.locks(leader).await;
    let name = "crowded";
    // Owners and request ids at their size limits: the full queue is the largest Describe.
    let rid = |k: usize| format!("w{k:05}-{}", "r".repeat(57));
    let owner = "o".repeat(256);
    let holder = acquire_req(name, "crowded-holder", HOUR_MS, 0);
    let first = c.acquire(holder).await.unwrap().into_inner().lease.expect("the holder is granted");

    // 1. Queue DEFAULT_MAX_WAITERS waiters from 32 concurrent tasks; each learns its position.
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let (mut c, owner) = (c.clone(), owner.clone());
            tokio::spawn(async move {
                let mut places: Vec<Place> = Vec::new();
                for k in (t..DEFAULT_MAX_WAITERS).step_by(32) {
                    let req = pb::AcquireRequest { owner: owner.clone(), ..acquire_req(name, &rid(k), HOUR_MS, 1) };
                    let r = c.acquire(req).await.unwrap_or_else(|e| panic!("waiter {k}: {e:?}")).into_inner();
                    assert_eq!(outcome(&r), pb::AcquireOutcome::Queued, "waiter {k}");
                    places.push((r.position, rid(k)));
                }
                places
            })
        })
        .collect();
    let mut order: Vec<Place> = Vec::new();
    for t in tasks {
        order.extend(t.await.unwrap());
    }
    order.sort();
    let positions: Vec<u64> = order.iter().map(|p| p.0).collect();
    assert_eq!(positions, (1..=DEFAULT_MAX_WAITERS as u64).collect::<Vec<_>>(), "each position given once");
    let order: Vec<String> = order.into_iter().map(|p| p.1).collect();
    println!("queued {DEFAULT_MAX_WAITERS} waiters in {:.1?}", started.elapsed());

    // The queue is full: one more is refused, naming the cap.
    let st = c.acquire(acquire_req(name, "one-too-many", HOUR_MS, 1)).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted);
    assert!(st.message().contains("max_waiters_per_lock (10000)"), "{}", st.message());

    let describe = |mut c: Locks| async move {
        let d = pb::DescribeRequest { name: name.into(), consistency: 0 };
        c.describe(d).await.unwrap_or_else(|e| panic!("describe: {:?} {}", e.code(), e.message())).into_inner()
    };
    let d = describe(c.clone()).await;
    println!("a Describe of the full queue is {} bytes", prost::Message::encoded_len(&d));
    assert_eq!(d.waiters.iter().map(|w| w.request_id.clone()).collect::<Vec<_>>(), order, "Describe shows the queue");

    // The first three waiters wait in calls of their own: a release must end exactly one.
    let waiting: Vec<_> = order[..3]
        .iter()
        .map(|r| {
            let mut c = c.clone();
            let req = pb::AcquireRequest { owner: owner.clone(), ..acquire_req(name, r, HOUR_MS, 60_000) };
            tokio::spawn(async move { c.acquire(req).await.map(|r| r.into_inner()) })
        })
        .collect();

    // 2. Release the holder, then each grantee in turn, watching the lock's events.
    let watch = pb::WatchRequest { selector: Some(pb::watch_request::Selector::Name(name.into())), start_index: 0 };
    let mut events = c.watch(watch).await.unwrap().into_inner();
    let mut pending: Vec<pb::WatchEvent> = Vec::new();
    let started = Instant::now();
    let mut holder = ("crowded-holder".to_string(), first.token);
    let mut waiting = waiting.into_iter();
    // Where the drain's time goes: the Release calls, the watch, the List checks.
    let (mut in_release, mut in_watch, mut in_list) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (k, next) in order.iter().enumerate() {
        let rel = pb::ReleaseRequest { name: name.into(), request_id: holder.0.clone() };
        let t = Instant::now();
        assert!(c.release(rel).await.unwrap().into_inner().was_held, "{} held the lock", holder.0);
        in_release += t.elapsed();
        let t = Instant::now();
        // The release's entry: one RELEASED and exactly one GRANTED, for the head of the queue.
        let (index, entry) = loop {
            if let Some(at) = pending.iter().position(|e| e.kind == pb::WatchEventKind::Released as i32) {
                let index = pending[at].index;
                let entry: Vec<pb::WatchEvent> = pending.iter().filter(|e| e.index == index).cloned().collect();
                pending.retain(|e| e.index > index);
                break (index, entry);
            }
            let m = tokio::time::timeout(Duration::from_secs(20), events.message()).await;
            let m = m.expect("a watch message within 20 s").unwrap().expect("the watch stays open");
            pending.extend(m.events);
        };
        in_watch += t.elapsed();
        let shape: Vec<(i32, &str)> = entry.iter().map(|e| (e.kind, e.request_id.as_str())).collect();
        let want = vec![
            (pb::WatchEventKind::Released as i32, holder.0.as_str()),
            (pb::WatchEventKind::Granted as i32, next.as_str()),
        ];
        assert_eq!(shape, want, "release {k} (entry {index}) grants the next waiter and only it");
        let token = entry[1].token;
        assert!(token > holder.1, "tokens increase");
        // The lock has one holder and one waiter fewer.
        let t = Instant::now();
        let l = pb::ListLocksRequest { prefix: name.into(), page_size: 1, ..Default::default() };
        let l = c.list(l).await.unwrap().into_inner();
        in_list += t.elapsed();
        let left = (DEFAULT_MAX_WAITERS - k - 1) as u32;
        assert_eq!((l.locks[0].holders, l.locks[0].waiters), (1, left), "after release {k}");
        if k < 3 {
            let call = waiting.next().unwrap();
            let r = tokio::time::timeout(Duration::from_secs(10), call).await.expect("the granted call returns");
            let r = r.unwrap().unwrap();
            assert_eq!((outcome(&r), r.lease.map(|l| l.token)), (pb::AcquireOutcome::Granted, Some(token)));
            for other in waiting.as_slice() {
                assert!(!other.is_finished(), "a release woke a waiter it did not grant");
            }
        }
        if k % 1000 == 999 {
            let d = describe(c.clone()).await;
            let queue: Vec<&String> = d.waiters.iter().map(|w| &w.request_id).collect();
            assert_eq!(queue, order[k + 1..].iter().collect::<Vec<_>>(), "the rest of the queue after release {k}");
            println!(
                "  {} released after {:.1?} (in Release {in_release:.1?}, waiting for the watch {in_watch:.1?}, in List {in_list:.1?})",
                k + 1,
                started.elapsed()
            );
        }
        holder = (next.clone(), token);
    }
    let rel = pb::ReleaseRequest { name: name.into(), request_id: holder.0.clone() };
    assert!(c.release(rel).await.unwrap().into_inner().was_held);
    assert!(!describe(c.clone()).await.exists, "the lock is gone once the queue is drained");
    println!("drained {DEFAULT_MAX_WAITERS} waiters, one grant per release, in {:.1?}", started.elapsed());
}

//! The client core (`tenure` crate) against a real 3-node cluster: redirects, waits and their
//! timeouts, cancellation, lost-lease detection through a silent partition, mutual exclusion
//! among many tasks, and the blocking facade. One cluster; each check uses its own lock names.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::*;
use tenure::{Client, Error, Fence};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_core_against_a_three_node_cluster() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let all: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let client = Client::builder().endpoints(all.clone()).owner("test-a").connect().await.unwrap();

    a_client_whose_only_endpoint_is_a_follower_succeeds_through_the_redirect(&cluster, leader).await;
    a_wait_that_runs_out_is_a_timeout_and_leaves_no_waiter(&client, &all).await;
    dropping_a_guard_releases_the_lock(&client).await;
    dropping_a_waiting_acquire_leaves_no_holder_and_no_waiter(&client, &all).await;
    sixteen_tasks_contending_never_overlap_and_see_increasing_tokens(&client).await;
    reads_fences_and_kv_work_through_the_client(&client).await;
    bad_input_is_refused_with_the_field_named(&client).await;
    a_silently_partitioned_holder_learns_it_lost_the_lease_before_the_next_holder_is_granted(&cluster, leader, &all)
        .await;
    let endpoints = all.clone();
    tokio::task::spawn_blocking(move || the_blocking_facade_works_from_plain_threads(&endpoints)).await.unwrap();
}

async fn a_client_whose_only_endpoint_is_a_follower_succeeds_through_the_redirect(cluster: &Cluster, leader: u64) {
    let follower = if leader == 1 { 2 } else { 1 };
    let c = Client::connect([cluster.addr(follower)]).await.unwrap();
    let g = c.lock("redirect").wait(Duration::from_secs(5)).acquire().await.expect("acquire via a follower");
    assert!(g.is_held());
    assert_eq!(c.describe("redirect").await.unwrap().holders[0].token, g.token());
    assert!(g.release().await.unwrap(), "released while held");
    assert!(!g.is_held());
    assert!(!g.release().await.unwrap(), "release is idempotent");
}

async fn a_wait_that_runs_out_is_a_timeout_and_leaves_no_waiter(a: &Client, all: &[String]) {
    let held = a.lock("timeout").acquire().await.unwrap();
    let b = Client::builder().endpoints(all.to_vec()).owner("test-b").connect().await.unwrap();
    let started = Instant::now();
    let err = b.lock("timeout").wait(Duration::from_secs(2)).acquire().await.expect_err("the lock is held");
    let waited = started.elapsed();
    assert_eq!(err.code(), "TIMEOUT", "{err}");
    assert!(waited >= Duration::from_secs(2), "gave up early: {waited:?}");
    assert!(waited < Duration::from_secs(6), "gave up late: {waited:?}");
    // By the time the error is returned, the waiter is gone.
    let d = a.describe("timeout").await.unwrap();
    assert!(d.waiters.is_empty(), "a timed-out waiter stayed queued: {:?}", d.waiters);
    assert_eq!(d.holders.iter().map(|h| h.token).collect::<Vec<_>>(), vec![held.token()]);
    held.release().await.unwrap();
    // A try on a held lock is not an error, and an acquire with a zero wait is a timeout.
    let held = a.lock("timeout").acquire().await.unwrap();
    assert!(b.try_lock("timeout").await.unwrap().is_none());
    let err = b.lock("timeout").wait(Duration::ZERO).acquire().await.expect_err("busy");
    assert_eq!(err.code(), "TIMEOUT");
    held.release().await.unwrap();
}

async fn dropping_a_guard_releases_the_lock(c: &Client) {
    let g = c.lock("drop-guard").acquire().await.unwrap();
    assert!(c.describe("drop-guard").await.unwrap().exists);
    drop(g);
    eventually("the dropped guard's lock is free", Duration::from_secs(10), || async {
        (!c.describe("drop-guard").await.unwrap().exists).then_some(())
    })
    .await;
}

async fn dropping_a_waiting_acquire_leaves_no_holder_and_no_waiter(a: &Client, all: &[String]) {
    let held = a.lock("drop-waiter").acquire().await.unwrap();
    let b = Client::builder().endpoints(all.to_vec()).owner("test-b").connect().await.unwrap();
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.lock("drop-waiter").acquire().await.map(|g| g.token()) });
    eventually("the waiter is queued", Duration::from_secs(10), || async {
        (a.describe("drop-waiter").await.unwrap().waiters.len() == 1).then_some(())
    })
    .await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    // The withdrawal runs in the background; close() waits for it.
    b.close().await.unwrap();
    let d = a.describe("drop-waiter").await.unwrap();
    assert!(d.waiters.is_empty(), "the dropped acquire's request is still queued: {:?}", d.waiters);
    assert!(held.release().await.unwrap());
    assert!(!a.describe("drop-waiter").await.unwrap().exists, "nobody was left to grant the lock to");

    // A grant racing the drop leaves no ghost holder either: drop the waiting acquire at the
    // moment the holder releases.
    let held = a.lock("drop-waiter").acquire().await.unwrap();
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.lock("drop-waiter").acquire().await.map(|g| g.token()) });
    eventually("the waiter is queued", Duration::from_secs(10), || async {
        (a.describe("drop-waiter").await.unwrap().waiters.len() == 1).then_some(())
    })
    .await;
    let (released, _) = tokio::join!(held.release(), async { waiting.abort() });
    assert!(released.unwrap());
    b.close().await.unwrap();
    eventually("no holder and no waiter remain", Duration::from_secs(10), || async {
        let d = a.describe("drop-waiter").await.unwrap();
        (d.holders.is_empty() && d.waiters.is_empty()).then_some(())
    })
    .await;
}

async fn sixteen_tasks_contending_never_overlap_and_see_increasing_tokens(c: &Client) {
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, inside, tokens) = (c.clone(), inside.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let g = c.lock("contended").wait(Duration::from_secs(60)).acquire().await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                tokens.lock().unwrap().push(g.token());
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert!(g.is_held());
                inside.fetch_sub(1, Ordering::SeqCst);
                g.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 48);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens in grant order must strictly increase: {tokens:?}");
}

async fn reads_fences_and_kv_work_through_the_client(c: &Client) {
    let g = c.lock("jobs/fenced").acquire().await.unwrap();
    let listed = c.list("jobs/").await.unwrap();
    assert_eq!(listed.iter().map(|l| (l.name.as_str(), l.holders)).collect::<Vec<_>>(), vec![("jobs/fenced", 1)]);
    let fence = c.validate_fence("jobs/fenced", g.token()).await.unwrap();
    assert!(fence.current);
    assert_eq!(fence.current_tokens, vec![g.token()]);
    assert!(!c.validate_fence("jobs/fenced", g.token() - 1).await.unwrap().current);

    let kv = c.kv();
    let rev = kv.put("jobs/fenced/state", "one", Some(g.fence())).await.unwrap();
    let e = kv.get("jobs/fenced/state").await.unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.revision), (b"one".as_slice(), rev));
    let stale = Fence::new("jobs/fenced", g.token() - 1);
    let err = kv.put("jobs/fenced/state", "two", Some(stale.clone())).await.expect_err("a stale token is fenced out");
    assert_eq!(err.code(), "FENCED_OUT", "{err}");
    assert_eq!(kv.get("jobs/fenced/state").await.unwrap().unwrap().value, b"one");
    assert_eq!(kv.list("jobs/").await.unwrap().len(), 1);
    assert_eq!(kv.delete("jobs/fenced/state", Some(stale)).await.unwrap_err().code(), "FENCED_OUT");
    assert!(kv.delete("jobs/fenced/state", Some(g.fence())).await.unwrap());
    assert!(kv.get("jobs/fenced/state").await.unwrap().is_none());

    let status = c.cluster_status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    assert!(status.leader_id.is_some());
    g.release().await.unwrap();
}

async fn bad_input_is_refused_with_the_field_named(c: &Client) {
    let cases: [(tenure::LockBuilder, &str); 4] = [
        (c.lock(""), "name"),
        (c.lock("bad").ttl(Duration::ZERO), "ttl"),
        (c.lock("bad").ttl(Duration::from_millis(10)), "ttl_ms"),
        (c.lock("x".repeat(513)), "name"),
    ];
    for (builder, field) in cases {
        match builder.acquire().await {
            Err(Error::InvalidArgument { field: f, message }) => assert_eq!(f, field, "{message}"),
            other => panic!("expected INVALID_ARGUMENT on {field}, got {other:?}"),
        }
    }
    assert!(!c.describe("bad").await.unwrap().exists, "a refused acquire changes nothing");
    match Client::connect(["ftp://nowhere:1"]).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "endpoints"),
        other => panic!("expected INVALID_ARGUMENT on endpoints, got {other:?}"),
    }
}

async fn a_silently_partitioned_holder_learns_it_lost_the_lease_before_the_next_holder_is_granted(
    cluster: &Cluster,
    leader: u64,
    all: &[String],
) {
    // A reaches the leader only through the proxy (no other endpoint, so no redirect can
    // bypass it); B talks to the cluster directly.
    let proxy = Proxy::start(&cluster.addr(leader)).await;
    let a = Client::builder().endpoints([proxy.addr()]).owner("partitioned").connect().await.unwrap();
    let b = Client::builder().endpoints(all.to_vec()).owner("next").connect().await.unwrap();
    let ga = a.lock("partition").ttl(Duration::from_secs(3)).acquire().await.unwrap();
    let a_token = ga.token();
    let b_wait = tokio::spawn(async move {
        let g = b.lock("partition").wait(Duration::from_secs(30)).acquire().await.unwrap();
        (Instant::now(), g.token(), g)
    });
    eventually("B is queued behind A", Duration::from_secs(10), || async {
        let d = cluster_client(all).await.describe("partition").await.unwrap();
        (d.waiters.len() == 1).then_some(())
    })
    .await;
    // The keepalive renews A through the proxy: its safe window moves forward.
    let first_expiry = ga.expires_at();
    eventually("A's lease is renewed", Duration::from_secs(5), || async {
        (ga.expires_at() > first_expiry + Duration::from_millis(500)).then_some(())
    })
    .await;
    assert!(ga.is_held());

    proxy.blackhole();
    let lost = ga.lost();
    tokio::time::timeout(Duration::from_secs(10), lost).await.expect("A's lost() resolves");
    let a_lost_at = Instant::now();
    assert!(!ga.is_held());
    assert!(ga.lost_reason().is_some());

    let (b_granted_at, b_token, gb) = tokio::time::timeout(Duration::from_secs(20), b_wait).await.unwrap().unwrap();
    assert!(a_lost_at < b_granted_at, "A learned of the loss after B was granted");
    assert!(b_token > a_token, "B's token {b_token} must exceed A's {a_token}");
    gb.release().await.unwrap();
    drop(ga);
}

async fn cluster_client(all: &[String]) -> Client {
    Client::connect(all.to_vec()).await.unwrap()
}

fn the_blocking_facade_works_from_plain_threads(all: &[String]) {
    let c = tenure::blocking::Client::connect(all.to_vec()).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (c, inside, tokens) = (c.clone(), inside.clone(), tokens.clone());
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let g = c.lock("blocking").wait(Duration::from_secs(60)).acquire().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                    tokens.lock().unwrap().push(g.token());
                    assert!(g.is_held());
                    assert!(!g.wait_lost(Some(Duration::from_millis(5))));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(g.release().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 12);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");

    let g = c.try_lock("blocking").unwrap().expect("free");
    assert!(c.try_lock("blocking").unwrap().is_none(), "held by g");
    let kv = c.kv();
    kv.put("blocking/k", "v", Some(g.fence())).unwrap();
    assert_eq!(kv.get("blocking/k").unwrap().unwrap().value, b"v");
    let d = c.describe("blocking", tenure::Consistency::Stale).unwrap();
    assert!(d.holders.len() <= 1);
    drop(g);
    let free = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !c.describe("blocking", tenure::Consistency::Linearizable).unwrap().exists
    });
    assert!(free, "dropping a blocking guard releases the lock");
}

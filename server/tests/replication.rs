//! What reaches the log and how followers catch up: unlogged renewals, group commit, and a
//! lagging node brought back by snapshot.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tenure_proto::v1 as pb;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_keep_a_lease_past_its_ttl_without_adding_log_entries() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let mut c = cluster.locks(leader).await;
    c.acquire(acquire_req("renewed", "renewed-1", 1_000, 0)).await.expect("acquire");
    c.acquire(acquire_req("renewed", "renewed-waiter", 1_000, 50)).await.expect("queued");
    let before = cluster.last_log_index(leader).await;

    // Renew for three TTLs: by Renew, by an Acquire repeating the request_id, and by KeepAlive.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut replies = c.keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("stream").into_inner();
    let until = Instant::now() + Duration::from_millis(3_000);
    let mut seq = 0;
    while Instant::now() < until {
        c.renew(pb::RenewRequest { name: "renewed".into(), request_id: "renewed-1".into() }).await.expect("renew");
        let again = c.acquire(acquire_req("renewed", "renewed-1", 1_000, 0)).await.expect("repeat").into_inner();
        assert_eq!(outcome(&again), pb::AcquireOutcome::Granted);
        seq += 1;
        let leases = vec![pb::LeaseRef { name: "renewed".into(), request_id: "renewed-waiter".into() }];
        tx.send(pb::KeepAliveRequest { seq, leases }).await.expect("send");
        let reply = replies.next().await.expect("reply").expect("ok");
        assert_eq!((reply.seq, reply.alive.len(), reply.lost.len()), (seq, 1, 0), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        holders_and_waiters(&mut c, "renewed").await,
        (vec!["renewed-1".to_string()], vec!["renewed-waiter".to_string()]),
        "both leases outlived their 1 s TTL"
    );
    assert_eq!(cluster.last_log_index(leader).await, before, "renewals wrote nothing to the log");

    // Once renewals stop, the leader expires both.
    eventually("the unrenewed leases to expire", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            let d = c.describe(pb::DescribeRequest { name: "renewed".into(), consistency: 0 }).await.ok()?;
            (!d.into_inner().exists).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_are_group_committed_into_fewer_entries() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let c = cluster.locks(leader).await;
    let before = cluster.last_log_index(leader).await;
    let calls = (0..64).map(|i| {
        let mut c = c.clone();
        tokio::spawn(async move { c.acquire(acquire_req(&format!("gc-{i}"), &format!("gc-{i}"), 30_000, 0)).await })
    });
    let mut tokens = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        let r = call.await.expect("task").expect("acquire").into_inner();
        tokens.push(r.lease.expect("granted").token);
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 64, "64 grants with distinct tokens");
    let entries = cluster.last_log_index(leader).await - before;
    println!("64 concurrent acquires took {entries} log entries");
    assert!(entries < 64, "group commit: 64 commands in {entries} entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, &["--snapshot-interval", "20", "--snapshot-keep-logs", "5"]).await;
    let leader = cluster.leader().await;
    let lagging = if leader == 3 { 2 } else { 3 };
    cluster.kill(lagging);
    let mut c = cluster.locks(leader).await;
    let mut kv = cluster.kv(leader).await;
    for i in 0..60 {
        let name = format!("snap-{}", i % 7);
        c.acquire(acquire_req(&name, &format!("snap-r{i}"), 60_000, 50)).await.expect("acquire");
        let put = pb::PutRequest { key: format!("key-{}", i % 11).into_bytes(), value: vec![i as u8], if_fence: None };
        kv.put(put).await.expect("put");
        if i % 3 == 0 && i >= 3 {
            let earlier =
                pb::ReleaseRequest { name: format!("snap-{}", (i - 3) % 7), request_id: format!("snap-r{}", i - 3) };
            c.release(earlier).await.expect("release");
        }
    }
    let status = cluster.status(leader).await.expect("status");
    assert!(status.purged_index > 10, "the leader purged its log behind a snapshot: {status:?}");

    cluster.spawn(lagging);
    let target = cluster.last_log_index(leader).await;
    let s = eventually("the lagging node to catch up", Duration::from_secs(20), || async {
        let s = cluster.status(lagging).await?;
        (s.applied_index >= target).then_some(s)
    })
    .await;
    assert!(s.snapshot_index > 0, "it caught up by installing a snapshot: {s:?}");

    let mut follower = cluster.locks(lagging).await;
    let mut follower_kv = cluster.kv(lagging).await;
    let stale = pb::Consistency::Stale as i32;
    for i in 0..7 {
        let name = format!("snap-{i}");
        let want = c.describe(pb::DescribeRequest { name: name.clone(), consistency: 0 }).await.unwrap().into_inner();
        let got = follower.describe(pb::DescribeRequest { name, consistency: stale }).await.unwrap().into_inner();
        assert_eq!(got, want, "lock snap-{i} on the caught-up node");
    }
    let list =
        |page_token| pb::ListKeysRequest { prefix: b"key-".to_vec(), page_size: 0, page_token, consistency: stale };
    let want = kv.list(pb::ListKeysRequest { consistency: 0, ..list(vec![]) }).await.unwrap().into_inner();
    let got = follower_kv.list(list(vec![])).await.unwrap().into_inner();
    assert_eq!(got, want, "KV on the caught-up node");
    assert_eq!(want.items.len(), 11);
}

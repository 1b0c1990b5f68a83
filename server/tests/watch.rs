//! `Locks.Watch` through the client core and the CLI against a real 3-node cluster: committed
//! events in log order with their tokens, the same history from every node, resuming across a
//! killed node without losing or repeating events, and COMPACTED for a trimmed history.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use tenure::{Client, LockEvent, LockEventKind, Watch};

/// Collects events until `n` have arrived, or fails after 20 s.
async fn take(watch: &mut Watch, n: usize) -> Vec<LockEvent> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < n {
            got.push(watch.next().await.expect("the watch ended").expect("watch error"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} events within 20s: {got:?}", got.len()));
    got
}

fn summary(events: &[LockEvent]) -> Vec<(LockEventKind, String, u64)> {
    events.iter().map(|e| (e.kind, e.request_id.clone(), e.token)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_streams_committed_events_and_resumes_across_nodes() {
    // A short history, so that compaction can be seen.
    let mut cluster = Cluster::start(3, &["--watch-history", "40"]).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let all: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let client = Client::builder().endpoints(all.clone()).owner("watcher").connect().await.unwrap();

    // Any node serves a watch: this client knows only a follower.
    let on_follower = Client::connect([cluster.addr(follower)]).await.unwrap();
    let mut watch = on_follower.watch_prefix("w/").start().await.unwrap();
    assert!(watch.applied_index() > 0, "a watch from now is pinned to an index before start returns");
    // The server's first message names that index at once (progress alone comes only every 2 s).
    let mut raw = cluster.locks(follower).await;
    let req = tenure_proto::v1::WatchRequest {
        selector: Some(tenure_proto::v1::watch_request::Selector::Prefix("w/".into())),
        start_index: 0,
    };
    let mut stream = raw.watch(req).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_millis(1500), stream.message()).await.expect("at once");
    let first = first.unwrap().expect("a first message");
    assert!(first.events.is_empty() && first.applied_index >= watch.applied_index(), "{first:?}");

    let a = client.lock("w/job").acquire().await.unwrap();
    let b_client = Client::builder().endpoints(all.clone()).owner("b").connect().await.unwrap();
    let b = tokio::spawn(async move {
        let g = b_client.lock("w/job").acquire().await.unwrap();
        let token = g.token();
        g.release().await.unwrap();
        token
    });
    eventually("b is queued", Duration::from_secs(10), || async {
        (!client.describe("w/job").await.unwrap().waiters.is_empty()).then_some(())
    })
    .await;
    let (a_token, a_id) = (a.token(), a.request_id().to_string());
    a.release().await.unwrap();
    let b_token = b.await.unwrap();
    // A lock outside the prefix is not reported.
    client.lock("other").acquire().await.unwrap().release().await.unwrap();

    let events = take(&mut watch, 5).await;
    let b_id = events[1].request_id.clone();
    assert_eq!(
        summary(&events),
        vec![
            (LockEventKind::Granted, a_id.clone(), a_token),
            (LockEventKind::Queued, b_id.clone(), 0),
            (LockEventKind::Released, a_id.clone(), a_token),
            (LockEventKind::Granted, b_id.clone(), b_token),
            (LockEventKind::Released, b_id.clone(), b_token),
        ]
    );
    assert_eq!((events[0].owner.as_str(), events[1].owner.as_str(), events[1].position), ("watcher", "b", 1));
    assert!(events.windows(2).all(|w| w[0].index <= w[1].index), "log order: {events:?}");
    // Release of A and grant of B are one entry: the handoff is one replicated write.
    assert_eq!(events[2].index, events[3].index);

    // Every node reports the same history for the same indexes.
    let first = events[0].index;
    for id in 1..=3 {
        let c = Client::connect([cluster.addr(id)]).await.unwrap();
        let mut replay = c.watch("w/job").from_index(first).start().await.unwrap();
        assert_eq!(take(&mut replay, 5).await, events, "node {id}");
    }

    // `tenure watch` prints the same events, one JSON object per line.
    let tenure = env!("CARGO_BIN_EXE_tenure");
    let mut child = Command::new(tenure)
        .args(["--endpoints", &cluster.addr(follower), "--output", "json", "watch", "--from"])
        .arg(first.to_string())
        .arg("w/job")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().take(5).map(|l| l.unwrap()).collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines).await.expect("5 lines within 20s").unwrap();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["GRANTED", "QUEUED", "RELEASED", "GRANTED", "RELEASED"]);
    // SIGINT ends it cleanly.
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));

    // Kill the node a watch streams from (a new client's first endpoint; here the leader): the
    // watch goes on elsewhere from where it was, losing and repeating nothing.
    let mut order = vec![cluster.addr(leader)];
    order.extend((1..=3).filter(|&id| id != leader).map(|id| cluster.addr(id)));
    let watcher = Client::connect(order).await.unwrap();
    let mut watch = watcher.watch("w/kill").start().await.unwrap();
    let before = client.lock("w/kill").acquire().await.unwrap();
    before.release().await.unwrap();
    let got = take(&mut watch, 2).await;
    cluster.kill(leader);
    let mut tokens = vec![got[0].token];
    for _ in 0..3 {
        let g = client.lock("w/kill").wait(Duration::from_secs(20)).acquire().await.unwrap();
        tokens.push(g.token());
        g.release().await.unwrap();
    }
    let after = take(&mut watch, 6).await;
    let mut seen: Vec<u64> =
        got.iter().chain(&after).filter(|e| e.kind == LockEventKind::Granted).map(|e| e.token).collect();
    seen.dedup();
    assert_eq!(seen, tokens, "grants seen by the watch across the kill");
    assert_eq!(after.len(), 6);

    // Push the history past 40 events: a watch from index 1 is refused, naming the floor.
    for i in 0..25 {
        client.lock(format!("w/churn{i}")).acquire().await.unwrap().release().await.unwrap();
    }
    let survivor = (1..=3).find(|&id| id != leader).unwrap();
    let c = Client::connect([cluster.addr(survivor)]).await.unwrap();
    let err = c.watch_prefix("").from_index(1).start().await.expect_err("index 1 is compacted");
    assert_eq!(err.code(), "COMPACTED", "{err}");
    assert!(err.to_string().contains("starts at index"), "{err}");
}

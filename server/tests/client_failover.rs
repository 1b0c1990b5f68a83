//! The client core across a leader failover: a holder keeps its lease and waiters keep their
//! places in the queue when the leader is SIGKILLed.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tenure::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_sigkill_keeps_the_holders_lease_and_the_waiters_order() {
    let mut cluster = Cluster::start(3, &[]).await;
    let all: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let connect = |owner: &str| Client::builder().endpoints(all.clone()).owner(owner).connect();
    let (a, b, c) = (connect("A").await.unwrap(), connect("B").await.unwrap(), connect("C").await.unwrap());
    let observer = connect("observer").await.unwrap();

    // A 5 s TTL: A's keepalive has to reach the new leader within 4.5 s of its last renewal.
    let ga = a.lock("failover").ttl(Duration::from_secs(5)).acquire().await.unwrap();
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let waiter = |client: Client, who: &'static str| {
        let order_tx = order_tx.clone();
        tokio::spawn(async move {
            let g = client.lock("failover").ttl(Duration::from_secs(5)).acquire().await.unwrap();
            order_tx.send((who, g.token())).unwrap();
            g
        })
    };
    let queued = |n: usize| {
        let observer = observer.clone();
        async move {
            eventually(&format!("{n} waiters queued"), Duration::from_secs(10), || async {
                (observer.describe("failover").await.unwrap().waiters.len() == n).then_some(())
            })
            .await
        }
    };
    let b_task = waiter(b, "B");
    queued(1).await;
    let c_task = waiter(c, "C");
    queued(2).await;
    let before = observer.describe("failover").await.unwrap();
    let order_before: Vec<String> = before.waiters.iter().map(|w| w.owner.clone()).collect();
    assert_eq!(order_before, ["B", "C"]);

    let old_leader = cluster.leader().await;
    cluster.kill(old_leader);
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);

    // Watch A's lease for longer than its TTL after the kill: it must never be reported lost.
    let lost = ga.lost_signal();
    let watch = tokio::time::timeout(Duration::from_secs(7), lost.wait()).await;
    assert!(watch.is_err(), "A's lease was reported lost across the failover: {:?}", ga.lost_reason());
    assert!(ga.is_held());
    let after = observer.describe("failover").await.unwrap();
    assert_eq!(after.holders.iter().map(|h| h.token).collect::<Vec<_>>(), vec![ga.token()]);
    let order_after: Vec<String> = after.waiters.iter().map(|w| w.owner.clone()).collect();
    assert_eq!(order_after, ["B", "C"], "the waiters kept their places");
    assert!(order_rx.try_recv().is_err(), "nobody was granted while A held the lock");

    // A releases: B, then C (after B releases), with increasing tokens.
    assert!(ga.release().await.unwrap());
    let (first, b_token) = tokio::time::timeout(Duration::from_secs(20), order_rx.recv()).await.unwrap().unwrap();
    assert_eq!(first, "B");
    assert!(b_token > ga.token());
    let gb = b_task.await.unwrap();
    assert!(order_rx.try_recv().is_err(), "C was granted while B held the lock");
    gb.release().await.unwrap();
    let (second, c_token) = tokio::time::timeout(Duration::from_secs(20), order_rx.recv()).await.unwrap().unwrap();
    assert_eq!(second, "C");
    assert!(c_token > b_token);
    c_task.await.unwrap().release().await.unwrap();
}

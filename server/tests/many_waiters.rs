//! Thousands of waiters through one client: one HTTP/2 connection carries every waiter's long
//! poll beside the client's keepalive stream and its other calls, and none of them may cost the
//! others their place or their lease.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tenure::Client;

const WAITERS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_waiters_on_one_client_all_queue_and_its_leases_stay_alive() {
    let cluster = Cluster::start(1, &[]).await;
    let client = Client::builder().endpoints([cluster.addr(1)]).owner("crowd").connect().await.unwrap();
    let ttl = Duration::from_secs(30);
    let holder = client.lock("crowd").ttl(ttl).acquire().await.unwrap();
    // Renewed every ~700 ms on the same connection: a keepalive stream that is starved or keeps
    // being cut loses it.
    let canary = client.lock("canary").ttl(Duration::from_secs(2)).acquire().await.unwrap();
    let lost = canary.lost_signal();

    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.lock("crowd").ttl(ttl).acquire().await })
        })
        .collect();
    // Until the holder lets go, no acquire may end: each either waits in the queue or failed.
    let ended = eventually("every waiter queued, or one acquire ended", Duration::from_secs(120), || async {
        if let Some(i) = waiters.iter().position(|w| w.is_finished()) {
            return Some(Some(i));
        }
        let d = client.describe_with("crowd", tenure::Consistency::Stale).await.ok()?;
        (d.waiters.len() == WAITERS).then_some(None)
    })
    .await;
    if let Some(i) = ended {
        let outcome = (&mut { waiters }[i]).await.unwrap();
        panic!("waiter {i} ended while the lock was held: {outcome:?}");
    }
    assert!(!lost.is_lost() && canary.is_held(), "the canary lease was lost: {:?}", canary.lost_reason());
    assert!(holder.is_held());
    for w in &waiters {
        w.abort();
    }
}

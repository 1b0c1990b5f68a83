//! Admin `ForceRelease` against a real 3-node cluster: the forced holder's client learns it lost
//! the lease, the next waiter is granted with a higher token and the one behind it stays queued;
//! `all` on a SHARED lock releases every holder and grants the next; a retried Acquire of a
//! forced request is refused as finished; bad input names the field; a follower redirects; the
//! leader alone writes the audit line.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tenure::{Client, Error, ForceReleaseTarget, Handover, LockEventKind};
use tenure_proto::v1 as pb;
use tenure_proto::v1::force_release_request::Target;

const WAIT: Duration = Duration::from_secs(20);

async fn client(cluster: &Cluster, owner: &str) -> Client {
    let all: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    Client::builder().endpoints(all).owner(owner).connect().await.unwrap()
}

/// Request ids of `name`'s waiters, in order.
async fn waiters(c: &Client, name: &str) -> Vec<String> {
    c.describe(name).await.unwrap().waiters.into_iter().map(|w| w.request_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_release_against_a_three_node_cluster() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };

    forcing_a_holder_grants_the_next_waiter_and_the_old_holder_learns_it_lost_the_lease(&cluster, follower).await;
    all_on_a_shared_lock_releases_every_holder_and_grants_the_next_waiter(&cluster).await;
    bad_input_is_refused_naming_the_field_and_changes_nothing(&cluster, leader).await;
    a_follower_answers_not_leader_naming_the_leader(&cluster, leader, follower).await;
    only_the_leader_writes_the_audit_line(&cluster, leader).await;
}

async fn forcing_a_holder_grants_the_next_waiter_and_the_old_holder_learns_it_lost_the_lease(
    cluster: &Cluster,
    follower: u64,
) {
    let (a, b, c) = (client(cluster, "a").await, client(cluster, "b").await, client(cluster, "c").await);
    let mut watch = a.watch("x").start().await.unwrap();
    // A short TTL: the keepalive renews every second, so A hears of the loss soon.
    let ga = a.lock("x").ttl(Duration::from_secs(3)).acquire().await.unwrap();
    let (a_id, a_token) = (ga.request_id().to_owned(), ga.token());
    let b_wait = tokio::spawn(async move { b.lock("x").wait(Duration::from_secs(60)).acquire().await });
    eventually("B queued", WAIT, || async { (waiters(&a, "x").await.len() == 1).then_some(()) }).await;
    let c_wait = tokio::spawn(async move { c.lock("x").wait(Duration::from_secs(60)).acquire().await });
    let queue = eventually("C queued behind B", WAIT, || async {
        let w = waiters(&a, "x").await;
        (w.len() == 2).then_some(w)
    })
    .await;

    // The admin talks to a follower only: the core follows the redirect.
    let admin = Client::builder().endpoints([cluster.addr(follower)]).owner("admin").connect().await.unwrap();
    // The default handover: A's renewals fail at once, B gets the lock only after A's TTL.
    let r = admin.force_release("x", ForceReleaseTarget::Request(a_id.clone()), Handover::AfterTtl).await.unwrap();
    assert!(r.was_held());
    assert_eq!(r.released.iter().map(|l| (l.request_id.as_str(), l.token)).collect::<Vec<_>>(), [(&*a_id, a_token)]);
    assert!(r.granted.is_empty(), "nobody is granted while A may still think it holds x: {r:?}");

    // A's client learns it lost the lease (its renewals now answer LEASE_NOT_FOUND) before
    // anyone else holds the lock (DESIGN §3).
    tokio::time::timeout(WAIT, ga.lost()).await.expect("A's lost() resolves");
    assert!(!ga.is_held());
    assert!(!b_wait.is_finished(), "B was granted before A's client knew it had lost the lease");
    assert!(ga.renew().await.is_err(), "renewing a force-released lease must fail");
    let gb = tokio::time::timeout(WAIT, b_wait).await.unwrap().unwrap().unwrap();
    assert_eq!(gb.request_id(), queue[0], "the queue head (B) is granted");
    assert!(gb.token() > a_token, "B's token {} must exceed A's {a_token}", gb.token());
    assert_eq!(waiters(&a, "x").await, [queue[1].clone()], "C stays queued");
    assert!(!c_wait.is_finished());

    // The old request id is finished: an Acquire retried with it is refused.
    let mut raw = cluster.locks(cluster.leader().await).await;
    let err = raw.acquire(acquire_req("x", &a_id, 3_000, 0)).await.unwrap_err();
    assert_eq!(detail(&err).code, "REQUEST_FINISHED", "{err:?}");
    let renew = pb::RenewRequest { name: "x".into(), request_id: a_id.clone() };
    assert_eq!(detail(&raw.renew(renew).await.unwrap_err()).code, "LEASE_NOT_FOUND");
    // Idempotent: a second force-release of the same request releases nothing.
    let again = admin.force_release("x", ForceReleaseTarget::Request(a_id.clone()), Handover::AfterTtl).await.unwrap();
    assert!(!again.was_held() && again.granted.is_empty(), "{again:?}");

    // Watchers see a RELEASED event marked forced, then B's grant.
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &tenure::LockEvent| e.kind == LockEventKind::Granted && e.request_id == queue[0]) {
        let e = tokio::time::timeout(WAIT, watch.next()).await.unwrap().unwrap().unwrap();
        seen.push(e);
    }
    let released = seen.iter().find(|e| e.kind == LockEventKind::Released).expect("a RELEASED event");
    assert_eq!((released.request_id.as_str(), released.token, released.forced), (&*a_id, a_token, true));
    drop(gb);
    c_wait.abort();
}

async fn all_on_a_shared_lock_releases_every_holder_and_grants_the_next_waiter(cluster: &Cluster) {
    let holders = client(cluster, "readers").await;
    let mut guards = Vec::new();
    for _ in 0..3 {
        guards.push(holders.lock("sem").shared(3).ttl(Duration::from_secs(3)).acquire().await.unwrap());
    }
    let writer = client(cluster, "writer").await;
    let w_wait = tokio::spawn(async move { writer.lock("sem").wait(Duration::from_secs(60)).acquire().await });
    eventually("the writer queued", WAIT, || async { (waiters(&holders, "sem").await.len() == 1).then_some(()) }).await;
    let reader = client(cluster, "late-reader").await;
    let r_wait =
        tokio::spawn(async move { reader.lock("sem").shared(3).wait(Duration::from_secs(60)).acquire().await });
    eventually("a reader queued behind the writer", WAIT, || async {
        (waiters(&holders, "sem").await.len() == 2).then_some(())
    })
    .await;

    let admin = client(cluster, "admin").await;
    // An immediate handover: the EXCLUSIVE head is granted in the same entry.
    let r = admin.force_release("sem", ForceReleaseTarget::All, Handover::Immediate).await.unwrap();
    let mut released: Vec<u64> = r.released.iter().map(|l| l.token).collect();
    released.sort_unstable();
    let mut held: Vec<u64> = guards.iter().map(|g| g.token()).collect();
    held.sort_unstable();
    assert_eq!(released, held, "every SHARED holder is released");
    assert_eq!(r.granted.len(), 1, "only the EXCLUSIVE head is granted: {r:?}");
    assert!(r.granted[0].token > held[2]);
    let gw = tokio::time::timeout(WAIT, w_wait).await.unwrap().unwrap().unwrap();
    assert_eq!(gw.token(), r.granted[0].token);
    assert_eq!(waiters(&admin, "sem").await.len(), 1, "the late reader stays queued");
    for g in &guards {
        tokio::time::timeout(WAIT, g.lost()).await.expect("every forced reader learns it lost the lease");
    }
    // Nothing left to force but the writer, granted after the call began its read: a second
    // `all` releases the writer only (a new call), and grants the reader.
    let second = admin.force_release("sem", ForceReleaseTarget::All, Handover::Immediate).await.unwrap();
    assert_eq!(second.released.iter().map(|l| l.token).collect::<Vec<_>>(), [gw.token()]);
    let gr = tokio::time::timeout(WAIT, r_wait).await.unwrap().unwrap().unwrap();
    assert!(gr.token() > gw.token());
    gr.release().await.unwrap();
    let nothing = admin.force_release("sem", ForceReleaseTarget::All, Handover::Immediate).await.unwrap();
    assert!(!nothing.was_held() && nothing.log_index == 0, "a free lock needs no call: {nothing:?}");
}

fn force(name: &str, target: Option<Target>, max_token: u64) -> pb::ForceReleaseRequest {
    pb::ForceReleaseRequest { name: name.into(), target, max_token, immediate: false }
}

async fn bad_input_is_refused_naming_the_field_and_changes_nothing(cluster: &Cluster, leader: u64) {
    let c = client(cluster, "bad").await;
    let g = c.lock("bad").acquire().await.unwrap();
    let waiting = client(cluster, "bad-waiter").await;
    let q_wait = tokio::spawn(async move { waiting.lock("bad").wait(Duration::from_secs(60)).acquire().await });
    let queued = eventually("a waiter queued", WAIT, || async { waiters(&c, "bad").await.into_iter().next() }).await;
    let id = |s: &str| Some(Target::RequestId(s.into()));
    let cases = [
        (force("", id("r"), 0), "name"),
        (force(&"n".repeat(513), id("r"), 0), "name"),
        (force("a\0b", Some(Target::All(true)), 0), "name"),
        (force("bad", None, 0), "target"),
        (force("bad", id(""), 0), "request_id"),
        (force("bad", id(&"r".repeat(65)), 0), "request_id"),
        (force("bad", id(g.request_id()), 5), "max_token"),
        (force("bad", Some(Target::All(false)), 0), "all"),
        // Decided by the lock table: a hold of another lock, a request that only waits.
        (force("other", id(g.request_id()), 0), "name"),
        (force("bad", id(&queued), 0), "request_id"),
    ];
    let mut raw = cluster.locks(leader).await;
    for (req, field) in cases {
        let err = raw.force_release(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{req:?}: {err:?}");
        let d = detail(&err);
        assert_eq!((d.code.as_str(), d.field.as_str()), ("INVALID_ARGUMENT", field), "{req:?}: {err:?}");
    }
    let err = raw.force_release(force("bad", id(&queued), 0)).await.unwrap_err();
    assert!(err.message().contains("queued") && err.message().contains("Release"), "{err:?}");
    // Through the core, the refusal keeps its field.
    match c.force_release("bad", ForceReleaseTarget::Request(queued.clone()), Handover::Immediate).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "request_id"),
        other => panic!("{other:?}"),
    }
    let d = c.describe("bad").await.unwrap();
    assert_eq!(d.holders.iter().map(|h| h.token).collect::<Vec<_>>(), [g.token()], "nothing changed");
    assert_eq!(d.waiters.iter().map(|w| w.request_id.clone()).collect::<Vec<_>>(), [queued]);
    // An id never seen: nothing released, and no tombstone (the id stays usable).
    let ghost =
        c.force_release("bad", ForceReleaseTarget::Request("never-seen".into()), Handover::Immediate).await.unwrap();
    assert!(!ghost.was_held());
    let r = raw.acquire(acquire_req("ghost-lock", "never-seen", 3_000, 0)).await.unwrap().into_inner();
    assert_eq!(outcome(&r), pb::AcquireOutcome::Granted);
    q_wait.abort();
    c.close().await.unwrap();
}

async fn a_follower_answers_not_leader_naming_the_leader(cluster: &Cluster, leader: u64, follower: u64) {
    let mut raw = cluster.locks(follower).await;
    let err = raw.force_release(force("x", Some(Target::All(true)), 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let d = detail(&err);
    assert_eq!((d.code.as_str(), d.leader_id, d.leader_addr.as_str()), ("NOT_LEADER", leader, &*cluster.addr(leader)));
}

/// `text` without ANSI colour sequences (the node's text log colours its fields).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(ch);
        }
    }
    out
}

async fn only_the_leader_writes_the_audit_line(cluster: &Cluster, leader: u64) {
    let c = client(cluster, "audited").await;
    let g = c.lock("audit").acquire().await.unwrap();
    let id = g.request_id().to_owned();
    c.force_release("audit", ForceReleaseTarget::Request(id.clone()), Handover::Immediate).await.unwrap();
    let line = eventually("the audit line in the leader's log", WAIT, || async {
        plain(&cluster.log_of(leader))
            .lines()
            .find(|l| l.contains("admin force-release") && l.contains(&id))
            .map(String::from)
    })
    .await;
    assert!(line.contains("INFO") && line.contains("audit"), "{line}");
    assert!(line.contains(&format!("tokens=[{}]", g.token())), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "the caller's address: {line}");
    for n in &cluster.nodes {
        if n.id != leader {
            assert!(!cluster.log_of(n.id).contains("admin force-release"), "node {} logged an audit line", n.id);
        }
    }
}

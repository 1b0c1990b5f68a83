//! Lock semantics against a real 3-node cluster: one cluster, one check after another, each on
//! its own lock names.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tenure_proto::v1 as pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_semantics_on_a_three_node_cluster() {
    let cluster = Cluster::start(3, &["--max-waiters-per-lock", "3"]).await;
    let leader = cluster.leader().await;
    let mut c = cluster.locks(leader).await;

    acquire_then_release_frees_the_lock(&mut c).await;
    try_lock_refusal_names_the_holder(&mut c).await;
    three_waiters_are_granted_in_fifo_order(&mut c).await;
    a_waiting_call_returns_granted_when_the_holder_releases(&mut c).await;
    shared_with_limit_two_grants_two_and_queues_the_third(&mut c).await;
    a_queued_exclusive_request_blocks_a_later_shared_one(&mut c).await;
    ttl_expiry_frees_the_lock_and_grants_the_next_waiter(&mut c).await;
    a_release_sent_before_its_acquire_wins(&mut c).await;
    the_same_request_id_twice_makes_one_hold(&mut c).await;
    tokens_strictly_increase(&mut c).await;
    kv_writes_are_fenced_by_the_current_token(&cluster, leader, &mut c).await;
    a_follower_answers_a_write_with_the_leaders_address(&cluster, leader).await;
    bad_input_is_refused_with_the_field_and_limit_and_changes_nothing(&cluster, leader, &mut c).await;
}

type Locks = pb::locks_client::LocksClient<tonic::transport::Channel>;

async fn acquire(c: &mut Locks, req: pb::AcquireRequest) -> pb::AcquireResponse {
    c.acquire(req).await.expect("acquire").into_inner()
}

async fn release(c: &mut Locks, name: &str, request_id: &str) -> pb::ReleaseResponse {
    c.release(pb::ReleaseRequest { name: name.into(), request_id: request_id.into() })
        .await
        .expect("release")
        .into_inner()
}

async fn acquire_then_release_frees_the_lock(c: &mut Locks) {
    let r = acquire(c, acquire_req("basic", "basic-1", 30_000, 0)).await;
    assert_eq!(outcome(&r), pb::AcquireOutcome::Granted);
    let lease = r.lease.expect("lease");
    assert!(lease.token > 0);
    assert_eq!(holders_and_waiters(c, "basic").await, (vec!["basic-1".to_string()], vec![]));
    let rel = release(c, "basic", "basic-1").await;
    assert!(rel.was_held);
    let d = c.describe(pb::DescribeRequest { name: "basic".into(), consistency: 0 }).await.unwrap().into_inner();
    assert!(!d.exists, "a released lock with no waiters is gone: {d:?}");
    assert!(!release(c, "basic", "basic-1").await.was_held, "release is idempotent");
}

async fn try_lock_refusal_names_the_holder(c: &mut Locks) {
    acquire(c, acquire_req("try", "try-holder", 30_000, 0)).await;
    let r = acquire(c, acquire_req("try", "try-other", 30_000, 0)).await;
    assert_eq!(outcome(&r), pb::AcquireOutcome::Busy);
    assert_eq!(r.holders.len(), 1);
    assert_eq!(r.holders[0].request_id, "try-holder");
    assert_eq!(r.holders[0].owner, "owner-of-try-holder");
    assert_eq!(holders_and_waiters(c, "try").await.1, Vec::<String>::new(), "a try-lock never queues");
    release(c, "try", "try-holder").await;
}

async fn three_waiters_are_granted_in_fifo_order(c: &mut Locks) {
    acquire(c, acquire_req("fifo", "fifo-h", 30_000, 0)).await;
    for (i, w) in ["fifo-1", "fifo-2", "fifo-3"].iter().enumerate() {
        let r = acquire(c, acquire_req("fifo", w, 30_000, 50)).await;
        assert_eq!(outcome(&r), pb::AcquireOutcome::Queued, "{w}");
        assert_eq!(r.position, i as u64 + 1, "{w}");
    }
    let st = c.acquire(acquire_req("fifo", "fifo-4", 30_000, 50)).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "a fourth waiter exceeds --max-waiters-per-lock 3");
    assert!(st.message().contains("max_waiters_per_lock") && st.message().contains('3'), "{}", st.message());
    let mut holder = "fifo-h".to_string();
    for next in ["fifo-1", "fifo-2", "fifo-3"] {
        assert!(release(c, "fifo", &holder).await.was_held);
        assert_eq!(holders_and_waiters(c, "fifo").await.0, vec![next.to_string()], "after {holder} released");
        holder = next.to_string();
    }
    release(c, "fifo", &holder).await;
}

async fn a_waiting_call_returns_granted_when_the_holder_releases(c: &mut Locks) {
    acquire(c, acquire_req("hold-open", "ho-h", 30_000, 0)).await;
    let mut waiter = c.clone();
    let call =
        tokio::spawn(async move { acquire(&mut waiter, acquire_req("hold-open", "ho-w", 30_000, 10_000)).await });
    eventually("the waiter to be queued", Duration::from_secs(5), || {
        let mut c = c.clone();
        async move { (holders_and_waiters(&mut c, "hold-open").await.1 == ["ho-w"]).then_some(()) }
    })
    .await;
    release(c, "hold-open", "ho-h").await;
    let r = tokio::time::timeout(Duration::from_secs(5), call).await.expect("call returns").expect("task");
    assert_eq!(outcome(&r), pb::AcquireOutcome::Granted);
    release(c, "hold-open", "ho-w").await;
}

async fn shared_with_limit_two_grants_two_and_queues_the_third(c: &mut Locks) {
    assert_eq!(outcome(&acquire(c, shared_req("sem", "sem-1", 2, 0)).await), pb::AcquireOutcome::Granted);
    assert_eq!(outcome(&acquire(c, shared_req("sem", "sem-2", 2, 0)).await), pb::AcquireOutcome::Granted);
    let third = acquire(c, shared_req("sem", "sem-3", 2, 50)).await;
    assert_eq!((outcome(&third), third.position), (pb::AcquireOutcome::Queued, 1));
    let st = c.acquire(shared_req("sem", "sem-x", 3, 0)).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).code.as_str()), (Code::FailedPrecondition, "LIMIT_MISMATCH"));
    release(c, "sem", "sem-1").await;
    assert_eq!(holders_and_waiters(c, "sem").await, (vec!["sem-2".into(), "sem-3".into()], vec![]));
    release(c, "sem", "sem-2").await;
    release(c, "sem", "sem-3").await;
}

async fn a_queued_exclusive_request_blocks_a_later_shared_one(c: &mut Locks) {
    acquire(c, shared_req("rw", "rw-reader-1", 0, 0)).await;
    let writer = acquire(c, acquire_req("rw", "rw-writer", 30_000, 50)).await;
    assert_eq!(outcome(&writer), pb::AcquireOutcome::Queued);
    let reader = acquire(c, shared_req("rw", "rw-reader-2", 0, 50)).await;
    assert_eq!((outcome(&reader), reader.position), (pb::AcquireOutcome::Queued, 2), "no barging past the writer");
    release(c, "rw", "rw-reader-1").await;
    assert_eq!(holders_and_waiters(c, "rw").await, (vec!["rw-writer".into()], vec!["rw-reader-2".into()]));
    release(c, "rw", "rw-writer").await;
    assert_eq!(holders_and_waiters(c, "rw").await.0, vec!["rw-reader-2".to_string()]);
    release(c, "rw", "rw-reader-2").await;
}

async fn ttl_expiry_frees_the_lock_and_grants_the_next_waiter(c: &mut Locks) {
    let first = acquire(c, acquire_req("ttl", "ttl-silent", 1_000, 0)).await.lease.expect("granted");
    let next = acquire(c, acquire_req("ttl", "ttl-next", 30_000, 10_000)).await;
    assert_eq!(outcome(&next), pb::AcquireOutcome::Granted, "granted once the silent holder expired");
    assert!(next.lease.expect("lease").token > first.token);
    let st = c.renew(pb::RenewRequest { name: "ttl".into(), request_id: "ttl-silent".into() }).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).code.as_str()), (Code::NotFound, "LEASE_NOT_FOUND"));
    release(c, "ttl", "ttl-next").await;
}

async fn a_release_sent_before_its_acquire_wins(c: &mut Locks) {
    let rel = release(c, "early", "early-1").await;
    assert!(!rel.was_held && !rel.was_queued);
    let st = c.acquire(acquire_req("early", "early-1", 30_000, 0)).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).code.as_str()), (Code::FailedPrecondition, "REQUEST_FINISHED"));
    let d = c.describe(pb::DescribeRequest { name: "early".into(), consistency: 0 }).await.unwrap().into_inner();
    assert!(!d.exists, "the late acquire left no ghost holder");
}

async fn the_same_request_id_twice_makes_one_hold(c: &mut Locks) {
    let a = acquire(c, acquire_req("dup", "dup-1", 30_000, 0)).await.lease.expect("granted");
    let b = acquire(c, acquire_req("dup", "dup-1", 30_000, 0)).await.lease.expect("granted again");
    assert_eq!(a.token, b.token);
    assert_eq!(holders_and_waiters(c, "dup").await, (vec!["dup-1".into()], vec![]));
    let st = c.acquire(acquire_req("dup", "dup-1", 60_000, 0)).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).field.as_str()), (Code::InvalidArgument, "request_id"));
    release(c, "dup", "dup-1").await;
}

async fn tokens_strictly_increase(c: &mut Locks) {
    let mut last = 0;
    for i in 0..10 {
        let name = format!("tok-{}", i % 3);
        let rid = format!("tok-r{i}");
        let t = acquire(c, acquire_req(&name, &rid, 30_000, 0)).await.lease.expect("granted").token;
        assert!(t > last, "token {t} after {last}");
        last = t;
        release(c, &name, &rid).await;
    }
}

async fn kv_writes_are_fenced_by_the_current_token(cluster: &Cluster, leader: u64, c: &mut Locks) {
    let mut kv = cluster.kv(leader).await;
    let token = acquire(c, acquire_req("fence", "fence-1", 30_000, 0)).await.lease.expect("granted").token;
    let fence = Some(pb::Fence { name: "fence".into(), token });
    kv.put(pb::PutRequest { key: b"k".to_vec(), value: b"v1".to_vec(), if_fence: fence.clone() })
        .await
        .expect("fenced put");
    let v = kv.get(pb::GetRequest { key: b"k".to_vec(), consistency: 0 }).await.unwrap().into_inner();
    assert_eq!(v.value, b"v1");
    let valid = c.validate_fence(pb::ValidateFenceRequest { name: "fence".into(), token, consistency: 0 }).await;
    assert!(valid.unwrap().into_inner().current);
    release(c, "fence", "fence-1").await;
    let st = kv.put(pb::PutRequest { key: b"k".to_vec(), value: b"v2".to_vec(), if_fence: fence }).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).code.as_str()), (Code::FailedPrecondition, "FENCED_OUT"));
    let v = kv.get(pb::GetRequest { key: b"k".to_vec(), consistency: 0 }).await.unwrap().into_inner();
    assert_eq!(v.value, b"v1", "the stale write changed nothing");
}

async fn a_follower_answers_a_write_with_the_leaders_address(cluster: &Cluster, leader: u64) {
    let follower = if leader == 1 { 2 } else { 1 };
    let mut f = cluster.locks(follower).await;
    let st = f.acquire(acquire_req("redirect", "redirect-1", 30_000, 0)).await.unwrap_err();
    let d = detail(&st);
    assert_eq!((st.code(), d.code.as_str()), (Code::Unavailable, "NOT_LEADER"), "{st:?}");
    assert_eq!((d.leader_id, d.leader_addr), (leader, cluster.addr(leader)));
    let read = f.describe(pb::DescribeRequest { name: "redirect".into(), consistency: 0 }).await.unwrap_err();
    assert_eq!(detail(&read).leader_addr, cluster.addr(leader), "linearizable reads redirect too");
    let stale = pb::DescribeRequest { name: "redirect".into(), consistency: pb::Consistency::Stale as i32 };
    assert!(f.describe(stale).await.is_ok(), "stale reads are served by a follower");
}

async fn bad_input_is_refused_with_the_field_and_limit_and_changes_nothing(
    cluster: &Cluster,
    leader: u64,
    c: &mut Locks,
) {
    let before = cluster.last_log_index(leader).await;
    let ok = acquire_req("bad", "bad-1", 30_000, 0);
    let cases: Vec<(&str, pb::AcquireRequest, &str)> = vec![
        ("name", pb::AcquireRequest { name: String::new(), ..ok.clone() }, "512"),
        ("name", pb::AcquireRequest { name: "x".repeat(513), ..ok.clone() }, "512"),
        ("name", pb::AcquireRequest { name: "a\0b".into(), ..ok.clone() }, "NUL"),
        ("owner", pb::AcquireRequest { owner: "o".repeat(257), ..ok.clone() }, "256"),
        ("request_id", pb::AcquireRequest { request_id: String::new(), ..ok.clone() }, "64"),
        ("request_id", pb::AcquireRequest { request_id: "r".repeat(65), ..ok.clone() }, "64"),
        ("ttl_ms", pb::AcquireRequest { ttl_ms: 0, ..ok.clone() }, "ttl"),
        ("ttl_ms", pb::AcquireRequest { ttl_ms: 999, ..ok.clone() }, "1000"),
        ("ttl_ms", pb::AcquireRequest { ttl_ms: u64::MAX, ..ok.clone() }, "3600000"),
        ("wait_ms", pb::AcquireRequest { wait_ms: u64::MAX, ..ok.clone() }, "86400000"),
        ("lock_delay_ms", pb::AcquireRequest { lock_delay_ms: 60_001, ..ok.clone() }, "60000"),
        ("limit", pb::AcquireRequest { limit: 2, ..ok.clone() }, "SHARED"),
        ("mode", pb::AcquireRequest { mode: 7, ..ok.clone() }, "7"),
    ];
    for (field, req, limit) in cases {
        let st = c.acquire(req).await.unwrap_err();
        let d = detail(&st);
        assert_eq!((st.code(), d.code.as_str(), d.field.as_str()), (Code::InvalidArgument, "INVALID_ARGUMENT", field));
        assert!(st.message().contains(limit), "message for {field} should name {limit:?}: {}", st.message());
    }
    let mut kv = cluster.kv(leader).await;
    let st = kv.put(pb::PutRequest { key: vec![b'k'; 1025], value: vec![], if_fence: None }).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).field.as_str()), (Code::InvalidArgument, "key"));
    let st = kv.put(pb::PutRequest { key: b"k".to_vec(), value: vec![0; 65_537], if_fence: None }).await.unwrap_err();
    assert_eq!((st.code(), detail(&st).field.as_str()), (Code::InvalidArgument, "value"));
    let st = c.renew(pb::RenewRequest { name: "bad".into(), request_id: "never-seen".into() }).await.unwrap_err();
    assert_eq!(detail(&st).code, "LEASE_NOT_FOUND");
    assert_eq!(cluster.last_log_index(leader).await, before, "refused input wrote nothing to the log");
    let d = c.describe(pb::DescribeRequest { name: "bad".into(), consistency: 0 }).await.unwrap().into_inner();
    assert!(!d.exists);
}

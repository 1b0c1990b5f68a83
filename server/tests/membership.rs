//! Runtime membership: Cluster.AddMember and RemoveMember through the client core, against real
//! `tenured` processes, while clients hold and take locks.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, Cluster};
use tenure_proto::v1 as pb;

async fn client(cluster: &Cluster, ids: &[u64]) -> tenure::Client {
    let endpoints: Vec<String> = ids.iter().map(|&id| cluster.addr(id)).collect();
    tenure::Client::builder().endpoints(endpoints).owner("membership-test").connect().await.expect("client")
}

/// The leader among `ids`, with the voters and learners in its view.
async fn leader_view(cluster: &Cluster, ids: &[u64]) -> Option<(u64, BTreeSet<u64>, BTreeSet<u64>, u64)> {
    for &id in ids {
        let Some(s) = cluster.status(id).await else { continue };
        if s.role != pb::MemberRole::Leader as i32 || !s.has_quorum {
            continue;
        }
        let learner = pb::MemberRole::Learner as i32;
        let voters = s.members.iter().filter(|m| m.role != learner).map(|m| m.id).collect();
        let learners = s.members.iter().filter(|m| m.role == learner).map(|m| m.id).collect();
        return Some((id, voters, learners, s.applied_index));
    }
    None
}

/// Waits until a leader among `voters` has exactly them as voters and no learner, and each of
/// them has applied what the leader had.
async fn wait_for_voters(cluster: &Cluster, voters: &[u64]) -> u64 {
    let want: BTreeSet<u64> = voters.iter().copied().collect();
    eventually(&format!("voters {want:?}, all caught up"), Duration::from_secs(30), || async {
        let (leader, v, l, applied) = leader_view(cluster, voters).await?;
        if v != want || !l.is_empty() {
            return None;
        }
        for &id in voters {
            if cluster.status(id).await?.applied_index < applied {
                return None;
            }
        }
        Some(leader)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_grows_to_five_and_shrinks_to_three_while_locks_are_held_and_taken() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c = client(&cluster, &[1, 2, 3]).await;
    let held = c.lock("member/held").ttl(Duration::from_secs(10)).acquire().await.expect("hold");

    // Takes and releases locks in a loop; every grant's token must be above the previous one.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tokens = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("member/work/{}", i % 4);
                i += 1;
                let g = c.lock(name.clone()).ttl(Duration::from_secs(5)).wait(Duration::from_secs(20)).acquire().await;
                let g = g.unwrap_or_else(|e| panic!("acquire {name}: {e}"));
                tokens.push(g.token());
                g.release().await.unwrap_or_else(|e| panic!("release {name}: {e}"));
            }
            tokens
        })
    };

    // 3 → 5.
    let four = cluster.add_node();
    let five = cluster.add_node();
    for id in [four, five] {
        let (addr, http) = (cluster.addr(id), cluster.nodes[(id - 1) as usize].http.clone());
        let r = c.add_member(id, &addr, &http).await.unwrap_or_else(|e| panic!("add node {id}: {e}"));
        assert!(r.changed);
        let m = r.members.iter().find(|m| m.id == id).expect("the new member is listed");
        assert_eq!((m.grpc_addr.as_str(), m.role), (addr.as_str(), tenure::Role::Follower));
    }
    let leader = wait_for_voters(&cluster, &[1, 2, 3, 4, 5]).await;
    // The new members joined the cluster (same id), and serve its state.
    let id1 = cluster.status(1).await.expect("status").cluster_id;
    for id in [four, five] {
        assert_eq!(cluster.status(id).await.expect("status").cluster_id, id1);
    }

    // 5 → 3, removing the leader itself and one other of the original nodes.
    let other = (1..=3).find(|&id| id != leader).expect("another original node");
    let r = c.remove_member(leader, false).await.expect("remove the leader");
    assert!(r.changed && !r.members.iter().any(|m| m.id == leader), "{r:?}");
    let r = c.remove_member(other, false).await.expect("remove a follower");
    assert!(r.changed && !r.members.iter().any(|m| m.id == other), "{r:?}");
    cluster.terminate(leader);
    cluster.terminate(other);
    let remaining: Vec<u64> = (1..=5).filter(|&id| id != leader && id != other).collect();
    let new_leader = wait_for_voters(&cluster, &remaining).await;
    assert!(remaining.contains(&new_leader));

    // The locks kept working throughout; the held lock was never lost.
    let before = c.lock("member/after").ttl(Duration::from_secs(5)).acquire().await.expect("a lock after the changes");
    before.release().await.expect("release");
    stop.store(true, Ordering::Relaxed);
    let tokens = tokio::time::timeout(Duration::from_secs(30), worker).await.expect("worker ends").expect("worker");
    assert!(tokens.len() > 10, "only {} grants during the membership changes", tokens.len());
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens not strictly increasing: {tokens:?}");
    assert!(held.is_held(), "the held lock was lost: {:?}", held.lost_reason());
    let d = c.describe("member/held").await.expect("describe");
    assert_eq!(d.holders.iter().map(|h| h.token).collect::<Vec<_>>(), [held.token()]);
    assert!(tokens.last().copied().unwrap_or(0) > held.token());
    held.release().await.expect("release the held lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_members_below_a_live_quorum_is_refused_unless_forced() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c = client(&cluster, &[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (live, dead) = (followers[0], followers[1]);
    cluster.kill(dead);

    // Leaving {leader, dead}: 1 live voter of the 2 a quorum needs.
    let e = c.remove_member(live, false).await.expect_err("refused");
    assert!(matches!(e, tenure::Error::QuorumAtRisk(_)), "{e:?}");
    assert!(e.to_string().contains("force"), "{e}");
    // The leader alone cannot be removed either while it is the last live voter.
    let e = c.remove_member(leader, false).await.expect_err("refused");
    assert_eq!(e.code(), "QUORUM_AT_RISK", "{e}");
    // Nothing changed.
    let (_, voters, _, _) = leader_view(&cluster, &[leader]).await.expect("leader");
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));

    // Removing the dead one leaves {leader, live}: both answer, so it is allowed.
    let r = c.remove_member(dead, false).await.expect("remove the dead member");
    assert!(r.changed);
    wait_for_voters(&cluster, &[leader, live]).await;

    // With `live` down, {leader, live} has no live quorum: no removal can commit now.
    cluster.kill(live);
    let e = c.remove_member(leader, false).await.expect_err("refused");
    assert_eq!(e.code(), "QUORUM_AT_RISK", "{e}");

    // With force, the refusal is overridden: the change is proposed although it cannot commit
    // without `live`; it commits once `live` is back.
    let c_short = tenure::Client::builder()
        .endpoints([cluster.addr(leader)])
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("client");
    let r = c_short.remove_member(live, false).await;
    assert_eq!(r.expect_err("refused").code(), "QUORUM_AT_RISK");
    let r = c_short.remove_member(live, true).await;
    assert!(!matches!(r, Err(tenure::Error::QuorumAtRisk(_))), "{r:?}");
    cluster.spawn(live);
    eventually("the forced removal to commit", Duration::from_secs(30), || async {
        let s = cluster.status(leader).await?;
        (s.role == pb::MemberRole::Leader as i32 && s.members.iter().map(|m| m.id).collect::<Vec<_>>() == [leader])
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_member_is_refused_until_removed_and_added_again_as_a_new_member() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c = client(&cluster, &[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let f = (1..=3).find(|&id| id != leader).expect("a follower");
    c.lock("wiped/a").acquire().await.expect("lock").release().await.expect("release");

    // Still a member: the wiped node is recognised and stops.
    cluster.wipe(f);
    cluster.spawn(f);
    eventually("the wiped member to stop", Duration::from_secs(20), || {
        let running = cluster.node(f).is_running();
        async move { (!running).then_some(()) }
    })
    .await;
    assert!(cluster.log_of(f).contains("wiped or replaced"), "{}", cluster.log_of(f));

    // Removed, then added back as a new member with its empty directory.
    c.remove_member(f, false).await.expect("remove");
    let voters: Vec<u64> = (1..=3).filter(|&id| id != f).collect();
    wait_for_voters(&cluster, &voters).await;
    cluster.spawn(f);
    let http = cluster.nodes[(f - 1) as usize].http.clone();
    let r = c.add_member(f, &cluster.addr(f), &http).await.expect("add back");
    assert!(r.changed);
    wait_for_voters(&cluster, &[1, 2, 3]).await;
    assert!(cluster.node(f).is_running(), "{}", cluster.log_of(f));
    let d = cluster.status(f).await.expect("status");
    assert_eq!(d.cluster_id, cluster.status(leader).await.expect("status").cluster_id);

    // A node started with --join asks to be added by itself and becomes a voter.
    let endpoints = (1..=3).map(|id| cluster.addr(id)).collect::<Vec<_>>().join(",");
    let four = cluster.add_node_with(&["--join", &endpoints]);
    wait_for_voters(&cluster, &[1, 2, 3, four]).await;
    // Its AddMember call answers once it is a voter: the node logs that a moment later.
    eventually("node 4 logs that it joined", Duration::from_secs(20), || {
        let joined = cluster.log_of(four).contains("joined the cluster (--join)");
        async move { joined.then_some(()) }
    })
    .await;
    let http = cluster.status(leader).await.expect("status").members.into_iter().find(|m| m.id == four);
    assert_eq!(http.map(|m| m.http_addr), Some(cluster.nodes[(four - 1) as usize].http.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_membership_requests_are_refused_naming_the_field_and_repeats_change_nothing() {
    let cluster = Cluster::start(3, &[]).await;
    let c = client(&cluster, &[1, 2, 3]).await;
    let field = |e: tenure::Error| match e {
        tenure::Error::InvalidArgument { field, .. } => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    assert_eq!(field(c.add_member(0, "127.0.0.1:1", "").await.unwrap_err()), "node_id");
    assert_eq!(field(c.add_member(9, "", "").await.unwrap_err()), "grpc_addr");
    assert_eq!(field(c.add_member(9, "no-port", "").await.unwrap_err()), "grpc_addr");
    assert_eq!(field(c.add_member(9, "http://127.0.0.1:1", "").await.unwrap_err()), "grpc_addr");
    assert_eq!(field(c.add_member(9, "127.0.0.1:1", "127.0.0.1:x").await.unwrap_err()), "http_addr");
    // Node 2 at another address.
    assert_eq!(field(c.add_member(2, "127.0.0.1:1", "").await.unwrap_err()), "grpc_addr");
    assert_eq!(field(c.remove_member(0, false).await.unwrap_err()), "node_id");

    // Adding a voter again, or removing a non-member, changes nothing.
    let before = cluster.last_log_index(cluster.leader().await).await;
    let r = c.add_member(2, &cluster.addr(2), "").await.expect("repeat add");
    assert!(!r.changed && r.members.len() == 3, "{r:?}");
    let r = c.remove_member(42, false).await.expect("remove a non-member");
    assert!(!r.changed && r.members.len() == 3, "{r:?}");
    assert_eq!(cluster.last_log_index(cluster.leader().await).await, before);

    // The raw gRPC refusal: FAILED_PRECONDITION with code QUORUM_AT_RISK is covered above;
    // here a follower answers NOT_LEADER naming the leader.
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).expect("follower");
    let mut raw = tenure_proto::v1::cluster_client::ClusterClient::new(cluster.channel(follower).await);
    let st = raw.remove_member(pb::RemoveMemberRequest { node_id: 42, force: false }).await.expect_err("not leader");
    let d = common::detail(&st);
    assert_eq!((d.code.as_str(), d.leader_id), ("NOT_LEADER", leader));
}

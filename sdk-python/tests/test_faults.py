"""Faults on a cluster of this module's own: a leader SIGKILL while clients wait, and leases
lost because no node can confirm their renewals (every node frozen with SIGSTOP)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import tenure
from cluster import Cluster, eventually


def waiter_owners(client: tenure.Client, name: str) -> list[str]:
    return [w.owner for w in client.describe(name).waiters]


def test_a_leader_sigkill_while_waiting_keeps_the_waiters_places(
    fault_cluster: Cluster, lock_name: str
) -> None:
    cluster = fault_cluster
    clients = {o: tenure.Client(cluster.endpoints, owner=o) for o in ("holder", "first", "second")}
    try:
        watcher = clients["holder"]
        holder = watcher.acquire(lock_name, ttl=30)
        granted: list[tuple[str, tenure.Lease]] = []
        threads = []
        for owner in ("first", "second"):
            t = threading.Thread(
                target=lambda o=owner: granted.append((o, clients[o].acquire(lock_name, ttl=30, wait=60)))
            )
            t.start()
            threads.append(t)
            eventually(f"{owner} to queue", lambda o=owner: waiter_owners(watcher, lock_name)[-1:] == [o])
        before = watcher.describe(lock_name).waiters
        assert [w.owner for w in before] == ["first", "second"]

        old_leader = cluster.leader()
        cluster.kill(old_leader)
        new_leader = cluster.wait_ready()
        assert new_leader != old_leader

        # Both waiters kept their requests (same ids) and their order across the failover.
        after = watcher.describe(lock_name).waiters
        assert [(w.owner, w.request_id) for w in after] == [(w.owner, w.request_id) for w in before]
        assert not granted

        holder.release()
        eventually("the first waiter to be granted", lambda: len(granted) == 1)
        assert granted[0][0] == "first"
        assert granted[0][1].request_id == before[0].request_id
        assert waiter_owners(watcher, lock_name) == ["second"]
        granted[0][1].release()
        eventually("the second waiter to be granted", lambda: len(granted) == 2)
        assert granted[1][0] == "second"
        assert granted[0][1].token < granted[1][1].token
        granted[1][1].release()
        for t in threads:
            t.join(timeout=10)
            assert not t.is_alive()
    finally:
        for c in clients.values():
            c.close()
        for n in cluster.nodes:
            if n.proc is None:
                cluster.spawn(n.id)
        cluster.wait_ready()


def freeze_all(cluster: Cluster) -> None:
    for n in cluster.nodes:
        cluster.stop(n.id)


def thaw_all(cluster: Cluster) -> None:
    for n in cluster.nodes:
        cluster.cont(n.id)
    cluster.wait_ready()


def test_lease_lost_is_set_when_no_renewal_can_be_confirmed(fault_cluster: Cluster, lock_name: str) -> None:
    cluster = fault_cluster
    with tenure.Client(cluster.endpoints, timeout=1) as client:
        lease = client.acquire(lock_name, ttl=2)
        assert lease.held and not lease.lost.is_set()
        frozen_at = time.monotonic()
        freeze_all(cluster)
        try:
            # Lost once 90% of the TTL has passed since the last confirmed renewal: <= 1.8 s.
            assert lease.lost.wait(timeout=10), "lease.lost was not set"
            lost_after = time.monotonic() - frozen_at
            assert lost_after <= 2.5, lost_after
            assert not lease.held
            assert lease.lost_reason
        finally:
            thaw_all(cluster)
        with pytest.raises(tenure.LeaseLost):
            lease.renew()
        lease.release()
        eventually("the lost lease to be gone", lambda: client.describe(lock_name).holders == [])


def test_a_lock_block_whose_lease_was_lost_raises_lease_lost(fault_cluster: Cluster, lock_name: str) -> None:
    cluster = fault_cluster
    with tenure.Client(cluster.endpoints, timeout=2) as client:
        with pytest.raises(tenure.LeaseLost), client.lock(lock_name, ttl=2) as lease:
            freeze_all(cluster)
            try:
                assert lease.lost.wait(timeout=10)
            finally:
                thaw_all(cluster)
        eventually("the lost lease to be gone", lambda: client.describe(lock_name).holders == [])


def test_async_wait_lost_resolves_when_the_lease_is_lost(fault_cluster: Cluster, lock_name: str) -> None:
    cluster = fault_cluster

    async def scenario() -> None:
        async with tenure.AsyncClient(cluster.endpoints, timeout=1) as client:
            lease = await client.acquire(lock_name, ttl=2)
            freeze_all(cluster)
            try:
                assert await asyncio.wait_for(lease.wait_lost(), timeout=10) is True
                assert lease.lost.is_set() and not lease.held
            finally:
                await asyncio.to_thread(thaw_all, cluster)
            await lease.release()

    asyncio.run(scenario())

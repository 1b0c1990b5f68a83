"""The asyncio API, item by item, and cancellation leaving no ghost holder or waiter."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import tenure
from cluster import Cluster


async def eventually_async(what: str, check: object, timeout: float = 20.0) -> None:
    """Polls the coroutine function ``check`` until it returns True; fails after ``timeout``."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(0.02)


async def test_async_lock_yields_a_lease_and_releases_it(aclient: tenure.AsyncClient, lock_name: str) -> None:
    async with aclient.lock(lock_name, ttl=10, wait=5) as lease:
        assert isinstance(lease, tenure.AsyncLease)
        assert lease.name == lock_name and lease.token > 0 and lease.request_id
        assert lease.held and not lease.lost.is_set()
        assert lease.fence == (lock_name, lease.token)
        d = await aclient.describe(lock_name)
        assert [h.token for h in d.holders] == [lease.token]
    assert not lease.held
    assert (await aclient.describe(lock_name)).holders == []


async def test_async_lock_raises_instead_of_running_the_block(
    aclient: tenure.AsyncClient, lock_name: str
) -> None:
    ran = False
    async with aclient.lock(lock_name):
        with pytest.raises(tenure.LockTimeout):
            async with aclient.lock(lock_name, wait=timedelta(milliseconds=300)):
                ran = True
    assert not ran
    d = await aclient.describe(lock_name)
    assert d.holders == [] and d.waiters == []


async def test_async_acquire_try_acquire_renew_release(aclient: tenure.AsyncClient, lock_name: str) -> None:
    lease = await aclient.try_acquire(lock_name, ttl=5)
    assert lease is not None
    assert await aclient.try_acquire(lock_name) is None
    with pytest.raises(tenure.LockTimeout):
        await aclient.acquire(lock_name, wait=0)
    await lease.renew()
    assert await lease.release() is True
    assert await lease.release() is False
    with pytest.raises(tenure.LeaseLost):
        await lease.renew()
    assert await lease.wait_lost() is False, "a released lease resolves as not lost"
    shared = [await aclient.acquire(lock_name, shared=True, limit=2) for _ in range(2)]
    with pytest.raises(tenure.LimitMismatch):
        await aclient.try_acquire(lock_name, shared=True, limit=5)
    for s in shared:
        async with s:
            pass
    assert (await aclient.describe(lock_name)).holders == []


async def test_async_reads_kv_and_cluster_status(aclient: tenure.AsyncClient, lock_name: str) -> None:
    lease = await aclient.acquire(lock_name, lock_delay=1)
    assert [s.name for s in await aclient.list(lock_name)] == [lock_name]
    assert (await aclient.validate_fence(lock_name, lease.token)).current
    key = f"{lock_name}/k"
    rev = await aclient.kv.put(key, "v", if_fence=lease)
    entry = await aclient.kv.get(key)
    assert entry is not None and entry.value == b"v" and entry.revision == rev
    assert [e.key for e in await aclient.kv.list(f"{lock_name}/")] == [key.encode()]
    await lease.release()
    with pytest.raises(tenure.FencedOut):
        await aclient.kv.put(key, "stale", if_fence=lease)
    assert await aclient.kv.delete(key) is True
    assert await aclient.kv.get(key) is None
    status = await aclient.cluster_status()
    assert status.has_quorum and len(status.members) == 3


async def test_async_client_refuses_calls_once_closed(cluster: Cluster) -> None:
    async with tenure.AsyncClient(cluster.endpoints, owner="async-owner", timeout=2) as c:
        assert c.owner == "async-owner" and c.timeout == 2.0
        lease = await c.acquire("py/async-close")
    assert not lease.held, "close released the lease"
    with pytest.raises(tenure.Cancelled):
        await c.describe("x")


async def test_cancelling_a_waiting_acquire_leaves_no_holder_or_waiter(
    cluster: Cluster, aclient: tenure.AsyncClient, lock_name: str
) -> None:
    holder = await aclient.acquire(lock_name)
    async with tenure.AsyncClient(cluster.endpoints, owner="cancelled-waiter") as other:
        task = asyncio.create_task(other.acquire(lock_name))

        async def queued() -> bool:
            return [w.owner for w in (await aclient.describe(lock_name)).waiters] == ["cancelled-waiter"]

        await eventually_async("the waiter to queue", queued)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def no_waiter() -> bool:
            return (await aclient.describe(lock_name)).waiters == []

        await eventually_async("the cancelled waiter to leave the queue", no_waiter)
        await holder.release()
        d = await aclient.describe(lock_name)
        assert d.holders == [] and d.waiters == [], "no ghost holder took the lock"
        # The lock is free for anyone.
        again = await aclient.try_acquire(lock_name)
        assert again is not None
        await again.release()


async def test_wait_for_timing_out_an_acquire_leaves_no_holder_or_waiter(
    cluster: Cluster, aclient: tenure.AsyncClient, lock_name: str
) -> None:
    holder = await aclient.acquire(lock_name)
    async with tenure.AsyncClient(cluster.endpoints) as other:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(other.acquire(lock_name), 0.5)

        async def empty_queue() -> bool:
            return (await aclient.describe(lock_name)).waiters == []

        await eventually_async("the timed-out waiter to leave the queue", empty_queue)
    await holder.release()
    assert (await aclient.describe(lock_name)).holders == []


async def test_many_tasks_contending_never_overlap(aclient: tenure.AsyncClient, lock_name: str) -> None:
    inside = 0
    tokens: list[int] = []

    async def worker() -> None:
        nonlocal inside
        for _ in range(3):
            async with aclient.lock(lock_name, wait=30) as lease:
                inside += 1
                assert inside == 1, "two holders at once"
                tokens.append(lease.token)
                await asyncio.sleep(0.005)
                inside -= 1

    await asyncio.gather(*(worker() for _ in range(5)))
    assert len(tokens) == 15 and tokens == sorted(tokens) and len(set(tokens)) == 15

"""Watches of committed lock events, blocking and asyncio, against a real 3-node cluster."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

import tenure
from cluster import Cluster
from tenure import LockEvent

#: The longest any test waits for an event it expects.
EVENT_WAIT = 15.0


def take(watch: tenure.Watch, n: int, timeout: float = EVENT_WAIT) -> list[LockEvent]:
    """The next ``n`` events of ``watch``; closes it (so the test fails, not hangs) after ``timeout``."""
    timer = threading.Timer(timeout, watch.close)
    timer.start()
    try:
        events = list(itertools.islice(watch, n))
    finally:
        timer.cancel()
    assert len(events) == n, f"got {len(events)} of {n} events within {timeout}s: {events}"
    return events


async def take_async(watch: tenure.AsyncWatch, n: int, timeout: float = EVENT_WAIT) -> list[LockEvent]:
    return [await asyncio.wait_for(anext(watch), timeout) for _ in range(n)]


def check_acquired_released_acquired(events: list[LockEvent], name: str, first: int, second: int) -> None:
    granted, released, regranted = events
    assert [e.kind for e in events] == ["GRANTED", "RELEASED", "GRANTED"]
    assert not released.forced, "the holder released it, not an administrator"
    assert all(e.name == name for e in events)
    assert granted.index < released.index < regranted.index
    assert (granted.token, released.token, regranted.token) == (first, first, second)
    assert regranted.token > granted.token
    assert granted.request_id == released.request_id != regranted.request_id
    assert granted.mode == "EXCLUSIVE" and granted.owner and granted.position == 0
    assert granted.at.tzinfo is not None and granted.at <= regranted.at


def test_a_watch_sees_acquired_released_acquired_in_order(client: tenure.Client, lock_name: str) -> None:
    with client.watch(lock_name) as watch:
        first = client.acquire(lock_name)
        first.release()
        second = client.acquire(lock_name)
        events = take(watch, 3)
        check_acquired_released_acquired(events, lock_name, first.token, second.token)
        assert events[0].request_id == first.request_id and events[2].request_id == second.request_id
        second.release()
        assert take(watch, 1)[0].kind == "RELEASED"
    assert watch.closed


def test_a_watch_reopened_from_the_next_index_gets_exactly_the_events_that_followed(
    client: tenure.Client, lock_name: str
) -> None:
    with client.watch(lock_name) as watch:
        for _ in range(3):
            client.acquire(lock_name).release()
        seen = take(watch, 6)
    assert [e.kind for e in seen] == ["GRANTED", "RELEASED"] * 3
    for cut in (0, 2, 3):
        with client.watch(lock_name, from_index=seen[cut].index + 1) as resumed:
            assert take(resumed, len(seen) - cut - 1) == seen[cut + 1 :], f"resumed after event {cut}"
            # Then the live events, with no repeat in between.
            lease = client.acquire(lock_name)
            lease.release()
            live = take(resumed, 2)
            assert [(e.kind, e.token) for e in live] == [("GRANTED", lease.token), ("RELEASED", lease.token)]
            assert seen[-1].index < live[0].index < live[1].index
            seen += live


def test_a_prefix_watch_sees_every_lock_under_it_and_no_other(client: tenure.Client, lock_name: str) -> None:
    with client.watch(f"{lock_name}/", prefix=True) as watch:
        client.acquire(f"{lock_name}-other").release()
        client.acquire(f"{lock_name}/a").release()
        client.acquire(f"{lock_name}/b").release()
        events = take(watch, 4)
    assert [(e.kind, e.name) for e in events] == [
        ("GRANTED", f"{lock_name}/a"),
        ("RELEASED", f"{lock_name}/a"),
        ("GRANTED", f"{lock_name}/b"),
        ("RELEASED", f"{lock_name}/b"),
    ]


def test_a_queued_request_is_an_event_with_its_position(client: tenure.Client, lock_name: str) -> None:
    holder = client.acquire(lock_name)
    with client.watch(lock_name) as watch:
        waiter = threading.Thread(target=lambda: client.acquire(lock_name, wait=10).release())
        waiter.start()
        try:
            queued = take(watch, 1)[0]
            assert (queued.kind, queued.position, queued.token) == ("QUEUED", 1, 0)
        finally:
            holder.release()
            waiter.join(timeout=20)
        kinds = [e.kind for e in take(watch, 3)]
    assert kinds == ["RELEASED", "GRANTED", "RELEASED"]


def test_close_from_another_thread_ends_a_waiting_iteration(client: tenure.Client, lock_name: str) -> None:
    watch = client.watch(lock_name)
    got: list[list[LockEvent]] = []
    reader = threading.Thread(target=lambda: got.append(list(watch)))
    reader.start()
    time.sleep(0.1)  # not synchronisation: the close below must work whether or not it waits yet
    watch.close()
    reader.join(timeout=10)
    assert not reader.is_alive() and got == [[]]
    assert watch.closed
    with pytest.raises(StopIteration):
        next(watch)
    watch.close()  # idempotent


def test_a_start_older_than_the_history_is_compacted(short_history_cluster: Cluster, lock_name: str) -> None:
    with tenure.Client(short_history_cluster.endpoints) as client:
        with client.watch(lock_name) as watch:
            for _ in range(15):
                client.acquire(lock_name).release()
            first = take(watch, 1)[0]
        with pytest.raises(tenure.Compacted) as e:
            client.watch(lock_name, from_index=first.index)
        assert e.value.code == "COMPACTED"
        # A watch from now still works.
        with client.watch(lock_name) as live:
            client.acquire(lock_name).release()
            assert [e.kind for e in take(live, 2)] == ["GRANTED", "RELEASED"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 600}, "name"),
        ({"name": 42}, "name"),
        ({"name": b"bytes"}, "name"),
        ({"name": "n", "from_index": -1}, "from_index"),
        ({"name": "n", "from_index": 2**64}, "from_index"),
        ({"name": "n", "from_index": "1"}, "from_index"),
        ({"name": "n", "from_index": 1.0}, "from_index"),
        ({"name": "n", "prefix": "yes"}, "prefix"),
        ({"name": 7, "prefix": True}, "name"),
    ],
)
def test_bad_arguments_raise_invalid_argument_naming_the_field(
    client: tenure.Client, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        client.watch(**kwargs)  # type: ignore[arg-type]
    assert e.value.field == field
    assert isinstance(e.value, ValueError)


def test_closing_the_client_ends_its_watches_and_refuses_new_ones(cluster: Cluster, lock_name: str) -> None:
    client = tenure.Client(cluster.endpoints)
    watch = client.watch(lock_name)
    got: list[list[LockEvent]] = []
    reader = threading.Thread(target=lambda: got.append(list(watch)))
    reader.start()
    client.close()
    reader.join(timeout=10)
    assert not reader.is_alive() and got == [[]] and watch.closed
    with pytest.raises(tenure.Cancelled):
        client.watch(lock_name)


async def test_closing_an_async_client_ends_its_watches(cluster: Cluster, lock_name: str) -> None:
    client = tenure.AsyncClient(cluster.endpoints)
    watch = await client.watch(lock_name)
    step = asyncio.ensure_future(anext(watch))
    await client.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(step, 10)
    assert watch.closed


async def test_async_watch_sees_acquired_released_acquired_and_resumes(
    aclient: tenure.AsyncClient, lock_name: str
) -> None:
    async with aclient.watch(lock_name) as watch:
        assert isinstance(watch, tenure.AsyncWatch)
        first = await aclient.acquire(lock_name)
        await first.release()
        second = await aclient.acquire(lock_name)
        events = await take_async(watch, 3)
        check_acquired_released_acquired(events, lock_name, first.token, second.token)
        await second.release()
        events += await take_async(watch, 1)
    assert watch.closed
    with pytest.raises(StopAsyncIteration):
        await anext(watch)

    resumed = await aclient.watch(lock_name, from_index=events[0].index + 1)
    try:
        assert await take_async(resumed, 3) == events[1:]
    finally:
        await resumed.aclose()


async def test_a_cancelled_async_step_loses_no_event(aclient: tenure.AsyncClient, lock_name: str) -> None:
    async with aclient.watch(lock_name) as watch:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(watch), 0.2)  # nothing happened yet: the step is cancelled
        lease = await aclient.acquire(lock_name)
        await lease.release()
        assert [e.kind for e in await take_async(watch, 2)] == ["GRANTED", "RELEASED"]


async def test_async_for_starts_a_watch_and_close_ends_it(
    aclient: tenure.AsyncClient, lock_name: str
) -> None:
    watch = aclient.watch(lock_name, from_index=1)  # from the oldest history: no race with the grant
    lease = await aclient.acquire(lock_name)
    seen: list[LockEvent] = []

    async def follow() -> None:
        async for event in watch:
            seen.append(event)
            if event.kind == "GRANTED":
                watch.close()

    await asyncio.wait_for(follow(), EVENT_WAIT)
    assert [(e.kind, e.token) for e in seen] == [("GRANTED", lease.token)]
    await lease.release()

    # close() also ends a step that is waiting.
    quiet = await aclient.watch(lock_name)
    step = asyncio.ensure_future(anext(quiet))
    await asyncio.sleep(0.05)  # not synchronisation: close must end the step either way
    quiet.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(step, 10)


async def test_async_bad_arguments_raise_invalid_argument(aclient: tenure.AsyncClient) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        aclient.watch("n", from_index=-1)
    assert e.value.field == "from_index"
    with pytest.raises(tenure.InvalidArgument) as e:
        await aclient.watch("")
    assert e.value.field == "name"
    with pytest.raises(tenure.InvalidArgument) as e:
        async with aclient.watch("x" * 600):
            pass
    assert e.value.field == "name"

"""The blocking API, item by item, against a real 3-node cluster."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import tenure
from cluster import Cluster, eventually
from tenure import _native


def test_the_package_exports_the_api_and_one_exception_class_per_core_code() -> None:
    assert tenure.DEFAULT_ENDPOINT.endswith("127.0.0.1:7070")
    classes = {code: tenure.errors.ERRORS_BY_CODE[code] for code in _native.ERROR_CODES}
    assert len(set(classes.values())) == len(classes), "one class per code"
    for code, cls in classes.items():
        assert issubclass(cls, tenure.TenureError)
        assert cls.code == code
        assert cls("m").code == code
    assert issubclass(tenure.InvalidArgument, ValueError)
    assert issubclass(tenure.LockTimeout, TimeoutError)
    assert tenure.errors.ERRORS_BY_CODE["TIMEOUT"] is tenure.LockTimeout
    assert tenure.errors.ERRORS_BY_CODE["FENCED_OUT"] is tenure.FencedOut
    unknown = tenure.errors._from_native("SOMETHING_NEW", "m", "")
    assert type(unknown) is tenure.TenureError and unknown.code == "SOMETHING_NEW"


def test_a_client_is_a_context_manager_and_refuses_calls_once_closed(cluster: Cluster) -> None:
    with tenure.Client(cluster.endpoints, owner="ctx-test", timeout=timedelta(seconds=3)) as c:
        assert c.owner == "ctx-test"
        assert c.timeout == 3.0
        assert c.cluster_status().has_quorum
    assert c.closed
    with pytest.raises(tenure.Cancelled):
        c.describe("x")
    c.close()  # idempotent


def test_endpoints_default_to_tenure_endpoints(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENURE_ENDPOINTS", cluster.endpoints)
    with tenure.Client() as c:
        assert c.cluster_status().leader_id is not None
    # A list, a comma-separated string and URLs are all accepted.
    with tenure.Client([f"http://{n.addr}" for n in cluster.nodes]) as c:
        assert c.cluster_status().has_quorum


def test_the_default_endpoint_is_used_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENURE_ENDPOINTS", raising=False)
    with tenure.Client(timeout=0.3) as c:
        with pytest.raises(tenure.TenureError) as e:
            c.describe("x")
        # Nothing listens on 7070 in the tests (or something that is not tenure does).
        assert "127.0.0.1:7070" in str(e.value) or e.value.code != "UNAVAILABLE"


def test_no_node_answering_is_unavailable() -> None:
    with tenure.Client("127.0.0.1:1", timeout=0.3) as c:
        start = time.monotonic()
        with pytest.raises(tenure.Unavailable) as e:
            c.cluster_status()
        assert e.value.code == "UNAVAILABLE"
        assert time.monotonic() - start < 5


def test_lock_yields_a_lease_and_releases_it_after_the_block(client: tenure.Client, lock_name: str) -> None:
    with client.lock(lock_name, ttl=10, wait=5) as lease:
        assert isinstance(lease, tenure.Lease)
        assert lease.name == lock_name
        assert isinstance(lease.token, int) and lease.token > 0
        assert lease.request_id
        assert lease.owner == client.owner
        assert lease.mode == "EXCLUSIVE"
        assert lease.ttl == 10.0
        assert lease.held
        assert isinstance(lease.lost, threading.Event) and not lease.lost.is_set()
        assert lease.lost_reason is None
        now = datetime.now(timezone.utc)
        assert now < lease.expires_at <= now + timedelta(seconds=10)
        assert lease.granted_at.tzinfo is not None
        assert lease.fence == (lock_name, lease.token)
        holders = client.describe(lock_name).holders
        assert [h.token for h in holders] == [lease.token]
    assert not lease.held
    assert not lease.lost.is_set(), "a clean release is not a loss"
    assert client.describe(lock_name).holders == []


def test_lock_never_runs_the_block_without_the_lock(client: tenure.Client, lock_name: str) -> None:
    ran = False
    with client.lock(lock_name):
        for wait in (0, 0.3, timedelta(milliseconds=200)):
            with pytest.raises(tenure.LockTimeout), client.lock(lock_name, wait=wait):
                ran = True
    assert not ran
    d = client.describe(lock_name)
    assert d.holders == [] and d.waiters == [], "a timed-out request leaves no waiter"


def test_a_wait_that_runs_out_is_a_timeout_after_about_the_wait(
    client: tenure.Client, lock_name: str
) -> None:
    holder = client.acquire(lock_name)
    start = time.monotonic()
    with pytest.raises(tenure.LockTimeout) as e:
        client.acquire(lock_name, wait=0.5)
    took = time.monotonic() - start
    assert 0.45 <= took < 5, took
    assert e.value.code == "TIMEOUT"
    assert client.describe(lock_name).waiters == []
    assert holder.release() is True


def test_acquire_and_try_acquire(client: tenure.Client, lock_name: str) -> None:
    first = client.try_acquire(lock_name, ttl=5)
    assert first is not None
    assert client.try_acquire(lock_name) is None, "busy: None"
    with pytest.raises(tenure.LockTimeout):
        client.acquire(lock_name, wait=0)
    assert first.release() is True
    assert first.release() is False, "release is idempotent"
    second = client.acquire(lock_name, ttl=timedelta(seconds=5), wait=5)
    assert second.token > first.token, "tokens increase"
    second.release()


def test_a_lease_is_a_context_manager(client: tenure.Client, lock_name: str) -> None:
    with client.acquire(lock_name) as lease:
        assert lease.held
    assert client.describe(lock_name).holders == []


def test_a_waiter_is_granted_when_the_holder_releases(client: tenure.Client, lock_name: str) -> None:
    holder = client.acquire(lock_name)
    got: list[tenure.Lease] = []
    t = threading.Thread(target=lambda: got.append(client.acquire(lock_name, wait=20)))
    t.start()
    eventually("the waiter to queue", lambda: len(client.describe(lock_name).waiters) == 1)
    holder.release()
    t.join(timeout=20)
    assert not t.is_alive() and len(got) == 1
    assert got[0].token > holder.token
    got[0].release()


def test_shared_locks_and_limits(client: tenure.Client, lock_name: str) -> None:
    a = client.acquire(lock_name, shared=True, limit=2)
    b = client.acquire(lock_name, shared=True, limit=2, wait=0)
    assert a.mode == b.mode == "SHARED"
    assert a.token != b.token
    assert client.try_acquire(lock_name, shared=True, limit=2) is None, "limit reached"
    with pytest.raises(tenure.LimitMismatch):
        client.try_acquire(lock_name, shared=True, limit=3)
    assert client.try_acquire(lock_name) is None, "exclusive excluded by shared holders"
    summary = [s for s in client.list(lock_name) if s.name == lock_name]
    assert len(summary) == 1 and summary[0].holders == 2 and summary[0].mode == "SHARED"
    assert summary[0].limit == 2
    assert client.describe(lock_name).limit == 2
    a.release()
    b.release()


def test_limit_without_shared_is_invalid(client: tenure.Client, lock_name: str) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        client.try_acquire(lock_name, limit=2)
    assert e.value.field == "limit"


def test_lock_delay_is_accepted_and_bounded(client: tenure.Client, lock_name: str) -> None:
    with client.lock(lock_name, lock_delay=1.5) as lease:
        assert lease.held
    with pytest.raises(tenure.InvalidArgument) as e:
        client.acquire(lock_name, lock_delay=120)
    assert "lock_delay" in (e.value.field or "")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"ttl": "30"}, "ttl"),
        ({"wait": -0.1}, "wait"),
        ({"lock_delay": float("inf")}, "lock_delay"),
        ({"limit": -1}, "limit"),
    ],
)
def test_bad_arguments_raise_invalid_argument_naming_the_field(
    client: tenure.Client, lock_name: str, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        client.acquire(lock_name, **kwargs)  # type: ignore[arg-type]
    assert e.value.field == field
    assert isinstance(e.value, ValueError)


def test_the_server_refuses_bad_input_with_the_field_named(client: tenure.Client) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        client.acquire("")
    assert e.value.field == "name"
    with pytest.raises(tenure.InvalidArgument) as e:
        client.acquire("x" * 600)
    assert e.value.field == "name"
    with pytest.raises(tenure.InvalidArgument) as e:
        client.acquire("short-ttl", ttl=0.2)
    assert "ttl" in (e.value.field or "")
    with pytest.raises(tenure.InvalidArgument):
        tenure.Client(timeout=0)


def test_renew_and_release(client: tenure.Client, lock_name: str) -> None:
    lease = client.acquire(lock_name, ttl=3)
    before = lease.expires_at
    time.sleep(0.05)  # let the clock move, so the renewed bound is later (not a synchronisation)
    lease.renew()
    assert lease.expires_at > before
    assert lease.release() is True
    with pytest.raises(tenure.LeaseLost):
        lease.renew()


def test_describe_shows_holders_and_waiters_in_order(
    cluster: Cluster, client: tenure.Client, lock_name: str
) -> None:
    empty = client.describe(lock_name)
    assert not empty.exists and empty.holders == [] and empty.waiters == []
    holder = client.acquire(lock_name, ttl=20)
    waiters = [tenure.Client(cluster.endpoints, owner=f"waiter-{i}") for i in range(2)]
    threads = []
    for i, w in enumerate(waiters):
        t = threading.Thread(target=lambda w=w: w.acquire(lock_name, wait=20).release())
        t.start()
        threads.append(t)
        eventually(f"waiter {i} to queue", lambda i=i: len(client.describe(lock_name).waiters) == i + 1)
    d = client.describe(lock_name)
    assert d.exists
    assert [h.request_id for h in d.holders] == [holder.request_id]
    h = d.holders[0]
    assert (h.name, h.owner, h.mode, h.token, h.ttl) == (
        lock_name,
        client.owner,
        "EXCLUSIVE",
        holder.token,
        20.0,
    )
    assert isinstance(h.granted_at, datetime) and isinstance(h.expires_at, datetime)
    assert [w.owner for w in d.waiters] == ["waiter-0", "waiter-1"]
    assert [w.position for w in d.waiters] == sorted(w.position for w in d.waiters)
    assert all(w.mode == "EXCLUSIVE" and w.ttl == 30.0 and w.request_id for w in d.waiters)
    assert isinstance(d.waiters[0].enqueued_at, datetime)
    assert d.delayed_until is None
    assert "LockDescription(" in repr(d) and "WaiterInfo(" in repr(d)
    holder.release()
    for t in threads:
        t.join(timeout=20)
        assert not t.is_alive()
    for w in waiters:
        w.close()


def test_list_by_prefix(client: tenure.Client, lock_name: str) -> None:
    leases = [client.acquire(f"{lock_name}/{i}") for i in range(3)]
    other = client.acquire(f"{lock_name}-other")
    names = [s.name for s in client.list(f"{lock_name}/")]
    assert names == [f"{lock_name}/{i}" for i in range(3)]
    assert all(
        s.holders == 1 and s.waiters == 0 and s.mode == "EXCLUSIVE" for s in client.list(f"{lock_name}/")
    )
    assert any(s.name == f"{lock_name}-other" for s in client.list())
    for lease in [*leases, other]:
        lease.release()


def test_validate_fence(client: tenure.Client, lock_name: str) -> None:
    lease = client.acquire(lock_name)
    status = client.validate_fence(lock_name, lease.token)
    assert status.current and status.current_tokens == [lease.token]
    assert not client.validate_fence(lock_name, lease.token + 1000).current
    lease.release()
    stale = client.validate_fence(lock_name, lease.token)
    assert not stale.current and stale.current_tokens == []
    with pytest.raises(tenure.InvalidArgument):
        client.validate_fence(lock_name, -1)


def test_kv_get_put_delete_list(client: tenure.Client, lock_name: str) -> None:
    kv = client.kv
    prefix = f"{lock_name}/kv/"
    assert kv.get(prefix + "missing") is None
    r1 = kv.put(prefix + "a", "alpha")
    r2 = kv.put((prefix + "b").encode(), b"\x00\xffbeta")
    assert r2 > r1 > 0
    entry = kv.get(prefix + "a")
    assert entry is not None
    assert (entry.key, entry.value, entry.revision) == ((prefix + "a").encode(), b"alpha", r1)
    assert [e.key for e in kv.list(prefix)] == [(prefix + "a").encode(), (prefix + "b").encode()]
    assert kv.list(prefix)[1].value == b"\x00\xffbeta"
    assert kv.delete(prefix + "a") is True
    assert kv.delete(prefix + "a") is False
    assert kv.get(prefix + "a") is None
    assert "KvEntry(" in repr(kv.list(prefix)[0])


def test_fenced_kv_writes_succeed_for_the_holder_and_a_stale_token_is_fenced_out(
    client: tenure.Client, lock_name: str
) -> None:
    key = f"{lock_name}/state"
    first = client.acquire(lock_name)
    client.kv.put(key, "v1", if_fence=first)
    client.kv.put(key, "v2", if_fence=(lock_name, first.token))
    first.release()
    second = client.acquire(lock_name)
    with pytest.raises(tenure.FencedOut) as e:
        client.kv.put(key, "stale", if_fence=(lock_name, first.token))
    assert e.value.code == "FENCED_OUT"
    with pytest.raises(tenure.FencedOut):
        client.kv.delete(key, if_fence=first)
    entry = client.kv.get(key)
    assert entry is not None and entry.value == b"v2", "the stale writes changed nothing"
    assert client.kv.delete(key, if_fence=second) is True
    second.release()


def test_cluster_status(client: tenure.Client, cluster: Cluster) -> None:
    s = client.cluster_status()
    assert s.node_id in (1, 2, 3)
    assert s.role in ("leader", "follower")
    assert s.leader_id in (1, 2, 3)
    assert s.leader_addr in [n.addr for n in cluster.nodes]
    assert s.term >= 1 and s.has_quorum and s.quorum_size == 2
    assert sorted(m.id for m in s.members) == [1, 2, 3]
    assert {m.grpc_addr for m in s.members} == {n.addr for n in cluster.nodes}
    assert sum(m.role == "leader" for m in s.members) == 1
    assert s.commit_index >= 1 and s.applied_index >= 1
    assert s.last_log_index >= s.commit_index
    assert s.cluster_id
    assert s.snapshot_index >= 0 and s.purged_index >= 0
    assert "ClusterStatus(" in repr(s) and "Member(" in repr(s)


def test_close_releases_what_the_client_holds(
    cluster: Cluster, client: tenure.Client, lock_name: str
) -> None:
    other = tenure.Client(cluster.endpoints)
    lease = other.acquire(lock_name)
    assert len(client.describe(lock_name).holders) == 1
    other.close()
    assert client.describe(lock_name).holders == []
    assert not lease.held


def test_a_lease_left_unreleased_is_released_when_collected(client: tenure.Client, lock_name: str) -> None:
    lease = client.acquire(lock_name)
    del lease
    eventually("the collected lease to be released", lambda: client.describe(lock_name).holders == [])


def test_a_blocking_wait_releases_the_gil(client: tenure.Client, lock_name: str) -> None:
    holder = client.acquire(lock_name)
    done = threading.Event()
    t = threading.Thread(target=lambda: (client.acquire(lock_name, wait=3).release(), done.set()))
    t.start()
    eventually("the waiter to queue", lambda: len(client.describe(lock_name).waiters) == 1)
    # This thread keeps running Python code while the other one blocks in the core.
    spins = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 1000
    holder.release()
    t.join(timeout=10)
    assert done.is_set()

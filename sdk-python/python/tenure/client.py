"""The blocking client: :class:`Client`, its :class:`KV` store and the ``with client.lock()`` context."""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from collections.abc import Sequence
from types import TracebackType

from . import _args
from ._args import Duration, Fence
from ._lease import Lease, _exit
from ._native import (
    ClusterStatus,
    FenceStatus,
    KvEntry,
    LockDescription,
    LockSummary,
    NativeClient,
    _quiesce,
)
from ._watch import AsyncWatch, Watch
from .errors import Cancelled, InvalidArgument, TenureError

#: The default lease time to live, in seconds.
DEFAULT_TTL = 30.0


class _AcquireArgs:
    """The checked options of one acquire, in the native call's order."""

    __slots__ = ("limit", "lock_delay", "name", "shared", "ttl", "wait")

    def __init__(
        self,
        name: str,
        ttl: Duration,
        wait: Duration | None,
        shared: bool,
        limit: int,
        lock_delay: Duration,
    ) -> None:
        self.name = _args.name(name)
        self.ttl = _args.seconds(ttl, "ttl")
        self.wait = _args.optional_seconds(wait, "wait")
        self.shared = bool(shared)
        self.limit = _args.count(limit, "limit")
        self.lock_delay = _args.seconds(lock_delay, "lock_delay")


class _ClientBase:
    """Settings both clients share."""

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        owner: str | None = None,
        timeout: Duration = 5.0,
        tls_ca_file: str | os.PathLike[str] | None = None,
        bearer_token: str | None = None,
    ) -> None:
        if owner is not None:
            _args.name(owner, "owner")
        if bearer_token is not None and not isinstance(bearer_token, str):
            raise InvalidArgument(
                f"bearer_token must be a string, got {type(bearer_token).__name__}", field="bearer_token"
            )
        self._native = NativeClient(
            _args.endpoints(endpoints),
            owner,
            _args.seconds(timeout, "timeout"),
            None if tls_ca_file is None else os.fspath(tls_ca_file),
            bearer_token,
        )
        self._closed = False
        self._pid = os.getpid()
        #: The watches opened through this client: closing the client ends them.
        self._watches: weakref.WeakSet[Watch | AsyncWatch] = weakref.WeakSet()
        _open_clients.add(self)

    @property
    def owner(self) -> str:
        """The owner text recorded with this client's leases (default ``hostname:pid``)."""
        return self._native.owner

    @property
    def timeout(self) -> float:
        """How long one call may take, retries included, in seconds (lock waits come on top)."""
        return self._native.timeout

    @property
    def closed(self) -> bool:
        return self._closed

    def _close_watches(self) -> None:
        for watch in list(self._watches):
            watch.close()

    def _close_at_exit(self) -> None:
        if not self._closed and os.getpid() == self._pid:
            self._closed = True
            self._close_watches()
            self._native.close()

    def _client(self) -> NativeClient:
        if self._closed:
            raise Cancelled("the client is closed")
        return self._native


class Client(_ClientBase):
    """A blocking client of a tenure cluster. Thread-safe: share one per process.

    ``endpoints`` are ``host:port`` or ``http(s)://host:port`` (a list, or one comma-separated
    string); by default ``TENURE_ENDPOINTS``, else ``127.0.0.1:7070``. Making a client contacts
    no node: the first call finds the leader. ``timeout`` bounds each call, retries included.
    ``tls_ca_file`` is the CA certificate (PEM) of a cluster that serves TLS (endpoints without a
    scheme then use https); ``bearer_token`` is sent with every call to a cluster that requires one.

    Blocking calls release the GIL, and Ctrl-C interrupts them (a waiting acquire is withdrawn).
    A client cannot be used in a child process forked after tenure was first used
    (:class:`tenure.UsedAfterFork`).
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        owner: str | None = None,
        timeout: Duration = 5.0,
        tls_ca_file: str | os.PathLike[str] | None = None,
        bearer_token: str | None = None,
    ) -> None:
        super().__init__(endpoints, owner, timeout, tls_ca_file, bearer_token)
        self.kv = KV(self)

    def lock(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration | None = None,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> LockContext:
        """A context manager that takes lock ``name`` and yields the :class:`Lease`.

        It raises instead of running the block without the lock: :class:`tenure.LockTimeout`
        when ``wait`` runs out (``None`` waits until granted, ``0`` tries once). The lock is
        released when the block ends; if the lease was lost while the block ran, leaving it
        raises :class:`tenure.LeaseLost`.
        """
        return LockContext(self, _AcquireArgs(name, ttl, wait, shared, limit, lock_delay))

    def acquire(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration | None = None,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> Lease:
        """Takes lock ``name``, waiting up to ``wait`` seconds (``None``: until granted).

        While it waits, the request keeps its place in the queue across leader changes. When
        ``wait`` runs out the request is withdrawn and :class:`tenure.LockTimeout` is raised.
        ``shared=True`` takes it shared with at most ``limit`` holders (0: no limit). After the
        lease *expires* (not after a release), nobody gets the lock for ``lock_delay`` seconds.
        """
        return self._acquire(_AcquireArgs(name, ttl, wait, shared, limit, lock_delay))

    def try_acquire(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> Lease | None:
        """Takes lock ``name`` only if it is free now; None when it is busy. Never waits."""
        a = _AcquireArgs(name, ttl, 0, shared, limit, lock_delay)
        native = self._client().try_acquire(a.name, a.ttl, a.shared, a.limit, a.lock_delay)
        return None if native is None else Lease(native)

    def _acquire(self, a: _AcquireArgs) -> Lease:
        native = self._client().acquire(a.name, a.ttl, a.wait, a.shared, a.limit, a.lock_delay)
        return Lease(native)

    def describe(self, name: str) -> LockDescription:
        """Holders, waiters (in queue order) and limit of lock ``name``, read linearizably."""
        return self._client().describe(_args.name(name))

    def list(self, prefix: str = "") -> list[LockSummary]:
        """Every lock whose name starts with ``prefix``, in byte order."""
        return self._client().list(_args.name(prefix, "prefix"))

    def validate_fence(self, name: str, token: int) -> FenceStatus:
        """Whether ``token`` is a current hold of lock ``name``."""
        return self._client().validate_fence(_args.name(name), _args.token(token))

    def cluster_status(self) -> ClusterStatus:
        """The cluster as the first node that answers sees it."""
        return self._client().cluster_status()

    def watch(self, name: str, *, prefix: bool = False, from_index: int | None = None) -> Watch:
        """Watches the committed events of lock ``name`` (with ``prefix=True``: of every lock whose
        name starts with ``name``; ``""`` watches every lock).

        Returns once the watch has started: it yields a :class:`tenure.LockEvent` for each request
        queued, granted, released, expired or cancelled, in log order, from the next committed
        entry on, or from log index ``from_index``. To resume after the last event you handled,
        pass its ``index + 1``. Raises :class:`tenure.Compacted` when no node keeps history that
        old. Use the watch as a context manager, or call its ``close()``.
        """
        watch = Watch(self._client().watch(*_watch_args(name, prefix, from_index)))
        self._watches.add(watch)
        return watch

    def close(self) -> None:
        """Releases every lease this client still holds or waits for and ends its watches; the
        client is then unusable.

        Call it (or use the client as a context manager) before a short-lived process exits.
        """
        if self._closed:
            return
        self._closed = True
        self._close_watches()
        if os.getpid() == self._pid:
            self._native.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LockContext:
    """Returned by :meth:`Client.lock`: takes the lock on ``__enter__``, releases it on exit."""

    __slots__ = ("_args", "_client", "_lease")

    def __init__(self, client: Client, args: _AcquireArgs) -> None:
        self._client = client
        self._args = args
        self._lease: Lease | None = None

    def __enter__(self) -> Lease:
        self._lease = self._client._acquire(self._args)
        return self._lease

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            _exit(lease, exc, lease.release)


class KV:
    """The cluster's small replicated key/value store (``client.kv``). Keys and values are bytes
    (str is encoded as UTF-8). A write with ``if_fence=(lock name, token)`` (or a lease) is
    applied only if that token is a current hold of that lock, else :class:`tenure.FencedOut`."""

    __slots__ = ("_owner",)

    def __init__(self, client: Client) -> None:
        self._owner = client

    def get(self, key: str | bytes) -> KvEntry | None:
        """The entry at ``key``, or None."""
        return self._owner._client().kv_get(_args.data(key, "key"))

    def put(self, key: str | bytes, value: str | bytes, if_fence: Fence | None = None) -> int:
        """Writes ``value`` at ``key``; returns the write's revision."""
        return self._owner._client().kv_put(
            _args.data(key, "key"), _args.data(value, "value"), _args.fence(if_fence)
        )

    def delete(self, key: str | bytes, if_fence: Fence | None = None) -> bool:
        """Deletes ``key``; returns whether it existed."""
        return self._owner._client().kv_delete(_args.data(key, "key"), _args.fence(if_fence))

    def list(self, prefix: str | bytes = b"") -> list[KvEntry]:
        """Every entry whose key starts with ``prefix``, in key order."""
        return self._owner._client().kv_list(_args.data(prefix, "prefix"))


def _watch_args(name: str, prefix: bool, from_index: int | None) -> tuple[str, bool, int | None]:
    """The checked arguments of a watch, in the native call's order."""
    return (_args.name(name), _args.flag(prefix, "prefix"), _args.optional_index(from_index, "from_index"))


#: Clients not closed yet; at interpreter exit they are closed, so what they hold or wait for is
#: released (and a withdrawal started by Ctrl-C completes) before the process goes away.
_open_clients: weakref.WeakSet[_ClientBase] = weakref.WeakSet()


@atexit.register
def _at_exit() -> None:
    try:
        for client in list(_open_clients):
            # An unreachable cluster: the leases expire after their TTL.
            with contextlib.suppress(TenureError):
                client._close_at_exit()
    except KeyboardInterrupt:
        pass  # Ctrl-C at exit: leave at once
    finally:
        # The client's threads must be out of Python before the interpreter finalizes.
        _quiesce(1.0)

"""The asyncio client: :class:`AsyncClient`, the same surface as :class:`tenure.Client` with
``await``. Calls run on the client core's own threads; the event loop is never blocked.

Cancelling a call (task cancel, ``asyncio.wait_for``, ``asyncio.timeout``) cancels it in the
core: a waiting acquire withdraws its request, so no ghost holder or waiter stays behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from types import TracebackType

from . import _args
from ._args import Duration, Fence
from ._lease import AsyncLease
from ._native import (
    ClusterStatus,
    FenceStatus,
    KvEntry,
    LockDescription,
    LockSummary,
    NativeLease,
    NativeWatch,
)
from ._watch import AsyncWatch
from .client import DEFAULT_TTL, _AcquireArgs, _ClientBase, _watch_args
from .errors import TenureError


class AsyncClient(_ClientBase):
    """An asyncio client of a tenure cluster; see :class:`tenure.Client` for the arguments.

    Making one contacts no node and needs no running loop; its calls must be awaited on one.
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
        self.kv = AsyncKV(self)

    def lock(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration | None = None,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> AsyncLockContext:
        """``async with client.lock(name) as lease:`` takes the lock, yields the
        :class:`AsyncLease`, and releases it when the block ends. See :meth:`tenure.Client.lock`.
        """
        return AsyncLockContext(self, _AcquireArgs(name, ttl, wait, shared, limit, lock_delay))

    async def acquire(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration | None = None,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> AsyncLease:
        """Takes lock ``name``; see :meth:`tenure.Client.acquire`."""
        return await self._acquire(_AcquireArgs(name, ttl, wait, shared, limit, lock_delay))

    async def try_acquire(
        self,
        name: str,
        ttl: Duration = DEFAULT_TTL,
        shared: bool = False,
        limit: int = 0,
        lock_delay: Duration = 0.0,
    ) -> AsyncLease | None:
        """Takes lock ``name`` only if it is free now; None when it is busy."""
        a = _AcquireArgs(name, ttl, 0, shared, limit, lock_delay)
        native: NativeLease | None = await self._client().try_acquire_async(
            a.name, a.ttl, a.shared, a.limit, a.lock_delay
        )
        return None if native is None else AsyncLease(native)

    async def _acquire(self, a: _AcquireArgs) -> AsyncLease:
        native: NativeLease = await self._client().acquire_async(
            a.name, a.ttl, a.wait, a.shared, a.limit, a.lock_delay
        )
        return AsyncLease(native)

    async def describe(self, name: str) -> LockDescription:
        """Holders, waiters (in queue order) and limit of lock ``name``."""
        result: LockDescription = await self._client().describe_async(_args.name(name))
        return result

    async def list(self, prefix: str = "") -> list[LockSummary]:
        """Every lock whose name starts with ``prefix``, in byte order."""
        result: list[LockSummary] = await self._client().list_async(_args.name(prefix, "prefix"))
        return result

    async def validate_fence(self, name: str, token: int) -> FenceStatus:
        """Whether ``token`` is a current hold of lock ``name``."""
        result: FenceStatus = await self._client().validate_fence_async(_args.name(name), _args.token(token))
        return result

    async def cluster_status(self) -> ClusterStatus:
        """The cluster as the first node that answers sees it."""
        result: ClusterStatus = await self._client().cluster_status_async()
        return result

    def watch(self, name: str, *, prefix: bool = False, from_index: int | None = None) -> AsyncWatch:
        """Watches the committed events of lock ``name`` (or, with ``prefix=True``, of every lock
        under that prefix); see :meth:`tenure.Client.watch`.

        ``async with client.watch(name) as watch:`` or ``watch = await client.watch(name)`` starts
        it; then ``async for event in watch``. Arguments are checked at once.
        """
        args = _watch_args(name, prefix, from_index)

        async def open_watch() -> NativeWatch:
            native: NativeWatch = await self._client().watch_async(*args)
            return native

        watch = AsyncWatch(open_watch)
        self._watches.add(watch)
        return watch

    async def close(self) -> None:
        """Releases every lease this client still holds or waits for and ends its watches; the
        client is then unusable."""
        if self._closed:
            return
        self._closed = True
        self._close_watches()
        await self._native.close_async()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class AsyncLockContext:
    """Returned by :meth:`AsyncClient.lock`: ``async with`` takes the lock and releases it."""

    __slots__ = ("_args", "_client", "_lease")

    def __init__(self, client: AsyncClient, args: _AcquireArgs) -> None:
        self._client = client
        self._args = args
        self._lease: AsyncLease | None = None

    async def __aenter__(self) -> AsyncLease:
        self._lease = await self._client._acquire(self._args)
        return self._lease

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        if exc is not None:
            # The body's exception wins; the core retries a failed release in the background.
            with contextlib.suppress(TenureError):
                await lease.release()
            return
        await lease.__aexit__(None, None, None)


class AsyncKV:
    """``client.kv`` of an :class:`AsyncClient`; see :class:`tenure.KV`."""

    __slots__ = ("_owner",)

    def __init__(self, client: AsyncClient) -> None:
        self._owner = client

    async def get(self, key: str | bytes) -> KvEntry | None:
        """The entry at ``key``, or None."""
        result: KvEntry | None = await self._owner._client().kv_get_async(_args.data(key, "key"))
        return result

    async def put(self, key: str | bytes, value: str | bytes, if_fence: Fence | None = None) -> int:
        """Writes ``value`` at ``key``; returns the write's revision."""
        result: int = await self._owner._client().kv_put_async(
            _args.data(key, "key"), _args.data(value, "value"), _args.fence(if_fence)
        )
        return result

    async def delete(self, key: str | bytes, if_fence: Fence | None = None) -> bool:
        """Deletes ``key``; returns whether it existed."""
        result: bool = await self._owner._client().kv_delete_async(
            _args.data(key, "key"), _args.fence(if_fence)
        )
        return result

    async def list(self, prefix: str | bytes = b"") -> list[KvEntry]:
        """Every entry whose key starts with ``prefix``, in key order."""
        result: list[KvEntry] = await self._owner._client().kv_list_async(_args.data(prefix, "prefix"))
        return result

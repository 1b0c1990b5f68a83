"""Watches of committed lock events: :class:`Watch` (an iterator) and :class:`AsyncWatch` (an
async iterator), both closable and usable as context managers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType

from ._native import LockEvent, NativeWatch


class Watch:
    """The committed events of a lock (or of every lock under a prefix), in log order.

    Returned by :meth:`tenure.Client.watch`, already started: every event committed after the
    call returned (or from ``from_index``) is delivered, none twice, across node failures. Each
    ``next()`` waits with the GIL released; Ctrl-C interrupts it without losing an event.

    Iteration ends when the watch is closed (:meth:`close`, from any thread, leaving the
    ``with`` block, or closing the client). :class:`tenure.Unavailable` (no node answered for a
    while) leaves the watch open: iterate again to keep trying. Any other error (e.g.
    :class:`tenure.Compacted`) ends it.
    """

    __slots__ = ("__weakref__", "_native")

    def __init__(self, native: NativeWatch) -> None:
        self._native = native

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> LockEvent:
        event = self._native.next()
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        """Ends the watch: a ``next()`` waiting in another thread returns, and iteration stops.
        Idempotent."""
        self._native.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Watch closed={self.closed}>"


class AsyncWatch:
    """The asyncio twin of :class:`Watch`, returned by :meth:`tenure.AsyncClient.watch`.

    ``await client.watch(...)`` and ``async with client.watch(...) as watch`` start it (the events
    delivered are those committed after that); ``async for`` on a watch not started yet starts it
    on the first step. Cancelling a step (task cancel, ``asyncio.wait_for``) loses no event.
    """

    __slots__ = ("__weakref__", "_closed", "_lock", "_native", "_open")

    def __init__(self, open_watch: Callable[[], Awaitable[NativeWatch]]) -> None:
        self._open = open_watch
        self._native: NativeWatch | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def _started(self) -> NativeWatch | None:
        async with self._lock:
            if self._native is None and not self._closed:
                self._native = await self._open()
                if self._closed:  # closed while it opened
                    self._native.close()
        return None if self._closed else self._native

    async def start(self) -> AsyncWatch:
        """Opens the stream if it is not open yet; returns the watch."""
        await self._started()
        return self

    def __await__(self) -> Generator[object, None, AsyncWatch]:
        return self.start().__await__()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> LockEvent:
        native = await self._started()
        if native is None:
            raise StopAsyncIteration
        event: LockEvent | None = await native.next_async()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Ends the watch: a pending step returns, and iteration stops. Idempotent."""
        self._closed = True
        if self._native is not None:
            self._native.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaitable (as for async generators and ``contextlib.aclosing``)."""
        self.close()

    async def __aenter__(self) -> AsyncWatch:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AsyncWatch started={self._native is not None} closed={self._closed}>"

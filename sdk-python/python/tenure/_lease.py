"""Held leases: :class:`Lease` (blocking) and :class:`AsyncLease` (asyncio)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from ._native import NativeLease
from .errors import LeaseLost, TenureError


class LeaseBase:
    """What both lease classes share: the grant's fields and the lost-lease event."""

    __slots__ = ("_native", "lost")

    def __init__(self, native: NativeLease) -> None:
        self._native = native
        #: Set (from a background thread) when the lease is lost or in doubt: the leader reported
        #: it gone, or no renewal was confirmed within 90% of the TTL. It is set before the leader
        #: can grant the lock to anyone else. Never set by a clean release.
        self.lost = threading.Event()
        native.on_lost(self.lost.set)

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._native.name

    @property
    def token(self) -> int:
        """The fencing token of this grant: unique, and higher than every earlier grant's."""
        return self._native.token

    @property
    def request_id(self) -> str:
        """The request id of this lease (its handle on the server)."""
        return self._native.request_id

    @property
    def owner(self) -> str:
        """The owner text recorded with the lease."""
        return self._native.owner

    @property
    def mode(self) -> str:
        """``"EXCLUSIVE"`` or ``"SHARED"``."""
        return self._native.mode

    @property
    def ttl(self) -> float:
        """The lease's time to live, in seconds (fixed at acquire)."""
        return self._native.ttl

    @property
    def granted_at(self) -> datetime:
        """When the leader granted the lease (its wall clock, UTC)."""
        return self._native.granted_at

    @property
    def expires_at(self) -> datetime:
        """Until when the lease is surely held unless renewed before (UTC): the send time of the
        last confirmed renewal plus 90% of the TTL. The client renews it in the background."""
        return self._native.expires_at

    @property
    def held(self) -> bool:
        """Whether the lease is held: granted, not released, not lost, recently renewed."""
        return self._native.held

    @property
    def lost_reason(self) -> str | None:
        """Why the lease was lost, once it has been."""
        return self._native.lost_reason

    @property
    def fence(self) -> tuple[str, int]:
        """``(name, token)``, the condition of a fenced KV write (``if_fence=``)."""
        return (self.name, self.token)

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(
            f"the lease on {self.name!r} (token {self.token}) was lost while the block ran: "
            f"{self.lost_reason or 'renewal not confirmed'}"
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self.name!r} token={self.token} "
            f"request_id={self.request_id!r} held={self.held}>"
        )


class Lease(LeaseBase):
    """A lock held through :class:`tenure.Client`. The client keeps it alive in the background.

    Release it with :meth:`release` or by using it as a context manager; a lease that is
    garbage-collected unreleased is released in the background (best effort).
    """

    __slots__ = ()

    def renew(self) -> None:
        """Renews the lease now, on top of the background keepalive.

        Raises :class:`LeaseLost` if the leader no longer has it.
        """
        self._native.renew()

    def release(self) -> bool:
        """Releases the lock and waits for the leader to confirm; returns whether it was still held.

        Idempotent: once confirmed, later calls return False.
        """
        return self._native.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _exit(self, exc, self.release)


class AsyncLease(LeaseBase):
    """A lock held through :class:`tenure.AsyncClient`; see :class:`Lease`."""

    __slots__ = ()

    async def renew(self) -> None:
        """Renews the lease now. Raises :class:`LeaseLost` if the leader no longer has it."""
        await self._native.renew_async()

    async def release(self) -> bool:
        """Releases the lock and waits for the leader to confirm; returns whether it was held."""
        return bool(await self._native.release_async())

    async def wait_lost(self) -> bool:
        """Waits until the lease is lost (True) or released (False)."""
        return bool(await self._native.wait_lost_async())

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            # The body's exception wins; the core retries a failed release in the background.
            with contextlib.suppress(TenureError):
                await self.release()
            return
        lost = self.lost.is_set()
        await self.release()
        if lost:
            raise self._lost_error()


def _exit(lease: LeaseBase, exc: BaseException | None, release: Callable[[], object]) -> None:
    """Leaving a ``with`` block: release; if the body succeeded but the lease was lost while it
    ran, raise :class:`LeaseLost` so the caller knows the work was not protected throughout."""
    if exc is not None:
        # The body's exception wins; the core retries a failed release in the background.
        with contextlib.suppress(TenureError):
            release()
        return
    lost = lease.lost.is_set()
    release()
    if lost:
        raise lease._lost_error()

"""The exceptions of tenure: one class per stable error code of the client core.

Every exception is a :class:`TenureError` with a ``code`` (the core's stable code string, the
same in every SDK). Catch the subclass you care about::

    try:
        with client.lock("job", wait=5):
            ...
    except tenure.LockTimeout:
        ...  # busy for 5 s; the request was withdrawn
"""

from __future__ import annotations


class TenureError(Exception):
    """Base class of every tenure error; ``code`` is the core's stable code string."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        #: The offending argument, for INVALID_ARGUMENT (e.g. ``"ttl"``, ``"name"``); else None.
        self.field = field or None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(TenureError, ValueError):
    """An argument is missing, malformed or out of bounds; ``field`` names it."""

    code = "INVALID_ARGUMENT"


class LimitMismatch(TenureError):
    """A shared acquire's ``limit`` differs from the one the lock already has."""

    code = "LIMIT_MISMATCH"


class FencedOut(TenureError):
    """An ``if_fence`` token is not a current hold of its lock: the write was not applied."""

    code = "FENCED_OUT"


class RequestFinished(TenureError):
    """An acquire reused a request id that has already finished."""

    code = "REQUEST_FINISHED"


class ResourceExhausted(TenureError):
    """A server cap (waiters per lock, number of locks) is reached."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(TenureError):
    """The server requires credentials and none (or bad ones) were given."""

    code = "UNAUTHENTICATED"


class PermissionDenied(TenureError):
    """The credentials do not allow this call."""

    code = "PERMISSION_DENIED"


class Compacted(TenureError):
    """A watch's start index is older than any node still keeps."""

    code = "COMPACTED"


class QuorumAtRisk(TenureError):
    """A membership change was refused: the voters left would not include a quorum of live
    members. Not raised by this package's calls (membership is changed with the ``tenure`` CLI)."""

    code = "QUORUM_AT_RISK"


class LockTimeout(TenureError, TimeoutError):
    """The lock was not granted within ``wait``; the request has been withdrawn."""

    code = "TIMEOUT"


class LeaseLost(TenureError):
    """The lease is gone, or its renewal could not be confirmed in time: stop acting as holder."""

    code = "LEASE_LOST"


class Cancelled(TenureError):
    """The call was cancelled, or the client was closed."""

    code = "CANCELLED"


class Unavailable(TenureError):
    """No node answered within the call's deadline (nodes down, no quorum, network)."""

    code = "UNAVAILABLE"


class InternalError(TenureError):
    """A bug, in the server or the client."""

    code = "INTERNAL"


class UsedAfterFork(TenureError, RuntimeError):
    """tenure was used in a process forked after its client runtime started.

    The runtime's threads do not survive ``fork()``; create clients in processes started with
    multiprocessing's ``spawn`` or ``forkserver`` method, or fork before using tenure.
    """

    code = "USED_AFTER_FORK"


#: The exception class of every code.
ERRORS_BY_CODE: dict[str, type[TenureError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        LimitMismatch,
        FencedOut,
        RequestFinished,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Compacted,
        QuorumAtRisk,
        LockTimeout,
        LeaseLost,
        Cancelled,
        Unavailable,
        InternalError,
        UsedAfterFork,
    )
}


def _from_native(code: str, message: str, field: str) -> TenureError:
    """Called by ``tenure._native`` to turn a core error into its exception."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return TenureError(message, code=code, field=field)
    return cls(message, field=field)

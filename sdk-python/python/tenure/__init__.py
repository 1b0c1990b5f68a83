"""tenure: a Python client for the tenure distributed lock service.

Leased locks with fencing tokens, FIFO-fair waiting that survives leader failover, and prompt
lost-lease detection, built on the Rust client core::

    import tenure

    with tenure.Client() as client:  # TENURE_ENDPOINTS, else 127.0.0.1:7070
        with client.lock("job-123", ttl=30, wait=10) as lease:
            client.kv.put("job-123/state", "running", if_fence=lease)

:class:`AsyncClient` has the same surface for asyncio (``async with client.lock(...)``).
``client.watch(name)`` follows a lock's committed events (:class:`LockEvent`), resumably.
"""

from ._args import Duration, Fence
from ._lease import AsyncLease, Lease
from ._native import (
    DEFAULT_ENDPOINT,
    ClusterStatus,
    FenceStatus,
    KvEntry,
    LeaseInfo,
    LockDescription,
    LockEvent,
    LockSummary,
    Member,
    WaiterInfo,
)
from ._watch import AsyncWatch, Watch
from .aio import AsyncClient, AsyncKV, AsyncLockContext
from .client import DEFAULT_TTL, KV, Client, LockContext
from .errors import (
    Cancelled,
    Compacted,
    FencedOut,
    InternalError,
    InvalidArgument,
    LeaseLost,
    LimitMismatch,
    LockTimeout,
    PermissionDenied,
    QuorumAtRisk,
    RequestFinished,
    ResourceExhausted,
    TenureError,
    Unauthenticated,
    Unavailable,
    UsedAfterFork,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TTL",
    "KV",
    "AsyncClient",
    "AsyncKV",
    "AsyncLease",
    "AsyncLockContext",
    "AsyncWatch",
    "Cancelled",
    "Client",
    "ClusterStatus",
    "Compacted",
    "Duration",
    "Fence",
    "FenceStatus",
    "FencedOut",
    "InternalError",
    "InvalidArgument",
    "KvEntry",
    "Lease",
    "LeaseInfo",
    "LeaseLost",
    "LimitMismatch",
    "LockContext",
    "LockDescription",
    "LockEvent",
    "LockSummary",
    "LockTimeout",
    "Member",
    "PermissionDenied",
    "QuorumAtRisk",
    "RequestFinished",
    "ResourceExhausted",
    "TenureError",
    "Unauthenticated",
    "Unavailable",
    "UsedAfterFork",
    "WaiterInfo",
    "Watch",
]

"""Checking and converting the arguments both clients take (durations, endpoints, keys, fences)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Union

from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._lease import LeaseBase

#: A duration: seconds as an int or float, or a ``datetime.timedelta``.
Duration = Union[float, int, timedelta]  # noqa: UP007 (kept a Union for Python 3.10 aliases)
#: A fenced write's condition: ``(lock name, fencing token)``, or a held lease.
Fence = Union[tuple[str, int], "LeaseBase"]


def seconds(value: Duration, field: str) -> float:
    """``value`` in seconds; refuses negatives, NaN, infinities and non-numbers."""
    if isinstance(value, timedelta):
        s = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        s = float(value)
    else:
        raise InvalidArgument(
            f"{field} must be a number of seconds or a datetime.timedelta, got {type(value).__name__}",
            field=field,
        )
    if math.isnan(s) or math.isinf(s) or s < 0:
        raise InvalidArgument(f"{field} must be a finite number of seconds >= 0, got {value!r}", field=field)
    return s


def optional_seconds(value: Duration | None, field: str) -> float | None:
    return None if value is None else seconds(value, field)


def endpoints(value: str | Sequence[str] | None) -> list[str]:
    """A list of endpoints; a string may hold several, comma-separated. Empty: the core's default."""
    if value is None:
        return []
    if isinstance(value, str):
        return [e.strip() for e in value.split(",") if e.strip()]
    out = []
    for e in value:
        if not isinstance(e, str):
            raise InvalidArgument(f"endpoints must be strings, got {type(e).__name__}", field="endpoints")
        out.append(e)
    return out


def name(value: str, field: str = "name") -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a str, got {type(value).__name__}", field=field)
    return value


def count(value: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise InvalidArgument(f"{field} must be an int in 0..=4294967295, got {value!r}", field=field)
    return value


def token(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise InvalidArgument(f"token must be an int in 0..2**64, got {value!r}", field="token")
    return value


def data(value: str | bytes, field: str) -> bytes:
    """Keys and values: bytes as they are, str as UTF-8."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidArgument(f"{field} must be str or bytes, got {type(value).__name__}", field=field)


def fence(value: Fence | None) -> tuple[str, int] | None:
    if value is None:
        return None
    from ._lease import LeaseBase

    if isinstance(value, LeaseBase):
        return value.fence
    if isinstance(value, tuple) and len(value) == 2:
        return (name(value[0], "if_fence"), token(value[1]))
    raise InvalidArgument("if_fence must be (lock name, token) or a Lease", field="if_fence")


def flag(value: bool, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field} must be a bool, got {type(value).__name__}", field=field)
    return value


def optional_index(value: int | None, field: str) -> int | None:
    """A log index: None, or an int in 0..2**64."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise InvalidArgument(f"{field} must be None or an int in 0..2**64, got {value!r}", field=field)
    return value

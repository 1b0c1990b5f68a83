"""A cluster that requires bearer tokens (``tenured --auth-config``), and the CA file setting."""

from __future__ import annotations

from pathlib import Path

import pytest

import tenure
from cluster import Cluster


def test_a_call_without_a_token_is_unauthenticated(auth_cluster: Cluster) -> None:
    with tenure.Client(auth_cluster.endpoints) as c, pytest.raises(tenure.Unauthenticated):
        c.describe("jobs/x")


def test_a_token_reads_within_its_prefix_but_may_not_lock(auth_cluster: Cluster) -> None:
    with tenure.Client(auth_cluster.endpoints, bearer_token="reader-token") as c:
        assert c.describe("jobs/x").holders == []
        with pytest.raises(tenure.PermissionDenied):
            c.try_acquire("jobs/x")
        with pytest.raises(tenure.PermissionDenied):
            c.describe("other/x")


async def test_the_async_client_sends_its_token_too(auth_cluster: Cluster) -> None:
    async with tenure.AsyncClient(auth_cluster.endpoints, bearer_token="reader-token") as c:
        assert (await c.describe("jobs/x")).holders == []


def test_an_unreadable_ca_file_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(tenure.InvalidArgument) as e:
        tenure.Client("127.0.0.1:1", tls_ca_file=tmp_path / "missing.pem")
    assert e.value.field == "tls_ca_file"

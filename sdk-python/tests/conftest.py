"""Fixtures: real 3-node clusters of the workspace's ``tenured`` (``TENURE_BIN``, else the repo's
``target/ci/tenured``), a client per test, and a fresh lock name per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

import tenure

sys.path.insert(0, str(Path(__file__).parent))

from cluster import Cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tenured_bin() -> str:
    binary = os.environ.get("TENURE_BIN")
    if not binary:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        if not target.is_absolute():
            target = REPO / target
        binary = str(target / "ci" / "tenured")
    if not os.access(binary, os.X_OK):
        pytest.fail(
            f"no tenured binary at {binary}: build it with "
            "`cargo build --profile ci -p tenure-server --bin tenured`, or set TENURE_BIN"
        )
    return binary


def start_cluster(
    binary: str, root: Path, flags: Sequence[str] = (), token: str | None = None
) -> Iterator[Cluster]:
    cluster = Cluster(binary, root, flags=flags, token=token)
    try:
        cluster.start()
    except BaseException:
        logs = cluster.logs()
        cluster.close()
        raise AssertionError(f"the cluster did not start\n{logs}") from None
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def cluster(tenured_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster shared by the tests that leave its nodes alone."""
    yield from start_cluster(tenured_bin, tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="module")
def fault_cluster(tenured_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of the module's own, for tests that kill or freeze nodes."""
    yield from start_cluster(tenured_bin, tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def short_history_cluster(tenured_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster whose nodes keep only the last 10 or so lock events for watches."""
    yield from start_cluster(tenured_bin, tmp_path_factory.mktemp("short-history"), ["--watch-history", "10"])


AUTH = """
[[token]]
name = "harness"
token = "harness-token"
prefixes = [""]
rights = ["read", "lock"]

[[token]]
name = "dashboard"
token = "reader-token"
prefixes = ["jobs/"]
rights = ["read"]
"""


@pytest.fixture(scope="module")
def auth_cluster(tenured_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster that requires bearer tokens (``--auth-config``); the harness uses ``harness-token``."""
    root = tmp_path_factory.mktemp("auth")
    (root / "auth.toml").write_text(AUTH)
    flags = ["--auth-config", str(root / "auth.toml")]
    yield from start_cluster(tenured_bin, root, flags, token="harness-token")


@pytest.fixture
def client(cluster: Cluster) -> Iterator[tenure.Client]:
    with tenure.Client(cluster.endpoints) as c:
        yield c


@pytest.fixture
async def aclient(cluster: Cluster) -> AsyncIterator[tenure.AsyncClient]:
    async with tenure.AsyncClient(cluster.endpoints) as c:
        yield c


@pytest.fixture
def lock_name(request: pytest.FixtureRequest) -> str:
    return f"py/{request.node.name}/{uuid.uuid4().hex[:8]}"

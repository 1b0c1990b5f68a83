"""Test harness: a real 3-node tenure cluster of ``tenured`` processes on free loopback ports.

Every wait polls a condition against a deadline; every node this harness started is killed when
the cluster is closed, even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import tenure

T = TypeVar("T")

#: Flags that make elections fast without changing semantics (as server/tests/common does).
FAST = ["--heartbeat-ms", "50", "--election-min-ms", "300", "--election-max-ms", "600"]
#: Ports the documented local cluster uses; tests never take them.
RESERVED = range(7070, 7084)


def eventually(what: str, check: Callable[[], T | None], timeout: float = 20.0, every: float = 0.02) -> T:
    """Polls ``check`` until it returns something other than None/False; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except tenure.TenureError as e:
            last_error = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what} (last error: {last_error})")
        time.sleep(every)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, none of them in 7070..7083."""
    ports: list[int] = []
    socks = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in RESERVED and port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class Node:
    def __init__(self, node_id: int, grpc: int, http: int, root: Path) -> None:
        self.id = node_id
        self.addr = f"127.0.0.1:{grpc}"
        self.http = f"127.0.0.1:{http}"
        self.data_dir = root / f"node{node_id}"
        self.log = root / f"node{node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None


class Cluster:
    """A 3-node cluster started from the ``tenured`` binary at ``binary``, its files under ``root``."""

    def __init__(
        self, binary: str, root: Path, size: int = 3, flags: Sequence[str] = (), token: str | None = None
    ) -> None:
        self.binary = binary
        #: Extra ``tenured`` flags for every node (caps, history sizes).
        self.flags = list(flags)
        #: The harness's bearer token, for a cluster started with ``--auth-config``.
        self.token = token
        ports = free_ports(2 * size)
        self.nodes = [Node(i + 1, ports[2 * i], ports[2 * i + 1], root) for i in range(size)]
        self.peers = ",".join(f"{n.id}={n.addr}" for n in self.nodes)
        self.stopped: set[int] = set()

    @property
    def endpoints(self) -> str:
        """Every node, comma-separated (what ``TENURE_ENDPOINTS`` takes)."""
        return ",".join(n.addr for n in self.nodes)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def start(self) -> Cluster:
        for n in reversed(self.nodes):
            self.spawn(n.id)
        self.wait_ready()
        return self

    def spawn(self, node_id: int) -> None:
        n = self.node(node_id)
        cmd = [
            self.binary,
            "--id", str(n.id),
            "--listen", n.addr,
            "--advertise", n.addr,
            "--http", n.http,
            "--peers", self.peers,
            "--data-dir", str(n.data_dir),
            *FAST,
            *self.flags,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
        env.update(RUST_LOG="info,openraft=warn", NO_COLOR="1")
        with open(n.log, "ab") as log:
            n.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        n = self.node(node_id)
        if n.proc is not None:
            if node_id in self.stopped:
                self.cont(node_id)
            n.proc.kill()
            n.proc.wait(timeout=10)
            n.proc = None

    def stop(self, node_id: int) -> None:
        """SIGSTOP: the node freezes, sockets open, answering nothing."""
        n = self.node(node_id)
        assert n.proc is not None
        n.proc.send_signal(signal.SIGSTOP)
        self.stopped.add(node_id)

    def cont(self, node_id: int) -> None:
        n = self.node(node_id)
        if n.proc is not None and node_id in self.stopped:
            n.proc.send_signal(signal.SIGCONT)
        self.stopped.discard(node_id)

    def status(self, node_id: int) -> tenure.ClusterStatus | None:
        with tenure.Client(self.node(node_id).addr, timeout=1.0, bearer_token=self.token) as c:
            try:
                return c.cluster_status()
            except tenure.TenureError:
                return None

    def leader(self, timeout: float = 20.0) -> int:
        """The id of the node that says it leads, once a running node says so."""

        def find() -> int | None:
            for n in self.nodes:
                if n.proc is None or n.id in self.stopped:
                    continue
                s = self.status(n.id)
                if s is not None and s.role == "leader" and s.has_quorum:
                    return n.id
            return None

        return eventually("a leader", find, timeout=timeout, every=0.05)

    def wait_ready(self, timeout: float = 30.0) -> int:
        """Waits until a leader serves lock calls (a try-lock succeeds); returns its id."""
        with tenure.Client(self.endpoints, timeout=2.0, bearer_token=self.token) as c:

            def probe() -> bool:
                lease = c.try_acquire("harness-probe", ttl=5)
                if lease is None:
                    return False
                lease.release()
                return True

            eventually("the cluster to serve a try-lock", probe, timeout=timeout, every=0.05)
        return self.leader(timeout)

    def close(self) -> None:
        for n in self.nodes:
            if n.proc is not None:
                self.cont(n.id)
                n.proc.kill()
                n.proc.wait(timeout=10)
                n.proc = None

    def logs(self) -> str:
        out = []
        for n in self.nodes:
            text = n.log.read_text(errors="replace") if n.log.exists() else ""
            out.append(f"--- node {n.id}:\n{text[-4000:]}")
        return "\n".join(out)

"""Mutual exclusion: threads of one process, and separate processes, never hold one lock at once."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import tenure
from cluster import Cluster

CONTENDER = str(Path(__file__).parent / "contender.py")


def assert_no_overlap(rounds: list[dict[str, float]]) -> None:
    """Holds (enter, exit) never intersect, and tokens grow in the order the holds happened."""
    rounds = sorted(rounds, key=lambda r: r["enter"])
    for a, b in itertools.pairwise(rounds):
        assert a["exit"] <= b["enter"], f"two holders at once: {a} and {b}"
        assert a["token"] < b["token"], f"tokens went backwards: {a} then {b}"
    assert not any(r["overlap"] for r in rounds)


def test_two_threads_contending_never_overlap(client: tenure.Client, lock_name: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "inside")
    rounds: list[dict[str, float]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(10):
                with client.lock(lock_name, ttl=10, wait=30) as lease:
                    enter = time.monotonic()
                    overlap = False
                    try:
                        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        overlap = True
                    time.sleep(0.005)  # hold it for a moment, to give an overlap a chance
                    if not overlap:
                        os.unlink(marker)
                    leave = time.monotonic()
                with guard:
                    rounds.append({"enter": enter, "exit": leave, "token": lease.token, "overlap": overlap})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert errors == []
    assert len(rounds) == 20
    assert_no_overlap(rounds)


def test_two_processes_contending_never_overlap(cluster: Cluster, lock_name: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "inside")
    procs = [
        subprocess.Popen(
            [sys.executable, CONTENDER, cluster.endpoints, lock_name, "10", marker],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    rounds = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        rounds += [json.loads(line) for line in out.splitlines()]
    assert len(rounds) == 20
    assert_no_overlap(rounds)

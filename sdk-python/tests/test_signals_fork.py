"""Ctrl-C during a blocking wait, and use after fork()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tenure
from cluster import Cluster, eventually

CONTENDER = str(Path(__file__).parent / "contender.py")


def test_sigint_interrupts_a_blocking_wait_within_100ms_and_withdraws_the_request(
    cluster: Cluster, client: tenure.Client, lock_name: str
) -> None:
    holder = client.acquire(lock_name)
    child = subprocess.Popen(
        [sys.executable, CONTENDER, cluster.endpoints, lock_name, "wait", "sigint-child"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        eventually(
            "the child to queue",
            lambda: [w.owner for w in client.describe(lock_name).waiters] == ["sigint-child"],
        )
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode == 3, (out, err)
    reacted = float(out.split()[-1]) - sent
    print(f"reacted in {reacted * 1000:.1f} ms")
    assert reacted < 0.1, f"KeyboardInterrupt came {reacted * 1000:.0f} ms after SIGINT"
    eventually("the interrupted waiter to leave the queue", lambda: client.describe(lock_name).waiters == [])
    holder.release()
    assert client.describe(lock_name).holders == [], "no ghost holder"


def test_using_a_client_after_fork_raises_a_clear_error(client: tenure.Client, lock_name: str) -> None:
    client.describe(lock_name)  # the client runtime is running in this process
    lease = client.acquire(lock_name)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what happened through the pipe, never return into pytest
        code = 1
        try:
            os.close(read)
            results = []
            for call in (
                lambda: client.describe(lock_name),
                lambda: lease.renew(),
                lambda: tenure.Client().describe(lock_name),
            ):
                try:
                    call()
                    results.append("no error")
                except tenure.UsedAfterFork as e:
                    results.append(f"{e.code}|{e}")
                except BaseException as e:
                    results.append(f"other: {e!r}")
            os.write(write, "\n".join(results).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(read) as f:
        results = f.read().splitlines()
    assert os.WEXITSTATUS(status) == 0
    assert len(results) == 3, results
    for r in results:
        assert r.startswith("USED_AFTER_FORK|"), results
        assert "fork" in r and "spawn" in r
    assert lease.held, "the parent is unaffected"
    lease.release()

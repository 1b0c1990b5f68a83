"""The README's example, as written, and examples/worker.py, against a real cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import tenure
from cluster import Cluster

SDK = Path(__file__).resolve().parents[1]
MARKER = "<!-- python-example:"


def readme_blocks() -> list[str]:
    """The ```python blocks of the README's example section (from the marker comment on)."""
    text = (SDK / "README.md").read_text()
    start = text.index(MARKER)
    section = text[start : text.index("\n## ", start)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_python(code: str, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TENURE_ENDPOINTS=cluster.endpoints)
    return subprocess.run(
        [sys.executable, *args] if not code else [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_readme_examples_run_as_written(cluster: Cluster) -> None:
    blocks = readme_blocks()
    assert len(blocks) == 3, "the sync, the asyncio and the watch example"
    for code in blocks:
        done = run_python(code, cluster)
        assert done.returncode == 0, done.stderr
    first = run_python(blocks[0], cluster)
    assert re.search(r"holding job-123 with fencing token \d+", first.stdout), first.stdout
    assert "busy, as expected" in first.stdout and "not reached" not in first.stdout
    watched = run_python(blocks[2], cluster)
    assert watched.returncode == 0, watched.stderr
    events = r"^\d+ GRANTED job-123 token=\d+\n\d+ RELEASED job-123 token=\d+$"
    assert re.search(events, watched.stdout, re.M), watched.stdout


def test_asyncio_scripts_exit_cleanly(cluster: Cluster) -> None:
    # A completion handed to the event loop from the client's threads must never be under way
    # while the interpreter finalizes (that aborted about one exit in ten before _quiesce).
    code = readme_blocks()[1]
    for _ in range(10):
        done = run_python(code, cluster)
        assert done.returncode == 0, (done.returncode, done.stderr)


def test_workers_do_every_job_once_with_fenced_writes(cluster: Cluster, client: tenure.Client) -> None:
    prefix = f"py-jobs/{uuid.uuid4().hex[:8]}"
    worker = str(SDK / "examples" / "worker.py")
    env = dict(os.environ, TENURE_ENDPOINTS=cluster.endpoints)
    procs = [
        subprocess.Popen(
            [sys.executable, worker, "--name", name, "--prefix", prefix, "--jobs", "15"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    done: dict[str, list[int]] = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        report = json.loads(out)
        done[report["worker"]] = report["done"]
    assert sorted(done["a"] + done["b"]) == list(range(15)), "every job once"
    results = client.kv.list(f"{prefix}/")
    assert len(results) == 15
    for entry in results:
        record = json.loads(entry.value)
        job = int(entry.key.decode().split("/")[-2])
        assert job in done[record["worker"]]
        assert record["token"] > 0
    assert client.list(prefix) == [], "every job lock was released"

"""A worker that takes jobs under a lock and writes each result with a fenced KV put.

Run several at once; each job is done exactly once, by whichever worker locks it first:

    export TENURE_ENDPOINTS=127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073
    python examples/worker.py --name a & python examples/worker.py --name b & wait

Jobs are numbered 0..N-1 under a prefix. For each one the worker tries the lock ``<prefix>/<n>``
(never waiting: another worker has it), skips it if a result is already stored, and otherwise
computes the result and stores it at ``<prefix>/<n>/result`` with ``if_fence=lease``: if the
lease was lost meanwhile and someone else took the job, the write is refused with
``tenure.FencedOut`` instead of overwriting the newer holder's work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import tenure


def compute(job: int) -> str:
    """The "work": a digest of the job number, and a little time spent on it."""
    time.sleep(0.02)
    return hashlib.sha256(str(job).encode()).hexdigest()[:16]


def run(client: tenure.Client, name: str, prefix: str, jobs: int) -> list[int]:
    """Does every job no one else has done or is doing; returns the ones this worker did."""
    done = []
    for job in range(jobs):
        lease = client.try_acquire(f"{prefix}/{job}", ttl=10)
        if lease is None:
            continue  # another worker holds this job
        with lease:
            result_key = f"{prefix}/{job}/result"
            if client.kv.get(result_key) is not None:
                continue  # done already
            result = compute(job)
            if lease.lost.is_set():
                continue  # the lease was lost while working: leave the job to someone else
            record = {"result": result, "worker": name, "token": lease.token}
            try:
                client.kv.put(result_key, json.dumps(record), if_fence=lease)
            except tenure.FencedOut:
                continue  # someone else holds the job now; their write wins
            done.append(job)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="worker", help="this worker's name (recorded with results)")
    parser.add_argument("--prefix", default="jobs", help="key and lock prefix of the jobs")
    parser.add_argument("--jobs", type=int, default=20, help="number of jobs")
    args = parser.parse_args()
    with tenure.Client(owner=f"worker-{args.name}") as client:
        done = run(client, args.name, args.prefix, args.jobs)
    print(json.dumps({"worker": args.name, "done": done}))


if __name__ == "__main__":
    main()

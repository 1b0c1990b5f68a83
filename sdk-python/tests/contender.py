"""A contender for one lock, run as its own process by test_contention.py and test_signals_fork.py.

python contender.py ENDPOINTS NAME ROUNDS MARKER   take the lock ROUNDS times; inside, create
    MARKER exclusively (O_EXCL) and remove it; print one JSON line per round:
    {"enter": t, "exit": t, "token": n, "overlap": bool} (times on the system-wide monotonic
    clock)
python contender.py ENDPOINTS NAME wait OWNER      print "waiting", then wait for the lock
    forever; on KeyboardInterrupt print "interrupted <monotonic time>" and exit 3
"""

from __future__ import annotations

import json
import os
import sys
import time

import tenure


def contend(endpoints: str, name: str, rounds: int, marker: str) -> None:
    with tenure.Client(endpoints) as client:
        for _ in range(rounds):
            with client.lock(name, ttl=10, wait=60) as lease:
                enter = time.monotonic()
                overlap = False
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    os.close(fd)
                except FileExistsError:
                    overlap = True
                time.sleep(0.01)  # hold the lock for a moment, to give an overlap a chance
                if not overlap:
                    os.unlink(marker)
                leave = time.monotonic()
            print(
                json.dumps({"enter": enter, "exit": leave, "token": lease.token, "overlap": overlap}),
                flush=True,
            )


def wait(endpoints: str, name: str, owner: str) -> None:
    client = tenure.Client(endpoints, owner=owner)
    print("waiting", flush=True)
    try:
        client.acquire(name)
    except KeyboardInterrupt:
        print(f"interrupted {time.monotonic()}", flush=True)
        sys.exit(3)
    print("granted", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    endpoints, name, what, arg = sys.argv[1:5]
    if what == "wait":
        wait(endpoints, name, arg)
    else:
        contend(endpoints, name, int(what), arg)

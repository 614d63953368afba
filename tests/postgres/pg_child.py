"""A host, as a process, for tests/postgres/test_hosts.py (run with ``python pg_child.py``).

Commands (argv[1]); every line printed is flushed at once, so a parent that kills us has
every line we printed before the kill:

- ``write DSN SCHEMA AGENT COUNT MODE``: append COUNT steps (0: forever), printing
  ``ACK seq step`` after each append returns.
- ``pause DSN SCHEMA AGENT``: append 5 steps, print ``READY last_seq``, wait for a line on
  stdin, then try one more append and print ``ERR <type>`` or ``OK seq``, then again.
- ``read DSN SCHEMA AGENTS STOPFILE``: follow the agents' journals read-only until STOPFILE
  exists; check that every state seen matches its step; print ``SEEN n`` and exit 0 (1 on a
  mismatch).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend


def state(step: int) -> dict[str, Any]:
    return {"n": step, "log": [f"entry {k}" for k in range(step % 50)], "who": os.getpid()}


def write(dsn: str, schema: str, agent: str, count: int, mode: str) -> None:
    with PostgresBackend(dsn, schema=schema) as be, \
            Journal(agent, backend=be, durability=mode, snapshot_every=25) as j:
        step = j.last_step
        while count == 0 or step < count:
            step += 1
            try:
                a = j.append(state(step), step=step)
            except Exception as e:  # what a fault gives the writer: a typed error
                print(f"ERR {type(e).__name__} {type(e.__cause__).__name__}", flush=True)
                return
            print(f"ACK {a.seq} {a.step}", flush=True)


def pause(dsn: str, schema: str, agent: str) -> None:
    with PostgresBackend(dsn, schema=schema) as be:
        j = Journal(agent, backend=be, snapshot_every=None)
        for step in range(1, 6):
            j.append(state(step), step=step)
        print(f"READY {j.last_seq}", flush=True)
        sys.stdin.readline()
        for _ in range(2):
            try:
                a = j.append(state(99), step=99)
                print(f"OK {a.seq}", flush=True)
            except Exception as e:  # the point: which typed error
                print(f"ERR {type(e).__name__} {e}", flush=True)
        try:
            j.close()
        except Exception as e:
            print(f"CLOSE {type(e).__name__}", flush=True)


def read(dsn: str, schema: str, agents: str, stopfile: str) -> int:
    seen = 0
    with PostgresBackend(dsn, schema=schema) as be:
        while not os.path.exists(stopfile):
            for agent in agents.split(","):
                if not be.exists(agent):
                    continue
                with Journal(agent, backend=be, readonly=True) as r:
                    res = r.resume()
                    if res.step and res.state["n"] != res.step:
                        print(f"MISMATCH {agent} {res.step} {res.state['n']}", flush=True)
                        return 1
                    seen += 1
            time.sleep(0.05)
    print(f"SEEN {seen}", flush=True)
    return 0


def main() -> int:
    cmd, *args = sys.argv[1:]
    if cmd == "write":
        write(args[0], args[1], args[2], int(args[3]), args[4])
    elif cmd == "pause":
        pause(args[0], args[1], args[2])
    elif cmd == "read":
        return read(*args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-append latency of the PostgreSQL backend in each durability mode (and the filesystem
backend beside it, on the same machine, for scale).

    python benchmarks/bench_postgres_backend.py [--dsn postgresql://...] [--steps 300]

Without ``--dsn`` (or ``AGENTJOURNAL_TEST_PG_DSN``) a throw-away local cluster is started
(tests/_pgserver.py) and removed. Workload: a growing conversation, one message (~200 bytes)
appended per step, snapshots every 50 steps. Prints a table (median, p90, p99 of one
``Journal.append`` in microseconds), the table bytes per record, the time to resume in a new
backend object, and one JSON line ``BENCH_POSTGRES_BACKEND {...}``. No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from agentjournal import Journal  # noqa: E402
from agentjournal.backends import FilesystemBackend  # noqa: E402
from agentjournal.backends.base import Backend  # noqa: E402

MODES = ("sync", "group", "none")


def _message(i: int) -> dict[str, Any]:
    return {"role": "assistant" if i % 2 else "user", "n": i,
            "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 6}


class _JournalSystem:
    """One journal being appended to, a step at a time (so systems can take turns)."""

    def __init__(self, backend: Backend, agent: str, mode: str) -> None:
        self.j = Journal(agent, backend=backend, durability=mode, snapshot_every=50)
        self.state: dict[str, Any] = {"messages": []}
        self.lat: list[float] = []

    def step(self) -> None:
        self.state["messages"].append(_message(len(self.state["messages"])))
        t0 = time.perf_counter()
        self.j.append(self.state)
        self.lat.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.j.close()


class _RawSystem:
    """The floor: one plain autocommit INSERT of a 450-byte row per step, on one
    connection, with ``synchronous_commit`` = ``setting`` (what any client pays)."""

    def __init__(self, dsn: str, schema: str, setting: str) -> None:
        import psycopg

        self.c = psycopg.connect(dsn, autocommit=True)
        self.table = f"{schema}.raw_{setting}"
        self.c.execute(f"CREATE TABLE {self.table} (seq bigint PRIMARY KEY, line bytea)")
        self.c.execute(f"SET synchronous_commit = {setting}")
        self.lat: list[float] = []

    def step(self) -> None:
        t0 = time.perf_counter()
        self.c.execute(f"INSERT INTO {self.table} VALUES (%s, %s)", (len(self.lat), b"x" * 450))
        self.lat.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.c.close()


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=os.environ.get("AGENTJOURNAL_TEST_PG_DSN"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--schema", default="bench_pg_backend")
    args = ap.parse_args()

    import psycopg

    from agentjournal.backends.postgres import PostgresBackend

    server = None
    dsn = args.dsn
    if not dsn:
        from _pgserver import PgServer

        server = PgServer().start()
        dsn = server.dsn
    try:
        time_schema = args.schema + "_time"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
            c.execute(f"DROP SCHEMA IF EXISTS {time_schema} CASCADE")
            version = str(c.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        be = PostgresBackend(dsn, schema=args.schema)
        row_be = PostgresBackend(dsn, schema=args.schema, lease="row")
        # Time partitions (daily; a schema of their own, so the size figure below stays the
        # hash layout's).
        time_be = PostgresBackend(dsn, schema=time_schema, partition="time")
        tmp = tempfile.TemporaryDirectory()
        fs = FilesystemBackend(Path(tmp.name) / "store")
        systems: dict[tuple[str, str], Any] = {}
        try:
            for mode in MODES:
                systems["postgres", mode] = _JournalSystem(be, f"pg-{mode}", mode)
            for mode in ("sync", "none"):  # the lease for transaction-mode poolers
                systems["pg-row", mode] = _JournalSystem(row_be, f"row-{mode}", mode)
            for mode in ("sync", "none"):
                systems["pg-time", mode] = _JournalSystem(time_be, f"time-{mode}", mode)
            for mode, setting in (("sync", "on"), ("none", "off")):
                systems["raw-insert", mode] = _RawSystem(dsn, args.schema, setting)
            for mode in MODES:
                systems["filesystem", mode] = _JournalSystem(fs, f"fs-{mode}", mode)
            # Take turns, 10 steps each, so that the machine's load (it is shared) falls on
            # every system alike rather than on whichever ran while it was busy.
            for _ in range(0, args.steps, 10):
                for system in systems.values():
                    for _ in range(10):
                        system.step()
        finally:
            for system in systems.values():
                system.close()
            row_be.close()
            time_be.close()
        rows = [{"store": k[0], "mode": k[1], "lat": v.lat} for k, v in systems.items()]
        try:
            with psycopg.connect(dsn) as c:  # the advisory and row lease journals
                (rec_bytes,) = c.execute(  # type: ignore[misc]
                    "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                    "WHERE inhparent = %s::regclass", (f"{args.schema}.records",)).fetchone()
                (nrec,) = c.execute(  # type: ignore[misc]
                    f"SELECT count(*) FROM {args.schema}.records").fetchone()
                (line_bytes,) = c.execute(  # type: ignore[misc]
                    f"SELECT sum(octet_length(line)) FROM {args.schema}.records").fetchone()
            t0 = time.perf_counter()
            with PostgresBackend(dsn, schema=args.schema) as fresh, \
                    Journal("pg-sync", backend=fresh, readonly=True) as r:
                assert len(r.resume().state["messages"]) == len(systems["postgres", "sync"].lat)
            resume_ms = (time.perf_counter() - t0) * 1000
        finally:
            be.close()
            tmp.cleanup()
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
            c.execute(f"DROP SCHEMA IF EXISTS {time_schema} CASCADE")
    finally:
        if server is not None:
            server.stop()

    steps = len(rows[0]["lat"])
    print(f"PostgreSQL {version}, {steps} appends per system (taking turns), growing "
          "conversation; "
          f"{os.cpu_count()} CPUs, shared machine: figures are indicative")
    print(f"{'store':<11} {'mode':<6} {'median us':>10} {'p90 us':>9} {'p99 us':>9}")
    out: dict[str, Any] = {"steps": steps, "server": version, "modes": {}}
    for r in rows:
        lat = r["lat"]
        med, p90, p99 = (statistics.median(lat) * 1e6, _pct(lat, 0.9) * 1e6,
                         _pct(lat, 0.99) * 1e6)
        print(f"{r['store']:<11} {r['mode']:<6} {med:>10.0f} {p90:>9.0f} {p99:>9.0f}")
        out["modes"][f"{r['store']}-{r['mode']}"] = {"median_us": round(med),
                                                     "p90_us": round(p90),
                                                     "p99_us": round(p99)}
    per = int(rec_bytes) / max(int(nrec), 1)
    print(f"records table + indexes: {int(rec_bytes)} bytes for {nrec} records "
          f"({per:.0f} bytes/record; the lines themselves {int(line_bytes) / int(nrec):.0f})")
    print(f"resume ({steps} steps, new backend object, read-only): {resume_ms:.1f} ms")
    out.update(records=int(nrec), records_table_bytes=int(rec_bytes),
               line_bytes=int(line_bytes), resume_ms=round(resume_ms, 1))
    print("BENCH_POSTGRES_BACKEND " + json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

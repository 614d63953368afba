"""Throughput of fleet expiry (``agentjournal.expiry.expire``) on the filesystem and PostgreSQL.

    python benchmarks/bench_expiry.py [--agents 1000] [--steps 30] [--workers 1]
                                      [--dsn postgresql://...] [--no-postgres]
                                      [--time-partitions SECONDS]

Workload: ``--agents`` agents, each ``--steps`` steps (a small growing state, snapshots every
10 steps, durability ``none`` to build it fast); then a cutoff; then 5 more steps for every
other agent (busy ones; the others are idle). Timed, per backend: a dry run, the real run
(prunes every agent), and a re-run (a no-op: every agent looked at read-only); with
``--time-partitions``, PostgreSQL once more on time partitions of that many seconds (the
history written in rounds of 10 steps, one partition each, and two intervals waited after
the build, so the partitions before the cutoff can be dropped).
Without
``--dsn`` (or ``AGENTJOURNAL_TEST_PG_DSN``) a throw-away local cluster is started
(tests/_pgserver.py) and removed. Prints a table and one JSON line ``BENCH_EXPIRY {...}``.
No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
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
from agentjournal.expiry import expire  # noqa: E402


def _build(backend: Backend, agents: int, steps: int, interval: int = 0) -> float:
    """Write the fleet; returns the cutoff. ``interval`` (time partitions): the history is
    written in rounds of 10 steps over every agent, each round in a partition of its own
    (as days of a real fleet would be), so the old rounds can be dropped whole."""
    def write(agent: str, rng: range) -> None:
        with Journal(agent, backend=backend, durability="none", snapshot_every=10) as j:
            for i in rng:
                j.append({"i": i, "notes": [f"note {k}" for k in range(i % 8)]})

    rounds = [range(r, min(r + 10, steps)) for r in range(0, steps, 10)] if interval else [
        range(steps)]
    for rng in rounds:
        for a in range(agents):
            write(f"agent-{a:05d}", rng)
        if interval:
            time.sleep(interval - time.time() % interval + 0.01)
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    for a in range(0, agents, 2):
        write(f"agent-{a:05d}", range(steps, steps + 5))
    return cut


def _run(name: str, backend: Backend, agents: int, steps: int, workers: int,
         settle: float = 0.0) -> dict[str, Any]:
    t0 = time.perf_counter()
    cut = _build(backend, agents, steps, int(settle / 2.2))
    build = time.perf_counter() - t0
    time.sleep(settle)  # time partitions: let the ones before the cutoff age past "previous"
    out: dict[str, Any] = {"build_s": round(build, 2)}
    for phase, dry in (("dry-run", True), ("expire", False), ("re-run", False)):
        t0 = time.perf_counter()
        rep = expire(backend, older_than=cut, dry_run=dry, workers=workers)
        dt = time.perf_counter() - t0
        assert not rep.errors, rep.errors[:3]
        out[phase] = {"seconds": round(dt, 3), "agents_per_s": round(agents / dt, 1),
                      "pruned": len(rep.pruned), "segments_deleted": rep.segments_deleted,
                      "unchanged": rep.unchanged,
                      "partitions_dropped": sum(1 for p in rep.partitions if p["dropped"]),
                      "partition_bytes": sum(p["bytes"] for p in rep.partitions
                                             if p["dropped"])}
    print(f"{name}: built {agents} agents x {steps}+ steps in {build:.1f} s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dsn", default=os.environ.get("AGENTJOURNAL_TEST_PG_DSN"))
    ap.add_argument("--schema", default="bench_expiry")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="expire(workers=N)")
    ap.add_argument("--time-partitions", type=int, default=0, metavar="SECONDS",
                    help="also run PostgreSQL with partition='time' and this interval")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["filesystem"] = _run("filesystem", FilesystemBackend(tmp), args.agents,
                                     args.steps, args.workers)
    if not args.no_postgres:
        import psycopg

        from agentjournal.backends.postgres import PostgresBackend

        server = None
        dsn = args.dsn
        if not dsn:
            from _pgserver import PgServer

            server = PgServer().start()
            dsn = server.dsn
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
            with PostgresBackend(dsn, schema=args.schema) as be:
                results["postgres"] = _run("postgres", be, args.agents, args.steps,
                                           args.workers)
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
            if args.time_partitions:
                with PostgresBackend(dsn, schema=args.schema, partition="time",
                                     partition_interval=args.time_partitions) as be:
                    results["pg-time"] = _run("pg-time", be, args.agents, args.steps,
                                              args.workers, 2.2 * args.time_partitions)
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
        finally:
            if server is not None:
                server.stop()
    print()
    print(f"{'backend':<11} {'phase':<8} {'seconds':>8} {'agents/s':>9} {'pruned':>7} "
          f"{'segments':>9} {'unchanged':>9} {'partitions':>10}")
    for name, r in results.items():
        for phase in ("dry-run", "expire", "re-run"):
            p = r[phase]
            print(f"{name:<11} {phase:<8} {p['seconds']:>8.2f} {p['agents_per_s']:>9.1f} "
                  f"{p['pruned']:>7} {p['segments_deleted']:>9} {p['unchanged']:>9} "
                  f"{p['partitions_dropped']:>10}")
    print("BENCH_EXPIRY " + json.dumps({"agents": args.agents, "steps": args.steps,
                                        "workers": args.workers, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

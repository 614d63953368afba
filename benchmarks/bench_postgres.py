#!/usr/bin/env python3
"""agentjournal on PostgreSQL against LangGraph's PostgresSaver, on one local server.

Two workloads, every system in its own fresh database of the same server, one after another:

**Growing conversation** (one ~500-byte message appended per step, N steps; default 1000,
``--big``: 10000 for ``--big-systems``, default those whose cost per step does not grow):

- ``journal``: ``Journal(agent, backend=PostgresBackend(dsn))`` in its default configuration
  (durability ``sync``, default snapshots), ``append(state)`` of the whole state each step
- ``journal-lg``: ``JournalSaver(backend=PostgresBackend(dsn))`` on a LangGraph graph that
  appends one ``AIMessage`` per step (graph durability ``sync``)
- ``pg-saver``: LangGraph's ``PostgresSaver`` on the same graph (graph durability ``sync``)
- ``pg-saver-delta``: the same with ``messages`` as a ``DeltaChannel`` (when langgraph has it)

Figures: per-step cost (median of the first and of the last 100 steps), bytes of WAL the run
generated (``pg_current_wal_insert_lsn`` before and after: every byte PostgreSQL writes for
the data goes through the WAL first) per step, table+index size (``pg_total_relation_size`` of
every table of the system) after 1000 steps and at the end, and, in a new process: opening the
store and reading the latest state, and listing the history (the last 100 checkpoints with
their states for the LangGraph systems; the last 100 steps' records for ``journal``), medians of
``--repeat`` runs.

**Fleet throughput**: A agents (1, 8, 64) spread over P processes (1 to 4), each agent a thread
writing steps of ~250 bytes (a counter and a message replaced) as fast as it can for
``--seconds``; acknowledged steps per second over the whole fleet, in ``sync`` (a step counts
once its write call returned, i.e. its commit is durable on the server). Also the most
server sessions connected to the fleet's database at once during the run (``pg_stat_activity``).

The server is ``--dsn`` or ``AGENTJOURNAL_TEST_PG_DSN``, else a throw-away cluster started here
(tests/_pgserver.py: initdb, loopback, fsync on) and removed at the end. Prints a table per
workload, then one JSON line. ``--quick``: a smoke run (50 steps, 1 and 8 agents, 0.5 s).

    python benchmarks/bench_postgres.py                     # 1000 steps, fleet 1/8/64
    python benchmarks/bench_postgres.py --big               # 10000 steps for the linear ones
    python benchmarks/bench_postgres.py --quick --dsn postgresql://postgres@127.0.0.1:5432/postgres

Reports, does not test: no figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

CONVERSATION = ["journal", "journal-lg", "pg-saver", "pg-saver-delta"]
FLEET = ["journal", "journal-lg", "pg-saver"]
FLEET_SHAPES = [(1, 1), (8, 1), (8, 4), (64, 1), (64, 4)]
BIG = "journal,pg-saver-delta"
"""Systems run to 10000 steps with --big: those whose cost per step does not grow with the
history. ``pg-saver`` writes the whole message list every step (~25 GB at 10000 steps);
``journal-lg`` (JournalSaver) gets slower per step as the thread grows (see
docs/postgres-fleet.md), so both stay at --steps unless named in --big-systems."""
HISTORY = 100
"""Entries listed by the history figure (LangGraph's history holds every entry's full state:
1000 of them at 10000 steps would be gigabytes of messages)."""
PAD = "x" * 420
FLEET_PAD = "y" * 200
SIZE_AT = 1000


# --- the server and its databases ------------------------------------------------------------


def with_db(dsn: str, db: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + db))


def admin(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


def wal_lsn(dsn: str) -> int:
    with admin(dsn) as c:
        row = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')").fetchone()
        return int(row[0])


def relation_bytes(dsn: str) -> int:
    """Table+index (and TOAST) bytes of every user table of the database."""
    with admin(dsn) as c:
        row = c.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND "
            "n.nspname NOT IN ('pg_catalog', 'information_schema') AND "
            "n.nspname NOT LIKE 'pg_toast%'").fetchone()
        return int(row[0])


def table_bytes(dsn: str) -> dict[str, int]:
    """Table+index bytes by table (the partitions of a partitioned table summed into it)."""
    with admin(dsn) as c:
        rows = c.execute(
            "SELECT coalesce(p.relname, c.relname), sum(pg_total_relation_size(c.oid)) FROM "
            "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_inherits i "
            "ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent WHERE "
            "c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' GROUP BY 1 ORDER BY 2 DESC").fetchall()
        return {str(name): int(size) for name, size in rows}


def row_count(dsn: str) -> int:
    with admin(dsn) as c:
        c.execute("ANALYZE")
        row = c.execute(
            "SELECT coalesce(sum(c.reltuples), 0) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
        return int(max(0, row[0]))


class Server:
    """The server of the run: given, or a throw-away cluster."""

    def __init__(self, dsn: str | None) -> None:
        self.cluster: Any = None
        if dsn:
            self.dsn = dsn
            return
        sys.path.insert(0, str(HERE.parent.parent / "tests"))
        from _pgserver import PgServer, wait_ready

        self.cluster = PgServer({"max_connections": "300", "shared_buffers": "128MB"}).start()
        self.dsn = self.cluster.dsn
        wait_ready(self.dsn)

    def database(self, system: str) -> str:
        name = f"bench_{system.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        with admin(self.dsn) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return with_db(self.dsn, name)

    def drop(self, db_dsn: str) -> None:
        name = urlsplit(db_dsn).path.lstrip("/")
        with admin(self.dsn) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def version(self) -> str:
        with admin(self.dsn) as c:
            return str(c.execute("SHOW server_version").fetchone()[0])

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


# --- the LangGraph graphs ----------------------------------------------------------------------


def _concat(state: list[Any], writes: list[list[Any]]) -> list[Any]:
    out = list(state or [])
    for w in writes:
        out.extend(w)
    return out


class State(TypedDict):
    messages: Annotated[list[Any], operator.add]
    n: int
    goal: int


try:
    from langgraph.channels import DeltaChannel
except ImportError:  # an older langgraph: pg-saver-delta is skipped
    DeltaChannel = None

if DeltaChannel is not None:
    class DState(TypedDict):
        messages: Annotated[list[Any], DeltaChannel(_concat)]
        n: int
        goal: int


class FleetState(TypedDict):
    n: int
    msg: str
    stop: float


def conversation_graph(system: str, saver: Any, on_step: Any) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, StateGraph

    schema: Any = DState if system == "pg-saver-delta" else State

    def speak(s: dict[str, Any]) -> dict[str, Any]:
        n = s["n"] + 1
        on_step(n)
        return {"messages": [AIMessage(f"turn {n} {PAD}", id=f"m{n}")], "n": n}

    b = StateGraph(schema)
    b.add_node("speak", speak)
    b.add_edge(START, "speak")
    b.add_conditional_edges("speak", lambda s: "speak" if s["n"] < s["goal"] else END)
    return b.compile(checkpointer=saver)


def fleet_graph(saver: Any, counter: list[int]) -> Any:
    from langgraph.graph import END, START, StateGraph

    def work(s: dict[str, Any]) -> dict[str, Any]:
        counter[0] += 1  # the previous step's checkpoint is durable when this node runs
        n = s["n"] + 1
        return {"n": n, "msg": f"{n} {FLEET_PAD}"}

    b = StateGraph(FleetState)
    b.add_node("work", work)
    b.add_edge(START, "work")
    b.add_conditional_edges("work", lambda s: "work" if time.time() < s["stop"] else END)
    return b.compile(checkpointer=saver)


def open_saver(system: str, db: str, *, setup: bool = True) -> tuple[Any, Any]:
    """(saver, closer) of a LangGraph system on database ``db`` (``setup``: create
    PostgresSaver's tables, which is not safe to run concurrently)."""
    if system == "journal-lg":
        from agentjournal.backends.postgres import PostgresBackend
        from agentjournal.integrations.langgraph import JournalSaver

        be = PostgresBackend(db)
        saver = JournalSaver(backend=be)

        def close() -> None:
            saver.close()
            be.close()

        return saver, close
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    conn = psycopg.connect(db, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    saver = PostgresSaver(conn)
    if setup:
        saver.setup()
    return saver, conn.close


# --- the growing conversation -----------------------------------------------------------------


def message(n: int) -> dict[str, Any]:
    return {"role": "assistant", "content": f"turn {n} {PAD}", "id": f"m{n}"}


def child_write(system: str, db: str, steps: int) -> dict[str, Any]:
    stamps: list[float] = []
    sizes: dict[str, int] = {}

    def on_step(n: int) -> None:
        stamps.append(time.perf_counter())
        if n == SIZE_AT + 1:  # step 1000's checkpoint is durable once step 1001 starts
            sizes["size_1000"] = relation_bytes(db)

    w0 = wal_lsn(db)
    t0 = time.perf_counter()
    if system == "journal":
        from agentjournal import Journal
        from agentjournal.backends.postgres import PostgresBackend

        be = PostgresBackend(db)
        state: dict[str, Any] = {"messages": [], "n": 0}
        with Journal("bench", backend=be) as j:
            for n in range(1, steps + 1):
                on_step(n)
                state["messages"].append(message(n))
                state["n"] = n
                j.append(state)
            stamps.append(time.perf_counter())
        be.close()
    else:
        saver, close = open_saver(system, db)
        g = conversation_graph(system, saver, on_step)
        cfg = {"configurable": {"thread_id": "bench"}, "recursion_limit": steps + 10}
        g.invoke({"messages": [], "n": 0, "goal": steps}, cfg, durability="sync")
        stamps.append(time.perf_counter())
        close()
    total = time.perf_counter() - t0
    wal = wal_lsn(db) - w0
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    res: dict[str, Any] = {
        "system": system, "steps": steps, "total_s": total,
        "first100_ms": 1000 * statistics.median(gaps[:100]),
        "last100_ms": 1000 * statistics.median(gaps[-100:]),
        "wal_bytes": wal, "wal_per_step": wal / steps,
        "size_end": relation_bytes(db), "rows": row_count(db), "tables": table_bytes(db),
        **sizes}
    if steps == SIZE_AT:
        res["size_1000"] = res["size_end"]
    return res


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def child_read(system: str, db: str, steps: int, repeat: int) -> dict[str, Any]:
    import importlib

    # Imports are not what "a new process" measures: opening the store and resuming is.
    for mod in ("langgraph.graph", "langchain_core.messages", "psycopg", "psycopg_pool",
                "agentjournal.backends.postgres", "agentjournal.integrations.langgraph",
                "langgraph.checkpoint.postgres"):
        importlib.import_module(mod)
    out: dict[str, Any] = {}
    if system == "journal":
        from agentjournal import Journal
        from agentjournal.backends.postgres import PostgresBackend

        t0 = time.perf_counter()
        be = PostgresBackend(db)
        j = Journal("bench", backend=be)  # the way a replacement writer resumes
        r = j.resume()
        out["resume_ms"] = 1000 * (time.perf_counter() - t0)
        assert r.state["n"] == steps, r.state["n"]
        hist: list[Any] = []

        def history() -> None:
            hist[:] = list(j.history(max(1, steps - HISTORY + 1), None))

        out["history_ms"] = 1000 * _median_time(history, repeat)
        out["history_len"] = len(hist)
        j.close()
        be.close()
        return out
    t0 = time.perf_counter()
    saver, close = open_saver(system, db)
    g = conversation_graph(system, saver, lambda n: None)
    cfg = {"configurable": {"thread_id": "bench"}}
    latest = g.get_state(cfg)
    out["resume_ms"] = 1000 * (time.perf_counter() - t0)
    assert latest.values["n"] == steps, latest.values["n"]
    hs: list[Any] = []

    def lg_history() -> None:
        hs[:] = list(g.get_state_history(cfg, limit=HISTORY))

    out["history_ms"] = 1000 * _median_time(lg_history, repeat)
    out["history_len"] = len(hs)
    close()
    return out


# --- the fleet ---------------------------------------------------------------------------------


def child_fleet(system: str, db: str, agents: list[str], seconds: float) -> dict[str, Any]:
    """One process of a fleet: a thread per agent, each opened and ready before the parent
    (told ``ready`` on stdout) sends the start time on stdin to every process at once."""
    counts = [[0] for _ in agents]
    errors: list[str] = []
    ready = threading.Barrier(len(agents) + 1)
    go = threading.Event()
    window = [0.0, 0.0]  # start, stop (time.time())
    shared: Any = None
    closers: list[Any] = []
    if system in ("journal", "journal-lg"):
        from agentjournal.backends.postgres import PostgresBackend

        shared = PostgresBackend(db)
        closers.append(shared.close)

    def start() -> None:
        ready.wait()
        go.wait()
        time.sleep(max(0.0, window[0] - time.time()))

    def run(i: int, agent: str) -> None:
        try:
            if system == "journal":
                from agentjournal import Journal

                with Journal(agent, backend=shared) as j:
                    start()
                    n = 0
                    while time.time() < window[1]:
                        n += 1
                        j.append({"n": n, "msg": f"{n} {FLEET_PAD}"})
                        counts[i][0] += 1
                return
            if system == "journal-lg":
                from agentjournal.integrations.langgraph import JournalSaver

                saver: Any = JournalSaver(backend=shared)
                close = saver.close
            else:
                saver, close = open_saver(system, db, setup=False)
            try:
                g = fleet_graph(saver, counts[i])
                start()
                g.invoke({"n": 0, "msg": "", "stop": window[1]},
                         {"configurable": {"thread_id": agent}, "recursion_limit": 10 ** 7},
                         durability="sync")
            finally:
                close()
        except Exception as e:  # noqa: BLE001 - reported to the parent, which fails
            errors.append(f"{agent}: {type(e).__name__}: {e}")
            ready.abort()
            go.set()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    try:
        ready.wait(timeout=300)
        print("ready", flush=True)
        window[0] = float(sys.stdin.readline())
        window[1] = window[0] + seconds
    except threading.BrokenBarrierError:
        pass
    go.set()
    for t in threads:
        t.join()
    for c in closers:
        c()
    return {"steps": sum(c[0] for c in counts), "errors": errors}


# --- the parent ------------------------------------------------------------------------------


def run_child(args: list[str]) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(HERE), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


class ConnectionPeak:
    """The most server sessions connected to one database at once while the fleet runs
    (``pg_stat_activity`` every 50 ms, from the maintenance database, which is not counted)."""

    def __init__(self, dsn: str, database: str) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(dsn, database), daemon=True)
        self._thread.start()

    def _watch(self, dsn: str, database: str) -> None:
        with admin(dsn) as c:
            while not self._done.wait(0.05):
                row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                (database,)).fetchone()
                self.peak = max(self.peak, int(row[0]))

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def fleet_run(server: Server, system: str, agents: int, procs: int, seconds: float
              ) -> dict[str, Any]:
    db = server.database(system)
    try:
        if system.startswith("pg-saver"):
            _saver, close = open_saver(system, db)  # its tables, once, before the fleet
            close()
        names = [f"agent-{i:03d}" for i in range(agents)]
        per = [names[k::procs] for k in range(procs)]
        ps = [subprocess.Popen(
            [sys.executable, str(HERE), "--child", "fleet", "--system", system, "--db", db,
             "--agents", ",".join(group), "--seconds", repr(seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for group in per if group]
        for p in ps:  # every agent of every process connected and opened
            assert p.stdout is not None
            p.stdout.readline()
        start_at = time.time() + 0.2
        w0 = wal_lsn(db)
        peak = ConnectionPeak(server.dsn, urlsplit(db).path.lstrip("/"))
        for p in ps:
            assert p.stdin is not None
            p.stdin.write(f"{start_at!r}\n")
            p.stdin.flush()
        outs = []
        for p in ps:
            out, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"fleet child failed:\n{out[-2000:]}\n{err[-4000:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        errors = [e for o in outs for e in o["errors"]]
        if errors:
            raise SystemExit(f"fleet {system} {agents}x{procs}: {errors[:3]}")
        steps = sum(o["steps"] for o in outs)
        wal = wal_lsn(db) - w0
        return {"system": system, "agents": agents, "processes": len(ps), "seconds": seconds,
                "steps": steps, "steps_per_s": steps / seconds,
                "wal_per_step": wal / steps if steps else None,
                "connections": peak.stop()}
    finally:
        server.drop(db)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def print_table(title: str, cols: list[tuple[str, str, Any]], rows: list[dict[str, Any]]
                ) -> None:
    table = [[c[1] for c in cols]]
    for r in rows:
        table.append([c[2](r[c[0]]) if r.get(c[0]) is not None else "-" for c in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    print(title)
    for k, row in enumerate(table):
        print("  ".join(v.rjust(widths[i]) if i else v.ljust(widths[i])
                        for i, v in enumerate(row)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()


def have(system: str) -> bool:
    import importlib.util

    if system == "pg-saver-delta" and DeltaChannel is None:
        return False
    if system.startswith("pg-saver"):
        return importlib.util.find_spec("langgraph.checkpoint.postgres") is not None
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=os.environ.get("AGENTJOURNAL_TEST_PG_DSN"),
                    help="server to use (default: a throw-away cluster)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--big", action="store_true",
                    help="10000 steps for the systems of --big-systems")
    ap.add_argument("--big-systems", default=BIG)
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per read figure (median)")
    ap.add_argument("--systems", default=",".join(CONVERSATION))
    ap.add_argument("--fleet-systems", default=",".join(FLEET))
    ap.add_argument("--fleet", default=",".join(f"{a}x{p}" for a, p in FLEET_SHAPES),
                    help="AGENTSxPROCESSES shapes ('' : no fleet run)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each fleet run")
    ap.add_argument("--child", choices=["write", "read", "fleet"], help=argparse.SUPPRESS)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--agents", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "write":
        print(json.dumps(child_write(args.system, args.db, args.steps)))
        return
    if args.child == "read":
        print(json.dumps(child_read(args.system, args.db, args.steps, args.repeat)))
        return
    if args.child == "fleet":
        print(json.dumps(child_fleet(args.system, args.db, args.agents.split(","),
                                     args.seconds)))
        return
    if args.quick:
        args.steps, args.repeat, args.seconds = 50, 1, 0.5
        if args.fleet == ap.get_default("fleet"):
            args.fleet = "1x1,8x2"

    server = Server(args.dsn)
    conversation: list[dict[str, Any]] = []
    fleet: list[dict[str, Any]] = []
    try:
        version = server.version()
        for system in args.systems.split(","):
            if not system:
                continue
            if not have(system):
                print(f"skipped {system}: its package is not installed", file=sys.stderr)
                continue
            steps = 10000 if args.big and system in args.big_systems.split(",") else args.steps
            db = server.database(system)
            try:
                common = ["--system", system, "--db", db, "--steps", str(steps)]
                res = run_child(["--child", "write", *common])
                res.update(run_child(["--child", "read", *common, "--repeat",
                                      str(args.repeat)]))
            finally:
                server.drop(db)
            conversation.append(res)
        for shape in filter(None, args.fleet.split(",")):
            agents, procs = (int(x) for x in shape.split("x"))
            for system in args.fleet_systems.split(","):
                if system and have(system):
                    fleet.append(fleet_run(server, system, agents, procs, args.seconds))
    finally:
        server.close()

    where = (f"PostgreSQL {version}, local server (loopback, fsync on); Python "
             f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
             "shared machine")
    print_table(
        f"Growing conversation (~500 B/step), graph/journal durability sync, medians; {where}",
        [("system", "system", str), ("steps", "steps", str),
         ("first100_ms", "step first100", "{:.2f} ms".format),
         ("last100_ms", "step last100", "{:.2f} ms".format),
         ("total_s", "total", "{:.1f} s".format),
         ("wal_per_step", "WAL/step", fmt_bytes), ("wal_bytes", "WAL total", fmt_bytes),
         ("size_1000", "size @1000", fmt_bytes), ("size_end", "size @end", fmt_bytes),
         ("rows", "rows", "{:.0f}".format),
         ("resume_ms", "resume, new proc", "{:.0f} ms".format),
         ("history_ms", "history", "{:.0f} ms".format),
         ("history_len", "entries", str)], conversation)
    if fleet:
        print_table(f"Fleet: acknowledged steps/s in sync (~250 B/step), {args.seconds:g} s "
                    "per run",
                    [("system", "system", str), ("agents", "agents", str),
                     ("processes", "processes", str), ("steps", "steps", str),
                     ("steps_per_s", "steps/s", "{:.0f}".format),
                     ("wal_per_step", "WAL/step", fmt_bytes),
                     ("connections", "peak conns", str)], fleet)
    print(json.dumps({"bench": "postgres", "server": version, "quick": args.quick,
                      "conversation": conversation, "fleet": fleet}))


if __name__ == "__main__":
    main()

"""Fleet expiry and follower wake-ups on PostgreSQL (skipped without a server).

Expiry runs the same scenarios as ``tests/test_expiry.py`` (whose helpers it reuses) on a
real server, and checks the rows: a pruned segment's records are deleted. The follower
tests drive ``Tail.wait`` (the hook ``log --follow`` and the viewer's live tail use) against
a writer, with notifications working and with the listening session terminated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.backends.postgres._notify import CHECK_EVERY
from agentjournal.expiry import expire
from agentjournal.journal.follow import Tail
from agentjournal.serve.engine import LiveTail
from test_expiry import _check, _fleet, _moment, _shape, _write

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _rows(dsn: str, schema: str, agent: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(f"SELECT count(*) FROM {schema}.records WHERE agent = %s",
                        (agent,)).fetchone()
        assert row is not None
        return int(row[0])


def test_expire_mixed_ages(pg_dsn: str, pg_schema: str, pg_backend: PostgresBackend) -> None:
    cut, states = _fleet(pg_backend)
    before = {a: _shape(pg_backend, a) for a in states}
    rows = {a: _rows(pg_dsn, pg_schema, a) for a in states}
    dry = expire(pg_backend, older_than=cut, dry_run=True)
    assert {a: _shape(pg_backend, a) for a in states} == before  # the dry run changed nothing
    rep = expire(pg_backend, older_than=cut, workers=3)
    assert not rep.errors and not rep.skipped
    assert {p.agent_id for p in rep.pruned} == {"old", "mixed", "zipped", "pruned"}
    assert {p.agent_id: p.segments_deleted for p in dry.pruned} == {
        p.agent_id: p.segments_deleted for p in rep.pruned}
    assert _shape(pg_backend, "new") == before["new"]
    for agent, st in states.items():
        _check(pg_backend, agent, st, cut)
        if agent != "new":  # pruning is row deletes: the records of the pruned segments
            assert _rows(pg_dsn, pg_schema, agent) < rows[agent]
    after = {a: _shape(pg_backend, a) for a in states}
    again = expire(pg_backend, older_than=cut)
    assert not again.pruned and again.unchanged == len(states)
    assert {a: _shape(pg_backend, a) for a in states} == after


def test_expire_keyed_and_drop(pg_backend: PostgresBackend) -> None:
    key = b"fleet-secret"
    states: dict[int, Any] = {}
    _write(pg_backend, "idle", range(12), {})
    _write(pg_backend, "k", range(30), states, key=key)
    cut = _moment()
    _write(pg_backend, "k", range(30, 40), states, key=key)
    rep = expire(pg_backend, older_than=cut, drop_idle_agents=cut,
                 key=lambda a: key if a == "k" else None)
    assert not rep.errors
    assert [d.agent_id for d in rep.dropped] == ["idle"]
    assert [p.agent_id for p in rep.pruned] == ["k"]
    assert pg_backend.list_agents() == ["k"]
    _check(pg_backend, "k", states, cut, key=key)


def test_expire_skips_a_live_writer_elsewhere(pg_dsn: str, pg_schema: str,
                                              pg_backend: PostgresBackend) -> None:
    _write(pg_backend, "held", range(20), {})
    _write(pg_backend, "free", range(20), {})
    cut = _moment()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from agentjournal import Journal
            from agentjournal.backends.postgres import PostgresBackend
            be = PostgresBackend({pg_dsn!r}, schema={pg_schema!r})
            j = Journal("held", backend=be, snapshot_every=None)
            print("ready", flush=True)
            sys.stdin.read()
            j.close()
            be.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        before = _shape(pg_backend, "held")
        rep = expire(pg_backend, older_than=cut, drop_idle_agents=timedelta(days=1))
        assert [s.agent_id for s in rep.skipped] == ["held"]
        assert [p.agent_id for p in rep.pruned] == ["free"]
        assert _shape(pg_backend, "held") == before
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    rep = expire(pg_backend, older_than=cut)
    assert [p.agent_id for p in rep.pruned] == ["held"]


# --- follower wake-ups ------------------------------------------------------------------


def _follow(tail: Tail, j: Journal, n: int, timeout: float) -> tuple[list[int], int]:
    """Append ``n`` steps one at a time; after each, wait for a wake-up and catch up."""
    seen: list[int] = []
    woke = 0
    for i in range(n):
        j.append({"i": i})
        woke += tail.wait(timeout)
        seen += [r.seq for r in tail.poll()]
    return seen, woke


def test_tail_woken_by_notifications(pg_backend: PostgresBackend) -> None:
    with Journal("f", backend=pg_backend, snapshot_every=None) as j:
        j.append({"i": -1})
        store = pg_backend.agent("f", create=False)
        try:
            tail = Tail(store)
            assert tail.wakes
            seen = [r.seq for r in tail.poll()]
            tail.wait(0.05)  # starts following
            time.sleep(CHECK_EVERY + 0.3)  # the writer looks for followers once a second
            more, woke = _follow(tail, j, 10, timeout=20.0)
            seen += more
            # Every wait was ended by a notification, not by its (long) timeout.
            assert woke == 10
            assert seen == list(range(1, j.last_seq + 1))  # each seq once, in order
        finally:
            store.close()


def test_tail_survives_lost_notifications(pg_dsn: str, pg_schema: str,
                                          pg_backend: PostgresBackend) -> None:
    with Journal("g", backend=pg_backend, snapshot_every=None) as j:
        store = pg_backend.agent("g", create=True)
        try:
            tail = Tail(store)
            seen = [r.seq for r in tail.poll()]
            tail.wait(0.05)
            time.sleep(CHECK_EVERY + 0.3)
            with psycopg.connect(pg_dsn, autocommit=True) as c:
                # The follower's listening session: its last statement registered it.
                killed = c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query "
                    "LIKE %s", (f"INSERT INTO {pg_schema}.followers%",)).fetchall()
            assert killed == [(True,)]
            more, _ = _follow(tail, j, 5, timeout=0.5)  # lost, then listening again
            seen += more
            seen += [r.seq for r in tail.poll()]
            assert seen == list(range(1, j.last_seq + 1))
            time.sleep(CHECK_EVERY + 0.3)
            more, woke = _follow(tail, j, 3, timeout=20.0)
            assert woke == 3  # following again after the loss
            seen += more
            assert seen == list(range(1, j.last_seq + 1))
        finally:
            store.close()


def test_live_tail_offers_wakeups(pg_backend: PostgresBackend) -> None:
    with Journal("v", backend=pg_backend, snapshot_every=None) as j:
        j.append({"i": 0})
        lt = LiveTail(pg_backend, "v", None, from_seq=1)
        try:
            assert lt.wakes
            assert [r.seq for r in lt.poll()] == [1]
            lt.wait(0.05)
            time.sleep(CHECK_EVERY + 0.3)
            j.append({"i": 1})
            assert lt.wait(20.0)
            assert [r.seq for r in lt.poll()] == [2]
        finally:
            lt.close()

"""Time partitions (``PostgresBackend(partition="time")``) and fleet expiry by dropping them,
against the real server, with one-second partitions so a test spans several."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import StoreError
from agentjournal.events import Step
from agentjournal.expiry import expire


def _next_bucket() -> None:
    """Sleep into the next one-second bucket."""
    time.sleep(1.02 - time.time() % 1.0)


def _write(be: PostgresBackend, agent: str, n: int, states: dict[int, Any],
           snapshot_every: int | None = 3) -> None:
    with Journal(agent, backend=be, snapshot_every=snapshot_every) as j:
        for _ in range(n):
            step = j.last_step + 1
            st = {"agent": agent, "step": step, "log": [f"m{k}" for k in range(step % 5)]}
            states[j.append(st).step] = st


def _rows(dsn: str, schema: str) -> list[tuple[str, int, int, bool]]:
    with psycopg.connect(dsn) as c:
        return [(a, int(s), int(b), h) for a, s, b, h in c.execute(
            f"SELECT agent, seq, bucket, header IS NOT NULL FROM {schema}.records "
            "ORDER BY agent, seq").fetchall()]


def _tables(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn) as c:
        return {str(n) for (n,) in c.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", (f"{schema}.records",)).fetchall()}


def test_the_layout_is_chosen_when_the_schema_is_made(pg_dsn: str, pg_schema: str) -> None:
    with PostgresBackend(pg_dsn, schema=pg_schema, partition="time",
                         partition_interval=60) as be:
        assert (be.partition, be.partition_interval) == ("time", 60)
    with PostgresBackend(pg_dsn, schema=pg_schema) as be:  # unset: as the schema is
        assert (be.partition, be.partition_interval) == ("time", 60)
    for wrong in ({"partition": "hash"}, {"partition_interval": 30}):
        with pytest.raises(StoreError, match="chosen when a schema is created"):
            PostgresBackend(pg_dsn, schema=pg_schema, **wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number of seconds"):
        PostgresBackend(pg_dsn, schema=pg_schema, partition_interval=0.5)
    with psycopg.connect(pg_dsn) as c:
        strategy = c.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = "
                             "%s::regclass", (f"{pg_schema}.records",)).fetchone()
        assert strategy == ("r",)


def test_segments_never_straddle_partitions(pg_dsn: str, pg_schema: str) -> None:
    states: dict[int, Any] = {}
    with PostgresBackend(pg_dsn, schema=pg_schema, partition="time",
                         partition_interval=1) as be:
        for _ in range(3):
            _write(be, "s", 5, states)
            _next_bucket()
        with Journal("s", backend=be, readonly=True) as r:
            assert r.verify().ok and r.resume().state == states[max(states)]
            segs = r.segment_seqs()
    rows = _rows(pg_dsn, pg_schema)
    assert len({b for *_, b, _ in rows}) >= 3 and [s for _, s, _, h in rows if h] == segs
    for (_, _, b0, _), (_, _, b1, head) in zip(rows, rows[1:], strict=False):
        assert b1 >= b0 and (b1 == b0 or head)  # a new bucket only where a segment opens


def test_expire_drops_whole_partitions(pg_dsn: str, pg_schema: str) -> None:
    """Agents pruned by expiry free the partitions that only their cut rows were in; an
    agent that never snapshots pins its own; every chain verifies and every step written
    after the cutoff keeps its state."""
    states: dict[str, dict[int, Any]] = {"a": {}, "b": {}, "quiet": {}}
    with PostgresBackend(pg_dsn, schema=pg_schema, partition="time",
                         partition_interval=1) as be:
        _next_bucket()
        first = int(time.time())
        _write(be, "quiet", 4, states["quiet"], snapshot_every=None)
        for _ in range(3):
            _write(be, "a", 4, states["a"])
            _write(be, "b", 4, states["b"])
            _next_bucket()
        cut = time.time()
        after = {a: len(states[a]) for a in ("a", "b")}
        _next_bucket()
        for _ in range(2):
            _write(be, "a", 4, states["a"])
            _write(be, "b", 4, states["b"])
            _next_bucket()
        _next_bucket()  # the buckets before the cutoff are now older than "the one before"
        before = _tables(pg_dsn, pg_schema)
        dry = expire(be, older_than=cut, dry_run=True)
        assert _tables(pg_dsn, pg_schema) == before  # a dry run drops nothing
        rep = expire(be, older_than=cut)
        assert not rep.errors and {p.agent_id for p in rep.pruned} == {"a", "b"}
        dropped = [p["name"] for p in rep.partitions if p["dropped"]]
        assert dropped
        # A dry run moves no horizon: it reports only what is droppable already (nothing).
        assert [p["name"] for p in dry.partitions if not p["dropped"]]
        assert not [p for p in dry.partitions if p["dropped"]]
        assert _tables(pg_dsn, pg_schema) == before - set(dropped)
        pinned = {p["name"]: p["pinned_by"] for p in rep.partitions if not p["dropped"]}
        assert pinned[f"records_b{first}"] == ["quiet"]  # never snapshots: keeps its history
        assert f"records_b{first}" not in dropped
        for agent, st in states.items():
            with Journal(agent, backend=be, readonly=True) as j:
                assert j.verify().ok, agent
                steps = [r.step for r in j.history() if isinstance(r, Step)]
                assert all(j.state_at(k) == st[k] for k in steps)
                assert j.resume().state == st[max(st)]
                if agent == "quiet":
                    assert steps == sorted(st)  # all of it
                else:
                    assert set(range(after[agent] + 1, max(st) + 1)) <= set(steps)
                    assert min(steps) > 1  # history before the cutoff went
        rows = _rows(pg_dsn, pg_schema)
        assert {(a, s) for a, s, *_ in rows if a == "quiet"} == {
            ("quiet", s) for s in range(1, 5)}
        with Journal("a", backend=be) as j:  # the writer goes on after the drop
            j.append({"after": True})
            assert j.verify().ok
        again = expire(be, older_than=cut)
        assert not again.errors and not [p for p in again.partitions if p["dropped"]]


def test_a_pending_detach_is_finished(pg_dsn: str, pg_schema: str) -> None:
    """A partition left detaching by an interrupted run (DETACH … CONCURRENTLY cut short)
    is finished by the next one."""
    with PostgresBackend(pg_dsn, schema=pg_schema, partition="time",
                         partition_interval=1) as be:
        _next_bucket()
        bucket = int(time.time())
        be.buckets.ensure(bucket)  # an empty partition nobody writes to
        time.sleep(2.1)
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            # The first transaction of DETACH CONCURRENTLY, then its wait cut short: a
            # snapshot held open elsewhere and the command cancelled by a timeout.
            with psycopg.connect(pg_dsn) as holder:
                holder.execute(f"SELECT count(*) FROM {pg_schema}.records")
                c.execute("SET statement_timeout = 300")
                with pytest.raises(psycopg.errors.QueryCanceled):
                    c.execute(f"ALTER TABLE {pg_schema}.records DETACH PARTITION "
                              f"{pg_schema}.records_b{bucket} CONCURRENTLY")
            pending = c.execute("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = "
                                "%s::regclass", (f"{pg_schema}.records_b{bucket}",)).fetchone()
            assert pending == (True,)
        drops = be.drop_expired_partitions()
        assert [d.name for d in drops if d.dropped] == [f"records_b{bucket}"]
        assert f"records_b{bucket}" not in _tables(pg_dsn, pg_schema)


def test_store_url_and_command_line(pg_dsn: str, pg_schema: str) -> None:
    from agentjournal.backends import open_backend
    from test_cli_support import run

    url = f"{pg_dsn}?schema={pg_schema}"
    be = open_backend(url + "&partition=time&partition_interval=1")
    states: dict[int, Any] = {}
    try:
        assert (be.partition, be.partition_interval) == ("time", 1)  # type: ignore[attr-defined]
        for _ in range(3):
            _write(be, "c", 4, states)  # type: ignore[arg-type]
            _next_bucket()
    finally:
        be.close()  # type: ignore[attr-defined]
    time.sleep(2.1)
    res = run("expire", "--older-than", "2s", "--json", "--store", url)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [p["agent_id"] for p in doc["pruned"]] == ["c"]
    assert [p for p in doc["partitions"] if p["dropped"]]
    res = run("expire", "--older-than", "2s", "--store", url)  # the text form, run again
    assert res.exit_code == 0 and "drop" not in res.stdout, res.stdout
    assert "older time partition kept" in res.stdout and "(the oldest: c)" in res.stdout
    res = run("--store", url, "verify", "c")
    assert res.exit_code == 0 and res.stdout.startswith("ok  c"), res.stdout
    res = run("ls", "--store", url + "&partition=sideways")
    assert res.exit_code in (1, 2) and "partition" in res.stderr

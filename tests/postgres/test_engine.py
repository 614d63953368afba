"""The engine on PostgreSQL through the public API: record, resume, time travel, diff, fork,
verify, retention, tamper detection, and what the rows hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import (
    JournalLockedError,
    JournalNotFoundError,
    StepNotFoundError,
    StoreUnavailableError,
)

ROOT = Path(__file__).resolve().parents[2]


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [{"role": "user", "n": k, "text": "x" * (k % 7)} for k in range(i)],
            "cfg": {"a/b": {"~": i}, "flag": i % 2 == 0}}


@pytest.mark.parametrize("mode", ["sync", "group", "none"])
def test_record_resume_time_travel(pg_dsn: str, pg_backend: PostgresBackend, pg_schema: str,
                                   mode: str) -> None:
    with Journal("a1", backend=pg_backend, durability=mode, snapshot_every=5) as j:
        for i in range(1, 23):
            assert j.append(_state(i)).step == i
        assert j.resume().state == _state(22)
        assert [j.state_at(k) for k in (1, 5, 6, 17, 22)] == [_state(k) for k in
                                                              (1, 5, 6, 17, 22)]
        assert {r.step for r in j.history(3, 4)} == {3, 4}
        assert j.diff(3, 4) and j.verify().ok
        last_seq = j.last_seq
    # another "host": a new backend object, the same server and schema
    with PostgresBackend(pg_dsn, schema=pg_schema) as other:
        assert other.identity() == pg_backend.identity()
        with Journal("a1", backend=other, readonly=True) as r:
            assert r.last_seq == last_seq
            assert r.resume().state == _state(22)
            assert r.state_at(9) == _state(9)
            assert [rec.seq for rec in r.records()] == list(range(1, last_seq + 1))
        with Journal("a1", backend=other) as w:
            w.append(_state(23))
            assert w.verify().ok
    with Journal("a1", backend=pg_backend) as j:
        assert j.resume().state == _state(23)


def test_fork_compact_and_pruned_history(pg_backend: PostgresBackend) -> None:
    with Journal("base", backend=pg_backend, snapshot_every=3, segment_max_records=4,
                 keep_snapshots=2) as j:
        for i in range(1, 31):
            j.append(_state(i))
        with j.fork(10, "base-fork") as f:
            assert f.resume().state == _state(10)
            f.append({"forked": True})
            assert f.verify().ok
        rep = j.compact(keep_snapshots=1, prune=True, compress_segments=True)
        assert rep.segments_deleted and rep.anchor_seq
        assert j.verify().ok
        assert j.resume().state == _state(30)
        with pytest.raises(StepNotFoundError):
            j.state_at(2)
        assert j.state_at(30) == _state(30)
    assert pg_backend.list_agents() == ["base", "base-fork"]
    with Journal("base-fork", backend=pg_backend, readonly=True) as f:
        assert f.resume().state == {"forked": True}


def _rows(dsn: str, schema: str, agent: str) -> list[tuple[int, bytes, bytes | None]]:
    with psycopg.connect(dsn) as c:
        return [(s, bytes(b), None if h is None else bytes(h)) for s, b, h in c.execute(
            f"SELECT seq, line, header FROM {schema}.records WHERE agent = %s ORDER BY seq",
            (agent,)).fetchall()]


def test_rows_hold_the_exact_hashed_lines(pg_dsn: str, pg_schema: str,
                                          pg_backend: PostgresBackend) -> None:
    """One row per record holding the hashed line; a segment's header on its first record,
    so the segment view reads back exactly header + lines; snapshots beside their marks."""
    with Journal("rows", backend=pg_backend, snapshot_every=4, segment_max_records=5) as j:
        for i in range(1, 10):
            j.append(_state(i), meta={"run": "r1", "i": i})
        recs = {r.seq: r for r in j.records()}
        segs = j.segment_seqs()
        snaps = j.snapshot_seqs()
    rows = _rows(pg_dsn, pg_schema, "rows")
    assert [r[0] for r in rows] == sorted(recs) == list(range(1, len(rows) + 1))
    assert [s for s, _, h in rows if h is not None] == segs and len(segs) > 1
    for seq, line, header in rows:
        assert line.endswith(f',"h":"{recs[seq].h}"}}\n'.encode())
        assert line.startswith(b'{"kind":"') and f'"seq":{seq},'.encode() in line
        assert header is None or header.startswith(b'{"kind":"header"')
    store = pg_backend.agent("rows", create=False)
    try:
        bounds = [*segs, len(rows) + 1]
        for first, nxt in zip(bounds, bounds[1:], strict=False):
            want = (rows[first - 1][2] or b"") + b"".join(r[1] for r in rows[first - 1:nxt - 1])
            assert store.read_segment(first) == want
            assert store.segment_bytes(first) == len(want)
    finally:
        store.close()
    with psycopg.connect(pg_dsn) as c:
        parts = c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                          (f"{pg_schema}.records",)).fetchone()
        assert parts == (8,)
        marks = [s for (s,) in c.execute(f"SELECT seq FROM {pg_schema}.snapshots WHERE "
                                         "agent = 'rows' ORDER BY seq").fetchall()]
        assert marks == snaps and snaps
        tables = {t for (t,) in c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name NOT LIKE 'records_p%%'", (pg_schema,)).fetchall()}
        assert tables == {"schema_version", "settings", "agents", "records", "snapshots",
                          "quarantine", "leases", "followers"}


def test_tampering_is_detected(pg_dsn: str, pg_schema: str,
                               pg_backend: PostgresBackend) -> None:
    with Journal("t", backend=pg_backend, snapshot_every=None) as j:
        for i in range(1, 8):
            j.append(_state(i))
    with psycopg.connect(pg_dsn) as c:  # edit one value in place, keeping the length
        cur = c.execute(f"UPDATE {pg_schema}.records SET line = convert_to(replace("
                        "convert_from(line, 'UTF8'), '\"xxx\"', '\"xxy\"'), 'UTF8') "
                        "WHERE agent = 't' AND seq = 4 "
                        "AND position('\"xxx\"'::bytea IN line) > 0")
        assert cur.rowcount == 1
    with Journal("t", backend=pg_backend, readonly=True) as r:
        rep = r.verify()
        assert not rep.ok and rep.records == 3  # the chain is good up to seq 3
        assert "hash does not match" in rep.problems[0].message
    with psycopg.connect(pg_dsn) as c:  # a record removed from the middle
        c.execute(f"DELETE FROM {pg_schema}.records WHERE agent = 't' AND seq = 4")
    with Journal("t", backend=pg_backend, readonly=True) as r:
        assert not r.verify().ok


def test_lease_holder_named_and_listed(pg_dsn: str, pg_schema: str,
                                       pg_backend: PostgresBackend) -> None:
    with Journal("l", backend=pg_backend) as j:
        j.append({"x": 1})
        assert pg_backend.lock_holders() == {"l": os.getpid()}
        with PostgresBackend(pg_dsn, schema=pg_schema) as other:
            store = other.agent("l", create=False)
            try:
                with pytest.raises(JournalLockedError) as ei:
                    store.lock()
                assert ei.value.pid == os.getpid() and str(os.getpid()) in str(ei.value)
            finally:
                store.close()
    assert pg_backend.lock_holders() == {}
    with pytest.raises(JournalNotFoundError):
        Journal("nobody", backend=pg_backend, create=False)


def test_describe_hides_the_password(pg_dsn: str, pg_schema: str) -> None:
    dsn = pg_dsn.replace("postgres@", "postgres:s3cret-pw@", 1)
    with PostgresBackend(dsn, schema=pg_schema) as be:
        assert "s3cret" not in be.describe() and "s3cret" not in repr(be)
        assert pg_schema in be.describe()
        assert hash(be.identity())


def test_unreachable_server_is_a_typed_error(pg_schema: str) -> None:
    from _pgserver import free_port

    with pytest.raises(StoreUnavailableError) as ei:
        PostgresBackend(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                        schema=pg_schema, connect_timeout=2)
    assert ei.value.hint and "DSN" in ei.value.hint


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_schema_created_by_many_processes_at_once(pg_dsn: str, pg_schema: str) -> None:
    code = ("import sys; from agentjournal.backends.postgres import PostgresBackend as B\n"
            "b = B(sys.argv[1], schema=sys.argv[2]); b.agent('x', create=True).close()\n"
            "b.close(); print('ok')")
    procs = [_spawn(code, pg_dsn, pg_schema) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    with psycopg.connect(pg_dsn) as c:
        assert c.execute(f"SELECT version FROM {pg_schema}.schema_version").fetchall() == [(2,)]


def test_import_agentjournal_needs_no_psycopg() -> None:
    p = _spawn("import sys, agentjournal, agentjournal.backends\n"
               "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
               "sys.modules['psycopg'] = None\n"
               "try:\n    import agentjournal.backends.postgres\n"
               "except ImportError as e:\n    print(e)\n")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "pip install 'agentjournal[postgres]'" in out


def _xid(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return int(c.execute("SELECT txid_current()").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("mode", ["sync", "none"])
def test_one_commit_per_append(pg_dsn: str, pg_backend: PostgresBackend, mode: str) -> None:
    """In ``sync`` mode an append commits once, synchronously (no second commit for its
    sync); counted in transaction ids, which every committing write uses one of."""
    with Journal("c", backend=pg_backend, durability=mode, snapshot_every=None) as j:
        for i in range(5):  # the store sees the journal sync after every append
            j.append({"i": i})
        before = _xid(pg_dsn)
        for i in range(100):
            j.append({"i": i})
        used = _xid(pg_dsn) - before - 1
    assert 100 <= used <= 102, used


def test_delete_agent_refused_while_written(pg_backend: PostgresBackend) -> None:
    with Journal("del", backend=pg_backend) as j:
        j.append({"x": 1})
        with pytest.raises(JournalLockedError):
            pg_backend.delete_agent("del")
    assert pg_backend.delete_agent("del") is True
    assert not pg_backend.exists("del") and pg_backend.delete_agent("del") is False
    pg_backend.agent("empty", create=True).close()
    assert pg_backend.discard_empty("empty") and not pg_backend.exists("empty")

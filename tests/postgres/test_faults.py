"""Faults of the server under the PostgreSQL backend, on a private cluster of this module
(never the shared one: it is restarted and filled up here)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
from test_hosts import check_chain, child, lease_pid, state

from _pgserver import PgServer, ServerUnavailable, fresh_schema, wait_ready
from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import (
    JournalFencedError,
    JournalLockedError,
    JournalPoisonedError,
    StoreTimeoutError,
    StoreUnavailableError,
)

MAX_CONNECTIONS = 12


@pytest.fixture(scope="module")
def server(pg_dsn: str) -> Iterator[PgServer]:
    """A cluster of our own (``pg_dsn`` first: it skips the module when there is none)."""
    try:
        srv = PgServer({"max_connections": str(MAX_CONNECTIONS),
                        "superuser_reserved_connections": "0"}).start()
    except ServerUnavailable as e:
        pytest.skip(f"no private PostgreSQL cluster for the fault tests: {e}")
    try:
        wait_ready(srv.dsn)
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def be(server: PgServer) -> Iterator[PostgresBackend]:
    b = PostgresBackend(server.dsn, schema=fresh_schema(), pool_size=2)
    try:
        yield b
    finally:
        b.close()


def test_immediate_restart_loses_no_acknowledged_record(server: PgServer,
                                                        be: PostgresBackend) -> None:
    w = child("write", server.dsn, be.schema, "r", "0", "sync")
    acked: list[tuple[int, int]] = []
    try:
        while len(acked) < 40:
            line = w.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("ACK"), line + w.stderr.read()  # type: ignore[union-attr]
            acked.append((int(line.split()[1]), int(line.split()[2])))
        server.restart("immediate")  # a crash of the server: WAL replay on start
        out, err = w.communicate(timeout=60)
    finally:
        if w.poll() is None:
            w.kill()
            w.communicate()
    lines = out.splitlines()
    acked += [(int(x.split()[1]), int(x.split()[2])) for x in lines if x.startswith("ACK")]
    errs = [x for x in lines if x.startswith("ERR")]
    # Its lease session died: the next append is fenced (the fence is the error itself, or the
    # cause of the poisoning when the writer first met it inside a sync).
    assert errs and "JournalFencedError" in errs[0].split()[1:3], out
    wait_ready(server.dsn)
    # the backend made before the restart still works: its dead pooled connections are retried
    t0 = time.monotonic()
    while True:
        try:
            j = Journal("r", backend=be)
            break
        except JournalLockedError:  # the old session may not be gone yet
            assert time.monotonic() - t0 < 15
            time.sleep(0.05)
    with j:
        assert j.last_seq >= acked[-1][0]
        for seq, step in acked:
            assert j.state_at_seq(seq) == {**state(step), "who": w.pid}
        tail = j.last_seq
        assert j.append(state(j.last_step + 1)).seq == tail + 1
    check_chain(be, "r").close()


def test_terminated_session_is_a_lost_lease(server: PgServer, be: PostgresBackend) -> None:
    j = Journal("t", backend=be)
    for i in range(1, 4):
        j.append({"i": i})
    pid = lease_pid(server.dsn, be.schema, "t")
    with psycopg.connect(server.dsn) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(JournalFencedError, match="connection holding its lease was lost"):
        j.append({"i": 4})
    with pytest.raises(JournalPoisonedError):
        j.append({"i": 4})
    j.close()
    with Journal("t", backend=be) as again:  # reconnect, re-acquire, re-read the tail
        assert again.last_seq == 3
        again.append({"i": 4})
        assert again.verify().ok


def test_statement_timeout_is_typed(server: PgServer) -> None:
    schema = fresh_schema()
    with PostgresBackend(server.dsn, schema=schema, statement_timeout=0.3) as be:
        j = Journal("s", backend=be)
        j.append({"i": 1})
        with psycopg.connect(server.dsn) as blocker:
            blocker.execute(f"LOCK TABLE {schema}.agents, {schema}.records IN ACCESS "
                            "EXCLUSIVE MODE")
            with pytest.raises(StoreTimeoutError) as ei:
                be.list_agents()
            assert ei.value.hint and "statement_timeout" in ei.value.hint
            with pytest.raises(JournalPoisonedError) as pe:  # the writer's append
                j.append({"i": 2})
            assert isinstance(pe.value.__cause__, StoreTimeoutError)
            blocker.rollback()
        j.close()
        with Journal("s", backend=be) as again:
            assert again.last_seq == 1 and again.verify().ok


def test_full_max_connections_is_typed(server: PgServer, be: PostgresBackend) -> None:
    be.list_agents()  # the pool holds its connection already
    hogs: list[psycopg.Connection[tuple[object, ...]]] = []
    try:
        with contextlib.suppress(psycopg.OperationalError):
            for _ in range(MAX_CONNECTIONS + 1):
                hogs.append(psycopg.connect(server.dsn))
        assert len(hogs) < MAX_CONNECTIONS + 1  # the server is full now
        with pytest.raises(StoreUnavailableError) as ei:
            PostgresBackend(server.dsn, schema=fresh_schema())
        assert ei.value.hint and "max_connections" in ei.value.hint
        store = be.agent("m", create=True)  # reads and creates: the pooled connection
        with pytest.raises(StoreUnavailableError, match="refused a connection"):
            store.lock()  # a writer needs a connection of its own
        store.close()
    finally:
        for h in hogs:
            h.close()
    with Journal("m", backend=be) as j:  # connections are back: writing works again
        j.append({"ok": True})


def test_sigkill_during_a_transaction_leaves_nothing(server: PgServer,
                                                     be: PostgresBackend) -> None:
    """A writer killed at any point leaves whole records only (a row or nothing)."""
    w = child("write", server.dsn, be.schema, "x", "0", "none")
    try:
        for _ in range(200):
            assert w.stdout.readline().startswith("ACK")  # type: ignore[union-attr]
    finally:
        w.send_signal(signal.SIGKILL)
        w.communicate()
    # An append is one transaction: the rows are whole records, gap-free, each the line
    # of its seq (nothing half-written to find, cut or quarantine).
    with psycopg.connect(server.dsn) as c:
        rows = c.execute(f"SELECT seq, line FROM {be.schema}.records WHERE agent = 'x' "
                         "ORDER BY seq").fetchall()
        assert c.execute(f"SELECT count(*) FROM {be.schema}.quarantine").fetchone() == (0,)
    assert [s for s, _ in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 200
    for seq, line in rows:
        line = bytes(line)
        assert line.startswith(b'{"kind":"') and f',"seq":{seq},'.encode() in line
        assert line.endswith(b'"}\n') and line.count(b"\n") == 1
    with Journal("x", backend=be) as j:  # no torn tail to cut: recovery finds none
        assert j.last_seq == len(rows) and j.verify().ok
        assert j.verify().cuts == [] and j.append({"after": True}).seq == len(rows) + 1

"""Follow wake-ups (LISTEN/NOTIFY): sent only while someone follows; a follower that reads
after every wake-up and every timeout sees every seq of a writer process once, in order."""

from __future__ import annotations

import time

import psycopg
from test_hosts import check_chain, child

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.backends.postgres._notify import CHECK_EVERY, channel
from agentjournal.journal.follow import Tail


def _heard(conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout)]


def test_notify_only_while_followed(pg_dsn: str, pg_backend: PostgresBackend) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as ear, \
            Journal("n", backend=pg_backend, durability="none") as j:
        ear.execute(f"LISTEN {channel(pg_backend.schema)}")
        for i in range(10):
            j.append({"i": i})
        assert _heard(ear, 0.3) == []  # nobody follows: no NOTIFY at all
        with pg_backend.wakeups("n") as w:
            time.sleep(CHECK_EVERY + 0.2)  # the writer looks again within CHECK_EVERY
            j.append({"i": 10})
            assert w.wait(5.0)
            assert "n" in _heard(ear, 1.0)
        time.sleep(CHECK_EVERY + 0.2)
        j.append({"i": 11})
        j.append({"i": 12})
        assert _heard(ear, 0.3) == []  # the follower left: quiet again


def test_follower_woken_by_a_writer_process(pg_dsn: str, pg_schema: str,
                                            pg_backend: PostgresBackend) -> None:
    store = pg_backend.agent("wf", create=True)
    tail = Tail(store)
    seen: list[int] = []
    wakes = 0
    with pg_backend.wakeups("wf") as w:
        proc = child("write", pg_dsn, pg_schema, "wf", "60", "sync")
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                seen += [r.seq for r in tail.poll()]  # catch up first, then sleep
                if proc.poll() is not None:  # the writer is done: one last catch-up
                    seen += [r.seq for r in tail.poll()]
                    break
                wakes += w.wait(1.0)
            assert proc.wait(timeout=60) == 0, proc.stderr.read()  # type: ignore[union-attr]
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
            store.close()
    with check_chain(pg_backend, "wf") as j:
        assert seen == list(range(1, j.last_seq + 1))
    assert wakes > 0

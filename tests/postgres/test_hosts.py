"""Hosts as processes on one PostgreSQL store: writers of different agents and readers at
once, one writer per agent, a killed writer replaced, a paused writer fenced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentjournal import Journal, delta
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import JournalFencedError, JournalLockedError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from pg_child import state  # noqa: E402


def child(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, str(HERE / "pg_child.py"), *args], env=env,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def replay(j: Journal) -> Any:
    """The state from applying every record's ops from the first (no snapshot)."""
    doc: Any = {}
    for rec in j.records():
        ops = getattr(rec, "ops", None)
        if ops:
            doc = delta.apply(doc, ops)
    return doc


def check_chain(be: PostgresBackend, agent: str) -> Journal:
    j = Journal(agent, backend=be, readonly=True)
    rep = j.verify()
    assert rep.ok, rep.problems
    assert [r.seq for r in j.records()] == list(range(1, j.last_seq + 1))
    assert j.resume().state == replay(j)
    return j


def lease_pid(dsn: str, schema: str, agent: str) -> int | None:
    """PostgreSQL backend pid of the session holding the agent's lease (as an operator
    would find it: the lease row's key among the granted advisory locks)."""
    with psycopg.connect(dsn) as c:
        row = c.execute(
            f"SELECT k.pid FROM {schema}.leases l JOIN pg_locks k ON k.locktype = 'advisory' "
            "AND k.granted AND ((k.classid::bigint << 32) | k.objid::bigint) = l.lock_key "
            "WHERE l.agent = %s", (agent,)).fetchone()
    return None if row is None else int(row[0])


def test_writers_and_readers_on_many_agents(pg_dsn: str, pg_schema: str,
                                            pg_backend: PostgresBackend,
                                            tmp_path: Path) -> None:
    agents = ["w0", "w1", "w2"]
    stop = tmp_path / "stop"
    writers = [child("write", pg_dsn, pg_schema, a, "40", "sync") for a in agents]
    readers = [child("read", pg_dsn, pg_schema, ",".join(agents), str(stop)) for _ in range(2)]
    try:
        first = writers[0].stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("ACK"), writers[0].stderr.read()  # type: ignore[union-attr]
        if writers[0].poll() is None:  # a second writer for a live agent is refused
            with pytest.raises(JournalLockedError) as ei:
                Journal("w0", backend=pg_backend)
            assert ei.value.pid == writers[0].pid
        for w in writers:
            out, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        stop.touch()
        for r in readers:
            out, err = r.communicate(timeout=60)
            assert r.returncode == 0, out + err
            assert out.startswith("SEEN")
    finally:
        stop.touch()
        for p in writers + readers:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for a in agents:
        with check_chain(pg_backend, a) as j:
            assert j.last_step == 40 and j.resume().state["n"] == 40


@pytest.mark.parametrize("mode", ["sync", "none"])
def test_killed_writer_is_replaced_and_loses_nothing(pg_dsn: str, pg_schema: str,
                                                     pg_backend: PostgresBackend,
                                                     mode: str) -> None:
    """Also in ``none`` mode: a committed row outlives the client that wrote it."""
    w = child("write", pg_dsn, pg_schema, "k", "0", mode)
    acked: list[tuple[int, int]] = []
    try:
        while len(acked) < 30:
            line = w.stdout.readline()  # type: ignore[union-attr]
            assert line, w.stderr.read()  # type: ignore[union-attr]
            _, seq, step = line.split()
            acked.append((int(seq), int(step)))
    finally:
        w.send_signal(signal.SIGKILL)
        out, _ = w.communicate()
    for line in out.splitlines():  # printed before the kill: acknowledged too
        if line.startswith("ACK") and line.count(" ") == 2:
            _, seq, step = line.split()
            acked.append((int(seq), int(step)))
    t0 = time.monotonic()
    while True:  # the replacement waits only for the dead session to end
        try:
            j = Journal("k", backend=pg_backend, snapshot_every=25)
            break
        except JournalLockedError:
            assert time.monotonic() - t0 < 15, "the dead writer's lease was never released"
            time.sleep(0.05)
    with j:
        last_seq, last_step = acked[-1]
        assert j.last_seq >= last_seq  # nothing acknowledged is lost (one more may be there)
        for seq, step in acked:
            assert j.state_at_seq(seq) == j.state_at(step) == {**state(step), "who": w.pid}
        tail = j.last_seq
        nxt = j.append(state(j.last_step + 1), step=j.last_step + 1)
        assert nxt.seq == tail + 1  # the replacement resumes at the exact next seq
        assert j.verify().ok
    check_chain(pg_backend, "k").close()


def test_paused_writer_is_fenced_after_takeover(pg_dsn: str, pg_schema: str,
                                                pg_backend: PostgresBackend) -> None:
    w = child("pause", pg_dsn, pg_schema, "p")
    try:
        ready = w.stdout.readline()  # type: ignore[union-attr]
        assert ready.startswith("READY"), w.stderr.read()  # type: ignore[union-attr]
        pid = lease_pid(pg_dsn, pg_schema, "p")
        assert pid is not None
        w.send_signal(signal.SIGSTOP)
        with psycopg.connect(pg_dsn) as c:  # the idle-session reaper, a partition...
            assert c.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        t0 = time.monotonic()
        while True:
            try:
                taker = Journal("p", backend=pg_backend, snapshot_every=None)
                break
            except JournalLockedError:
                assert time.monotonic() - t0 < 15
                time.sleep(0.05)
        with taker:
            assert taker.last_seq == 5
            for step in (6, 7, 8):
                taker.append(state(step), step=step)
            w.send_signal(signal.SIGCONT)
            out, err = w.communicate("go\n", timeout=60)
            lines = out.splitlines()
            assert lines[0].startswith("ERR JournalFencedError"), out + err
            assert lines[1].startswith("ERR JournalPoisonedError"), out  # and stays stopped
            taker.append(state(9), step=9)
            assert taker.last_seq == 9
    finally:
        if w.poll() is None:
            w.send_signal(signal.SIGCONT)
            w.kill()
            w.communicate()
    with check_chain(pg_backend, "p") as j:
        assert j.last_seq == 9 and j.resume().state["n"] == 9


def test_epoch_fence_and_seq_guard_in_process(pg_dsn: str, pg_schema: str,
                                              pg_backend: PostgresBackend) -> None:
    """The two guards on their own: a bumped epoch (a takeover seen by a live session) and
    a seq already in the store refuse the write, and the writer stays poisoned."""
    j = Journal("f", backend=pg_backend)
    j.append({"x": 1})
    with psycopg.connect(pg_dsn) as c:
        c.execute(f"UPDATE {pg_schema}.leases SET epoch = epoch + 1 WHERE agent = 'f'")
    with pytest.raises(JournalFencedError, match="taken over"):
        j.append({"x": 2})
    j.close()
    j = Journal("f", backend=pg_backend)
    assert j.last_seq == 1
    with psycopg.connect(pg_dsn) as c:  # a row for seq 2 appears behind the writer's back
        c.execute(f"INSERT INTO {pg_schema}.records (agent, seq, line) "
                  f"SELECT agent, 2, line FROM {pg_schema}.records WHERE agent = 'f' "
                  "AND seq = 1")
    with pytest.raises(JournalFencedError, match="already in the store"):
        j.append({"x": 3})
    j.close()


def test_follower_started_first_sees_every_seq_once_in_order(pg_dsn: str, pg_schema: str,
                                                             pg_backend: PostgresBackend
                                                             ) -> None:
    from agentjournal.journal.follow import Tail

    store = pg_backend.agent("fol", create=True)  # the follower is there before the writer
    tail = Tail(store)
    seen: list[int] = []
    w = child("write", pg_dsn, pg_schema, "fol", "120", "none")  # snapshots roll segments
    try:
        deadline = time.monotonic() + 120
        while len(seen) < 120 + 120 // 25 and time.monotonic() < deadline:
            seen += [r.seq for r in tail.poll()]
            time.sleep(0.01)
        out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
        seen += [r.seq for r in tail.poll()]
    finally:
        if w.poll() is None:
            w.kill()
            w.communicate()
        store.close()
    with check_chain(pg_backend, "fol") as j:
        assert seen == list(range(1, j.last_seq + 1))

"""The backend contract: one suite, run against every backend.

A new backend passes this file before anything above it (replay, retention, the facade) is
asked to work on it. Store-level tests exercise the protocol in ``backends/base.py`` directly;
journal-level tests run the engine's user-facing behaviour on top of each backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    FilesystemBackend,
    InvalidAgentIdError,
    Journal,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
    MemoryBackend,
    StepNotFoundError,
    _codec,
    delta,
)
from agentjournal.backends.base import AgentStore, Backend, Hint

BACKENDS: dict[str, Callable[[Path], Any]] = {
    "filesystem": lambda tmp: FilesystemBackend(tmp / "store"),
    "memory": lambda tmp: MemoryBackend(),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture()
def store(backend: Backend) -> Iterator[AgentStore]:
    s = backend.agent("agent-1", create=True)
    try:
        yield s
    finally:
        s.close()


HEADER = b'{"kind":"header"}\n'


# --------------------------------------------------------------------------- the backend


def test_protocols(backend: Backend, store: AgentStore) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(store, AgentStore)
    assert store.agent_id == "agent-1"
    assert backend.describe()


def test_agents_exist_list_and_missing(backend: Backend) -> None:
    assert not backend.exists("nobody")
    with pytest.raises(JournalNotFoundError):
        backend.agent("nobody", create=False)
    s = backend.agent("b-agent", create=True)
    s.close()
    s = backend.agent("a-agent", create=True)
    s.close()
    assert backend.exists("a-agent") and backend.exists("b-agent")
    assert backend.list_agents() == ["a-agent", "b-agent"]
    s = backend.agent("a-agent", create=False)
    s.close()
    for bad in ("../x", "", "a/b", "x" * 200):
        with pytest.raises(InvalidAgentIdError):
            backend.agent(bad, create=True)
        with pytest.raises(InvalidAgentIdError):
            backend.exists(bad)


# --------------------------------------------------------------------------- segments


def test_segments_create_append_read(store: AgentStore) -> None:
    assert store.list_segments() == []
    assert not store.segment_exists(1)
    app = store.create_segment(1, HEADER, durable=True)
    app.write(b"one\n")
    app.write(b"two\n")
    app.sync()
    app.close()
    assert store.segment_exists(1)
    assert store.list_segments() == [(1, False)]
    assert store.read_segment(1) == HEADER + b"one\ntwo\n"
    assert store.read_segment(1, len(HEADER)) == b"one\ntwo\n"
    assert store.read_segment(1, len(HEADER), 3) == b"one"
    assert store.segment_size(1) == len(HEADER) + 8
    app = store.open_segment(1)
    app.write(b"three\n")
    app.close()
    assert store.read_segment(1).endswith(b"two\nthree\n")
    with pytest.raises(FileExistsError):
        store.create_segment(1, HEADER, durable=False)
    with pytest.raises(FileNotFoundError):
        store.read_segment(99)
    assert "1" in store.location("segment", 1)
    assert store.location("dir")


def test_segments_order_truncate_delete(store: AgentStore) -> None:
    for first in (12, 3, 100, 1):
        store.create_segment(first, HEADER, durable=False).close()
    assert [s for s, _ in store.list_segments()] == [1, 3, 12, 100]
    app = store.open_segment(3)
    app.write(b"abcdef\n")
    app.close()
    store.truncate_segment(3, len(HEADER) + 2)
    assert store.read_segment(3) == HEADER + b"ab"
    store.delete_segment(12)
    assert [s for s, _ in store.list_segments()] == [1, 3, 100]
    store.delete_segment(12)  # deleting what is gone is fine
    assert store.disk_usage() >= 3 * len(HEADER)


def test_seal_segment(store: AgentStore) -> None:
    app = store.create_segment(5, HEADER, durable=True)
    app.write(b"x" * 1000 + b"\n")
    app.close()
    plain = store.read_segment(5)
    store.seal_segment(5, _codec.compress(plain))
    assert store.list_segments() == [(5, True)]
    assert store.segment_exists(5)
    assert store.read_segment(5) == plain
    assert store.read_segment(5, 10) == plain[10:]
    store.delete_segment(5)
    assert store.list_segments() == []


def test_quarantine(store: AgentStore) -> None:
    store.create_segment(1, HEADER, durable=False).close()
    where = store.quarantine(1, len(HEADER), b"torn bytes")
    assert isinstance(where, str) and "quarantine" in where


# --------------------------------------------------------------------------- snapshots


def test_snapshots_write_list_read_delete(store: AgentStore) -> None:
    assert store.list_snapshots() == []
    store.write_snapshot(7, b"seven", compressed=False)
    store.write_snapshot(3, b"three", compressed=True)
    assert store.list_snapshots() == [3, 7]
    assert store.read_snapshot(7, 100) == (b"seven", False)
    assert store.read_snapshot(3, 100) == (b"three", True)
    store.write_snapshot(7, b"seven-again", compressed=True)  # replaces, other suffix gone
    assert store.list_snapshots() == [3, 7]
    assert store.read_snapshot(7, 100) == (b"seven-again", True)
    with pytest.raises(LimitExceededError):
        store.read_snapshot(7, 5)
    with pytest.raises(FileNotFoundError):
        store.read_snapshot(4, 100)
    store.delete_snapshot(3)
    store.delete_snapshot(3)
    assert store.list_snapshots() == [7]
    assert "7" in store.location("snapshot", 7)
    assert store.remove_temps() == []
    store.sync_dirs()


# --------------------------------------------------------------------------- locking


def test_lock_semantics(backend: Backend, store: AgentStore) -> None:
    store.lock()
    store.lock()  # idempotent for the holder
    other = backend.agent("agent-1", create=False)
    try:
        with pytest.raises(JournalLockedError) as ei:
            other.lock()
        assert ei.value.pid is None or isinstance(ei.value.pid, int)
        store.unlock()
        other.lock()  # free again
        with pytest.raises(JournalLockedError):
            store.lock()
    finally:
        other.close()  # closing releases the lock
    store.lock()
    store.unlock()
    store.unlock()  # unlocking twice is harmless
    # locks are per agent
    third = backend.agent("agent-2", create=True)
    try:
        store.lock()
        third.lock()
    finally:
        third.close()


def test_hints_only_from_the_lock_holder(backend: Backend, store: AgentStore) -> None:
    assert store.read_hint() is None
    store.write_hint(Hint(seg=4, snap=3))
    assert store.read_hint() is None  # not the lock holder: ignored
    store.lock()
    store.write_hint(Hint(seg=4, snap=3, clean=True))
    reader = backend.agent("agent-1", create=False)
    try:
        assert reader.read_hint() == Hint(seg=4, snap=3, clean=True)
    finally:
        reader.close()


# --------------------------------------------------------------------------- journals on it


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [f"m{k}" for k in range(i)], "nested": {"a/b": {"~": i}}}


def test_journal_behaviour(backend: Backend) -> None:
    with Journal("j1", backend=backend, snapshot_every=3, segment_max_records=4) as j:
        for i in range(1, 11):
            app = j.append(_state(i))
            assert app.step == i
        assert j.last_step == 10
        assert j.resume().state == _state(10)
        assert [j.state_at(k) for k in range(1, 11)] == [_state(k) for k in range(1, 11)]
        with pytest.raises(StepNotFoundError):
            j.state_at(11)
        steps = [r.step for r in j.history(3, 5)]
        assert set(steps) == {3, 4, 5}
        ops = j.diff(2, 3)
        assert {"op": "add", "path": "/msgs/-", "value": "m2"} in ops
        assert {"op": "replace", "path": "/nested/a~1b/~0", "value": 3} in ops
        assert delta.apply(_state(2), ops) == _state(3)
        assert j.verify().ok
        assert len(j.snapshot_seqs()) == 3
        with Journal("j1", backend=backend) as same:  # one process: the writer is shared
            assert same.last_seq == j.last_seq
        with j.fork(4, "j1-fork") as f:
            assert f.resume().state == _state(4)
            f.append({"forked": True})
            assert f.verify().ok
            assert list(f.records())[0].parent == "j1"  # type: ignore[union-attr]
    # resume after reopening, read-only and writable
    with Journal("j1", backend=backend, readonly=True) as r:
        assert r.resume().state == _state(10)
        assert r.last_seq == 13
    with Journal("j1", backend=backend) as j:
        assert j.resume().state == _state(10)
        j.append(_state(11))
        assert j.state_at(11) == _state(11)
    assert "j1-fork" in backend.list_agents()


def test_journal_retention_on_backend(backend: Backend) -> None:
    with Journal("r1", backend=backend, snapshot_every=2, segment_max_records=3,
                 keep_snapshots=2, compress_segments=True) as j:
        for i in range(1, 13):
            j.append(_state(i))
        assert len(j.snapshot_seqs()) == 2
        assert j.verify().ok
        assert j.state_at(1) == _state(1)  # compressed, not pruned
        rep = j.compact(keep_snapshots=1, prune=True)
        assert rep.segments_deleted and rep.anchor_seq
        assert j.verify().ok
        assert j.resume().state == _state(12)


def test_journal_torn_tail_recovery_on_backend(backend: Backend) -> None:
    with Journal("t1", backend=backend, snapshot_every=None) as j:
        for i in range(1, 4):
            j.append(_state(i))
        first = j.segment_seqs()[-1]
    s = backend.agent("t1", create=False)
    try:
        app = s.open_segment(first)
        app.write(b'{"kind":"step","se')
        app.close()
    finally:
        s.close()
    with pytest.warns(Warning, match="torn tail"):
        j = Journal("t1", backend=backend)
    with j:
        assert j.resume().state == _state(3)
        j.append(_state(4))
        assert j.verify().ok
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal("t1", backend=backend) as j:
            assert j.last_step == 4

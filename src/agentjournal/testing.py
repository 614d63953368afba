"""The backend contract suite, importable: run it against any backend, ours or yours.

Subclass :class:`BackendContract` in a test module and say how to make a fresh backend::

    from agentjournal.testing import BackendContract

    class TestMyBackend(BackendContract):
        def make_backend(self, tmp_path):
            return MyBackend(tmp_path / "store")

pytest then runs every check below against it: the store protocol of
:mod:`agentjournal.backends.base` directly (segments, snapshots, the writer lock, hints, sizes)
and the engine's user-facing behaviour on top (recording, time travel, forks, retention,
torn-tail recovery). agentjournal's own filesystem and memory backends run it from
``tests/test_backend_contract.py``. Needs pytest (the ``[test]`` extra).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import _codec, delta
from .backends.base import AgentStore, Backend, Hint
from .errors import (
    InvalidAgentIdError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
    StepNotFoundError,
)
from .replay.journal import Journal

_HEADER = b'{"kind":"header"}\n'


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [f"m{k}" for k in range(i)], "nested": {"a/b": {"~": i}}}


class BackendContract:
    """Every check a backend must pass; subclass it and implement :meth:`make_backend`."""

    def make_backend(self, tmp_path: Path) -> Backend:
        """A new, empty backend (called once per test)."""
        raise NotImplementedError("implement make_backend() in your subclass")

    @pytest.fixture()
    def backend(self, tmp_path: Path) -> Backend:
        return self.make_backend(tmp_path)

    @pytest.fixture()
    def store(self, backend: Backend) -> Iterator[AgentStore]:
        s = backend.agent("agent-1", create=True)
        try:
            yield s
        finally:
            s.close()

    # --------------------------------------------------------------------------- the backend

    def test_protocols(self, backend: Backend, store: AgentStore) -> None:
        assert isinstance(backend, Backend)
        assert isinstance(store, AgentStore)
        assert store.agent_id == "agent-1"
        assert backend.describe()



    def test_agents_exist_list_and_missing(self, backend: Backend) -> None:
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

    def test_segments_create_append_read(self, store: AgentStore) -> None:
        assert store.list_segments() == []
        assert not store.segment_exists(1)
        app = store.create_segment(1, _HEADER, durable=True)
        app.write(b"one\n")
        app.write(b"two\n")
        app.sync()
        app.close()
        assert store.segment_exists(1)
        assert store.list_segments() == [(1, False)]
        assert store.read_segment(1) == _HEADER + b"one\ntwo\n"
        assert store.read_segment(1, len(_HEADER)) == b"one\ntwo\n"
        assert store.read_segment(1, len(_HEADER), 3) == b"one"
        assert store.segment_size(1) == len(_HEADER) + 8
        app = store.open_segment(1)
        app.write(b"three\n")
        app.close()
        assert store.read_segment(1).endswith(b"two\nthree\n")
        with pytest.raises(FileExistsError):
            store.create_segment(1, _HEADER, durable=False)
        with pytest.raises(FileNotFoundError):
            store.read_segment(99)
        assert "1" in store.location("segment", 1)
        assert store.location("dir")



    def test_segments_order_truncate_delete(self, store: AgentStore) -> None:
        for first in (12, 3, 100, 1):
            store.create_segment(first, _HEADER, durable=False).close()
        assert [s for s, _ in store.list_segments()] == [1, 3, 12, 100]
        app = store.open_segment(3)
        app.write(b"abcdef\n")
        app.close()
        store.truncate_segment(3, len(_HEADER) + 2)
        assert store.read_segment(3) == _HEADER + b"ab"
        store.delete_segment(12)
        assert [s for s, _ in store.list_segments()] == [1, 3, 100]
        store.delete_segment(12)  # deleting what is gone is fine
        assert store.disk_usage() >= 3 * len(_HEADER)



    def test_seal_segment(self, store: AgentStore) -> None:
        app = store.create_segment(5, _HEADER, durable=True)
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



    def test_quarantine(self, store: AgentStore) -> None:
        store.create_segment(1, _HEADER, durable=False).close()
        assert store.list_quarantine() == []
        where = store.quarantine(1, len(_HEADER), b"torn bytes")
        assert isinstance(where, str) and "quarantine" in where
        assert store.list_quarantine() == [where]



    # --------------------------------------------------------------------------- snapshots

    def test_snapshots_write_list_read_delete(self, store: AgentStore) -> None:
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

    def test_sizes_names_and_writers(self, backend: Backend, store: AgentStore) -> None:
        store.create_segment(1, _HEADER, durable=True).close()
        assert store.segment_bytes(1) == len(_HEADER)
        store.seal_segment(1, _codec.compress(store.read_segment(1)))
        assert store.segment_bytes(1) > 0  # sealed: its stored size
        store.write_snapshot(2, b"xy", compressed=False)
        assert store.snapshot_bytes(2) == 2
        with pytest.raises(FileNotFoundError):
            store.snapshot_bytes(3)
        with pytest.raises(FileNotFoundError):
            store.segment_bytes(9)
        for kind, seq in (("segment", 1), ("snapshot", 2)):
            name = store.name(kind, seq)
            assert str(seq) in name and not os.path.isabs(name) and "://" not in name
        assert backend.lock_holders() == {}
        store.lock()
        assert backend.lock_holders() == {"agent-1": os.getpid()}
        store.unlock()
        assert backend.lock_holders() == {}
        assert backend.identity() == backend.identity()
        hash(backend.identity())

    def test_lock_semantics(self, backend: Backend, store: AgentStore) -> None:
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



    def test_hints_only_from_the_lock_holder(self, backend: Backend, store: AgentStore) -> None:
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




    def test_journal_behaviour(self, backend: Backend) -> None:
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



    def test_journal_retention_on_backend(self, backend: Backend) -> None:
        with Journal("r1", backend=backend, snapshot_every=2, segment_max_records=3,
                     keep_snapshots=2, compress_segments=True, sparse_snapshots=None) as j:
            for i in range(1, 13):
                j.append(_state(i))
            assert len(j.snapshot_seqs()) == 2
            assert j.verify().ok
            assert j.state_at(1) == _state(1)  # compressed, not pruned
            rep = j.compact(keep_snapshots=1, prune=True)
            assert rep.segments_deleted and rep.anchor_seq
            assert j.verify().ok
            assert j.resume().state == _state(12)



    def test_journal_torn_tail_recovery_on_backend(self, backend: Backend) -> None:
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

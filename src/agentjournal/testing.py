"""The backend contract suites, importable: run them against any backend, ours or yours.

A backend is one of two shapes (see :mod:`agentjournal.backends.base`), and each has a suite.
Subclass the one for yours in a test module and say how to make a fresh backend::

    from agentjournal.testing import RecordStoreContract

    class TestMyBackend(RecordStoreContract):
        def make_backend(self, tmp_path):
            return MyRecordBackend(...)

* :class:`RecordStoreContract`: the record-level core (a compare-and-append at the next seq,
  reads by seq, the lease and its fence, prefix and suffix deletes, snapshots, a snapshot in
  the same append as its mark), then the engine's user-facing behaviour on top of it through
  :class:`~agentjournal.backends.segmentview.SegmentView`. Our in-memory record backend and
  the PostgreSQL backend run it.
* :class:`BackendContract`: the segment capability (segment files, torn-tail recovery,
  quarantine, sealing, hints) and the same engine behaviour. The filesystem and memory
  backends run it from ``tests/test_backend_contract.py``.

pytest then runs every check against it. Needs pytest (the ``[test]`` extra).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from . import _codec, delta
from .backends.base import AgentStore, Backend, Hint, RecordBackend, RecordStore, SnapshotData
from .backends.segmentview import SegmentView
from .errors import (
    InvalidAgentIdError,
    JournalFencedError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
    StepNotFoundError,
)
from .replay.journal import Journal

_HEADER = b'{"kind":"header"}\n'


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [f"m{k}" for k in range(i)], "nested": {"a/b": {"~": i}}}


class _Backed:
    def make_backend(self, tmp_path: Path) -> Any:
        """A new, empty backend (called once per test)."""
        raise NotImplementedError("implement make_backend() in your subclass")

    @pytest.fixture()
    def backend(self, tmp_path: Path) -> Any:
        return self.make_backend(tmp_path)


class SegmentStoreContract(_Backed):
    """The segment capability (:class:`~agentjournal.backends.base.AgentStore`), checked
    directly."""

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


class JournalContract(_Backed):
    """The engine's user-facing behaviour on a backend of either shape."""

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


class BackendContract(SegmentStoreContract, JournalContract):
    """Every check a backend with the segment capability must pass; subclass it and
    implement :meth:`make_backend`."""


def _rec(seq: int, body: str = "x") -> bytes:
    """A line shaped like a record (the store never parses one; the view reads its seq)."""
    return b'{"kind":"step","seq":%d,"v":"%s"}\n' % (seq, body.encode())


class RecordStoreContract(JournalContract):
    """Every check a record-level backend must pass (the core of
    :mod:`agentjournal.backends.base`), then the engine on it; subclass it and implement
    :meth:`make_backend` (a :class:`~agentjournal.backends.base.RecordBackend` that is also a
    :class:`~agentjournal.backends.segmentview.SegmentViews`), and :meth:`take_over` to have
    the fence tested."""

    def take_over(self, backend: Any, agent_id: str) -> RecordStore | None:
        """Take the agent's lease away from its holder the way another host would after
        the holder stalled (a store holding the new lease), or None to skip those checks."""
        return None

    @pytest.fixture()
    def rstore(self, backend: RecordBackend) -> Iterator[RecordStore]:
        s = backend.records("agent-1", create=True)
        try:
            yield s
        finally:
            s.close()

    def test_record_protocols(self, backend: Any, rstore: RecordStore) -> None:
        assert isinstance(backend, RecordBackend)
        assert isinstance(rstore, RecordStore)
        assert rstore.agent_id == "agent-1" and rstore.describe()
        assert isinstance(cast(Any, backend).agent("agent-1", create=False), SegmentView)
        with pytest.raises(JournalNotFoundError):
            backend.records("nobody", create=False)
        assert backend.list_agents() == ["agent-1"] and backend.exists("agent-1")

    def test_append_read_span_headers(self, rstore: RecordStore) -> None:
        assert rstore.span() is None and list(rstore.read(1)) == [] and rstore.headers() == []
        rstore.acquire()
        rstore.acquire()  # idempotent for the holder
        head = b'{"kind":"header","first_seq":1}\n'
        rstore.append(1, [_rec(1), _rec(2, "\u00e9t\u00e9")], header=head)
        rstore.append(3, [_rec(3)])
        rstore.sync()
        assert rstore.span() == (1, 3)
        assert list(rstore.read(1)) == [(1, _rec(1)), (2, _rec(2, "\u00e9t\u00e9")), (3, _rec(3))]
        assert list(rstore.read(2, 3)) == [(2, _rec(2, "\u00e9t\u00e9"))]
        assert list(rstore.read(4)) == [] and list(rstore.read(0, 2)) == [(1, _rec(1))]
        assert rstore.headers() == [(1, head)]
        big = b'{"kind":"step","seq":4,"v":"' + b"y" * (1 << 20) + b'"}\n'
        rstore.append(4, [big], header=b"h4\n")
        assert list(rstore.read(4)) == [(4, big)]  # stored byte for byte
        assert rstore.headers() == [(1, head), (4, b"h4\n")]

    def test_append_is_conditional_on_the_next_seq(self, rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(1, [_rec(1), _rec(2)])
        for wrong in (1, 2, 4, 10):
            with pytest.raises(JournalFencedError):
                rstore.append(wrong, [_rec(wrong)])
        assert rstore.span() == (1, 2)  # nothing of a refused append is kept
        with pytest.raises(JournalFencedError):  # all or none
            rstore.append(2, [_rec(2, "again"), _rec(3)])
        assert list(rstore.read(1)) == [(1, _rec(1)), (2, _rec(2))]
        rstore.append(3, [_rec(3)])
        assert rstore.span() == (1, 3)

    def test_a_journal_may_start_at_any_seq(self, rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(41, [_rec(41)], header=b"h\n")  # an import of a pruned journal
        assert rstore.span() == (41, 41)
        with pytest.raises(JournalFencedError):
            rstore.append(1, [_rec(1)])

    def test_lease(self, backend: RecordBackend, rstore: RecordStore) -> None:
        with pytest.raises(JournalFencedError):
            rstore.append(1, [_rec(1)])  # no lease: no change
        rstore.acquire()
        assert backend.lock_holders() == {"agent-1": os.getpid()}
        other = backend.records("agent-1", create=False)
        try:
            with pytest.raises(JournalLockedError):
                other.acquire()
            rstore.append(1, [_rec(1)])
            assert list(other.read(1)) == [(1, _rec(1))]  # readers need no lease
            rstore.release()
            rstore.release()  # harmless twice
            assert backend.lock_holders() == {}
            with pytest.raises(JournalFencedError):
                rstore.append(2, [_rec(2)])
            other.acquire()
            other.append(2, [_rec(2)])
            with pytest.raises(JournalLockedError):
                rstore.acquire()
        finally:
            other.close()  # closing releases the lease
        rstore.acquire()
        rstore.append(3, [_rec(3)])
        assert rstore.span() == (1, 3)
        third = backend.records("agent-2", create=True)
        try:
            third.acquire()  # leases are per agent
        finally:
            third.close()

    def test_takeover_fences_the_old_holder(self, backend: RecordBackend,
                                             rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(1, [_rec(1)])
        new = self.take_over(backend, "agent-1")
        if new is None:
            pytest.skip("this backend's test gives no way to take a lease over")
        try:
            changes: list[Callable[[], None]] = [
                lambda: rstore.append(2, [_rec(2)]),
                lambda: rstore.delete_from(1),
                lambda: rstore.delete_below(2),
                lambda: rstore.put_snapshot(SnapshotData(1, b"s", False))]
            for change in changes:
                with pytest.raises(JournalFencedError):
                    change()
            new.append(2, [_rec(2, "new")])
            assert list(new.read(1)) == [(1, _rec(1)), (2, _rec(2, "new"))]
        finally:
            new.close()

    def test_snapshot_rides_with_its_mark(self, rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(1, [_rec(1)])
        with pytest.raises(JournalFencedError):  # a refused append stores no snapshot
            rstore.append(5, [_rec(5)], snapshot=SnapshotData(1, b"lost", False))
        assert rstore.list_snapshots() == []
        rstore.append(2, [_rec(2)], snapshot=SnapshotData(1, b"state-1", True))
        assert rstore.list_snapshots() == [(1, 7)]
        assert rstore.get_snapshot(1, 100) == (b"state-1", True)

    def test_snapshots(self, rstore: RecordStore) -> None:
        rstore.acquire()
        assert rstore.list_snapshots() == []
        rstore.put_snapshot(SnapshotData(7, b"seven", False))
        rstore.put_snapshot(SnapshotData(3, b"three", True))
        assert rstore.list_snapshots() == [(3, 5), (7, 5)]
        rstore.put_snapshot(SnapshotData(7, b"seven-again", True))  # replaces
        assert rstore.get_snapshot(7, 100) == (b"seven-again", True)
        with pytest.raises(LimitExceededError):
            rstore.get_snapshot(7, 5)
        with pytest.raises(FileNotFoundError):
            rstore.get_snapshot(4, 100)
        rstore.delete_snapshot(3)
        rstore.delete_snapshot(3)  # deleting what is gone is fine
        assert rstore.list_snapshots() == [(7, 11)]

    def test_prefix_and_suffix_deletes(self, rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(1, [_rec(i) for i in range(1, 6)], header=b"h1\n")
        rstore.append(6, [_rec(i) for i in range(6, 11)], header=b"h6\n")
        rstore.delete_below(6)
        assert rstore.span() == (6, 10) and rstore.headers() == [(6, b"h6\n")]
        rstore.delete_below(3)  # nothing left below: a no-op
        assert rstore.span() == (6, 10)
        rstore.delete_from(9)
        assert rstore.span() == (6, 8)
        rstore.append(9, [_rec(9, "again")])  # the next seq follows the cut
        assert list(rstore.read(9)) == [(9, _rec(9, "again"))]
        rstore.delete_from(6)
        assert rstore.span() is None and rstore.headers() == []

    def test_optional_capabilities(self, rstore: RecordStore) -> None:
        rstore.acquire()
        rstore.append(1, [_rec(1)], header=b"h\n")
        rstore.put_snapshot(SnapshotData(1, b"abc", False))
        usage = getattr(rstore, "usage", None)
        keep = getattr(rstore, "quarantine", None)
        if usage is None and keep is None:
            pytest.skip(f"{type(rstore).__name__} offers neither usage() nor quarantine()")
        if usage is not None:
            assert usage() == len(_rec(1)) + 2 + 3
        if keep is not None:
            keep("cut-1", b"bytes")
            assert rstore.list_quarantine() == ["cut-1"]  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the engine on it

    def test_journal_snapshot_is_stored_with_its_mark(self, backend: Any) -> None:
        with Journal("s1", backend=backend, snapshot_every=2) as j:
            for i in range(1, 6):
                j.append(_state(i))
            seqs = j.snapshot_seqs()
        rs = backend.records("s1", create=False)
        try:
            snaps = [s for s, _ in rs.list_snapshots()]
            assert snaps == seqs and len(snaps) == 2
            marks = [seq for seq, line in rs.read(1) if line.startswith(b'{"kind":"snapshot"')]
            assert [m - 1 for m in marks] == snaps  # each mark right after its snapshot's seq
        finally:
            rs.close()

    def test_journal_writer_is_fenced_after_a_takeover(self, backend: Any) -> None:
        j = Journal("f1", backend=backend, snapshot_every=None)
        try:
            j.append(_state(1))
            new = self.take_over(backend, "f1")
            if new is None:
                pytest.skip("this backend's test gives no way to take a lease over")
            new.close()
            with pytest.raises(JournalFencedError):
                j.append(_state(2))
        finally:
            with contextlib.suppress(Exception):
                j.close()
        with Journal("f1", backend=backend) as again:
            assert again.resume().state == _state(1)
            again.append(_state(2))
            assert again.verify().ok

    def test_journal_repair_cuts_a_damaged_suffix(self, backend: Any) -> None:
        with Journal("d1", backend=backend, snapshot_every=None) as j:
            for i in range(1, 6):
                j.append(_state(i))
        rs = backend.records("d1", create=False)
        try:
            rs.acquire()
            lines = [line for _, line in rs.read(4)]
            rs.delete_from(4)  # rewrite record 4 with one flipped byte, as an attacker would
            bad = lines[0].replace(b'"m3"', b'"mX"')
            assert bad != lines[0]
            rs.append(4, [bad, *lines[1:]])
        finally:
            rs.close()
        with Journal("d1", backend=backend, readonly=True) as r:
            assert not r.verify().ok
        with pytest.warns(Warning):
            j = Journal("d1", backend=backend, repair=True)
        with j:
            assert j.resume().state == _state(3)
            assert j.verify().ok

"""The engine on a record-level store, through :class:`SegmentView`.

The in-memory record backend stands for a transactional store (PostgreSQL runs the same
scenarios in tests/postgres/): what the view must get right is byte-exact segments out of
whole records, reads by offset that touch only new records, snapshots stored in the same
append as their marks, and cuts that are record-level prefix or suffix deletes.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.backends import FilesystemBackend
from agentjournal.backends.base import AgentStore, RecordStore, SnapshotData
from agentjournal.backends.memrecords import MemoryRecordBackend, MemoryRecordStore
from agentjournal.backends.segmentview import SegmentView, WakingSegmentView, segment_view
from agentjournal.errors import JournalFencedError, StepNotFoundError, StoreError
from agentjournal.exchange.copy import copy_journal
from agentjournal.exchange.exporter import export_journal
from agentjournal.journal.follow import Tail


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [{"n": k, "t": "é" * (k % 3)} for k in range(i)]}


def _rec(seq: int) -> bytes:
    return b'{"kind":"step","seq":%d,"pad":"%s"}\n' % (seq, b"p" * seq)


class _Counting(MemoryRecordStore):
    """Counts the records the view reads, to show that tail reads touch only new ones."""

    def __init__(self, inner: MemoryRecordStore) -> None:
        super().__init__(inner._r, inner.agent_id)
        self.rows_read = 0

    def read(self, start: int, stop: int | None = None):  # type: ignore[no-untyped-def]
        for row in super().read(start, stop):
            self.rows_read += 1
            yield row


def test_the_view_is_a_segment_store_of_exact_bytes() -> None:
    be = MemoryRecordBackend()
    view = be.agent("a", create=True)
    assert isinstance(view, AgentStore) and isinstance(view.records, RecordStore)
    view.lock()
    app = view.create_segment(1, b"HEADER\n", durable=True)
    assert view.list_segments() == [(1, False)] and view.read_segment(1) == b"HEADER\n"
    app.write(_rec(1) + _rec(2))
    app.write(_rec(3))
    whole = b"HEADER\n" + _rec(1) + _rec(2) + _rec(3)
    assert view.read_segment(1) == whole
    for off in range(len(whole) + 1):  # every offset and length agrees with the bytes
        assert view.read_segment(1, off) == whole[off:]
        assert view.read_segment(1, off, 5) == whole[off:off + 5]
    assert view.segment_size(1) == len(whole)
    view.create_segment(4, b"H4\n", durable=False).write(_rec(4))
    assert view.list_segments() == [(1, True), (4, False)]  # older segments are immutable
    with pytest.raises(FileNotFoundError):
        view.segment_size(1)
    assert view.segment_bytes(1) == len(whole)
    with pytest.raises(FileExistsError):
        view.create_segment(4, b"again\n", durable=False)
    with pytest.raises(StoreError, match="whole lines"):
        view.open_segment(4).write(b'{"kind":"step","seq":5,')
    with pytest.raises(StoreError, match="consecutive"):
        view.open_segment(4).write(_rec(5) + _rec(7))
    assert view.records.span() == (1, 4)  # nothing of a refused write is kept
    view.close()


def test_tail_reads_touch_only_the_new_records() -> None:
    be = MemoryRecordBackend()
    writer = be.agent("a", create=True)
    writer.lock()
    app = writer.create_segment(1, b"H\n", durable=True)
    app.write(b"".join(_rec(i) for i in range(1, 101)))
    reader = SegmentView(_Counting(be.records("a", create=False)))
    data = reader.read_segment(1)
    counting = reader.records
    assert isinstance(counting, _Counting) and counting.rows_read == 100
    app.write(_rec(101))
    assert reader.read_segment(1, len(data)) == _rec(101)
    assert reader.segment_size(1) == len(data) + len(_rec(101))
    assert counting.rows_read == 101  # the one new record, not the segment again
    writer.close()


def test_snapshot_and_header_ride_with_the_next_record() -> None:
    be = MemoryRecordBackend()
    view = be.agent("a", create=True)
    view.lock()
    app = view.create_segment(1, b"H\n", durable=True)
    app.write(_rec(1))
    view.write_snapshot(1, b"state", compressed=False)
    rs = be.records("a", create=False)
    assert rs.list_snapshots() == []  # held: not stored before its mark
    assert view.list_snapshots() == [1] and view.read_snapshot(1, 99) == (b"state", False)
    app.write(_rec(2))  # the mark: stored in the same append
    assert rs.list_snapshots() == [(1, 5)]
    view.write_snapshot(2, b"two", compressed=True)
    view.sync_dirs()  # an import's snapshot has no mark after it: stored at the next sync
    assert rs.list_snapshots() == [(1, 5), (2, 3)]
    assert view.snapshot_bytes(2) == 3
    view.create_segment(3, b"H3\n", durable=False)
    assert rs.headers() == [(1, b"H\n")]  # the header waits for its first record
    view.open_segment(3).write(_rec(3))
    assert rs.headers() == [(1, b"H\n"), (3, b"H3\n")]
    view.close()


def test_cuts_are_prefix_and_suffix_deletes() -> None:
    be = MemoryRecordBackend()
    view = be.agent("a", create=True)
    view.lock()
    for first in (1, 4, 7):
        view.create_segment(first, b"H%d\n" % first, durable=False).write(
            b"".join(_rec(i) for i in range(first, first + 3)))
    with pytest.raises(StoreError, match="prefix or a suffix"):
        view.delete_segment(4)
    size = len(b"H7\n") + len(_rec(7))
    view.truncate_segment(7, size + 3)  # inside record 8: it goes, a record is never split
    assert view.read_segment(7) == b"H7\n" + _rec(7)
    view.delete_segment(1)
    assert view.list_segments() == [(4, True), (7, False)]
    assert view.records.span() == (4, 7)
    view.truncate_segment(7, 3)  # down to the header: it waits for the next record
    assert view.list_segments() == [(4, True), (7, False)]
    assert view.read_segment(7) == b"H7\n"
    view.open_segment(7).write(_rec(7))
    view.delete_segment(7)
    assert view.list_segments() == [(4, False)] and view.records.span() == (4, 6)
    view.close()


@pytest.mark.parametrize("mode", ["sync", "group", "none"])
def test_journal_on_records(mode: str) -> None:
    be = MemoryRecordBackend()
    with Journal("bot", backend=be, durability=mode, snapshot_every=5,
                 segment_max_records=7) as j:
        for i in range(1, 31):
            assert j.append(_state(i)).step == i
        assert j.resume().state == _state(30)
        assert [j.state_at(k) for k in (1, 5, 6, 17, 30)] == [_state(k) for k in
                                                              (1, 5, 6, 17, 30)]
        assert j.verify().ok
        snaps = j.snapshot_seqs()
        with j.fork(12, "bot-fork") as f:
            assert f.resume().state == _state(12)
    rs = be.records("bot", create=False)
    assert [s for s, _ in rs.list_snapshots()] == snaps
    with Journal("bot", backend=be, readonly=True) as r:
        assert r.resume().state == _state(30)
        assert r.last_seq == rs.span()[1]  # type: ignore[index]
    with Journal("bot", backend=be, keep_snapshots=2, prune=True, snapshot_every=5) as j:
        for i in range(31, 46):
            j.append(_state(i))
        assert j.verify().ok
        with pytest.raises(StepNotFoundError):
            j.state_at(2)
        assert j.state_at(44) == _state(44)
    first = rs.span()[0]  # type: ignore[index]
    assert first > 1  # a prefix of records is gone, and the chain verifies from its anchor


def test_a_reader_races_a_live_writer() -> None:
    be = MemoryRecordBackend()
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def read() -> None:
        try:
            with Journal("live", backend=be, readonly=True) as r:
                while not done.is_set():
                    res = r.resume()
                    assert res.state == _state(res.step)
                    seen.append(res.step)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    with Journal("live", backend=be, snapshot_every=4, durability="none") as j:
        j.append(_state(1))
        t = threading.Thread(target=read)
        t.start()
        for i in range(2, 201):
            j.append(_state(i))
        done.set()
        t.join()
    assert not errors and seen and seen == sorted(seen)


def test_tail_follows_every_record_once() -> None:
    be = MemoryRecordBackend()
    with Journal("f", backend=be, snapshot_every=3, segment_max_records=4) as j:
        with Journal("f", backend=be, readonly=True) as r:
            tail = Tail(r.store, from_seq=1)
            assert not tail.wakes  # the memory record store offers no wake-ups: polled
            got: list[int] = []
            for i in range(1, 25):
                j.append(_state(i))
                if i % 5 == 0:
                    got += [rec.seq for rec in tail.poll()]
            got += [rec.seq for rec in tail.poll()]
            assert got == list(range(1, j.last_seq + 1))


def test_copy_between_the_filesystem_and_a_record_store(tmp_path: Path) -> None:
    fs = FilesystemBackend(tmp_path / "fs")
    with Journal("m", backend=fs, snapshot_every=4) as j:
        for i in range(1, 20):
            j.append(_state(i))
    rec = MemoryRecordBackend()
    copy_journal(fs, rec, "m")
    back = FilesystemBackend(tmp_path / "back")
    copy_journal(rec, back, "m")
    for be in (rec, back):
        with Journal("m", backend=be, readonly=True) as r:
            assert r.verify().ok and r.resume().state == _state(19)
    outs = []
    for be in (fs, rec, back):  # the same journal exports to the same lines everywhere
        with Journal("m", backend=be, readonly=True) as r:
            buf = io.BytesIO()
            export_journal(r, buf)
            lines = buf.getvalue().splitlines()
            assert lines[0].startswith(b'{"kind":"agentjournal-export"')
            outs.append(lines[1:])  # after the manifest (its time and the sealed flags vary)
    assert outs[0] == outs[1] == outs[2]


def test_fence_through_the_engine_keeps_the_chain() -> None:
    be = MemoryRecordBackend()
    j = Journal("x", backend=be, snapshot_every=None)
    j.append(_state(1))
    be.take_over("x").close()
    with pytest.raises(JournalFencedError):
        j.append(_state(2))
    j.close()
    with Journal("x", backend=be) as again:
        assert again.last_step == 1 and again.verify().ok


def test_segment_view_picks_wake_ups() -> None:
    class Waking(MemoryRecordStore):
        def wait_for_change(self, timeout: float) -> bool:
            return True

    be = MemoryRecordBackend()
    plain = be.records("w", create=True)
    assert type(segment_view(plain)) is SegmentView
    waking = segment_view(Waking(plain._r, "w"))
    assert isinstance(waking, WakingSegmentView) and waking.wait_for_change(0.0)


def test_a_refused_append_keeps_the_snapshot_out() -> None:
    be = MemoryRecordBackend()
    view = be.agent("s", create=True)
    view.lock()
    view.create_segment(1, b"H\n", durable=True).write(_rec(1))
    view.write_snapshot(1, b"s1", compressed=False)
    be.take_over("s").close()
    with pytest.raises(JournalFencedError):
        view.open_segment(1).write(_rec(2))
    assert be.records("s", create=False).list_snapshots() == []
    assert SnapshotData(1, b"s1", False).seq == 1

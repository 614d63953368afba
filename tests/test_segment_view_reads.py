"""Two reads of :class:`SegmentView` that a record store makes possible and a file store does
not (found on PostgreSQL, shown here on the in-memory record store, deterministically):

- a record missing from the middle of a store (damage, tampering) is read through, so the
  scanner sees the break in the chain instead of a journal that silently ends before it;
- a reader of the newest segment whose read runs into a segment the writer opened
  meanwhile (its header and first record committed together) stops before that record.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentjournal import Journal
from agentjournal.backends.memrecords import MemoryRecordBackend, MemoryRecordStore
from agentjournal.backends.segmentview import SegmentView


def _rec(seq: int) -> bytes:
    return b'{"kind":"step","seq":%d,"pad":"x"}\n' % seq


class _Gappy(MemoryRecordStore):
    """A store that lost record 4 (the fault: a row deleted behind the writer's back)."""

    def read(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        return iter([r for r in super().read(start, stop) if r[0] != 4])


class _GappyBackend(MemoryRecordBackend):
    def records(self, agent_id: str, *, create: bool) -> MemoryRecordStore:
        inner = super().records(agent_id, create=create)
        return _Gappy(inner._r, agent_id) if self.gap else inner

    gap = False


def test_a_missing_record_is_damage_not_the_end() -> None:
    be = _GappyBackend()
    with Journal("t", backend=be, snapshot_every=None) as j:
        for i in range(1, 8):
            j.append({"i": i})
    be.gap = True
    with Journal("t", backend=be, readonly=True) as r:
        rep = r.verify()
        # Good up to seq 3, then the break is seen (before: "ok", a journal ending at 3).
        assert not rep.ok and rep.records == 3 and rep.problems


class _Racing(MemoryRecordStore):
    """A reader's store: while its first read runs, the writer opens a new segment."""

    def __init__(self, inner: MemoryRecordStore, writer: MemoryRecordStore) -> None:
        super().__init__(inner._r, inner.agent_id)
        self.writer = writer
        self.raced = False

    def read(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        if not self.raced and stop is None:
            self.raced = True
            span = self.writer.span()
            assert span is not None
            nxt = span[1] + 1
            self.writer.append(nxt, [_rec(nxt)], header=b"HEADER-2\n")  # a new segment
        return super().read(start, stop)


def test_a_tail_read_stops_at_a_segment_opened_meanwhile() -> None:
    be = MemoryRecordBackend()
    writer = be.records("f", create=True)
    writer.acquire()
    writer.append(1, [_rec(1), _rec(2)], header=b"HEADER-1\n")
    reader = SegmentView(_Racing(be.records("f", create=False), writer))
    # Record 3 belongs to segment 3, not to the end of segment 1.
    assert reader.read_segment(1) == b"HEADER-1\n" + _rec(1) + _rec(2)
    assert reader.list_segments() == [(1, True), (3, False)]
    assert reader.read_segment(3) == b"HEADER-2\n" + _rec(3)
    writer.close()

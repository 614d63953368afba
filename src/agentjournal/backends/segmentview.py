"""The journal's segment view of a :class:`~agentjournal.backends.base.RecordStore`.

The engine reads and writes segments: byte strings made of a header line and record lines,
the unit of the on-disk format, of export and of verification. A record store keeps whole
records by seq and a header beside the record it precedes. :class:`SegmentView` presents the
one as the other, written once for every record store, so a new backend implements only the
small record core and the engine above runs unchanged on it.

How the segment chores map onto records:

* a segment is the header kept at seq ``s`` plus the records from ``s`` to the next header;
  its bytes are the concatenation, so scanning, hash checks and export are byte-exact;
* a write appends whole records in one :meth:`RecordStore.append` (a compare-and-append at
  the next seq); a new segment's header rides with its first record, and a snapshot with its
  mark record, so both are written in the same atomic step as the record they belong to;
* there are no torn tails (an append is all or nothing), no temp files and no hints to keep;
  every segment but the newest is immutable, so it is listed as sealed and retention never
  rewrites it;
* recovery's cuts (only ``repair`` of damaged records can need one) delete a suffix of
  records; deleting segments deletes a prefix (retention) or a suffix (an undone import).

Byte offsets exist only in this view: it learns each segment's line lengths as it reads them,
so a reader that follows the tail reads only the records it has not seen.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator

from ..errors import StoreError
from .base import Hint, RecordStore, SnapshotData, seq_name

__all__ = ["SegmentView", "SegmentViews", "WakingSegmentView", "segment_view"]

_SEQ = re.compile(rb'\{"kind":"[a-z]+","seq":([0-9]{1,19}),')


def _line_seq(line: bytes) -> int | None:
    m = _SEQ.match(line)
    return None if m is None else int(m.group(1))


class _Index:
    """What the view knows of one segment: its header and the end offset of each record
    read so far (records ``first``, ``first + 1``, … in order)."""

    __slots__ = ("ends", "first", "header")

    def __init__(self, first: int, header: bytes) -> None:
        self.first = first
        self.header = header
        self.ends: list[int] = []

    @property
    def known_end(self) -> int:
        return self.ends[-1] if self.ends else len(self.header)

    @property
    def next_seq(self) -> int:
        return self.first + len(self.ends)


class _ViewAppender:
    """Appends to the newest segment of a :class:`SegmentView`."""

    __slots__ = ("_first", "_view")

    def __init__(self, view: SegmentView, first: int) -> None:
        self._view = view
        self._first = first

    def write(self, data: bytes) -> None:
        self._view._write(self._first, data)

    def sync(self) -> None:
        self._view._sync()

    def close(self) -> None:
        """Nothing to release."""


class SegmentView:
    """The segment-shaped :class:`~agentjournal.backends.base.AgentStore` of a record store."""

    def __init__(self, store: RecordStore) -> None:
        self.agent_id = store.agent_id
        self.records = store
        """The record store underneath (for its own capabilities, e.g. wake-ups)."""
        self._held = False
        self._mutex = threading.RLock()
        self._index: dict[int, _Index] = {}
        self._pending_header: tuple[int, bytes] | None = None
        """A segment created and not yet written to: its header rides with its first record."""
        self._pending_snapshot: SnapshotData | None = None
        """A snapshot written and not yet stored: it rides with the next record (its mark)."""

    # --- names -------------------------------------------------------------------------
    def location(self, kind: str, seq: int | None = None) -> str:
        base = self.records.describe()
        if kind == "segment" and seq is not None:
            return f"{base}/segments/{seq_name(seq)}.jsonl"
        if kind == "snapshot" and seq is not None:
            return f"{base}/snapshots/{seq_name(seq)}.json"
        return base

    def name(self, kind: str, seq: int) -> str:
        return self.location(kind, seq).removeprefix(self.records.describe() + "/")

    # --- the lease ---------------------------------------------------------------------
    def lock(self) -> None:
        if not self._held:
            self.records.acquire()
            self._held = True

    def unlock(self) -> None:
        with self._mutex:
            self._flush_snapshot()
            self._pending_header = None
            if self._held:
                self._held = False
                self.records.release()

    def read_hint(self) -> Hint | None:
        """Computed, never stored: the newest header and snapshot (a record store has no
        temp files to clean, so ``clean`` is always true)."""
        heads = self._headers()
        if not heads:
            return None
        snaps = self.list_snapshots()
        return Hint(seg=heads[-1][0], snap=snaps[-1] if snaps else 0, clean=True)

    def write_hint(self, hint: Hint) -> None:
        """Nothing to keep: :meth:`read_hint` computes it."""

    # --- segments ----------------------------------------------------------------------
    def _headers(self) -> list[tuple[int, bytes]]:
        heads = self.records.headers()
        pending = self._pending_header
        if pending is not None and (not heads or heads[-1][0] < pending[0]):
            heads.append(pending)
        return heads

    def _bounds(self, first: int) -> tuple[bytes, int | None]:
        """``(header, first seq of the next segment or None)``; FileNotFoundError."""
        heads = self._headers()
        seqs = [s for s, _ in heads]
        i = bisect.bisect_left(seqs, first)
        if i == len(seqs) or seqs[i] != first:
            raise FileNotFoundError(self.location("segment", first))
        return heads[i][1], seqs[i + 1] if i + 1 < len(seqs) else None

    def segment_exists(self, first_seq: int) -> bool:
        return any(s == first_seq for s, _ in self._headers())

    def list_segments(self) -> list[tuple[int, bool]]:
        heads = self._headers()
        return [(s, i < len(heads) - 1) for i, (s, _) in enumerate(heads)]

    def _indexed(self, first: int, header: bytes, newest: bool) -> _Index:
        """The line lengths known of a segment. Kept only for the newest segment (the one
        readers follow and the writer appends to), so reading a long journal once does not
        keep an offset per record in memory; an older one is immutable and read whole."""
        ix = self._index.get(first)
        if ix is None or ix.header != header:
            ix = _Index(first, header)
            if newest:
                for old in [s for s in self._index if s < first]:
                    del self._index[old]
                self._index[first] = ix
        return ix

    def _records(self, first: int, start: int, stop: int | None
                 ) -> Iterator[tuple[int, bytes]]:
        """The records of segment ``first`` from ``start``. For the newest segment read by
        anyone but the writer, a segment the writer started meanwhile is cut off: its
        header was stored with its first record, so a look at the headers *after* the read
        finds every segment that read can have run into."""
        rows = self.records.read(start, stop)
        if stop is not None or self._held:
            return rows
        got = list(rows)
        if got:
            later = [s for s, _ in self.records.headers() if s > first]
            if later:
                got = [r for r in got if r[0] < later[0]]
        return iter(got)

    def read_segment(self, first_seq: int, offset: int = 0, length: int | None = None) -> bytes:
        """The segment's bytes from ``offset`` (``length`` of them): reads only the records
        that overlap, using the line lengths learned on earlier reads."""
        with self._mutex:
            header, nxt = self._bounds(first_seq)
            ix = self._indexed(first_seq, header, nxt is None)
            end = None if length is None else offset + length
            with_header = offset < len(header)
            # The first record that ends after ``offset`` (known, or the next unknown one).
            k = 0 if with_header else bisect.bisect_right(ix.ends, offset)
            base = ix.ends[k - 1] if k > 0 else len(header)
            out = [header] if with_header else []
            pos = base
            expect = first_seq + k
            if end is None or pos < end:
                gap = False
                for seq, line in self._records(first_seq, expect, nxt):
                    # A gap (a record missing from the store: damage) is read through, so
                    # the scanner sees the break in the chain; offsets are learned before it.
                    gap = gap or seq != expect
                    if not gap and seq - first_seq == len(ix.ends):
                        ix.ends.append(pos + len(line))
                    out.append(line)
                    pos += len(line)
                    expect = seq + 1
                    if end is not None and pos >= end:
                        break
            data = b"".join(out)
            start = 0 if with_header else base
            return data[offset - start: None if end is None else end - start]

    def _learn(self, ix: _Index, nxt: int | None) -> int:
        """Read the records of ``ix``'s segment not known yet; its size."""
        pos = ix.known_end
        gap = False
        for seq, line in self._records(ix.first, ix.next_seq, nxt):
            gap = gap or seq != ix.next_seq  # damage: counted, not indexed
            pos += len(line)
            if not gap:
                ix.ends.append(pos)
        return pos

    def _size(self, first_seq: int) -> int:
        with self._mutex:
            header, nxt = self._bounds(first_seq)
            return self._learn(self._indexed(first_seq, header, nxt is None), nxt)

    def segment_size(self, first_seq: int) -> int:
        """Size of the newest (unsealed) segment; FileNotFoundError for any other."""
        heads = self._headers()
        if not heads or heads[-1][0] != first_seq:
            raise FileNotFoundError(self.location("segment", first_seq))
        return self._size(first_seq)

    def segment_bytes(self, first_seq: int) -> int:
        return self._size(first_seq)

    def create_segment(self, first_seq: int, header: bytes, durable: bool) -> _ViewAppender:
        with self._mutex:
            if self.segment_exists(first_seq):
                raise FileExistsError(self.location("segment", first_seq))
            self._pending_header = (first_seq, bytes(header))
            self._index[first_seq] = _Index(first_seq, bytes(header))
            return _ViewAppender(self, first_seq)

    def open_segment(self, first_seq: int) -> _ViewAppender:
        self._bounds(first_seq)
        return _ViewAppender(self, first_seq)

    def _write(self, first: int, data: bytes) -> None:
        lines = data.splitlines(keepends=True)
        if not lines or not lines[-1].endswith(b"\n"):
            raise StoreError(f"a record store takes whole lines only; got {len(data)} bytes "
                             "that do not end a line", path=self.location("segment", first))
        seqs = [_line_seq(x) for x in lines]
        start = seqs[0]
        if start is None or seqs != list(range(start, start + len(lines))):
            raise StoreError("a record store takes records with consecutive seqs only",
                             path=self.location("segment", first))
        with self._mutex:
            pending = self._pending_header
            header = pending[1] if pending is not None and pending[0] == start else None
            if header is None and pending is not None and pending[0] == first:
                raise StoreError(f"the first record of segment {first} has seq {start}",
                                 path=self.location("segment", first))
            snap, self._pending_snapshot = self._pending_snapshot, None
            try:
                self.records.append(start, lines, header=header, snapshot=snap)
            except BaseException:
                self._index.pop(first, None)  # the outcome is unknown: learn it again
                raise
            if header is not None:
                self._pending_header = None
            ix = self._index.get(first)
            if ix is not None and ix.next_seq == start:
                pos = ix.known_end
                for line in lines:
                    pos += len(line)
                    ix.ends.append(pos)

    def _sync(self) -> None:
        with self._mutex:
            self._flush_snapshot()
            self.records.sync()

    def truncate_segment(self, first_seq: int, size: int) -> None:
        """Cut a segment to ``size`` bytes: delete the records from the first one that ends
        after ``size`` (a record store holds no part of a record)."""
        with self._mutex:
            header, nxt = self._bounds(first_seq)
            ix = self._indexed(first_seq, header, nxt is None)
            if size >= self._learn(ix, nxt):
                return
            k = 0 if size <= len(header) else bisect.bisect_right(ix.ends, size)
            self.records.delete_from(first_seq + k)
            del ix.ends[k:]
            if k == 0:  # only the header is left: it waits for the next record
                self._pending_header = (first_seq, header)

    def delete_segment(self, first_seq: int) -> None:
        """Delete a segment: the oldest (a prefix) or the newest (a suffix)."""
        with self._mutex:
            pending = self._pending_header
            if pending is not None and pending[0] == first_seq:
                self._pending_header = None
                self._index.pop(first_seq, None)
                return
            heads = self.records.headers()
            seqs = [s for s, _ in heads]
            if first_seq not in seqs:
                return
            i = seqs.index(first_seq)
            if i == len(seqs) - 1:
                self.records.delete_from(first_seq)
            elif i == 0:
                self.records.delete_below(seqs[1])
            else:
                raise StoreError(f"segment {first_seq} is neither the oldest nor the newest: a "
                                 "record store deletes a prefix or a suffix of a journal only",
                                 path=self.location("segment", first_seq))
            self._index.pop(first_seq, None)

    def seal_segment(self, first_seq: int, data: bytes) -> None:
        """Nothing to do: every segment but the newest is immutable already."""

    def list_quarantine(self) -> list[str]:
        names = getattr(self.records, "list_quarantine", None)
        if names is None:
            return []
        return [f"{self.location('dir')}/quarantine/{n}" for n in names()]

    def quarantine(self, first_seq: int, offset: int, data: bytes) -> str:
        """Keep cut bytes where the store can (its optional ``quarantine``); the name is
        returned either way, as the ``cut`` record names it."""
        keep = getattr(self.records, "quarantine", None)
        count = len(self.list_quarantine())
        name = f"{seq_name(first_seq)}.jsonl.{offset}.{count}"
        if keep is not None:
            keep(name, data)
        return f"{self.location('dir')}/quarantine/{name}"

    # --- snapshots ---------------------------------------------------------------------
    def _flush_snapshot(self) -> None:
        snap, self._pending_snapshot = self._pending_snapshot, None
        if snap is not None:
            self.records.put_snapshot(snap)

    def list_snapshots(self) -> list[int]:
        seqs = [s for s, _ in self.records.list_snapshots()]
        pending = self._pending_snapshot
        if pending is not None and pending.seq not in seqs:
            bisect.insort(seqs, pending.seq)
        return seqs

    def write_snapshot(self, seq: int, data: bytes, compressed: bool) -> None:
        """Held until the next record (the snapshot's mark) and stored with it, in one
        atomic append; stored on its own at the next sync or close if none comes."""
        with self._mutex:
            self._flush_snapshot()
            self._pending_snapshot = SnapshotData(seq, bytes(data), compressed)

    def read_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        pending = self._pending_snapshot
        if pending is not None and pending.seq == seq and len(pending.data) <= limit:
            return pending.data, pending.compressed
        return self.records.get_snapshot(seq, limit)

    def snapshot_bytes(self, seq: int) -> int:
        pending = self._pending_snapshot
        if pending is not None and pending.seq == seq:
            return len(pending.data)
        for s, size in self.records.list_snapshots():
            if s == seq:
                return size
        raise FileNotFoundError(self.location("snapshot", seq))

    def delete_snapshot(self, seq: int) -> None:
        with self._mutex:
            pending = self._pending_snapshot
            if pending is not None and pending.seq == seq:
                self._pending_snapshot = None
            self.records.delete_snapshot(seq)

    # --- housekeeping ------------------------------------------------------------------
    def remove_temps(self) -> list[str]:
        """Nothing to do: an append that did not finish left nothing behind."""
        return []

    def disk_usage(self) -> int:
        usage = getattr(self.records, "usage", None)
        if usage is not None:
            return int(usage())
        total = sum(len(h) for _, h in self.records.headers())
        total += sum(len(line) for _, line in self._all_records())
        return total + sum(size for _, size in self.records.list_snapshots())

    def _all_records(self) -> Iterator[tuple[int, bytes]]:
        span = self.records.span()
        return iter(()) if span is None else self.records.read(span[0])

    def sync_dirs(self) -> None:
        """Store a snapshot still held (an import writes snapshots with no mark after)."""
        with self._mutex:
            self._flush_snapshot()

    def close(self) -> None:
        try:
            with self._mutex:
                self._flush_snapshot()
        finally:
            self.unlock()
            self.records.close()


class WakingSegmentView(SegmentView):
    """The view of a record store that offers wake-ups (the optional ``wait_for_change``
    of :class:`~agentjournal.backends.base.ChangeWaiter`)."""

    def wait_for_change(self, timeout: float) -> bool:
        return bool(self.records.wait_for_change(timeout))  # type: ignore[attr-defined]


def segment_view(store: RecordStore) -> SegmentView:
    """The engine's view of ``store``, with wake-ups when the store has them."""
    if callable(getattr(store, "wait_for_change", None)):
        return WakingSegmentView(store)
    return SegmentView(store)


class SegmentViews:
    """Mixin for a :class:`~agentjournal.backends.base.RecordBackend`: the engine's
    ``agent()`` is the segment view of ``records()``."""

    def records(self, agent_id: str, *, create: bool) -> RecordStore:
        raise NotImplementedError

    def agent(self, agent_id: str, *, create: bool) -> SegmentView:
        return segment_view(self.records(agent_id, create=create))

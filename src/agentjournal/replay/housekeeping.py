"""The journal as retention sees it: :class:`~agentjournal.retention.RetentionTarget` over a core.

The segment listing is taken once per core and then kept up to date from the writer's rolls
and retention's own deletions, so a snapshot with retention lists no directory and reads no
old segment, whatever the length of the history.
"""

from __future__ import annotations

import bisect

from ..errors import CorruptRecordError
from ..events import Fork, SnapshotMark
from ..retention import seal
from .core import Core


class RetentionView:
    """Retention's interface to one core (kept on the core, so its caches last)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.agent_id = core.agent_id
        self._segs: list[tuple[int, bool]] | None = None
        self._firsts: list[int] = []
        """First seqs of ``_segs`` (for bisection)."""
        self._sealed_prefix = 0
        """``_segs[:_sealed_prefix]`` are all sealed (compression resumes after them)."""
        self._usable: set[int] = set()
        self._snaps: list[int] | None = None
        """The snapshot listing, taken once and kept current from this core's own writes and
        deletions (only the lock holder writes or deletes snapshots)."""
        self._fork_base: bool | None = None
        """Snapshots known to be usable (written by this process, or checked once)."""
        if core.writer is not None:
            core.writer.on_roll = self._rolled

    def _rolled(self, first: int) -> None:
        if self._segs is not None and (not self._segs or self._segs[-1][0] < first):
            self._segs.append((first, False))
            self._firsts.append(first)

    def wrote_snapshot(self, seq: int) -> None:
        self._usable.add(seq)
        if self._snaps is not None and seq not in self._snaps:
            bisect.insort(self._snaps, seq)

    def listing_unknown(self) -> None:
        """A snapshot write failed part-way: its file may or may not be there; list again."""
        self._snaps = None

    def recheck(self) -> None:
        """Forget what is known (an explicit compaction checks every file and lists again)."""
        self._usable.clear()
        self._snaps = None
        self._segs = None
        self._firsts = []
        self._sealed_prefix = 0

    def snapshots(self) -> list[int]:
        if self._snaps is None or self.core.writer is None:
            self._snaps = self.core.store.list_snapshots()
        snaps = list(self._snaps)
        if snaps and snaps[0] == 1 and self._state_only_in_snapshot_1():
            return snaps[1:]  # replay of record 1 needs it: retention never sees it
        return snaps

    def _state_only_in_snapshot_1(self) -> bool:
        """A fork whose state did not fit a record keeps it in snapshot 1 only; while
        record 1 is in the journal, that snapshot is history, not a cache."""
        segs = self.segments()
        if not segs or segs[0][0] != 1:
            return False
        if self._fork_base is None:
            try:
                rec = next(iter(self.core.reader.records(1, 1)), None)
            except (CorruptRecordError, FileNotFoundError):
                return True  # unknown: keep it
            self._fork_base = isinstance(rec, Fork) and rec.in_snapshot
        return self._fork_base

    def snapshot_usable(self, seq: int) -> bool:
        if seq in self._usable:
            return True
        core = self.core
        chain_at: str | None
        try:
            if core.store.segment_exists(seq + 1):
                chain_at = core.index.header(seq + 1).prev
            else:
                rec = next(iter(core.reader.records(seq, seq)), None)
                chain_at = rec.h if rec is not None else None
        except (CorruptRecordError, FileNotFoundError):
            return False
        ok = core.mat.snapshot_usable(seq, chain_at)
        if ok and core.key is not None:
            # Keyed: a snapshot is bound to the keyed record written right after it; one
            # planted without the key has none and never counts (nor pushes real ones out).
            ok = self._has_mark(seq)
        if ok:
            self._usable.add(seq)
        return ok

    def _has_mark(self, seq: int) -> bool:
        try:
            rec = next(iter(self.core.reader.records(seq + 1, seq + 1)), None)
        except CorruptRecordError:
            return False
        return isinstance(rec, SnapshotMark) and rec.at == seq

    def segments(self) -> list[tuple[int, bool]]:
        if self._segs is None:
            self._segs = self.core.store.list_segments()
            self._firsts = [f for f, _ in self._segs]
            self._sealed_prefix = 0
        return self._segs

    def first_segment(self) -> int | None:
        segs = self.segments()
        return segs[0][0] if segs else None

    def _old_count(self, limit: int) -> int:
        """How many leading segments hold only records before ``limit``: those whose
        successor starts at or before it (never the one a live writer appends to)."""
        segs = self.segments()
        n = max(bisect.bisect_right(self._firsts, limit) - 1, 0)
        w = self.core.writer
        if w is not None and n and segs[n - 1][0] >= w.seg_first:
            n = bisect.bisect_left(self._firsts, w.seg_first)
        return n

    def old_segments(self, limit: int) -> tuple[list[tuple[int, bool]], int | None]:
        n = self._old_count(limit)
        segs = self.segments()
        return segs[:n], (segs[n][0] if n < len(segs) else None)

    def unsealed_old_segments(self, limit: int) -> list[int]:
        n = self._old_count(limit)
        segs = self.segments()
        k = self._sealed_prefix
        while k < n and segs[k][1]:
            k += 1
        self._sealed_prefix = k
        return [f for f, sealed in segs[k:n] if not sealed]

    def segment_prev(self, first: int) -> str:
        return self.core.index.header(first).prev

    def segment_bytes(self, first: int) -> int:
        return self.core.store.segment_bytes(first)

    def snapshot_bytes(self, seq: int) -> int:
        return self.core.store.snapshot_bytes(seq)

    def delete_snapshot(self, seq: int) -> None:
        self.core.store.delete_snapshot(seq)
        self.core.mat.snapshot_deleted(seq)
        self._usable.discard(seq)
        if self._snaps is not None and seq in self._snaps:
            self._snaps.remove(seq)

    def delete_segment(self, first: int) -> None:
        self.core.store.delete_segment(first)
        self.core.index.forget(first)
        if self._segs is not None:
            i = bisect.bisect_left(self._firsts, first)
            if i < len(self._firsts) and self._firsts[i] == first:
                del self._segs[i], self._firsts[i]
                self._sealed_prefix = min(self._sealed_prefix, i)
        self.core.reader.forget(first)

    def seal_segment(self, first: int) -> None:
        store = self.core.store
        store.seal_segment(first, seal(store.read_segment(first)))
        if self._segs is not None:
            i = bisect.bisect_left(self._firsts, first)
            if i < len(self._firsts) and self._firsts[i] == first:
                self._segs[i] = (first, True)

    def append_anchor(self, first_seq: int, first_prev: str, removed: list[str]) -> int:
        w = self.core.check_writable()
        anchor = w.append_anchor(first_seq=first_seq, first_prev=first_prev, removed=removed)
        w.sync()
        return anchor.seq

    def location(self, first: int) -> str:
        return self.core.store.name("segment", first)

    def disk_usage(self) -> int:
        return self.core.store.disk_usage()

"""The journal as retention sees it: :class:`~agentjournal.retention.RetentionTarget` over a core.

The segment listing is taken once per core and then kept up to date from the writer's rolls
and retention's own deletions, so a snapshot with retention lists no directory and reads no
old segment, whatever the length of the history.
"""

from __future__ import annotations

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
        self._usable: set[int] = set()
        self._fork_base: bool | None = None
        """Snapshots known to be usable (written by this process, or checked once)."""
        if core.writer is not None:
            core.writer.on_roll = self._rolled

    def _rolled(self, first: int) -> None:
        if self._segs is not None and (not self._segs or self._segs[-1][0] < first):
            self._segs.append((first, False))

    def wrote_snapshot(self, seq: int) -> None:
        self._usable.add(seq)

    def recheck(self) -> None:
        """Forget what is known to be usable (an explicit compaction checks every file)."""
        self._usable.clear()
        self._segs = None

    def snapshots(self) -> list[int]:
        snaps = self.core.store.list_snapshots()
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
        return self._segs

    def current_segment(self) -> int:
        w = self.core.writer
        return w.seg_first if w is not None else 0

    def segment_prev(self, first: int) -> str:
        return self.core.index.header(first).prev

    def segment_bytes(self, first: int) -> int:
        return self.core.store.segment_bytes(first)

    def snapshot_bytes(self, seq: int) -> int:
        return self.core.store.snapshot_bytes(seq)

    def delete_snapshot(self, seq: int) -> None:
        self.core.store.delete_snapshot(seq)
        self._usable.discard(seq)

    def delete_segment(self, first: int) -> None:
        self.core.store.delete_segment(first)
        self.core.index.forget(first)
        if self._segs is not None:
            self._segs = [s for s in self._segs if s[0] != first]
        self.core.reader.forget(first)

    def seal_segment(self, first: int) -> None:
        store = self.core.store
        store.seal_segment(first, seal(store.read_segment(first)))
        if self._segs is not None:
            self._segs = [(f, True if f == first else s) for f, s in self._segs]

    def append_anchor(self, first_seq: int, first_prev: str, removed: list[str]) -> int:
        w = self.core.check_writable()
        anchor = w.append_anchor(first_seq=first_seq, first_prev=first_prev, removed=removed)
        w.sync()
        return anchor.seq

    def location(self, first: int) -> str:
        return self.core.store.name("segment", first)

    def disk_usage(self) -> int:
        return self.core.store.disk_usage()

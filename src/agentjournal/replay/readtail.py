"""Where a read-only journal ends, without re-reading its history on every call.

A read-only :class:`~agentjournal.Journal` (the CLI, a status endpoint, a second process
inspecting a live agent) holds no lock: a writer elsewhere may append, roll a segment,
snapshot or prune between two calls. :class:`ReadTail` keeps the reader's segment listing and
the last record only while they are provably current, so ``last_seq`` and friends cost two
small reads (the writer's hint and the tail segment's size), not a listing of the whole
history or a re-read of the tail segment.
"""

from __future__ import annotations

from ..events import AnyRecord
from .core import Core

__all__ = ["ReadTail"]


class ReadTail:
    """The cached end of one read-only journal (one per :class:`~agentjournal.Journal`)."""

    def __init__(self) -> None:
        self._last: tuple[int, int, AnyRecord] | None = None  # (segment, its size, record)

    @staticmethod
    def fresh_listing(core: Core) -> None:
        """Keep the segment listing only while the writer's hint names the same newest
        segment (a roll rewrites it) and the oldest listed segment is still there (pruning
        removes from the front)."""
        if core.writer is not None:
            return
        reader = core.reader
        segs = reader.cached_segments()
        if segs:
            hint = core.store.read_hint()
            if hint is None or hint.seg != segs[-1] or not core.store.segment_exists(segs[0]):
                reader.invalidate()
        else:
            reader.invalidate()
        reader.scans = {}  # reused within this call, e.g. the tail resume reads twice

    def last_record(self, core: Core) -> AnyRecord | None:
        """The last record; the tail segment is re-read only when its size changed."""
        self.fresh_listing(core)
        store, reader = core.store, core.reader
        hint = store.read_hint()
        if hint is not None and hint.seg > 0:
            try:
                size = store.segment_size(hint.seg)
            except OSError:  # FileNotFoundError included: pruned or rolled meanwhile
                size = -1
            cached = self._last
            if (cached is not None and cached[0] == hint.seg and cached[1] == size >= 0
                    and not store.segment_exists(cached[2].seq + 1)):
                reader.tail = hint.seg
                return cached[2]
            try:
                sc = reader.read(hint.seg)
            except FileNotFoundError:
                sc = None
            if sc is not None and sc.error is not None and not sc.tail and not reader.valid_prefix:
                raise sc.error  # a wrong or missing key, a foreign agent's files, damage
            if (sc is not None and sc.records and sc.error is None
                    and not store.segment_exists(sc.last_seq + 1)):
                reader.tail = hint.seg
                self._last = (hint.seg, size, sc.records[-1])
                return sc.records[-1]
        reader.tail = None
        for k, first in enumerate(reversed(reader.segments(refresh=True))):
            sc = reader.read(first)
            # Only the end of the last segment can be torn; anything else unreadable (a wrong
            # key, another agent's files, damage) is an error, never an empty journal.
            if sc.error is not None and (k > 0 or not sc.tail) and not reader.valid_prefix:
                raise sc.error
            if sc.records:
                return sc.records[-1]
        return None

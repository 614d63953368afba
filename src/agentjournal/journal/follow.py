"""Tailing a journal that another process is writing (``agentjournal log --follow``).

:class:`Tail` reads each segment from the byte offset where it stopped, with the same
:func:`~agentjournal.journal.reader.scan` that reads a journal, so a record is returned only
once its whole line is on disk and its hash and chain check out: a line still being written
(no newline yet) or a torn tail left by a crash is simply not returned yet. When the writer
rolls to a new segment, the old one is read to its end before the new one is started, so
records come out gap-free and in seq order.

Between two polls a follower waits with :meth:`Tail.wait`: on a store that offers wake-ups
(the optional ``wait_for_change(timeout)`` of :mod:`agentjournal.backends.base`, e.g.
PostgreSQL's LISTEN/NOTIFY) it returns as soon as a writer commits, else it sleeps the
timeout, as polling always did. Either way the caller polls next: a wake-up is only a hint,
so a lost one costs one timeout, never a record.
"""

from __future__ import annotations

import time

from ..backends.base import AgentStore
from ..errors import CorruptRecordError
from ..events import AnyRecord, Header
from .reader import scan


class Tail:
    """Incremental reader of one agent's records, from ``from_seq`` on.

    Args:
        store: the agent's store (a read-only journal's ``store`` will do; no lock is taken).
        key: the chain key, for a keyed journal.
        from_seq: the first seq wanted. Records before the oldest segment that is still on
            disk (pruned) are skipped.

    Example::

        tail = Tail(journal.store, journal.key)
        while True:
            for rec in tail.poll():
                print(rec.seq, rec.step)
            tail.wait(0.2)
    """

    def __init__(self, store: AgentStore, key: bytes | None = None, *, from_seq: int = 1
                 ) -> None:
        self.store = store
        self.key = key
        self.next_seq = max(from_seq, 1)
        self._seg: int | None = None
        self._offset = 0
        self._header: Header | None = None
        self._prev: str | None = None
        self._scan_seq = 0
        self._stuck = False

    @property
    def wakes(self) -> bool:
        """Whether the store offers wake-ups (:meth:`wait` may return before its timeout)."""
        return callable(getattr(self.store, "wait_for_change", None))

    def wait(self, timeout: float) -> bool:
        """Wait until the store says the agent changed, or ``timeout`` seconds; whether it
        did (a hint: poll next either way). A store without wake-ups sleeps the timeout."""
        waiter = getattr(self.store, "wait_for_change", None)
        if waiter is None:
            time.sleep(timeout)
            return False
        return bool(waiter(timeout))

    @property
    def position(self) -> tuple[int | None, int]:
        """``(first seq of the segment being read, byte offset in it)``."""
        return self._seg, self._offset

    def _start(self) -> bool:
        segs = [s for s, _ in self.store.list_segments()]
        if not segs:
            return False
        before = [s for s in segs if s <= self.next_seq]
        self._seg = before[-1] if before else segs[0]
        self._offset, self._header, self._prev = 0, None, None
        self._scan_seq = self._seg
        return True

    def _read(self, out: list[AnyRecord]) -> bool:
        """Read the current segment from where we stopped; whether anything was consumed."""
        assert self._seg is not None
        where = self.store.location("segment", self._seg)
        data = self.store.read_segment(self._seg, self._offset)
        sc = scan(data, first_seq=self._seg, agent_id=self.store.agent_id, key=self.key,
                  where=where, offset=self._offset, next_seq=self._scan_seq, prev=self._prev,
                  header=self._header)
        self._stuck = bool(sc.partial) or sc.error is not None
        if sc.error is not None and not sc.tail:
            raise sc.error
        consumed = sc.valid_end > self._offset
        if sc.header is not None and self._header is None:
            self._header = sc.header
            self._prev = sc.header.prev
        for rec in sc.records:
            if rec.seq >= self.next_seq:
                out.append(rec)
                self.next_seq = rec.seq + 1
        if sc.records:
            self._scan_seq = sc.last_seq + 1
            self._prev = sc.last_hash
        self._offset = sc.valid_end
        return consumed

    def _next_segment(self) -> int | None:
        assert self._seg is not None
        later = [s for s, _ in self.store.list_segments() if s > self._seg]
        return later[0] if later else None

    def poll(self) -> list[AnyRecord]:
        """Every complete, verified record written since the last call (maybe none).

        Raises:
            CorruptRecordError: damage followed by valid records (not a write in progress),
                or a missing segment.
        """
        out: list[AnyRecord] = []
        if self._seg is None and not self._start():
            return out
        restarted = False
        while True:
            try:
                if self._read(out):
                    continue
            except FileNotFoundError:
                # The segment went away under us: a header-only segment removed by a
                # writer's recovery. Find where next_seq lives now (once; else next poll).
                if restarted or not self._start():
                    return out
                restarted = True
                continue
            if self._stuck:
                return out  # a line still being written, or a torn tail awaiting recovery
            nxt = self._next_segment()
            if nxt is None:
                return out
            # The writer finished this segment before it created the next one: read it to
            # its end once more, then move on.
            if self._read(out):
                continue
            if self._header is None or nxt != self._scan_seq:
                raise CorruptRecordError(
                    f"segment starting at seq {self._scan_seq} is missing",
                    path=self.store.location("segment", nxt), seq=self._scan_seq,
                    hint="run 'agentjournal verify' on this agent")
            self._seg, self._offset, self._header = nxt, 0, None

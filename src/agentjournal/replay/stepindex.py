"""The step index: which record holds an agent step, found through the segment headers.

Every segment header names the agent step of its first record, and segment names sort in seq
order, so finding a step is a binary search over headers plus a scan of one segment: the cost
is bounded by the segment size, not by the history.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ..backends.base import AgentStore
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    HeaderInProgress,
    LimitExceededError,
    StepNotFoundError,
    StepPrunedError,
)
from ..events import Header, header_decoder
from ..journal.reader import SegmentReader


class StepIndex:
    """Locates agent steps of one journal.

    Args:
        store: the agent's store.
        reader: the agent's record reader (its segment listing is shared).
        current_segment: the first seq of the segment a live writer appends to (0: none),
            so that a listing made before the writer rolled is refreshed.
        snapshot_step: the agent step of the snapshot stored at a seq (raises if unusable).
    """

    def __init__(self, store: AgentStore, reader: SegmentReader, *,
                 current_segment: Callable[[], int],
                 snapshot_step: Callable[[int], int]) -> None:
        self.store = store
        self.reader = reader
        self._current = current_segment
        self._snapshot_step = snapshot_step
        self._headers: dict[int, Header] = {}

    def header(self, first: int) -> Header:
        """The header of the segment starting at ``first`` (read once, then cached)."""
        h = self._headers.get(first)
        if h is None:
            data = self.store.read_segment(first, 0, 4096)
            nl = data.find(b"\n")
            if nl < 0:
                data = self.store.read_segment(first)
                nl = data.find(b"\n")
                if nl < 0 and len(data) < 4096:
                    raise HeaderInProgress("segment header is not written yet",
                                           path=self.store.location("segment", first),
                                           offset=0)
            try:
                h = header_decoder.decode(data[:nl] if nl >= 0 else data)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # msgspec raises all
                raise CorruptRecordError("segment header is damaged",
                                         path=self.store.location("segment", first),
                                         offset=0) from None
            self._headers[first] = h
        return h

    def forget(self, first: int) -> None:
        """Drop a cached header (the segment was deleted)."""
        self._headers.pop(first, None)

    def segments(self) -> list[int]:
        """First seqs of the segments (listed once; a live writer's rolls are noticed)."""
        segs = self.reader.segments()
        cur = self._current()
        if cur and (not segs or segs[-1] != cur):
            segs = self.reader.segments(refresh=True)
        return segs

    def segment_for_step(self, step: int) -> int:
        """Index of the last segment whose first record's step is <= ``step``."""
        segs = self.segments()
        lo, hi = 0, len(segs)
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                first_step = self.header(segs[mid]).first_step
            except HeaderInProgress:
                if mid != len(segs) - 1:
                    raise  # only the newest segment can be mid-roll: elsewhere it is damage
                first_step = step + 1  # not there yet: no record of it can be asked for
            if first_step <= step:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def locate(self, step: int, agent_id: str) -> tuple[int, int]:
        """``(seq of the last record of step <= step, first seq of the segment searched)``.

        Raises:
            StepNotFoundError: ``step`` is before the first record or after the last.
            StepPrunedError: ``step`` was removed by pruning compaction.
        """
        if step < 0:
            raise StepNotFoundError(f"step {step} is negative")
        segs = self.segments()
        if not segs:
            raise StepNotFoundError(f"agent {agent_id!r} has no steps yet", seq=None)
        i = self.segment_for_step(step)
        if i < 0:
            if segs[0] > 1:
                # Records before the first segment were pruned; the snapshot right before it
                # (which retention keeps) still holds the state at its step.
                base = segs[0] - 1
                try:
                    if self._snapshot_step(base) <= step:
                        return base, segs[0]
                except (FileNotFoundError, CorruptSnapshotError, LimitExceededError):
                    pass
                raise StepPrunedError(f"step {step} was pruned; history starts at step "
                                      f"{self.header(segs[0]).first_step}")
            raise StepNotFoundError(f"step {step} is before the first recorded step "
                                    f"{self.header(segs[0]).first_step}")
        found = None
        last_step = 0
        ended = True
        for rec in self.reader.records(segs[i]):
            if rec.step > step:
                ended = False
                break
            found, last_step = rec.seq, rec.step
        if found is None:
            raise StepNotFoundError(f"step {step} not found")
        if ended and step > last_step:
            raise StepNotFoundError(
                f"step {step} is after the last recorded step {last_step}",
                hint=f"steps go up to {last_step}")
        return found, segs[i]

    def start_seq(self, start: int | None) -> int:
        """The seq to read from to find every record of agent step ``start`` and later."""
        segs = self.segments()
        if not segs:
            return 1
        if start is None:
            return segs[0]
        return segs[max(self.segment_for_step(start - 1), 0)]

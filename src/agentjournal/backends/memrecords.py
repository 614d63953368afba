"""An in-memory record store: the reference implementation of the record-level core.

:class:`MemoryRecordBackend` implements :class:`~agentjournal.backends.base.RecordBackend`
with dictionaries, the way a transactional store implements it with rows: every append is
atomic and conditional on the next seq, a snapshot rides in the append of its mark, and the
lease has an epoch that a takeover bumps (:meth:`MemoryRecordBackend.take_over`), so the
fence can be tested without a server. The engine uses it through
:class:`~agentjournal.backends.segmentview.SegmentView`. Nothing survives the process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

from .._ids import validate_agent_id
from ..errors import (
    JournalFencedError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
)
from .base import SnapshotData
from .segmentview import SegmentViews

__all__ = ["MemoryRecordBackend", "MemoryRecordStore"]


class _Rows:
    """One agent's rows, shared by every store object of the agent in this backend."""

    def __init__(self) -> None:
        self.first = 0
        """Seq of ``lines[0]`` (0 while empty)."""
        self.lines: list[bytes] = []
        self.headers: dict[int, bytes] = {}
        self.snapshots: dict[int, tuple[bytes, bool]] = {}
        self.quarantine: list[tuple[str, bytes]] = []
        self.epoch = 0
        self.holder: int | None = None
        """Epoch of the lease being held, or None."""
        self.mutex = threading.Lock()

    @property
    def next_seq(self) -> int:
        return self.first + len(self.lines) if self.lines else 0


class MemoryRecordStore:
    """One agent's records in memory. Made by :meth:`MemoryRecordBackend.records`."""

    def __init__(self, rows: _Rows, agent_id: str) -> None:
        self.agent_id = agent_id
        self._r = rows
        self._epoch: int | None = None

    def describe(self) -> str:
        return f"memory-records://{self.agent_id}"

    # --- lease ------------------------------------------------------------------------------
    def acquire(self) -> None:
        r = self._r
        with r.mutex:
            if self._epoch is not None and r.holder == self._epoch:
                return
            if r.holder is not None:
                raise JournalLockedError(
                    f"journal of agent {self.agent_id!r} is locked by another writer "
                    f"(pid {os.getpid()})", pid=os.getpid(), path=self.describe(),
                    hint="only one writer per agent; close the other Journal first")
            r.epoch += 1
            r.holder = self._epoch = r.epoch

    def release(self) -> None:
        r = self._r
        with r.mutex:
            if self._epoch is not None and r.holder == self._epoch:
                r.holder = None
            self._epoch = None

    def _check_lease(self) -> None:
        """Under ``mutex``: refuse a change unless this store holds the current lease."""
        if self._epoch is None or self._r.holder != self._epoch:
            raise JournalFencedError(
                f"the writer of agent {self.agent_id!r} was fenced: it does not hold the "
                "lease (never taken, released, or taken over); nothing was written",
                path=self.describe(), hint="stop this writer and reopen the journal")

    # --- records ----------------------------------------------------------------------------
    def append(self, start: int, lines: Sequence[bytes], *, header: bytes | None = None,
               snapshot: SnapshotData | None = None) -> None:
        r = self._r
        with r.mutex:
            self._check_lease()
            if r.lines and start != r.next_seq:
                raise JournalFencedError(
                    f"append at seq {start} to agent {self.agent_id!r}, whose next seq is "
                    f"{r.next_seq}: another writer appended; nothing was written",
                    path=self.describe(), hint="stop this writer and reopen the journal")
            if not lines:
                return
            if not r.lines:
                r.first = start
            r.lines.extend(bytes(x) for x in lines)
            if header is not None:
                r.headers[start] = bytes(header)
            if snapshot is not None:
                r.snapshots[snapshot.seq] = (bytes(snapshot.data), snapshot.compressed)

    def sync(self) -> None:
        """Nothing to do: memory is as durable as it gets."""

    def read(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        r = self._r
        with r.mutex:  # a consistent copy of the range, as one query would return it
            if not r.lines:
                return iter(())
            lo = max(start, r.first) - r.first
            hi = len(r.lines) if stop is None else max(min(stop - r.first, len(r.lines)), 0)
            rows = [(r.first + i, r.lines[i]) for i in range(lo, hi)]
        return iter(rows)

    def span(self) -> tuple[int, int] | None:
        r = self._r
        with r.mutex:
            return (r.first, r.next_seq - 1) if r.lines else None

    def headers(self) -> list[tuple[int, bytes]]:
        with self._r.mutex:
            return sorted(self._r.headers.items())

    def delete_below(self, seq: int) -> None:
        r = self._r
        with r.mutex:
            self._check_lease()
            if r.lines and seq > r.first:
                cut = min(seq - r.first, len(r.lines))
                del r.lines[:cut]
                r.first = r.first + cut if r.lines else 0
            for s in [s for s in r.headers if s < seq]:
                del r.headers[s]

    def delete_from(self, seq: int) -> None:
        r = self._r
        with r.mutex:
            self._check_lease()
            if r.lines and seq < r.next_seq:
                del r.lines[max(seq - r.first, 0):]
                if not r.lines:
                    r.first = 0
            for s in [s for s in r.headers if s >= seq]:
                del r.headers[s]

    # --- snapshots --------------------------------------------------------------------------
    def put_snapshot(self, snapshot: SnapshotData) -> None:
        with self._r.mutex:
            self._check_lease()
            self._r.snapshots[snapshot.seq] = (bytes(snapshot.data), snapshot.compressed)

    def get_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        with self._r.mutex:
            got = self._r.snapshots.get(seq)
        if got is None:
            raise FileNotFoundError(f"{self.describe()}/snapshots/{seq}")
        if len(got[0]) > limit:
            raise LimitExceededError(f"snapshot {seq} is {len(got[0])} bytes, over {limit}",
                                     path=f"{self.describe()}/snapshots/{seq}")
        return got

    def list_snapshots(self) -> list[tuple[int, int]]:
        with self._r.mutex:
            return sorted((s, len(d)) for s, (d, _) in self._r.snapshots.items())

    def delete_snapshot(self, seq: int) -> None:
        with self._r.mutex:
            self._check_lease()
            self._r.snapshots.pop(seq, None)

    # --- optional capabilities --------------------------------------------------------------
    def quarantine(self, name: str, data: bytes) -> None:
        with self._r.mutex:
            self._check_lease()
            self._r.quarantine.append((name, bytes(data)))

    def list_quarantine(self) -> list[str]:
        with self._r.mutex:
            return [n for n, _ in self._r.quarantine]

    def usage(self) -> int:
        r = self._r
        with r.mutex:
            return (sum(map(len, r.lines)) + sum(map(len, r.headers.values()))
                    + sum(len(d) for d, _ in r.snapshots.values()))

    def close(self) -> None:
        self.release()


class MemoryRecordBackend(SegmentViews):
    """Record stores held in this process's memory (the engine sees their segment view)."""

    def __init__(self) -> None:
        self._agents: dict[str, _Rows] = {}
        self._mutex = threading.Lock()

    def records(self, agent_id: str, *, create: bool) -> MemoryRecordStore:
        validate_agent_id(agent_id)
        with self._mutex:
            rows = self._agents.get(agent_id)
            if rows is None:
                if not create:
                    raise JournalNotFoundError(f"no journal for agent {agent_id!r} in memory",
                                               hint="record a step first")
                rows = self._agents[agent_id] = _Rows()
        return MemoryRecordStore(rows, agent_id)

    def exists(self, agent_id: str) -> bool:
        validate_agent_id(agent_id)
        return agent_id in self._agents

    def list_agents(self) -> list[str]:
        return sorted(self._agents)

    def describe(self) -> str:
        return "memory-records://"

    def lock_holders(self) -> dict[str, int]:
        return {a: os.getpid() for a, r in self._agents.items() if r.holder is not None}

    def identity(self) -> tuple[str, int]:
        return ("memory-records", id(self))

    def discard_empty(self, agent_id: str) -> bool:
        """Forget ``agent_id`` if it holds nothing and no writer; whether it is gone."""
        validate_agent_id(agent_id)
        with self._mutex:
            r = self._agents.get(agent_id)
            if r is None:
                return True
            if r.lines or r.snapshots or r.quarantine or r.holder is not None:
                return False
            del self._agents[agent_id]
            return True

    def delete_agent(self, agent_id: str) -> bool:
        """Forget an agent's journal; refused while a writer holds it."""
        validate_agent_id(agent_id)
        with self._mutex:
            r = self._agents.get(agent_id)
            if r is None:
                return False
            if r.holder is not None:
                raise JournalLockedError(f"journal of agent {agent_id!r} is open for writing",
                                         hint="close the Journal that writes it first")
            del self._agents[agent_id]
            return True

    def take_over(self, agent_id: str) -> MemoryRecordStore:
        """Act as another host taking the lease from a holder that died or stalled: returns
        a store holding a new lease, so the old holder's next change is fenced."""
        r = self._agents[agent_id]
        store = MemoryRecordStore(r, agent_id)
        with r.mutex:
            r.epoch += 1
            r.holder = store._epoch = r.epoch
        return store


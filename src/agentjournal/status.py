"""What a journal looks like from outside: its health, its size and shape, its latest state.

The tools (the ``agentjournal`` command, a web viewer) show these; this module computes them
as plain values, and never prints. It sits with the other tools above :mod:`agentjournal.replay`
and opens nothing itself: callers pass an open (usually read-only) :class:`Journal`.

Health classes, from the quickest check (the newest segment) or from a full ``verify()``:

- ``ok``: the newest record reads and chains; ``empty``: no record yet.
- ``torn_tail``: the newest segment ends in a record cut short (a crash; the next writer cuts
  it off). A cut line while a writer holds the lock is a write in progress, not a torn tail.
- ``key_needed``: the journal is keyed and no key was given; ``wrong_key``: a key was given
  that the journal was not written with (or the journal is not keyed at all).
- ``wrong_agent``: the segments name another agent (a directory copied under a new id).
- ``corrupt``: any other damage; ``unreadable``: the files could not be read (an OS error).
"""

from __future__ import annotations

import collections
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from .errors import CorruptRecordError, JournalError, TamperedError
from .events import AnyRecord, Cut, Fork, SnapshotMark, Step
from .replay.journal import Journal
from .replay.results import Resumed

__all__ = [
    "AgentSummary",
    "Health",
    "JournalStats",
    "Kind",
    "ResumeCost",
    "agent_summary",
    "classify",
    "failed_summary",
    "journal_stats",
    "latest",
    "record_kind",
]

Health = Literal["ok", "empty", "torn_tail", "key_needed", "wrong_key", "wrong_agent",
                 "corrupt", "unreadable"]
Kind = Literal["step", "snapshot", "fork", "anchor", "cut"]


def record_kind(rec: AnyRecord) -> Kind:
    """The record's kind as written in the journal (``step``, ``snapshot`` ...)."""
    if isinstance(rec, Step):
        return "step"
    if isinstance(rec, SnapshotMark):
        return "snapshot"
    if isinstance(rec, Fork):
        return "fork"
    return "cut" if isinstance(rec, Cut) else "anchor"


def classify(e: BaseException, *, keyed: bool) -> Health:
    """The health class of an error met reading a journal (``keyed``: a key was given).

    The reader raises :class:`TamperedError` both for a key mismatch and for an altered
    record; a mismatch is told apart by its place (the segment header, byte 0, where the
    keyed flag and the first hash are checked) and its hint, which names the key.
    """
    if not isinstance(e, JournalError):
        return "unreadable"
    if isinstance(e, TamperedError) and (
            "key" in (e.hint or "") and "key" in e.message or e.offset == 0 and keyed):
        return "wrong_key" if keyed else "key_needed"
    if isinstance(e, CorruptRecordError) and e.message.startswith("header names agent"):
        return "wrong_agent"
    return "corrupt"


def _where(e: JournalError) -> str:
    loc = [str(e.path)] if e.path is not None else []
    if e.offset is not None:
        loc.append(f"byte {e.offset}")
    return e.message + (f" ({', '.join(loc)})" if loc else "") + (
        f" - {e.hint}" if e.hint else "")


def latest(j: Journal) -> Resumed:
    """The latest state, like ``j.resume()``, but never an empty state for a journal that has
    records it cannot read.

    A read-only ``resume()`` of a keyed journal without its key (or with a wrong one), or of a
    directory copied under another agent id, finds no readable record and returns ``{}`` at
    seq 0. Reading the records raises the typed error instead, as ``log`` and ``state_at`` do.

    Raises:
        CorruptRecordError: (or :class:`TamperedError`) the journal cannot be read.
    """
    r = j.resume()
    if r.seq == 0 and j.segment_seqs():
        first = next(iter(j.records()), None)  # raises the reader's typed error
        if first is not None:
            raise CorruptRecordError(
                f"journal of {j.agent_id!r} has records but its latest state could not be read",
                seq=first.seq, hint=f"run 'agentjournal verify {j.agent_id}'")
    return r


# --------------------------------------------------------------------------------- summary


@dataclass
class AgentSummary:
    """One agent at a glance (the row of ``agentjournal ls``)."""

    agent_id: str
    steps: int = 0
    """The last recorded agent step (0 when empty)."""
    records: int = 0
    """Seq of the last record."""
    last_ts: float | None = None
    status: str | None = None
    """The state's own ``status`` field, when it is a string."""
    writer_pid: int | None = None
    snapshots: int = 0
    segments: int = 0
    bytes: int = 0
    health: Health = "empty"
    problem: str | None = None
    """What is wrong, with where (None when healthy)."""
    quarantined: int = 0
    """Files of bytes that recovery cut off this journal and kept (``<agent>/quarantine/``)."""


def _newest_scan(j: Journal, first: int) -> tuple[list[AnyRecord], CorruptRecordError | None,
                                                   bool, int]:
    """``(records, error, error is a torn tail, bytes of a cut last line)`` of one segment.

    The one place that reads a segment below the Journal's public surface: the public
    ``records()`` passes silently over a torn tail, and a quick health check must see it.
    """
    sc = j.reader.read(first)
    return sc.records, sc.error, sc.tail, sc.partial


def agent_summary(j: Journal, *, full: bool = False, writer_pid: int | None = None
                  ) -> AgentSummary:
    """The summary of one open journal.

    Args:
        j: the agent's journal, usually opened read-only.
        full: run the complete ``verify()`` for the health instead of checking the newest
            segment.
        writer_pid: the pid holding the agent's writer lock, looked up by the caller once for
            the whole store (``backend.lock_holders()``): nothing machine-wide per agent.
    """
    keyed = j.key is not None
    out = AgentSummary(j.agent_id, writer_pid=writer_pid)
    try:
        segs = j.segment_seqs()
        out.segments, out.snapshots = len(segs), len(j.snapshot_seqs())
        out.quarantined = len(j.store.list_quarantine())
        out.bytes = j.disk_usage()
        for k, first in enumerate(reversed(segs)):
            records, error, torn, partial = _newest_scan(j, first)
            if k == 0 and error is not None:
                out.health = "torn_tail" if torn else classify(error, keyed=keyed)
                out.problem = _where(error)
            elif k == 0 and partial and writer_pid is None:
                out.health = "torn_tail"
                out.problem = (f"incomplete last line of {partial} bytes in the newest segment"
                               " - it is cut off when the journal is next opened for writing")
            if records:
                last = records[-1]
                out.steps, out.records, out.last_ts = last.step, last.seq, last.ts
                break
            if error is not None and not torn:
                break  # nothing readable before the damage: do not look further back
        if full:
            rep = j.verify()
            if rep.problems:
                p = rep.problems[0]
                out.health = "torn_tail" if p.kind == "torn_tail" else (
                    out.health if out.health not in ("ok", "empty", "torn_tail") else "corrupt")
                out.problem = f"{p.message} ({p.path}" + (
                    f", byte {p.offset})" if p.offset is not None else ")")
        if out.records:
            state = j.resume().state
            status = state.get("status") if isinstance(state, dict) else None
            out.status = status if isinstance(status, str) else None
            if out.health == "empty":
                out.health = "ok"
    except (JournalError, OSError) as e:
        out.health = classify(e, keyed=keyed)
        out.problem = _where(e) if isinstance(e, JournalError) else str(e)
    return out


def failed_summary(agent_id: str, e: JournalError | OSError, *, keyed: bool,
                   writer_pid: int | None = None) -> AgentSummary:
    """The summary of an agent whose journal could not even be opened."""
    return AgentSummary(agent_id, writer_pid=writer_pid, health=classify(e, keyed=keyed),
                        problem=_where(e) if isinstance(e, JournalError) else str(e))


# --------------------------------------------------------------------------------- stats


@dataclass
class ResumeCost:
    """What resuming the agent costs now."""

    snapshot_seq: int | None
    """The newest snapshot at or before the last record (None: replay from the start)."""
    snapshot_bytes: int
    replay_records: int
    """Records after that snapshot, replayed on resume."""
    measured_ms: float
    """How long one resume took just now."""


@dataclass
class JournalStats:
    """Size and shape of one journal (``agentjournal stats``)."""

    agent_id: str
    bytes: int
    segment_bytes: int
    snapshot_bytes: int
    segments: int
    sealed_segments: int
    snapshots: int
    records: int
    records_by_kind: dict[str, int]
    steps: int
    """Number of ``step`` records."""
    first_step: int
    last_step: int
    first_ts: float | None
    last_ts: float | None
    snapshot_interval: float | None
    """Mean agent steps between consecutive snapshot records (None with fewer than two)."""
    bytes_per_step: float | None
    state_bytes: int
    """Size of the latest state as compact JSON."""
    resume: ResumeCost = field(default_factory=lambda: ResumeCost(None, 0, 0, 0.0))


def _snapshot_size(j: Journal, seq: int) -> int:
    try:
        return j.store.snapshot_bytes(seq)
    except OSError:  # deleted by retention since it was listed
        return 0


def journal_stats(j: Journal) -> JournalStats:
    """Sizes, counts, snapshot interval and resume cost of one journal (reads every record).

    Raises:
        CorruptRecordError: the journal cannot be read (wrong key, damage, another agent's
            files), as :func:`latest` does.
    """
    sealed = sum(1 for _, is_sealed in j.store.list_segments() if is_sealed)
    segs = j.segment_seqs()
    snaps = j.snapshot_seqs()
    snap_bytes = sum(_snapshot_size(j, q) for q in snaps)
    disk = j.disk_usage()
    kinds: collections.Counter[str] = collections.Counter()
    mark_steps: list[int] = []
    first = last = None
    for rec in j.records():
        kinds[record_kind(rec)] += 1
        if isinstance(rec, SnapshotMark):
            mark_steps.append(rec.step)
        if first is None:
            first = rec
        last = rec
    t0 = time.perf_counter()
    r = latest(j)
    ms = (time.perf_counter() - t0) * 1000
    newest = max((q for q in snaps if q <= r.seq), default=None)
    base = newest if newest is not None else (first.seq - 1 if first is not None else 0)
    gaps = [b - a for a, b in itertools.pairwise(mark_steps)]
    steps = kinds.get("step", 0)
    return JournalStats(
        agent_id=j.agent_id, bytes=disk, segment_bytes=max(disk - snap_bytes, 0),
        snapshot_bytes=snap_bytes, segments=len(segs), sealed_segments=sealed,
        snapshots=len(snaps), records=sum(kinds.values()),
        records_by_kind=dict(sorted(kinds.items())), steps=steps,
        first_step=first.step if first else 0, last_step=last.step if last else 0,
        first_ts=first.ts if first else None, last_ts=last.ts if last else None,
        snapshot_interval=sum(gaps) / len(gaps) if gaps else None,
        bytes_per_step=(disk - snap_bytes) / steps if steps else None,
        state_bytes=len(msgspec.json.encode(r.state)),
        resume=ResumeCost(snapshot_seq=newest,
                          snapshot_bytes=_snapshot_size(j, newest) if newest else 0,
                          replay_records=r.seq - base, measured_ms=round(ms, 3)))

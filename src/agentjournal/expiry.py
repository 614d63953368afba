"""Age-based expiry for a fleet: prune every agent's old history, drop agents idle for long.

:func:`expire` works on any backend through the public :class:`~agentjournal.Journal` API and
retention (:func:`agentjournal.retention.compact` with ``prune``), one agent at a time:

- **Prune.** The history that goes is the segments whose records are all older than the
  cutoff *and* lie before the *base*: the newest snapshot whose state is older than the
  cutoff (its age is that of the newest ``step``/``fork`` record at or before it; the
  ``snapshot`` and ``anchor`` records housekeeping writes carry no state and do not count).
  Retention then keeps that snapshot, the one the retained history starts from, and
  everything after it, and writes the ``anchor`` record that keeps the remaining chain
  verifiable. So every step recorded at or after the cutoff can still be shown, and replay
  never loses its starting point.
- **No snapshot old enough: the history is kept.** Expiry never writes a snapshot. One can
  only be written at the head, and a new record would make an idle agent look active (its
  age is its newest step). So the base is also always *before* the agent's newest step:
  that step's record stays, and with it the agent's age, which ``drop_idle_agents`` reads.
  An idle agent thus keeps at most one snapshot interval of records; one with no snapshot
  older than the cutoff keeps everything.
- **Drop.** With ``drop_idle_agents``, an agent whose newest ``step``/``fork`` record is older
  than that cutoff is deleted whole (``backend.delete_agent``, an optional capability of every
  bundled backend).
- **Live writers.** An agent whose writer lease is held by a writer elsewhere (another
  process, another host) is skipped and reported; a writer of this process is shared, as
  any ``Journal`` does. Nothing is opened for writing unless a read-only look found work.
- **Whole partitions.** A backend that keeps records in time partitions (PostgreSQL with
  ``partition="time"``) has the optional ``drop_expired_partitions(dry_run=...)``: after the
  agents, expiry run over the whole store (no ``agents`` given) calls it, and it drops every
  partition whose rows the pruning above (or any earlier retention) has cut for every agent
  that has rows in it. What was dropped, and who pins what is not, is in the report's
  ``partitions``. A dry run moves nothing, so it reports only what is droppable already.

Agents are processed in batches of ``batch`` (one ``lock_holders()`` look per batch), one
journal open at a time, so no history and no journal handle is held across agents; what
grows with the fleet is the list of agent ids and one small :class:`AgentExpiry` per agent
pruned, dropped, skipped or failed (agents left unchanged are only counted). Running it
twice is the same as running it once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .backends.base import Backend
from .errors import JournalError, JournalLockedError, JournalNotFoundError
from .events import Fork, Step
from .replay.journal import Journal

__all__ = ["AgentExpiry", "ExpiryReport", "cutoff_of", "expire"]

_LOOKBACK = 16
"""Records read back from a seq to find the newest step before it (housekeeping records
between steps are few: a snapshot mark, an anchor)."""


@dataclass
class AgentExpiry:
    """What expiry did (or would do, in a dry run) to one agent."""

    agent_id: str
    action: str
    """``pruned``, ``dropped``, ``skipped`` (a live writer elsewhere) or ``error``."""
    detail: str = ""
    segments_deleted: int = 0
    snapshots_deleted: int = 0
    bytes_saved: int = 0
    anchor_seq: int | None = None
    last_active: float | None = None
    """Unix time of the agent's newest step or fork record."""


@dataclass
class ExpiryReport:
    """The outcome of :func:`expire`."""

    cutoff: float
    """Unix time: history older than this was pruned."""
    drop_cutoff: float | None
    """Unix time: agents idle since before this were dropped (None: none dropped)."""
    dry_run: bool
    agents_seen: int = 0
    unchanged: int = 0
    segments_deleted: int = 0
    snapshots_deleted: int = 0
    bytes_saved: int = 0
    pruned: list[AgentExpiry] = field(default_factory=list)
    dropped: list[AgentExpiry] = field(default_factory=list)
    skipped: list[AgentExpiry] = field(default_factory=list)
    errors: list[AgentExpiry] = field(default_factory=list)
    partitions: list[dict[str, Any]] = field(default_factory=list)
    """Time partitions looked at (a backend with ``drop_expired_partitions`` only): ``name``,
    ``start``/``end`` (ISO 8601), ``bytes``, ``dropped`` (or would be, in a dry run) and
    ``pinned_by`` (some agents that still see rows in it)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _add(self, item: AgentExpiry | None) -> None:
        if item is None:
            self.unchanged += 1
            return
        {"pruned": self.pruned, "dropped": self.dropped, "skipped": self.skipped,
         "error": self.errors}[item.action].append(item)
        self.segments_deleted += item.segments_deleted
        self.snapshots_deleted += item.snapshots_deleted
        self.bytes_saved += item.bytes_saved


def cutoff_of(when: timedelta | datetime | float, now: float | None = None) -> float:
    """A cutoff as unix time: a ``timedelta`` is that long before ``now`` (default: the
    clock), a ``datetime`` is that moment (naive ones are taken as UTC), a float is already
    unix time."""
    if isinstance(when, timedelta):
        if when < timedelta(0):
            raise ValueError(f"age {when} is negative")
        return (time.time() if now is None else now) - when.total_seconds()
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return float(when)


def expire(backend: Backend, *, older_than: timedelta | datetime | float,
           agents: Iterable[str] | None = None,
           drop_idle_agents: timedelta | datetime | float | None = None,
           key: bytes | str | Callable[[str], bytes | str | None] | None = None,
           batch: int = 100, workers: int = 1, dry_run: bool = False,
           progress: Callable[[int, int], None] | None = None) -> ExpiryReport:
    """Prune every agent's history older than ``older_than`` (see the module docstring).

    Args:
        backend: the store (filesystem, memory, PostgreSQL: any backend).
        older_than: the age (before now) or moment before which history goes.
        agents: only these agents (default: every agent of the store).
        drop_idle_agents: also delete whole agents whose newest step is older than this
            (an age or a moment); None: never delete an agent.
        key: the chain key of keyed journals: one for every agent, or a function of the
            agent id (returning None for unkeyed ones). An agent opened with the wrong key
            is an error in the report.
        batch: agents per batch (one look at the live writers per batch).
        workers: agents processed at once, each in a thread of its own (a shared store is
            bound by round trips, not by this process's CPU; each worker that prunes holds
            one writer lease, i.e. one PostgreSQL connection, at a time).
        dry_run: change nothing; report what would be done (read-only: no lease is taken).
        progress: ``progress(done, total)`` after each agent.

    Returns:
        An :class:`ExpiryReport`. Problems with one agent (damage, a wrong key) are in its
        ``errors``, never raised: the others are still processed.
    """
    if batch < 1 or workers < 1:
        raise ValueError("batch and workers must be >= 1")
    now = time.time()
    cutoff = cutoff_of(older_than, now)
    drop = None if drop_idle_agents is None else cutoff_of(drop_idle_agents, now)
    ids = sorted(set(agents)) if agents is not None else backend.list_agents()
    rep = ExpiryReport(cutoff=cutoff, drop_cutoff=drop, dry_run=dry_run)
    me = os.getpid()
    done = 0

    def one(agent_id: str, held: int | None) -> AgentExpiry | None:
        if held is not None and held != me:
            return AgentExpiry(agent_id, "skipped", f"a writer holds it (pid {held})")
        k = key(agent_id) if callable(key) else key
        return _one(backend, agent_id, k, cutoff, drop, dry_run)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="expire") if workers > 1 else None
    try:
        for chunk in _chunks(ids, batch):
            holders = backend.lock_holders()
            held = [holders.get(a) for a in chunk]
            results: Iterable[AgentExpiry | None] = (
                map(one, chunk, held) if pool is None else pool.map(one, chunk, held))
            for item in results:  # in order, on this thread (progress bars are not shared)
                rep.agents_seen += 1
                rep._add(item)
                done += 1
                if progress is not None:
                    progress(done, len(ids))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    drop_partitions = getattr(backend, "drop_expired_partitions", None)
    if drop_partitions is not None and agents is None:  # the whole store only
        rep.partitions = [asdict(d) for d in drop_partitions(dry_run=dry_run)]
        rep.bytes_saved += sum(d["bytes"] for d in rep.partitions if d["dropped"])
    return rep


def _chunks(ids: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def _one(backend: Backend, agent_id: str, key: bytes | str | None, cutoff: float,
         drop: float | None, dry_run: bool) -> AgentExpiry | None:
    """Expire one agent: look read-only, and open for writing only when there is work."""
    try:
        with Journal(agent_id, backend=backend, key=key, readonly=True, create=False,
                     snapshot_every=None) as j:
            plan = _Plan.of(j, cutoff, drop)
            if plan is None:
                return None
            if dry_run:
                return plan.dry(j)
        if plan.drop:
            return _drop(backend, agent_id, plan.last_active)
        with Journal(agent_id, backend=backend, key=key, create=False,
                     snapshot_every=None) as j:
            return plan.apply(j)
    except JournalLockedError as e:
        return AgentExpiry(agent_id, "skipped", str(e))
    except JournalNotFoundError as e:
        return AgentExpiry(agent_id, "error", f"not found: {e}")
    except (JournalError, OSError) as e:
        return AgentExpiry(agent_id, "error", str(e))


def _drop(backend: Backend, agent_id: str, last_active: float | None) -> AgentExpiry:
    delete = getattr(backend, "delete_agent", None)
    if delete is None:
        return AgentExpiry(agent_id, "error", f"{backend.describe()} cannot delete an agent "
                           "(its backend has no delete_agent)", last_active=last_active)
    delete(agent_id)  # JournalLockedError when a writer took it meanwhile: skipped
    return AgentExpiry(agent_id, "dropped", "idle", last_active=last_active)


def _activity(j: Journal, seq: int, first: int) -> tuple[int, float] | None:
    """``(seq, ts)`` of the newest step or fork record at or before ``seq``, reading back in
    small windows down to ``first`` (the first retained seq); None: there is none."""
    hi = seq
    while hi >= max(first, 1):
        lo = max(first, 1, hi - _LOOKBACK + 1)
        for rec in reversed(list(j.records(lo, hi))):
            if isinstance(rec, (Step, Fork)):
                return rec.seq, rec.ts
        hi = lo - 1
    return None


def _newest_older(j: Journal, snaps: list[int], cutoff: float, first: int) -> int | None:
    """The newest snapshot whose state is older than ``cutoff`` (bisection: snapshot ages
    grow with their seq, so a busy agent costs a few look-ups, not one per snapshot)."""
    lo, hi, found = 0, len(snaps) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        age = _activity(j, snaps[mid], first)
        if age is not None and age[1] < cutoff:
            found, lo = snaps[mid], mid + 1
        else:
            hi = mid - 1
    return found


@dataclass
class _Plan:
    """What one agent needs, decided from a journal (read-only or writable)."""

    agent_id: str
    last_active: float | None
    drop: bool = False
    base: int | None = None
    """The snapshot retention keeps as the oldest."""
    keep: int = 1
    """Snapshots at or after ``base`` (retention's ``keep_snapshots``)."""

    @classmethod
    def of(cls, j: Journal, cutoff: float, drop: float | None) -> _Plan | None:
        last = j.last_seq
        segs = j.segment_seqs()
        if not last or not segs:
            return None  # an empty journal: nothing to prune, nothing known to be idle
        act = _activity(j, last, segs[0])
        if act is None:
            # Only housekeeping records are left (an earlier pruning took the last step):
            # its newest snapshot was written at or after that step, so its time is a
            # conservative (later) age.
            act = (last, j.snapshot_base()[1])
        act_seq, act_ts = act
        if drop is not None and act_ts < drop:
            return cls(j.agent_id, act_ts, drop=True)
        # The base must lie before the last step, so the step's record (the agent's age)
        # stays; its age is that of the newest step at or before it.
        snaps = [s for s in j.snapshot_seqs() if s < act_seq]
        base = _newest_older(j, snaps, cutoff, segs[0])
        if base is None:
            return None  # no snapshot older than the cutoff: the history is kept
        # Anything before the base that retention would remove? Leading segments that end
        # at or before it, and snapshots before it but the one the kept history starts from.
        old_segs = sum(1 for b in segs[1:] if b <= base + 1)
        needed = segs[old_segs] - 1
        if not old_segs and not [s for s in snaps if s < base and s != needed]:
            return None
        keep = sum(1 for s in j.snapshot_seqs() if s >= base)
        return cls(j.agent_id, act_ts, base=base, keep=keep)

    def dry(self, j: Journal) -> AgentExpiry:
        if self.drop:
            return AgentExpiry(self.agent_id, "dropped", "idle (dry run)",
                               last_active=self.last_active)
        rep = j.compact(keep_snapshots=self.keep, prune=True, dry_run=True)
        return AgentExpiry(self.agent_id, "pruned", "dry run",
                           segments_deleted=len(rep.segments_deleted),
                           snapshots_deleted=len(rep.snapshots_deleted),
                           bytes_saved=rep.bytes_saved, last_active=self.last_active)

    def apply(self, j: Journal) -> AgentExpiry | None:
        """Prune, on ``j`` opened for writing after the read-only look that made the plan.

        The plan still holds: the base's age depends only on the records up to it, which
        never change; a writer may only have added records and snapshots after it (counted
        again here), or an earlier compaction removed the base (then nothing is done).
        """
        if self.drop or self.base is None:
            return None  # dropping is decided read-only and done by _drop (see _one)
        snaps = j.snapshot_seqs()
        if self.base not in snaps:
            return None
        rep = j.compact(keep_snapshots=sum(1 for s in snaps if s >= self.base), prune=True)
        action = "error" if rep.errors else "pruned"
        if action == "pruned" and not rep.segments_deleted and not rep.snapshots_deleted:
            return None
        return AgentExpiry(self.agent_id, action, "; ".join(rep.errors),
                           segments_deleted=len(rep.segments_deleted),
                           snapshots_deleted=len(rep.snapshots_deleted),
                           bytes_saved=rep.bytes_saved, anchor_seq=rep.anchor_seq,
                           last_active=self.last_active)

"""The :class:`Journal`: one agent's history, for recording, resuming and time travel.

A thin facade over the agent's :class:`~agentjournal.replay.core.Core` (store, reader, writer,
shadow), its :class:`~agentjournal.replay.materializer.Materializer` and its
:class:`~agentjournal.replay.stepindex.StepIndex`. With the default ``readonly=False`` it
shares the process's writer of the agent (taking the lock and recovering a torn tail on first
open) and accepts :meth:`Journal.append`. Read-only journals (the CLI, a status endpoint, a
second process inspecting a live agent) never lock and never repair.

A ``Journal`` is safe to share between threads: every call holds the core's lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import delta
from .._ids import validate_agent_id
from ..backends.base import AgentStore, Backend
from ..backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    JournalClosedError,
    LimitExceededError,
    StepNotFoundError,
    TamperedError,
)
from ..events import AnyRecord
from ..journal.reader import SegmentReader
from ..journal.writer import Durability, JournalWriter
from ..retention import CompactReport, compact, snapshot_spacing
from ..snapshot.store import DEFAULT_MAX_SNAPSHOT_BYTES, SnapshotDoc
from .core import Core, open_core, release_core
from .fork import fork_journal
from .queries import QueryMethods
from .readtail import ReadTail
from .recorder import Retention, Triggers, check_append_args, retention_view, write_snapshot
from .results import Appended, Head, Resumed
from .verify import Problem, VerifyReport, verify_journal

log = logging.getLogger("agentjournal")

T = TypeVar("T")

_STRENGTH = {Durability.NONE: 0, Durability.GROUP: 1, Durability.SYNC: 2}


def _locked_iter(lock: threading.RLock, it: Iterator[T]) -> Iterator[T]:
    """Iterate ``it`` holding ``lock`` for each step only (never across a ``yield``)."""
    while True:
        with lock:
            try:
                item = next(it)
            except StopIteration:
                return
        yield item


class Journal(QueryMethods):
    """One agent's journal.

    Args:
        agent_id: the agent (``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``).
        root: the store root, default ``./.agentjournal`` (ignored when ``backend`` is given).
        backend: a storage backend; default the filesystem under ``root``.
        key: a secret for the hash chain (keyed BLAKE2b: tampering cannot be hidden by
            recomputing the chain without it). Needed to read a keyed journal.
        durability: ``sync`` (default), ``group`` or ``none`` (see docs/design.md). Writers of
            one agent in one process share a writer: a handle asking for a stronger mode than
            the shared writer's syncs after each of its appends.
        snapshot_every: write a snapshot every N steps (None: never on steps).
        snapshot_seconds: ... or when this many seconds passed since the last one (measured
            on a monotonic clock, so a wall clock that steps back does not hold them up).
        compress: lz4-compress snapshots.
        keep_snapshots: retention after each snapshot: keep this many newest (None: keep all).
        prune: with retention, delete segments older than the oldest kept snapshot (writing an
            ``anchor`` record) instead of keeping them.
        compress_segments: with retention, lz4-compress sealed old segments.
        sparse_snapshots: with retention that keeps the old segments (no ``prune``), also
            keep old snapshots about this many snapshot intervals apart (``snapshot_every``
            steps each; None or 0: none), so ``state_at`` an old step replays a bounded
            number of records at any history length.
        readonly: open without the writer lock; no appends, no repair.
        create: create the journal if it does not exist (writable journals only).
        valid_prefix: on mid-log corruption, read the valid prefix instead of raising.
        repair: opening for write, cut damage in the last segment even when intact-looking
            records follow it, quarantining them (what a power loss can leave in ``group`` or
            ``none`` mode). Without it such a journal refuses to open for writing.
        expect_head: a :class:`Head` kept off the store (``head()`` earlier, or
            ``agentjournal anchor``): refuse to open (``TamperedError``) a journal that does
            not reach it or holds another record there — records cut off the end, or the
            store rolled back to an older copy, which no chain inside the store can show.
    """

    def __init__(
        self,
        agent_id: str,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        backend: Backend | None = None,
        key: bytes | str | None = None,
        durability: Durability | str = Durability.SYNC,
        snapshot_every: int | None = 100,
        snapshot_seconds: float | None = None,
        compress: bool = True,
        keep_snapshots: int | None = None,
        prune: bool = False,
        compress_segments: bool = False,
        sparse_snapshots: int | None = 10,
        readonly: bool = False,
        create: bool = True,
        valid_prefix: bool = False,
        repair: bool = False,
        group_records: int = 64,
        group_ms: float = 50.0,
        segment_max_bytes: int = 64 << 20,
        segment_max_records: int = 0,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
        allow_insecure_root: bool = False,
        expect_head: Head | None = None,
    ) -> None:
        triggers = Triggers(snapshot_every, snapshot_seconds)  # validates both
        if keep_snapshots is not None and keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1 or None (the newest is never deleted)")
        validate_agent_id(agent_id)  # before it names anything (a registry key, a path)
        if key is not None and len(key) == 0:
            raise ValueError("the key is empty: pass key=None for an unkeyed journal, or the "
                             "journal's secret")
        self.backend: Backend = backend or FilesystemBackend(
            root, allow_insecure_root=allow_insecure_root)
        self.agent_id = agent_id
        self.key = key.encode() if isinstance(key, str) else (key or None)
        self.durability = Durability(durability)
        self._triggers = triggers
        self.compress = compress
        self.keep_snapshots = keep_snapshots
        self.prune = prune
        self.compress_segments = compress_segments
        if sparse_snapshots is not None and (isinstance(sparse_snapshots, bool)
                                             or sparse_snapshots < 0):
            raise ValueError("sparse_snapshots must be an int >= 0 or None")
        self.sparse_snapshots = sparse_snapshots
        self._mark_spacing: int | None = None
        self.readonly = readonly
        self.max_snapshot_bytes = max_snapshot_bytes
        self._core: Core = open_core(
            self.backend, agent_id, key=self.key, writable=not readonly, create=create,
            valid_prefix=valid_prefix, max_snapshot_bytes=max_snapshot_bytes,
            writer_options={"durability": self.durability, "group_records": group_records,
                            "group_ms": group_ms, "segment_max_bytes": segment_max_bytes,
                            "segment_max_records": segment_max_records, "repair": repair})
        w = self._core.writer
        self._sync_after = w is not None and _STRENGTH[self.durability] > _STRENGTH[w.durability]
        self._tail = ReadTail()
        self._closed = False
        self._release = weakref.finalize(self, release_core, self._core)
        if expect_head is not None:
            why = self.check_head(expect_head)
            if why is not None:
                self.close()
                raise TamperedError(
                    why, seq=expect_head.seq,
                    hint="the store is older than the head anchored off it, or was edited: "
                    "restore it from a backup, or inspect it read-only without expect_head")

    # --- snapshot triggers (settable; the engine's one implementation is Triggers) -----------
    @property
    def snapshot_every(self) -> int | None:
        return self._triggers.every

    @snapshot_every.setter
    def snapshot_every(self, value: int | None) -> None:
        self._triggers = Triggers(value, self._triggers.seconds)

    @property
    def snapshot_seconds(self) -> float | None:
        return self._triggers.seconds

    @snapshot_seconds.setter
    def snapshot_seconds(self, value: float | None) -> None:
        self._triggers = Triggers(self._triggers.every, value)

    # --- the head ----------------------------------------------------------------------------
    def head(self) -> Head:
        """The tip of the chain now: the last record's seq and hash (seq 0 when empty)."""
        core = self._check()
        with core.lock:
            if core.writer is not None:
                return Head(self.agent_id, core.writer.last_seq, core.writer.last_hash)
            last = self._last_record()
            return Head(self.agent_id, last.seq if last else 0, last.h if last else "")

    # --- the parts (for the engine's other modules: verify, export, retention) ---------------
    @property
    def store(self) -> AgentStore:
        return self._core.store

    @property
    def reader(self) -> SegmentReader:
        return self._core.reader

    @property
    def writer(self) -> JournalWriter | None:
        return self._core.writer

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the journal; the last writable handle in the process syncs pending
        records (in every durability mode) and releases the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _check(self) -> Core:
        if self._closed or self._core.closed:
            raise JournalClosedError(f"journal of {self.agent_id!r} is closed")
        return self._core

    def _w(self) -> JournalWriter:
        self._check()
        return self._core.check_writable()

    # --- positions -------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Seq of the last record (0 when empty)."""
        core = self._check()
        with core.lock:
            if core.writer is not None:
                return core.writer.last_seq
            last = self._last_record()
            return last.seq if last else 0

    @property
    def last_step(self) -> int:
        """Agent step of the last record (0 when empty)."""
        core = self._check()
        with core.lock:
            if core.writer is not None:
                return core.writer.last_step
            last = self._last_record()
            return last.step if last else 0

    @property
    def durable_seq(self) -> int:
        """Highest seq known to be on stable storage (``group``/``none`` modes lag)."""
        with self._core.lock:
            return self._w().durable_seq

    def _fresh_listing(self) -> None:
        ReadTail.fresh_listing(self._core)

    def _last_record(self) -> AnyRecord | None:
        return self._tail.last_record(self._core)

    # --- recording -------------------------------------------------------------------------
    def append(
        self,
        state: Any = None,
        *,
        ops: list[delta.Op] | None = None,
        step: int | None = None,
        snapshot: bool | None = None,
        meta: dict[str, Any] | None = None,
        sync: bool = True,
    ) -> Appended:
        """Record one step, given the new full ``state`` or the ``ops`` that make it.

        With ``state`` the delta is found against a private copy of the last recorded state,
        at the cost of the change. ``step`` defaults to the last step + 1. ``snapshot=True``
        forces a snapshot after the step, ``False`` suppresses the triggers. ``meta`` is a JSON
        object stored in the step record (hashed with it, not part of the state): what an
        integration needs to find the step again (a checkpoint id, a run id). Once the step is
        recorded, a failure to write its snapshot is logged, not raised (``snapshot_seq`` is
        None): the step is durable, and an exception would invite recording it twice.
        ``sync=False`` returns after the write, before the ``fdatasync`` of ``sync`` mode: the
        step is acknowledged only once :meth:`sync` returns (a process serving many agents
        overlaps their syncs in threads while it records the next steps).

        Raises:
            NotJSONEncodableError: a value that JSON cannot represent (its path is named).
            InvalidPatchError: ``ops`` that do not apply to the current state.
            JournalPoisonedError: an earlier write/sync failed; reopen the journal.
            JournalForkedError: called in a child process that inherited the journal.
        """
        check_append_args(state, ops, step, snapshot, meta)
        core = self._check()
        with core.lock:
            w = core.check_writable()
            core.ensure_shadow()
            step = w.last_step + 1 if step is None else step
            diffed = ops is None
            if ops is None:
                ops = core.diff(state)
            else:
                ops = list(ops)
                for op in ops:
                    if isinstance(op, dict) and "value" in op:
                        delta.check_json(op["value"], str(op.get("path", "")))
                delta.apply(core.shadow, ops)  # validates without touching the shadow
            rec = w.append_step(ops, step=step, meta=meta, sync=sync)
            core.reader.tail = w.seg_first
            core.adopt(ops, rec.seq, diffed=diffed)
            if self._sync_after and sync:
                w.sync()
            snap_seq = None
            if snapshot or (snapshot is None and self._trigger_due(rec.step)):
                try:
                    snap_seq = self.snapshot()  # the lock is re-entrant
                except OSError as e:
                    w.left_temps = True
                    # The step is recorded (acknowledged): raising now would make the caller
                    # believe it failed and record it twice. A snapshot is only a cache; the
                    # trigger stays due, and a writer poisoned here refuses the next append.
                    log.error("snapshot of %s after seq %s failed (the step is recorded): %s",
                              self.agent_id, rec.seq, e)
            return Appended(seq=rec.seq, step=rec.step, ops=ops, snapshot_seq=snap_seq,
                            hash=rec.h)

    def _trigger_due(self, step: int) -> bool:
        return self._triggers.due(self._core, step)

    def snapshot(self) -> int | None:
        """Write a snapshot of the current state now; returns its seq (None if empty).

        The journal is synced first, so a snapshot never refers to records that could be lost.
        Retention runs after it when ``keep_snapshots`` is set.
        """
        core = self._check()
        with core.lock:
            core.check_writable()
            return self._snapshot_locked()

    def _snapshot_locked(self) -> int | None:
        retention = (Retention(self.keep_snapshots, self.prune, self.compress_segments,
                               self._sparse_gap(self.prune))
                     if self.keep_snapshots is not None else None)
        return write_snapshot(self._core, compress=self.compress, retention=retention)

    def _sparse_gap(self, prune: bool) -> int | None:
        """Seqs between the old snapshots retention keeps for time travel (None: none, and
        always when pruning, which keeps no old history).

        A journal opened without a snapshot interval (as ``agentjournal compact`` opens one)
        uses the spacing of the journal's own first two snapshot marks, which never change
        while the old history stays, so an explicit compaction keeps the sparse snapshots
        the writer's retention kept instead of deleting them.
        """
        if not self.sparse_snapshots or prune:
            return None
        every = self.snapshot_every or self._mark_spacing
        if every is None:
            # Read once found: it reads the history up to the second mark.
            every = self._mark_spacing = snapshot_spacing(self.records())
        return None if every is None else self.sparse_snapshots * every

    def sync(self) -> int:
        """Make every record durable now; returns ``durable_seq``."""
        core = self._check()
        with core.lock:
            return core.check_writable().sync()

    # --- loading ---------------------------------------------------------------------------
    def _ensure_shadow(self) -> None:
        """Load the last recorded state (so that the first append costs only its change)."""
        core = self._check()
        with core.lock:
            core.ensure_shadow()

    def load_snapshot(self, seq: int) -> SnapshotDoc:
        """Read and check one snapshot file (checksum only; not its chain hash)."""
        core = self._check()
        with core.lock:
            return core.mat.load_snapshot(seq)[0]

    def resume(self) -> Resumed:
        """The state after the last record (a copy the caller owns), its step and seq."""
        core = self._check()
        with core.lock:
            if core.writer is not None:
                core.ensure_shadow()
                # Containers copied, strings shared: the caller may mutate it, and the next
                # diff against the shadow compares the unchanged strings by identity.
                return Resumed(delta.copy_containers(core.shadow), core.writer.last_step,
                               core.writer.last_seq)
            last = self._last_record()
            if last is None:
                return Resumed({}, 0, 0)
            hint = core.store.read_hint()
            state, seq, step, _ = core.mat.materialize(last.seq,
                                                       prefer=hint.snap if hint else None)
            return Resumed(state, step, seq)

    # --- time travel -----------------------------------------------------------------------
    def seq_of_step(self, step: int) -> int:
        """Seq of the last record whose step is <= ``step``.

        Raises:
            StepNotFoundError: ``step`` is before the first record or after the last.
            StepPrunedError: ``step`` was removed by pruning compaction.
        """
        core = self._check()
        with core.lock:
            self._fresh_listing()
            return core.index.locate(step, self.agent_id)[0]

    def state_at(self, step: int) -> Any:
        """The state after the last record of agent step ``step`` (a fresh copy)."""
        core = self._check()
        with core.lock:
            self._fresh_listing()
            seq, seg = core.index.locate(step, self.agent_id)
            # Segments start right after a snapshot: the one before the segment is the base.
            return core.mat.materialize(seq, prefer=seg - 1)[0]

    def state_at_seq(self, seq: int) -> Any:
        """The state after record ``seq``."""
        core = self._check()
        with core.lock:
            self._fresh_listing()
            last = self.last_seq
            if seq < 0 or seq > last:
                raise StepNotFoundError(f"seq {seq} is outside 0..{last}", seq=seq)
            return core.mat.materialize(seq)[0]

    def materialize(self, seq: int) -> tuple[Any, int, int, SnapshotDoc | None]:
        """``(state, seq, step, snapshot used)`` after record ``seq`` (for forks and tools)."""
        core = self._check()
        with core.lock:
            self._fresh_listing()
            return core.mat.materialize(seq)

    def records(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AnyRecord]:
        """Every record with ``from_seq <= seq <= to_seq``, chain-verified, in order."""
        core = self._check()
        with core.lock:
            self._fresh_listing()
            return _locked_iter(core.lock, core.reader.records(from_seq, to_seq))

    def history(self, start: int | None = None, end: int | None = None) -> Iterator[AnyRecord]:
        """Records whose agent step is within ``start..end`` (inclusive), in order."""
        core = self._check()
        with core.lock:
            self._fresh_listing()
            if not core.index.segments():
                return iter(())
            from_seq = core.index.start_seq(start)
            recs = core.reader.records(from_seq)

        def gen() -> Iterator[AnyRecord]:
            for rec in recs:
                if start is not None and rec.step < start:
                    continue
                if end is not None and rec.step > end:
                    return
                yield rec

        return _locked_iter(core.lock, gen())

    def diff(self, a: int, b: int) -> list[delta.Op]:
        """RFC 6902 ops turning the state at step ``a`` into the state at step ``b``."""
        return delta.diff(self.state_at(a), self.state_at(b))

    def fork(self, at_step: int, new_agent_id: str, **options: Any) -> Journal:
        """Start a new journal whose state is this one's at ``at_step``, linked to it.

        ``options`` are passed to the new :class:`Journal` (same backend). Returns it open
        for writing; its first record is a ``fork`` record naming this agent, seq and hash.
        """
        return fork_journal(self, at_step, new_agent_id, Journal, **options)

    def verify(self, progress: Callable[[int, int], None] | None = None, *,
               against: Head | None = None) -> VerifyReport:
        """Check every record, the chain across segments and every snapshot; with
        ``against``, also that the journal reaches and matches that head (kept off the
        store: catches truncation and rollback).

        ``progress(done, total)`` is called after each segment. Never raises for damage:
        every problem is in the report, with its file, byte offset and seq.
        """
        core = self._check()
        with core.lock:
            rep = verify_journal(self, progress)
            if core.writer is None:
                # Read-only: a live writer elsewhere may have rolled, snapshotted or pruned
                # between our listing and our reads, which looks like damage. Real damage is
                # still there when we look again; a race is not.
                for _ in range(2):
                    if rep.ok:
                        break
                    rep = verify_journal(self, progress)
            if against is not None:
                try:
                    why = self.check_head(against)
                except CorruptRecordError as e:
                    why = f"the anchored record cannot be read: {e}"
                if why is not None:
                    rep.chain_ok = False
                    rep.problems.append(Problem("rollback", why, seq=against.seq))
            return rep

    def compact(self, *, keep_snapshots: int | None = None, prune: bool | None = None,
                compress_segments: bool | None = None, dry_run: bool = False
                ) -> CompactReport:
        """Apply retention now (see :func:`agentjournal.retention.compact`).

        ``keep_snapshots`` defaults to the journal's own setting, else 10.
        """
        if keep_snapshots is not None and keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1 (the newest is never deleted)")
        core = self._check()
        with core.lock:
            if not dry_run:
                core.check_writable()  # a dry run changes nothing: read-only may do it
                core.store.remove_temps()
            keep = keep_snapshots or self.keep_snapshots or 10
            view = retention_view(core)
            view.recheck()
            return compact(view, keep_snapshots=keep,
                           prune=self.prune if prune is None else prune,
                           compress_segments=(self.compress_segments if compress_segments
                                              is None else compress_segments),
                           sparse_gap=self._sparse_gap(self.prune if prune is None
                                                       else prune),
                           dry_run=dry_run, measure=True)

    def disk_usage(self) -> int:
        return self._check().store.disk_usage()

    def snapshot_seqs(self) -> list[int]:
        return self._check().store.list_snapshots()

    def segment_seqs(self) -> list[int]:
        core = self._check()
        with core.lock:
            return core.reader.segments(refresh=True)

    def first_step_of_segment(self, first_seq: int) -> int:
        core = self._check()
        with core.lock:
            return core.index.header(first_seq).first_step

    # --- trigger state (for the facade: should_checkpoint, inline-or-worker decisions) -------
    def snapshot_base(self) -> tuple[int, float]:
        """``(step, unix time)`` the snapshot triggers count from: the newest snapshot's, or
        ``(0, first record's time)`` before any snapshot (what a writer restarting on this
        journal would count from). Read-only journals derive it from the files."""
        core = self._check()
        with core.lock:
            if core.writer is not None:
                core.ensure_shadow()
                return core.snap_step, core.snap_wall
            self._fresh_listing()
            for seq in reversed(core.store.list_snapshots()):
                try:
                    doc = core.mat.load_snapshot(seq)[0]
                except (FileNotFoundError, CorruptSnapshotError, LimitExceededError):
                    continue
                return doc.step, doc.ts
            segs = core.reader.segments(refresh=True)
            first = next(iter(core.reader.records(segs[0], segs[0])), None) if segs else None
            return 0, (first.ts if first is not None else time.time())

    def snapshot_due(self, step: int | None = None, now: float | None = None) -> bool:
        """Whether this journal's triggers (``snapshot_every``/``snapshot_seconds``) would
        write a snapshot after a record at ``step`` (default: the next step); ``now`` (unix
        time) asks about another moment than this one."""
        core = self._check()
        with core.lock:
            if step is None:
                step = self.last_step + 1
            if core.writer is not None and now is None:
                core.ensure_shadow()
                return self._trigger_due(step)  # the engine's own trigger, monotonic clock
            base_step, base_ts = self.snapshot_base()
            return self._triggers.due_from(base_step, base_ts, step,
                                           time.time() if now is None else now)

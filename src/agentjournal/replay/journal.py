"""The :class:`Journal`: one agent's history, for recording, resuming and time travel.

A journal is opened for one agent under a root. With the default ``readonly=False`` it takes the
agent's writer lock, recovers a torn tail, and accepts :meth:`Journal.append`. Read-only
journals (the CLI, a second process inspecting a live agent) never lock and never repair.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from .. import delta
from ..backends.base import AgentStore, Backend
from ..backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    JournalClosedError,
    LimitExceededError,
    StepNotFoundError,
    StepPrunedError,
)
from ..events import FORMAT_VERSION, AnyRecord, Fork, Header, SnapshotMark, Step, header_decoder
from ..journal.reader import SegmentReader
from ..journal.writer import Durability, JournalWriter
from ..snapshot.store import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    SnapshotDoc,
    decode_snapshot,
    encode_snapshot,
)
from .results import Appended, Resumed, SnapshotSkippedWarning
from .verify import VerifyReport, verify_journal

if TYPE_CHECKING:
    from ..query import BisectResult, Blame, Match, When
    from ..retention import CompactReport

log = logging.getLogger("agentjournal")


class Journal:
    """One agent's journal.

    Args:
        agent_id: the agent (``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``).
        root: the store root, default ``./.agentjournal`` (ignored when ``backend`` is given).
        backend: a storage backend; default the filesystem under ``root``.
        key: a secret for the hash chain (keyed BLAKE2b: tampering cannot be hidden by
            recomputing the chain without it). Needed to read a keyed journal.
        durability: ``sync`` (default), ``group`` or ``none`` (see docs/design.md).
        snapshot_every: write a snapshot every N steps (None: never on steps).
        snapshot_seconds: ... or when this many seconds passed since the last one.
        compress: lz4-compress snapshots.
        keep_snapshots: retention after each snapshot: keep this many newest (None: keep all).
        prune: with retention, delete segments older than the oldest kept snapshot (writing an
            ``anchor`` record) instead of keeping them.
        compress_segments: with retention, lz4-compress sealed old segments.
        readonly: open without the writer lock; no appends, no repair.
        create: create the journal if it does not exist (writable journals only).
        valid_prefix: on mid-log corruption, read the valid prefix instead of raising.
        repair: opening for write, cut damage in the last segment even when intact-looking
            records follow it, quarantining them (what a power loss can leave in ``group`` or
            ``none`` mode). Without it such a journal refuses to open for writing.
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
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError("snapshot_every must be >= 1 or None")
        if snapshot_seconds is not None and snapshot_seconds <= 0:
            raise ValueError("snapshot_seconds must be > 0 or None")
        if keep_snapshots is not None and keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1 or None (the newest is never deleted)")
        self.backend: Backend = backend or FilesystemBackend(
            root, allow_insecure_root=allow_insecure_root)
        self.agent_id = agent_id
        self.key = key.encode() if isinstance(key, str) else (key or None)
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.compress = compress
        self.keep_snapshots = keep_snapshots
        self.prune = prune
        self.compress_segments = compress_segments
        self.readonly = readonly
        self.max_snapshot_bytes = max_snapshot_bytes
        self.store: AgentStore = self.backend.agent(agent_id, create=create and not readonly)
        self.reader = SegmentReader(self.store, self.key, valid_prefix=valid_prefix)
        self.writer: JournalWriter | None = None
        if not readonly:
            try:
                self.writer = JournalWriter(
                    self.store, key=self.key, durability=durability,
                    group_records=group_records, group_ms=group_ms,
                    segment_max_bytes=segment_max_bytes, segment_max_records=segment_max_records,
                    repair=repair)
            except BaseException:
                self.store.close()
                raise
            self.reader.tail = self.writer.seg_first or None
        self._headers: dict[int, Header] = {}
        self._shadow: Any = None
        self._shadow_seq = -1  # seq the shadow is the state after; -1 = not loaded
        self._snap_step = 0
        self._snap_ts = 0.0
        self._closed = False

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Sync pending records, release the lock and file descriptors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.store.close()

    def _check(self) -> None:
        if self._closed:
            raise JournalClosedError(f"journal of {self.agent_id!r} is closed")

    def _w(self) -> JournalWriter:
        self._check()
        if self.writer is None:
            raise JournalClosedError(f"journal of {self.agent_id!r} was opened read-only",
                                     hint="open it with readonly=False to append")
        return self.writer

    # --- positions -------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Seq of the last record (0 when empty)."""
        if self.writer is not None:
            return self.writer.last_seq
        last = self._last_record()
        return last.seq if last else 0

    @property
    def last_step(self) -> int:
        """Agent step of the last record (0 when empty)."""
        if self.writer is not None:
            return self.writer.last_step
        last = self._last_record()
        return last.step if last else 0

    @property
    def durable_seq(self) -> int:
        """Highest seq known to be on stable storage (``group``/``none`` modes lag)."""
        return self._w().durable_seq

    def _fresh_listing(self) -> None:
        """Read-only journals: another process may write; forget what was listed before."""
        if self.writer is None:
            self.reader._segments = None
            self.reader.scans = {}  # reused within this call, e.g. the tail resume reads twice

    def _last_record(self) -> AnyRecord | None:
        self._fresh_listing()
        hint = self.store.read_hint()
        if hint is not None and hint.seg > 0:
            try:
                sc = self.reader.read(hint.seg)
            except (FileNotFoundError, CorruptRecordError):
                sc = None
            if (sc is not None and sc.records and sc.error is None
                    and not self.store.segment_exists(sc.last_seq + 1)):
                self.reader.tail = hint.seg
                return sc.records[-1]
        self.reader.tail = None
        segs = self.reader.segments(refresh=True)
        for first in reversed(segs):
            sc = self.reader.read(first)
            if sc.records:
                return sc.records[-1]
        return None

    # --- recording -------------------------------------------------------------------------
    def append(
        self,
        state: Any = None,
        *,
        ops: list[delta.Op] | None = None,
        step: int | None = None,
        snapshot: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Appended:
        """Record one step, given the new full ``state`` or the ``ops`` that make it.

        With ``state`` the delta is found against a private copy of the last recorded state,
        at the cost of the change. ``step`` defaults to the last step + 1. ``snapshot=True``
        forces a snapshot after the step, ``False`` suppresses the triggers. ``meta`` is a JSON
        object stored in the step record (hashed with it, not part of the state): what an
        integration needs to find the step again (a checkpoint id, a run id). Once the step is
        recorded, a failure to write its snapshot is logged, not raised (``snapshot_seq`` is
        None): the step is durable, and an exception would invite recording it twice.

        Raises:
            NotJSONEncodableError: a value that JSON cannot represent (its path is named).
            InvalidPatchError: ``ops`` that do not apply to the current state.
            JournalPoisonedError: an earlier write/sync failed; reopen the journal.
        """
        w = self._w()
        if (state is None) == (ops is None):
            raise ValueError("pass exactly one of state= or ops=")
        if meta is not None:
            if not isinstance(meta, dict):
                raise TypeError(f"meta must be a dict of JSON values, not {type(meta).__name__}")
            delta.check_json(meta, "meta")
        self._ensure_shadow()
        step = w.last_step + 1 if step is None else step
        if ops is None:
            ops = delta.diff(self._shadow, state)
        else:
            ops = list(ops)
            for op in ops:
                if isinstance(op, dict) and "value" in op:
                    delta.check_json(op["value"], str(op.get("path", "")))
            delta.apply(self._shadow, ops)  # validates without touching the shadow
        rec = w.append_step(ops, step=step, meta=meta)
        self.reader.tail = w.seg_first
        # The shadow gets its own copy of the op values: it must never alias caller objects.
        self._shadow = delta.apply_in_place(self._shadow, delta.copy_containers(ops))
        self._shadow_seq = rec.seq
        snap_seq = None
        if snapshot or (snapshot is None and self._trigger_due(rec.step)):
            try:
                snap_seq = self.snapshot()
            except OSError as e:
                # The step is recorded (acknowledged): raising now would make the caller
                # believe it failed and record it twice. A snapshot is only a cache; the
                # trigger stays due, and a writer poisoned here refuses the next append.
                log.error("snapshot of %s after seq %s failed (the step is recorded): %s",
                          self.agent_id, rec.seq, e)
        return Appended(seq=rec.seq, step=rec.step, ops=ops, snapshot_seq=snap_seq)

    def _trigger_due(self, step: int) -> bool:
        if self.snapshot_every is not None and step - self._snap_step >= self.snapshot_every:
            return True
        return (self.snapshot_seconds is not None
                and time.time() - self._snap_ts >= self.snapshot_seconds)

    def snapshot(self) -> int | None:
        """Write a snapshot of the current state now; returns its seq (None if empty).

        The journal is synced first, so a snapshot never refers to records that could be lost.
        Retention runs after it when ``keep_snapshots`` is set.
        """
        w = self._w()
        self._ensure_shadow()
        if w.last_seq == 0:
            return None
        w.sync()
        seq, step = w.last_seq, w.last_step
        doc = SnapshotDoc(format=FORMAT_VERSION, agent_id=self.agent_id, seq=seq, step=step,
                          chain_hash=w.last_hash, ts=time.time(), state=self._shadow)
        data, digest = encode_snapshot(doc, self.compress)
        self.store.write_snapshot(seq, data, self.compress)
        w.append_mark(at=seq, digest=digest, step=step)
        w.set_hint(snap=seq)
        self.reader.tail = w.seg_first
        self._shadow_seq = w.last_seq
        self._snap_step, self._snap_ts = step, doc.ts
        if self.keep_snapshots is not None:
            from ..retention import compact

            try:
                compact(self, keep_snapshots=self.keep_snapshots, prune=self.prune,
                        compress_segments=self.compress_segments)
            except (OSError, CorruptRecordError, CorruptSnapshotError) as e:
                # Retention is housekeeping: it must never fail the step that triggered it.
                log.error("retention for %s failed (the snapshot is safe): %s", self.agent_id, e)
        return seq

    def sync(self) -> int:
        """Make every record durable now; returns ``durable_seq``."""
        return self._w().sync()

    # --- loading ---------------------------------------------------------------------------
    def _ensure_shadow(self) -> None:
        """Load the state after the last record into the private shadow (once)."""
        if self.writer is None or self._shadow_seq == self.writer.last_seq:
            return
        state, seq, _step, doc = self._materialize(self.writer.last_seq,
                                                   prefer=self.writer.hint.snap)
        self._shadow, self._shadow_seq = state, seq
        if doc is not None:
            self._snap_step, self._snap_ts = doc.step, doc.ts
        else:
            first = next(iter(self.reader.records(1, 1)), None)
            if first is not None:
                # No snapshot yet: count steps from 0, as the process that began the journal
                # did (counting from the first record's step delayed the first snapshot by one
                # step after every restart).
                self._snap_step, self._snap_ts = 0, first.ts
            else:
                self._snap_step, self._snap_ts = 0, time.time()

    def load_snapshot(self, seq: int) -> SnapshotDoc:
        """Read and check one snapshot file (checksum only; not its chain hash)."""
        return self._load_snapshot(seq)[0]

    def _load_snapshot(self, seq: int) -> tuple[SnapshotDoc, str]:
        data, compressed = self.store.read_snapshot(seq, self.max_snapshot_bytes)
        where = self.store.location("snapshot", seq)
        # Unkeyed, the digest proves nothing a forger could not recompute: lz4's checksum
        # covers accidental damage. Keyed, it is checked against the chained snapshot record.
        doc, digest = decode_snapshot(data, compressed, where=where,
                                      limit=self.max_snapshot_bytes,
                                      need_digest=self.key is not None)
        if doc.seq != seq or doc.agent_id != self.agent_id:
            raise CorruptSnapshotError(
                f"snapshot holds agent {doc.agent_id!r} seq {doc.seq}", path=where,
                hint="a snapshot file was copied from elsewhere")
        return doc, digest

    def _candidates(self, upto: int, prefer: int | None) -> Iterator[int]:
        """Snapshot seqs to try for ``upto``: ``prefer`` first (no listing), then newest first."""
        if prefer is not None and 0 < prefer <= upto:
            yield prefer
        for snap_seq in reversed(self.store.list_snapshots()):
            if snap_seq <= upto and snap_seq != prefer:
                yield snap_seq

    def _materialize(self, upto: int, prefer: int | None = None
                     ) -> tuple[Any, int, int, SnapshotDoc | None]:
        """State after record ``upto``: newest valid snapshot at or before it + replay.

        ``prefer`` is a snapshot seq to try before listing the snapshots (the hint of the
        newest one, or the one just before the segment holding ``upto``).
        """
        if upto <= 0:
            return {}, 0, 0, None
        for snap_seq in self._candidates(upto, prefer):
            try:
                doc, digest = self._load_snapshot(snap_seq)
                state, seq, step = self._replay(doc.state, doc.seq, doc.step, upto,
                                                chain_hash=doc.chain_hash, digest=digest)
            except (CorruptSnapshotError, LimitExceededError, _ChainMismatch) as e:
                msg = f"snapshot at seq {snap_seq} not used: {e}; trying an older one"
                log.warning(msg)
                warnings.warn(msg, SnapshotSkippedWarning, stacklevel=3)
                continue
            except FileNotFoundError:
                continue  # removed by retention while we listed
            return state, seq, step, doc
        segs = self.reader.segments(refresh=True)
        if segs and segs[0] > 1:
            raise StepPrunedError(
                f"records before seq {segs[0]} were pruned and no snapshot covers seq {upto}",
                seq=upto, hint="ask for a later step")
        state, seq, step = self._replay({}, 0, 0, upto, chain_hash="")
        return state, seq, step, None

    def _replay(self, state: Any, seq: int, step: int, upto: int, *,
                chain_hash: str, digest: str | None = None) -> tuple[Any, int, int]:
        first = True
        records, cached = self._records(seq + 1, upto)
        for rec in records:
            if first:
                if rec.prev != chain_hash:
                    raise _ChainMismatch(f"its chain hash does not match record {seq}")
                if (digest is not None and isinstance(rec, SnapshotMark) and rec.at == seq
                        and rec.digest != digest):
                    # The journal's own record of this snapshot says it held other content.
                    raise _ChainMismatch("its content differs from the digest in the journal")
                first = False
            if isinstance(rec, (Step, Fork)):
                # apply_in_place inserts op values as they are: records of the writer's cached
                # scan are replayed again by later calls, so they must never end up in (and be
                # mutated through) a state; apply copies of their containers.
                state = delta.apply_in_place(
                    state, delta.copy_containers(rec.ops) if cached else rec.ops)
            seq, step = rec.seq, rec.step
        if first and seq > 0:
            # Nothing replayed: check the snapshot against the record after it (its prev is
            # the chain at the snapshot; the record itself may have been pruned) or, at the
            # end of the journal, against the record it claims to follow.
            nxt = next(iter(self.reader.records(seq + 1, seq + 1)), None)
            at = next(iter(self.reader.records(seq, seq)), None) if nxt is None else None
            if (nxt.prev if nxt is not None else at.h if at is not None else None) != chain_hash:
                raise _ChainMismatch(f"record {seq} is missing or has another hash")
        if seq < upto and self.reader.damage is None:
            raise StepNotFoundError(f"journal ends at seq {seq}, before seq {upto}", seq=upto)
        return state, seq, step

    def _records(self, from_seq: int, to_seq: int) -> tuple[Iterator[AnyRecord], bool]:
        """Records from the writer's scan of the last segment when it covers them, else read;
        and whether they are that shared cached scan (True) or freshly decoded (False)."""
        w = self.writer
        tail = w.tail_records if w is not None else None
        if tail and tail[0].seq <= from_seq:
            return (r for r in tail if from_seq <= r.seq <= to_seq), True
        return self.reader.records(from_seq, to_seq), False

    def resume(self) -> Resumed:
        """The state after the last record (a copy the caller owns), its step and seq."""
        self._check()
        if self.writer is not None:
            self._ensure_shadow()
            # Containers copied, strings shared: the caller may mutate it, and the next diff
            # against the shadow compares the unchanged strings by identity.
            return Resumed(delta.copy_containers(self._shadow), self.writer.last_step,
                           self.writer.last_seq)
        last = self._last_record()
        if last is None:
            return Resumed({}, 0, 0)
        hint = self.store.read_hint()
        state, seq, step, _ = self._materialize(last.seq, prefer=hint.snap if hint else None)
        return Resumed(state, step, seq)

    # --- time travel -----------------------------------------------------------------------
    def _header(self, first: int) -> Header:
        h = self._headers.get(first)
        if h is None:
            data = self.store.read_segment(first, 0, 4096)
            nl = data.find(b"\n")
            if nl < 0:
                data = self.store.read_segment(first)
                nl = data.find(b"\n")
            try:
                h = header_decoder.decode(data[:nl] if nl >= 0 else data)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # msgspec raises all
                raise CorruptRecordError("segment header is damaged",
                                         path=self.store.location("segment", first),
                                         offset=0) from None
            self._headers[first] = h
        return h

    def _segs(self) -> list[int]:
        """First seqs of the segments (listed once; a writable journal knows its own rolls)."""
        segs = self.reader.segments()
        w = self.writer
        if w is not None and w.seg_first and (not segs or segs[-1] != w.seg_first):
            segs = self.reader.segments(refresh=True)
        return segs

    def _segment_for_step(self, step: int) -> int:
        """Index of the last segment whose first record's step is <= ``step``."""
        segs = self._segs()
        lo, hi = 0, len(segs)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._header(segs[mid]).first_step <= step:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def seq_of_step(self, step: int) -> int:
        """Seq of the last record whose step is <= ``step``.

        Raises:
            StepNotFoundError: ``step`` is before the first record or after the last.
            StepPrunedError: ``step`` was removed by pruning compaction.
        """
        return self._locate(step)[0]

    def _locate(self, step: int) -> tuple[int, int]:
        """``(seq, first seq of the segment the search started in)`` for ``step``."""
        self._check()
        self._fresh_listing()
        if step < 0:
            raise StepNotFoundError(f"step {step} is negative")
        segs = self._segs()
        if not segs:
            raise StepNotFoundError(f"agent {self.agent_id!r} has no steps yet", seq=None)
        i = self._segment_for_step(step)
        if i < 0:
            if segs[0] > 1:
                # Records before the first segment were pruned; the snapshot right before it
                # (which retention keeps) still holds the state at its step.
                base = segs[0] - 1
                try:
                    if self.load_snapshot(base).step <= step:
                        return base, segs[0]
                except (FileNotFoundError, CorruptSnapshotError, LimitExceededError):
                    pass
                raise StepPrunedError(f"step {step} was pruned; history starts at step "
                                      f"{self._header(segs[0]).first_step}")
            raise StepNotFoundError(f"step {step} is before the first recorded step "
                                    f"{self._header(segs[0]).first_step}")
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

    def state_at(self, step: int) -> Any:
        """The state after the last record of agent step ``step`` (a fresh copy)."""
        seq, seg = self._locate(step)
        # Segments start right after a snapshot: the one before the segment is the base.
        return self._materialize(seq, prefer=seg - 1)[0]

    def state_at_seq(self, seq: int) -> Any:
        """The state after record ``seq``."""
        self._check()
        self._fresh_listing()
        if seq < 0 or seq > self.last_seq:
            raise StepNotFoundError(f"seq {seq} is outside 0..{self.last_seq}", seq=seq)
        return self._materialize(seq)[0]

    def records(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AnyRecord]:
        """Every record with ``from_seq <= seq <= to_seq``, chain-verified, in order."""
        self._check()
        self._fresh_listing()
        return self.reader.records(from_seq, to_seq)

    def history(self, start: int | None = None, end: int | None = None) -> Iterator[AnyRecord]:
        """Records whose agent step is within ``start..end`` (inclusive), in order."""
        self._check()
        self._fresh_listing()
        segs = self._segs()
        if not segs:
            return iter(())
        from_seq = segs[0]
        if start is not None:
            i = self._segment_for_step(start - 1)
            from_seq = segs[max(i, 0)]
        lo = start

        def gen() -> Iterator[AnyRecord]:
            for rec in self.reader.records(from_seq):
                if lo is not None and rec.step < lo:
                    continue
                if end is not None and rec.step > end:
                    return
                yield rec

        return gen()

    def diff(self, a: int, b: int) -> list[delta.Op]:
        """RFC 6902 ops turning the state at step ``a`` into the state at step ``b``."""
        return delta.diff(self.state_at(a), self.state_at(b))

    def fork(self, at_step: int, new_agent_id: str, **options: Any) -> Journal:
        """Start a new journal whose state is this one's at ``at_step``, linked to it.

        ``options`` are passed to the new :class:`Journal` (same backend). Returns it open
        for writing; its first record is a ``fork`` record naming this agent, seq and hash.
        """
        from .fork import fork_journal

        return fork_journal(self, at_step, new_agent_id, **options)

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Check every record, the chain across segments and every snapshot.

        ``progress(done, total)`` is called after each segment. Never raises for damage:
        every problem is in the report, with its file, byte offset and seq.
        """
        self._check()
        return verify_journal(self, progress)

    def compact(self, *, keep_snapshots: int | None = None, prune: bool | None = None,
                compress_segments: bool | None = None, dry_run: bool = False
                ) -> CompactReport:
        """Apply retention now (see :func:`agentjournal.retention.compact`)."""
        from ..retention import compact  # retention sits above replay: imported on use

        if not dry_run:
            self._w()  # a dry run changes nothing, so a read-only journal may do it
        return compact(self, keep_snapshots=keep_snapshots or self.keep_snapshots or 10,
                       prune=self.prune if prune is None else prune,
                       compress_segments=(self.compress_segments if compress_segments is None
                                          else compress_segments), dry_run=dry_run)

    def disk_usage(self) -> int:
        return self.store.disk_usage()

    def snapshot_seqs(self) -> list[int]:
        return self.store.list_snapshots()

    def segment_seqs(self) -> list[int]:
        return self.reader.segments(refresh=True)

    def first_step_of_segment(self, first_seq: int) -> int:
        return self._header(first_seq).first_step

    # --- history queries (agentjournal.query) ------------------------------------------------
    # Thin wrappers over agentjournal.query, imported when called (as agreed while the layers
    # are settled). The query package imports nothing above errors/events/delta at run time
    # (Journal only for type checking), so it can be placed below replay in the layer table
    # and these imports moved to the top of the module.

    def blame(self, pointer: str, *, all: bool = False, children: bool = True) -> Blame:
        """Which step last wrote ``pointer`` (see :func:`agentjournal.query.blame`)."""
        from ..query import blame

        return blame(self, pointer, all=all, children=children)

    def touching(self, prefix: str, *, start: int | None = None, end: int | None = None,
                 since: When | None = None, until: When | None = None,
                 limit: int | None = None, reverse: bool = False) -> Iterator[Match]:
        """Records with an op at, under or above ``prefix``
        (see :func:`agentjournal.query.touching`)."""
        from ..query import touching

        return touching(self, prefix, start=start, end=end, since=since, until=until,
                        limit=limit, reverse=reverse)

    def grep(self, pattern: str, *, regex: bool = False, ignore_case: bool = False,
             under: str | None = None, start: int | None = None, end: int | None = None,
             since: When | None = None, until: When | None = None, limit: int | None = None,
             reverse: bool = False) -> Iterator[Match]:
        """Records whose op values hold ``pattern`` (see :func:`agentjournal.query.grep`)."""
        from ..query import grep

        return grep(self, pattern, regex=regex, ignore_case=ignore_case, under=under,
                    start=start, end=end, since=since, until=until, limit=limit,
                    reverse=reverse)

    def state_at_time(self, when: When) -> tuple[int, Any]:
        """``(step, state)`` as of a wall-clock time
        (see :func:`agentjournal.query.state_at_time`)."""
        from ..query import state_at_time

        return state_at_time(self, when)

    def bisect(self, expr: str, *, monotone: bool | None = None,
               progress: Callable[[int, int], None] | None = None) -> BisectResult:
        """The first step at which a predicate holds (see :func:`agentjournal.query.bisect`)."""
        from ..query import bisect

        return bisect(self, expr, monotone=monotone, progress=progress)


class _ChainMismatch(Exception):
    """Internal: a snapshot's chain hash does not match the journal."""

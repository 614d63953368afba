"""The single writer of an agent's journal: append records durably, roll segments, recover.

One ``os.write`` per record; ``fdatasync`` before :meth:`JournalWriter.append` returns in
``sync`` mode, every N records or T ms in ``group`` mode, never in ``none`` mode. Any error from
a write or a sync poisons the writer: it raises :class:`JournalPoisonedError` from then on and
never claims success for a record it could not make durable. Reopening recovers.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import _codec
from ..backends.base import AgentStore, Appender, Hint
from ..errors import (
    JournalClosedError,
    JournalPoisonedError,
    LimitExceededError,
    NotJSONEncodableError,
)
from ..events import FORMAT_VERSION, Anchor, AnyRecord, Cut, Fork, Header, SnapshotMark, Step
from .reader import MAX_RECORD_BYTES, scan
from .recovery import Cut as CutPlan
from .recovery import plan_recovery

log = logging.getLogger("agentjournal")


class Durability(str, enum.Enum):
    """When an append returns (see the durability contract in docs/design.md)."""

    SYNC = "sync"
    """After ``fdatasync``: survives power loss."""
    GROUP = "group"
    """After ``write``; ``fdatasync`` every N records or T ms (``durable_seq`` says how far)."""
    NONE = "none"
    """After ``write``: survives a process crash, not power loss."""


class RecoveryWarning(UserWarning):
    """A torn tail was cut off when a journal was opened for writing."""


@dataclass
class Recovery:
    """What opening the writer found and repaired."""

    torn_bytes: int = 0
    repaired: bool = False
    """Damage followed by records was cut (only with ``repair=True``)."""
    quarantined: list[str] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    """The ``cut`` records appended to the chain for what was cut (format 3)."""
    removed_temps: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


_encoder = msgspec.json.Encoder()


class JournalWriter:
    """Appends records to one agent's journal. Holds the agent's lock while open.

    Args:
        store: the agent's store (the writer takes its lock).
        key: chain key; None for an unkeyed (plain BLAKE2b) chain.
        durability: ``sync`` (default), ``group`` or ``none``.
        group_records, group_ms: the ``group`` mode window.
        segment_max_bytes, segment_max_records: roll to a new segment past these.
        repair: cut damage in the last segment even when records that look valid follow it
            (they are quarantined with it). Damage followed by intact records is what a power
            loss can leave in ``group``/``none`` mode, where writes reach the disk out of
            order; without ``repair`` such a journal refuses to open for writing.
    """

    def __init__(
        self,
        store: AgentStore,
        *,
        key: bytes | None = None,
        durability: Durability | str = Durability.SYNC,
        group_records: int = 64,
        group_ms: float = 50.0,
        segment_max_bytes: int = 64 << 20,
        segment_max_records: int = 0,
        repair: bool = False,
    ) -> None:
        self.store = store
        self.on_roll: Callable[[int], None] | None = None
        """Called with the first seq of every segment this writer starts."""
        self.repair = repair
        self.key = key or None
        self.durability = Durability(durability)
        self.group_records = group_records
        self.group_ms = group_ms
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_records = segment_max_records
        self.last_seq = 0
        self.last_hash = ""
        self.last_step = 0
        self.last_ts = 0.0
        self.durable_seq = 0
        self.seg_first = 0
        self.seg_records = 0
        self.seg_bytes = 0
        self._app: Appender | None = None
        self.tail_records: list[AnyRecord] | None = None
        """Records of the last segment as scanned on open; None once anything is appended."""
        self._roll_pending = False
        self._poison: BaseException | None = None
        self.left_temps = False
        """Set when a write of a file beside the journal (a snapshot) failed: it may have left
        a temp file, so the next open must look for temp files even after a clean close."""
        self._closed = False
        self._mutex = threading.RLock()
        self._pending = 0
        self._last_sync = time.monotonic()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._cuts: list[tuple[CutPlan, str]] = []
        """Cuts recovery made, with their quarantine names, until recorded in the chain."""
        store.lock()
        try:
            old = store.read_hint()
            self.recovery = self._recover(old)
            self.hint = Hint(seg=self.seg_first, snap=old.snap if old else 0, clean=False)
            store.write_hint(self.hint)
            if self.key is not None and (old is None or not old.clean):
                self._drop_unbound_snapshot()
            self._record_cuts()
        except BaseException:
            if self._app is not None:
                self._app.close()
            store.unlock()
            raise

    # --- recovery --------------------------------------------------------------------------
    def _recover_fast(self, hint: Hint | None) -> bool:
        """Open at the hinted segment if it is intact and really the last; else False."""
        if hint is None or hint.seg <= 0:
            return False
        first = hint.seg
        try:
            data = self.store.read_segment(first)
            size = self.store.segment_size(first)  # raises if the segment is sealed
        except FileNotFoundError:
            return False
        sc = scan(data, first_seq=first, agent_id=self.store.agent_id, key=self.key,
                  where=self.store.location("segment", first))
        if (sc.error is not None or sc.partial or not sc.records or size != len(data)
                or self.store.segment_exists(sc.last_seq + 1)):
            return False  # anything unusual takes the full path
        last = sc.records[-1]
        self.last_seq, self.last_hash = last.seq, last.h
        self.last_step, self.last_ts = last.step, last.ts
        self.seg_first, self.seg_records, self.seg_bytes = first, len(sc.records), sc.valid_end
        self.tail_records = sc.records
        self._app = self.store.open_segment(first)
        return True

    def _recover(self, hint: Hint | None) -> Recovery:
        rec = Recovery()
        if hint is None or not hint.clean:
            rec.removed_temps = self.store.remove_temps()
        if self._recover_fast(hint):
            self.durable_seq = self.last_seq
            return rec
        plan = plan_recovery(self.store, self.key, repair=self.repair)
        if plan.refused is not None:
            raise plan.refused
        for cut in plan.cuts:
            if cut.kind == "empty_segment":
                self.store.delete_segment(cut.first)
                rec.messages.append(f"removed empty segment {cut.where}")
                continue
            if cut.kind == "damage":
                lines = max(cut.data.count(b"\n") - 1, 0)
                msg = (f"repair: {cut.message} at byte {cut.offset} of {cut.where}; cutting "
                       f"it and the {lines} line(s) after it")
                rec.repaired = True
                rec.messages.append(msg)
                log.warning(msg)
            path = self.store.quarantine(cut.first, cut.offset, cut.data)
            self.store.truncate_segment(cut.first, cut.offset)
            self._cuts.append((cut, path.rsplit("/", 1)[-1]))
            msg = (f"cut a torn tail of {len(cut.data)} bytes at byte {cut.offset} of "
                   f"{cut.where}; kept in {path}")
            rec.torn_bytes += len(cut.data)
            rec.quarantined.append(path)
            rec.messages.append(msg)
            log.warning(msg)
            warnings.warn(msg, RecoveryWarning, stacklevel=4)
        sc = plan.tail
        if sc is not None and sc.records:
            last = sc.records[-1]
            self.last_seq, self.last_hash = last.seq, last.h
            self.last_step, self.last_ts = last.step, last.ts
            self.tail_records = sc.records
            self.seg_first = plan.tail_first
            self.seg_records = len(sc.records)
            self.seg_bytes = sc.valid_end
            if plan.tail_sealed:
                self._roll_pending = True
            else:
                self._app = self.store.open_segment(plan.tail_first)
        self.durable_seq = self.last_seq
        return rec

    def _drop_unbound_snapshot(self) -> None:
        """Keyed: remove a snapshot of the last record that has no ``snapshot`` record.

        Only the keyed record right after a snapshot binds it, so one at the last record with
        nothing after it can never be bound: a crash came between writing the file and its
        record (or its record was torn off). Once anything else is appended it would look
        planted (skipped with a warning on every resume, reported by ``verify``); a snapshot
        is a cache, so it goes. Only after a crash: a clean close never leaves one.
        """
        if self.last_seq and self.last_seq in self.store.list_snapshots():
            self.store.delete_snapshot(self.last_seq)
            msg = (f"removed the snapshot of seq {self.last_seq}: a crash came before its "
                   "snapshot record, so nothing binds it to the chain")
            self.recovery.messages.append(msg)
            log.info(msg)

    def _record_cuts(self) -> None:
        """Append one ``cut`` record per cut recovery made, so the chain itself says that and
        where history was cut (quarantine/ alone can be emptied without a trace).

        A record kind of format 3 may not go into a segment whose header says an older
        format, so the first one starts a new segment. Synced in every durability mode:
        the cut is already durable, its record must be too.
        """
        if not self._cuts:
            return
        self._roll_pending = True
        for plan, name in self._cuts:
            rec = Cut(reason="damage" if plan.kind == "damage" else "torn_tail",
                      segment=plan.first, offset=plan.offset, size=len(plan.data),
                      digest=hashlib.blake2b(plan.data, digest_size=32).hexdigest(),
                      quarantine=name, cut_seq=plan.seq, lines_after=plan.records_after,
                      **self._next_fields(None, None))
            self.recovery.cuts.append(self._write(rec))  # type: ignore[arg-type]
        self._cuts = []
        if self.durable_seq < self.last_seq:
            self._sync_now()

    # --- appending -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise JournalClosedError("journal writer is closed")
        if self._poison is not None:
            raise JournalPoisonedError(
                f"an earlier write or sync failed ({self._poison}); this writer accepts no "
                "more records", hint="reopen the journal: recovery keeps every acknowledged "
                "record") from self._poison

    def _encode(self, rec: AnyRecord) -> bytes:
        try:
            body = _encoder.encode(rec)
        except (TypeError, OverflowError) as e:
            raise NotJSONEncodableError(f"record is not JSON-encodable: {e}",
                                        hint="states and ops must be plain JSON values") from None
        line, _ = _codec.seal_line(body, self.key)
        if len(line) > MAX_RECORD_BYTES:
            raise LimitExceededError(f"record of {len(line)} bytes over the limit of "
                                     f"{MAX_RECORD_BYTES}", hint="record smaller steps")
        return line

    def _next_fields(self, step: int | None, ts: float | None) -> dict[str, Any]:
        st = self.last_step if step is None else step
        if st < self.last_step:
            raise ValueError(f"step {st} is before the last recorded step {self.last_step}; "
                             "steps never go back (fork to branch from an earlier step)")
        if ts is None:
            # A wall clock that steps back must not make the history's time go backwards
            # (time queries bisect on it): a record is never older than the one before it.
            ts = max(time.time(), self.last_ts)
        return {"seq": self.last_seq + 1, "ts": ts, "step": st, "prev": self.last_hash}

    def append_step(self, ops: list[dict[str, Any]], step: int | None = None,
                    ts: float | None = None, meta: dict[str, Any] | None = None,
                    sync: bool = True) -> Step:
        """Append a ``step`` record carrying ``ops`` (and ``meta``); returns it with its hash.

        ``sync=False`` skips the ``fdatasync`` of ``sync`` mode: the record counts as pending
        (``durable_seq`` stays behind) until :meth:`sync` returns, which the caller must call
        before acknowledging it.
        """
        with self._mutex:
            self._check_open()
            rec = Step(ops=ops, meta=meta, **self._next_fields(step, ts))
            return self._write(rec, sync)  # type: ignore[return-value]

    def append_mark(self, at: int, digest: str, step: int | None = None) -> SnapshotMark:
        with self._mutex:
            self._check_open()
            rec = SnapshotMark(at=at, digest=digest, **self._next_fields(step, None))
            self._roll_pending = True  # a snapshot starts a new segment: resume reads one
            return self._write(rec)  # type: ignore[return-value]

    def append_fork(self, ops: list[dict[str, Any]], step: int, parent: str, parent_seq: int,
                    parent_step: int, parent_hash: str, in_snapshot: bool = False) -> Fork:
        with self._mutex:
            self._check_open()
            rec = Fork(ops=ops, parent=parent, parent_seq=parent_seq, parent_step=parent_step,
                       parent_hash=parent_hash, in_snapshot=in_snapshot,
                       **self._next_fields(step, None))
            return self._write(rec)  # type: ignore[return-value]

    def append_anchor(self, first_seq: int, first_prev: str, removed: list[str]) -> Anchor:
        with self._mutex:
            self._check_open()
            rec = Anchor(first_seq=first_seq, first_prev=first_prev, removed=removed,
                         **self._next_fields(None, None))
            return self._write(rec)  # type: ignore[return-value]

    def _write(self, rec: AnyRecord, sync: bool = True) -> AnyRecord:
        line = self._encode(rec)
        try:
            if (self._app is None or self._roll_pending
                    or (self.segment_max_records and self.seg_records >= self.segment_max_records)
                    or self.seg_bytes + len(line) > self.segment_max_bytes):
                self._roll(rec)
            assert self._app is not None
            self._app.write(line)
        except JournalPoisonedError as e:  # e.g. JournalFencedError: the store said it all
            self._poison = e
            raise
        except OSError as e:
            self._poison = e
            raise JournalPoisonedError(f"write failed: {e}", seq=rec.seq,
                                       hint="the record was not acknowledged; reopen the "
                                       "journal to recover") from e
        self.seg_bytes += len(line)
        self.seg_records += 1
        self.tail_records = None
        self.last_seq, self.last_step, self.last_ts = rec.seq, rec.step, rec.ts
        self.last_hash = line[-_codec.HASH_HEX_LEN - 3 : -3].decode()
        self._after_write(sync)
        return msgspec.structs.replace(rec, h=self.last_hash)

    def _roll(self, rec: AnyRecord) -> None:
        """Start a new segment whose first record will be ``rec``."""
        # The record of a cut is made durable in every mode (see _record_cuts).
        durable = self.durability is not Durability.NONE or isinstance(rec, Cut)
        if self._app is not None:
            if durable and self._pending:
                self._sync_now()
            self._app.close()
            self._app = None
        hdr = Header(format=FORMAT_VERSION, agent_id=self.store.agent_id, first_seq=rec.seq,
                     first_step=rec.step, prev=self.last_hash, keyed=self.key is not None,
                     created=rec.ts)
        line, _ = _codec.seal_line(_encoder.encode(hdr), self.key)
        self._app = self.store.create_segment(rec.seq, line, durable)
        self.seg_first, self.seg_records, self.seg_bytes = rec.seq, 0, len(line)
        self._roll_pending = False
        self.set_hint(seg=rec.seq)
        if self.on_roll is not None:
            self.on_roll(rec.seq)

    def _after_write(self, sync: bool = True) -> None:
        if self.durability is Durability.SYNC:
            if sync:
                self._sync_now()
            else:
                self._pending += 1  # the caller syncs before acknowledging it
        elif self.durability is Durability.GROUP:
            self._pending += 1
            if (self._pending >= self.group_records
                    or (time.monotonic() - self._last_sync) * 1000 >= self.group_ms):
                self._sync_now()
            elif self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                                 name=f"agentjournal-flush-{self.store.agent_id}")
                self._flusher.start()

    def _sync_now(self) -> None:
        assert self._app is not None
        try:
            self._app.sync()
        except JournalPoisonedError as e:  # e.g. JournalFencedError from a shared store
            self._poison = e
            raise
        except OSError as e:
            self._poison = e
            raise JournalPoisonedError(
                f"fdatasync failed: {e}", seq=self.last_seq,
                hint="records after seq "
                f"{self.durable_seq} are not acknowledged; reopen the journal to recover",
            ) from e
        self._pending = 0
        self._last_sync = time.monotonic()
        self.durable_seq = self.last_seq

    def _flush_loop(self) -> None:
        interval = self.group_ms / 1000
        while not self._stop.wait(interval):
            with self._mutex:
                if self._pending and self._poison is None and not self._closed:
                    try:
                        self._sync_now()
                    except JournalPoisonedError:
                        log.error("group-commit fdatasync failed; writer poisoned")
                        return

    def set_hint(self, *, seg: int | None = None, snap: int | None = None,
                 clean: bool = False) -> None:
        """Record where the newest segment and snapshot are (a hint for the next open)."""
        self.hint = Hint(seg=self.hint.seg if seg is None else seg,
                         snap=self.hint.snap if snap is None else snap, clean=clean)
        self.store.write_hint(self.hint)

    def sync(self) -> int:
        """Make every record written so far durable; returns ``durable_seq``."""
        with self._mutex:
            self._check_open()
            if self._app is not None and self.durable_seq < self.last_seq:
                self._sync_now()
            return self.durable_seq

    @property
    def poisoned(self) -> bool:
        return self._poison is not None

    def close(self) -> None:
        """Sync what is pending (in every mode, unless poisoned) and release the lock."""
        with self._mutex:
            if self._closed:
                return
            self._stop.set()
            try:
                if (self._app is not None and self._poison is None
                        and self.durable_seq < self.last_seq):
                    self._sync_now()
            finally:
                self._closed = True
                if self._app is not None:
                    try:
                        self._app.close()
                    finally:
                        self._app = None
                if self._poison is None:
                    self.set_hint(clean=not self.left_temps)
                self.store.unlock()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)

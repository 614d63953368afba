"""Materialization: the state after any record, from the newest usable snapshot plus replay."""

from __future__ import annotations

import bisect
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .. import delta
from ..backends.base import AgentStore
from ..errors import CorruptSnapshotError, LimitExceededError, StepNotFoundError, StepPrunedError
from ..events import AnyRecord, Cut, Fork, SnapshotMark, Step
from ..journal.reader import SegmentReader
from ..snapshot.check import snapshot_mismatch
from ..snapshot.store import SnapshotDoc, decode_snapshot
from .results import SnapshotSkippedWarning

log = logging.getLogger("agentjournal")


class _ChainMismatch(Exception):
    """Internal: a snapshot does not match the journal's chain.

    ``quiet``: nothing is wrong, the snapshot is just not usable yet (a keyed journal's
    snapshot whose own record was never written: a crash came between the two).
    """

    def __init__(self, message: str, *, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


Materialized = tuple[Any, int, int, "SnapshotDoc | None"]
"""``(state, seq, step, snapshot used or None)``."""


class Materializer:
    """Builds states of one agent from its snapshots and records.

    Args:
        store: the agent's store.
        reader: the agent's record reader.
        agent_id: the agent.
        key: the chain key (keyed journals also check a snapshot's digest against its record).
        max_snapshot_bytes: the size limit of a snapshot file and of its decoded state.
        tail: returns the writer's cached scan of the last segment, if any (no re-read).
    """

    def __init__(self, store: AgentStore, reader: SegmentReader, *, agent_id: str,
                 key: bytes | None, max_snapshot_bytes: int,
                 tail: Callable[[], list[AnyRecord] | None]) -> None:
        self.store = store
        self.reader = reader
        self.agent_id = agent_id
        self.key = key
        self.max_snapshot_bytes = max_snapshot_bytes
        self._tail = tail
        self._snaps: list[int] | None = None
        """The snapshot seqs as last listed (listing a store's snapshots costs what there
        are: about a thousand in a kept 1M-step history), and when."""
        self._listed_at = 0.0

    def load_snapshot(self, seq: int) -> tuple[SnapshotDoc, str]:
        """Read and check one snapshot file (checksum, agent and seq; not its chain hash)."""
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

    def snapshot_written(self, seq: int) -> None:
        """This process stored a snapshot at ``seq`` (kept in the listing without a look)."""
        if self._snaps is not None and seq not in self._snaps:
            bisect.insort(self._snaps, seq)

    def snapshot_deleted(self, seq: int) -> None:
        """This process deleted snapshot ``seq`` (its retention): not tried again."""
        if self._snaps is not None and seq in self._snaps:
            self._snaps.remove(seq)

    def _listing(self, upto: int, fresh: bool) -> list[int]:
        """The snapshot seqs, listed again when asked, when never listed, or when the state
        asked for is past the newest one known and the listing is more than a second old (a
        live writer elsewhere may have stored newer ones: using an older one is correct,
        only slower). Deleted ones are noticed when reading them fails."""
        now = time.monotonic()
        snaps = self._snaps
        if (fresh or snaps is None
                or ((not snaps or snaps[-1] < upto) and now - self._listed_at > 1.0)):
            snaps = self._snaps = self.store.list_snapshots()
            self._listed_at = now
        return snaps

    def _candidates(self, upto: int, prefer: int | None, fresh: bool) -> Iterator[int]:
        """Snapshot seqs to try for ``upto``: ``prefer`` first (no listing), then newest
        first."""
        if prefer is not None and 0 < prefer <= upto:
            yield prefer
        snaps = self._listing(upto, fresh)
        for snap_seq in reversed(snaps[:bisect.bisect_right(snaps, upto)]):
            if snap_seq != prefer:
                yield snap_seq

    def materialize(self, upto: int, prefer: int | None = None) -> Materialized:
        """State after record ``upto``: newest valid snapshot at or before it + replay.

        ``prefer`` is a snapshot seq to try before listing the snapshots (the hint of the
        newest one, or the one just before the segment holding ``upto``).
        """
        if upto <= 0:
            return {}, 0, 0, None
        got = self._from_snapshot(upto, prefer, fresh=False)
        if got is None:
            # One listed was gone, none was usable, or the history was pruned meanwhile (a
            # reader racing a writer's retention): list again before replaying from the start.
            got = self._from_snapshot(upto, prefer, fresh=True)
        if got is not None:
            return got
        segs = self.reader.segments(refresh=True)
        if segs and segs[0] > 1:
            raise StepPrunedError(
                f"records before seq {segs[0]} were pruned and no snapshot covers seq {upto}",
                seq=upto, hint="ask for a later step")
        state, seq, step = self._replay({}, 0, 0, upto, chain_hash="")
        return state, seq, step, None

    def _from_snapshot(self, upto: int, prefer: int | None, *, fresh: bool
                       ) -> Materialized | None:
        """The state from the newest usable snapshot of the listing, or None."""
        for snap_seq in self._candidates(upto, prefer, fresh):
            try:
                doc, digest = self.load_snapshot(snap_seq)
                state, seq, step = self._replay(doc.state, doc.seq, doc.step, upto,
                                                chain_hash=doc.chain_hash, digest=digest,
                                                doc=doc)
            except _ChainMismatch as e:
                if e.quiet:
                    log.info("snapshot at seq %s not used: %s", snap_seq, e)
                    continue
                msg = f"snapshot at seq {snap_seq} not used: {e}; trying an older one"
                log.warning(msg)
                warnings.warn(msg, SnapshotSkippedWarning, stacklevel=4)
                continue
            except (CorruptSnapshotError, LimitExceededError) as e:
                msg = f"snapshot at seq {snap_seq} not used: {e}; trying an older one"
                log.warning(msg)
                warnings.warn(msg, SnapshotSkippedWarning, stacklevel=4)
                continue
            except FileNotFoundError:
                continue  # removed by retention since it was listed
            return state, seq, step, doc
        return None

    def _replay(self, state: Any, seq: int, step: int, upto: int, *, chain_hash: str,
                digest: str | None = None, doc: SnapshotDoc | None = None
                ) -> tuple[Any, int, int]:
        first = True
        records, cached = self._records(seq + 1, upto)
        for rec in records:
            if first:
                if doc is not None:
                    self._check_bound(doc, digest, seq, rec)
                elif rec.prev != chain_hash:
                    raise _ChainMismatch(f"its chain hash does not match record {seq}")
                first = False
            if isinstance(rec, Fork) and rec.in_snapshot:
                # Only reached from genesis: the state this fork starts from is in its
                # snapshot alone, and that snapshot was skipped (damaged or missing).
                raise CorruptSnapshotError(
                    f"the state forked from {rec.parent!r} is kept in snapshot {rec.seq}, "
                    "which is missing or damaged", seq=rec.seq,
                    hint="restore the snapshot file from a backup, or fork the parent again")
            if isinstance(rec, (Step, Fork)):
                # apply_in_place inserts op values as they are: records of the writer's cached
                # scan are replayed again by later calls, so they must never end up in (and be
                # mutated through) a state; apply copies of their containers.
                state = delta.apply_in_place(
                    state, delta.copy_containers(rec.ops) if cached else rec.ops)
            seq, step = rec.seq, rec.step
        if first and doc is not None:
            # Nothing replayed: check the snapshot against the record after it (its prev is
            # the chain at the snapshot; the record itself may have been pruned) or, at the
            # end of the journal, against the record it claims to follow.
            nxt = next(iter(self.reader.records(seq + 1, seq + 1)), None)
            at = next(iter(self.reader.records(seq, seq)), None) if nxt is None else None
            if nxt is not None:
                self._check_bound(doc, digest, seq, nxt)
            else:
                chain_at = at.h if at is not None else None
                why = snapshot_mismatch(doc, agent_id=self.agent_id, seq=seq, chain_at=chain_at)
                if why:
                    raise _ChainMismatch(why)
                if self.key is not None:
                    # Keyed: a snapshot with no keyed record after it is not bound to the
                    # chain: its record was never written (a crash), or it was planted.
                    raise _ChainMismatch("no snapshot record vouches for it yet", quiet=True)
        if seq < upto and self.reader.damage is None:
            raise StepNotFoundError(f"journal ends at seq {seq}, before seq {upto}", seq=upto)
        return state, seq, step

    def _check_bound(self, doc: SnapshotDoc, digest: str | None, seq: int,
                     nxt: AnyRecord) -> None:
        """The snapshot at ``seq`` against the record after it (see :func:`snapshot_mismatch`).

        In a keyed journal the record after a snapshot must be its own ``snapshot`` record
        with the same digest: anyone can copy a chain hash into a planted file, nobody
        without the key can write the record that vouches for it.
        """
        mark = nxt.digest if isinstance(nxt, SnapshotMark) and nxt.at == seq else None
        why = snapshot_mismatch(doc, agent_id=self.agent_id, seq=seq, chain_at=nxt.prev,
                                digest=digest, recorded_digest=mark)
        if why is None and self.key is not None and mark is None:
            if isinstance(nxt, Cut):
                # A crash tore its snapshot record, which recovery cut (and recorded): a
                # snapshot never bound to the chain, as at the tip, not a planted one.
                raise _ChainMismatch("its snapshot record was cut off by recovery", quiet=True)
            why = "no keyed snapshot record vouches for it (planted?)"
        if why:
            raise _ChainMismatch(why)

    def _records(self, from_seq: int, to_seq: int) -> tuple[Iterator[AnyRecord], bool]:
        """Records from the writer's scan of the last segment when it covers them, else read;
        and whether they are that shared cached scan (True) or freshly decoded (False)."""
        tail = self._tail()
        if tail and tail[0].seq <= from_seq:
            return (r for r in tail if from_seq <= r.seq <= to_seq), True
        return self.reader.records(from_seq, to_seq), False

    def snapshot_usable(self, seq: int, chain_at: str | None) -> bool:
        """Whether snapshot ``seq`` decodes and matches ``chain_at`` (:func:`snapshot_mismatch`).

        Raises:
            OSError: the snapshot could not be read (not known to be bad).
        """
        try:
            doc, _ = self.load_snapshot(seq)
        except (CorruptSnapshotError, LimitExceededError, FileNotFoundError):
            return False
        return snapshot_mismatch(doc, agent_id=self.agent_id, seq=seq, chain_at=chain_at) is None

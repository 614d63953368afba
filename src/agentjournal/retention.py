"""Retention and crash-safe compaction.

Keeps the newest ``keep_snapshots`` *usable* snapshots of an agent (a damaged snapshot, or one
that does not match the chain, never counts towards the number kept). Segments whose records
all precede the oldest kept snapshot are no longer needed to replay; they are kept (default),
lz4-compressed when ``compress_segments``, or deleted when ``prune`` (after an ``anchor`` record
is durably appended, so the chain of what remains still verifies).

When the old history stays (kept or compressed, not pruned), a sparse set of old snapshots
stays with it (:func:`sparse_picks`, ``sparse_gap`` seqs apart), so that ``state_at`` a step
long before the newest snapshots costs the same at 1k or 1M steps.

Order of operations makes every crash point safe: a new file (compressed segment, anchor) is
durable before anything it replaces is unlinked; the newest usable snapshot is never deleted;
nor is the snapshot that replay of the oldest retained record starts from; nothing after the
oldest kept snapshot is ever touched. Running it twice is the same as running it once.

Retention sees the journal only through :class:`RetentionTarget`, a small interface the
journal hands it, and costs what it removes: it lists no segment directory, reads no old
segment and stats no file but those it deletes or compresses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from . import _codec
from .events import AnyRecord, SnapshotMark

log = logging.getLogger("agentjournal")


@dataclass
class CompactReport:
    """What compaction removed or compressed (or would, with ``dry_run``)."""

    agent_id: str
    dry_run: bool
    snapshots_deleted: list[int] = field(default_factory=list)
    segments_deleted: list[int] = field(default_factory=list)
    segments_compressed: list[int] = field(default_factory=list)
    bytes_before: int = 0
    """Bytes of the agent's files before (measured only when asked: it lists every file)."""
    bytes_saved: int = 0
    anchor_seq: int | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetentionTarget(Protocol):
    """What retention needs from a journal open for writing (or read-only, for a dry run)."""

    agent_id: str

    def snapshots(self) -> list[int]:
        """Seqs of the stored snapshots, ascending."""

    def snapshot_usable(self, seq: int) -> bool:
        """Whether replay could start at snapshot ``seq`` (decodes, matches the chain).

        Raises ``OSError`` when it could not be read: not known to be bad.
        """

    def first_segment(self) -> int | None:
        """First seq of the oldest segment (None: no segment)."""

    def old_segments(self, limit: int) -> tuple[list[tuple[int, bool]], int | None]:
        """``(first_seq, sealed)`` of the segments whose records all precede seq ``limit``
        (never the one a live writer appends to), oldest first, and the first seq of the
        segment after them. Costs the segments returned, not the history."""

    def unsealed_old_segments(self, limit: int) -> list[int]:
        """Of :meth:`old_segments`, those not yet compressed (costs what it returns)."""

    def segment_prev(self, first: int) -> str:
        """The chain hash before segment ``first`` (its header's ``prev``)."""

    def segment_bytes(self, first: int) -> int:
        """Stored size of a segment."""

    def snapshot_bytes(self, seq: int) -> int:
        """Stored size of a snapshot."""

    def delete_snapshot(self, seq: int) -> None: ...

    def delete_segment(self, first: int) -> None: ...

    def seal_segment(self, first: int) -> None:
        """Durably replace segment ``first`` by its compressed form."""

    def append_anchor(self, first_seq: int, first_prev: str, removed: list[str]) -> int:
        """Append and sync an ``anchor`` record; returns its seq."""

    def location(self, first: int) -> str:
        """Name of a segment for the anchor's ``removed`` list (relative to the store)."""

    def disk_usage(self) -> int:
        """Bytes of all the agent's files (lists every file: only on request)."""


def compact(t: RetentionTarget, *, keep_snapshots: int, prune: bool = False,
            compress_segments: bool = False, dry_run: bool = False,
            measure: bool = False, sparse_gap: int | None = None) -> CompactReport:
    """Apply retention to ``t``. See the module docstring.

    Args:
        t: the journal, seen through its retention interface.
        keep_snapshots: how many usable snapshots to keep (>= 1).
        prune: delete the segments before the oldest kept snapshot, writing an anchor.
        compress_segments: lz4-compress those segments instead (when not pruning).
        dry_run: change nothing; report what would be done.
        measure: fill in ``bytes_before`` (lists and stats every file of the agent).
        sparse_gap: when the old history stays (no ``prune``), also keep old snapshots at
            least this many seqs apart (see :func:`sparse_picks`), so that time travel into
            old history replays a bounded number of records at any history length.
    """
    if keep_snapshots < 1:
        raise ValueError("keep_snapshots must be >= 1: the newest snapshot is never deleted")
    if not hasattr(t, "old_segments"):
        raise TypeError(f"compact() takes a journal's RetentionTarget, not "
                        f"{type(t).__name__}: call Journal.compact(...) on a journal")
    rep = CompactReport(agent_id=t.agent_id, dry_run=dry_run,
                        bytes_before=t.disk_usage() if measure else 0)
    snaps = t.snapshots()
    kept: list[int] = []
    for seq in reversed(snaps):
        if len(kept) == keep_snapshots:
            break
        if t.snapshot_usable(seq):
            kept.append(seq)
    if not kept:
        return rep  # no usable snapshot: nothing may go
    base = kept[-1]  # the oldest kept usable snapshot: replay can always start there
    old: list[tuple[int, bool]] = []
    keep_first: int | None = None
    if prune:
        old, keep_first = t.old_segments(base + 1)
    will_prune = prune and bool(old) and keep_first is not None
    # The history that stays starts at this seq; the snapshot before it is what its replay
    # starts from (after an earlier pruning), so it stays unless this run prunes past it.
    start = keep_first if will_prune and keep_first is not None else (t.first_segment() or 1)
    needed = start - 1 if start > 1 else None
    drop = [s for s in snaps if s < base and s != needed]
    if sparse_gap and not prune:
        picks = sparse_picks(snaps, base, sparse_gap)
        drop = [s for s in drop if s not in picks]

    # Old snapshots go first: a crash after pruning must not leave a snapshot behind that
    # refers to records no longer in the journal (verify would report it).
    for seq in drop:
        rep.snapshots_deleted.append(seq)
        try:
            rep.bytes_saved += t.snapshot_bytes(seq)
            if not dry_run:
                t.delete_snapshot(seq)
        except FileNotFoundError:
            pass
        except OSError as e:
            rep.errors.append(f"could not delete snapshot {seq}: {e}")
            log.error("retention: could not delete snapshot %s: %s", seq, e)
    # A snapshot that could not be deleted would be left referring to pruned records.
    if will_prune and keep_first is not None and not rep.errors:
        sizes = {}
        for first, _ in old:
            try:
                sizes[first] = t.segment_bytes(first)
            except OSError:
                sizes[first] = 0
        rep.segments_deleted = [f for f, _ in old]
        if dry_run:
            rep.bytes_saved += sum(sizes.values())
            return rep
        rep.anchor_seq = t.append_anchor(keep_first, t.segment_prev(keep_first),
                                         [t.location(f) for f, _ in old])
        for k, (first, _) in enumerate(old):
            try:
                t.delete_segment(first)
                rep.bytes_saved += sizes[first]
            except OSError as e:
                rep.errors.append(f"could not delete segment {first}: {e}")
                log.error("retention: could not delete segment %s: %s", first, e)
                # Oldest first, and stop at a failure: deleting on would leave a gap.
                rep.segments_deleted = rep.segments_deleted[:k]
                break
    elif compress_segments and not prune:
        for first in t.unsealed_old_segments(base + 1):
            rep.segments_compressed.append(first)
            try:
                size = t.segment_bytes(first)
                if dry_run:
                    rep.bytes_saved += size * 3 // 4
                    continue
                t.seal_segment(first)
                rep.bytes_saved += max(size - t.segment_bytes(first), 0)
            except OSError as e:
                rep.errors.append(f"could not compress segment {first}: {e}")
                log.error("retention: could not compress segment %s: %s", first, e)
    return rep


def snapshot_spacing(records: Iterable[AnyRecord]) -> int | None:
    """Steps between the journal's first two snapshot marks (None: fewer than two), the
    unit of ``snapshot_every``.

    The interval sparse retention uses for a journal opened without ``snapshot_every``: the
    first marks stay while the old segments stay (sparse snapshots are kept only then), so
    every compaction derives the same interval and retention stays idempotent. Reads only up
    to the second mark.
    """
    ats: list[int] = []
    for rec in records:
        if isinstance(rec, SnapshotMark):
            ats.append(rec.step)
            if len(ats) == 2:
                return max(ats[1] - ats[0], 1)
    return None


def sparse_picks(snaps: list[int], base: int, gap: int) -> set[int]:
    """The old snapshots (below ``base``) kept for time travel: greedily from the oldest, each
    one at least ``gap`` seqs after the previous pick.

    A pick depends only on the picks before it, so deleting the others and running again
    picks the same ones (retention stays idempotent), and new snapshots only ever add picks
    at the end. Replay of any old step then starts at most about ``gap`` records back.
    """
    picks: set[int] = set()
    last: int | None = None
    for seq in snaps:
        if seq >= base:
            break
        if last is None or seq - last >= gap:
            picks.add(seq)
            last = seq
    return picks


def seal(data: bytes) -> bytes:
    """The compressed form of a segment's bytes."""
    return _codec.compress(data)

"""Retention and crash-safe compaction.

Keeps the newest ``keep_snapshots`` snapshots of an agent. Segments whose records all precede
the oldest kept (and valid) snapshot are no longer needed to replay; they are kept (default),
lz4-compressed when ``compress_segments``, or deleted when ``prune`` (after an ``anchor`` record
is durably appended, so the chain of what remains still verifies).

Order of operations makes every crash point safe: a new file (compressed segment, anchor) is
durable before anything it replaces is unlinked; the newest snapshot is never deleted; nothing
after the oldest kept snapshot is ever touched. Running it twice is the same as running it once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import _codec
from .errors import CorruptRecordError, CorruptSnapshotError, LimitExceededError

if TYPE_CHECKING:
    from .replay.journal import Journal

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
    bytes_saved: int = 0
    anchor_seq: int | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snapshot_ok(j: Journal, seq: int, next_first: dict[int, str]) -> bool:
    """Whether snapshot ``seq`` decodes and chains to the journal (so replay can start there)."""
    try:
        doc = j.load_snapshot(seq)
    except (CorruptSnapshotError, LimitExceededError, FileNotFoundError):
        return False
    # Any other OSError (EIO...) propagates: a snapshot that could not be read is not known
    # to be bad, and taking it for bad would prune the records it still needs.
    if seq + 1 in next_first:
        return next_first[seq + 1] == doc.chain_hash
    try:
        rec = next(iter(j.reader.records(seq, seq)), None)
    except CorruptRecordError:
        return False
    return rec is not None and rec.h == doc.chain_hash


def compact(j: Journal, *, keep_snapshots: int, prune: bool = False,
            compress_segments: bool = False, dry_run: bool = False) -> CompactReport:
    """Apply retention to an open, writable journal. See the module docstring."""
    if keep_snapshots < 1:
        raise ValueError("keep_snapshots must be >= 1: the newest snapshot is never deleted")
    store = j.store
    rep = CompactReport(agent_id=j.agent_id, dry_run=dry_run, bytes_before=store.disk_usage())
    if not dry_run:
        store.remove_temps()
    snaps = store.list_snapshots()
    keep = snaps[-keep_snapshots:]
    drop = snaps[: -keep_snapshots] if len(snaps) > keep_snapshots else []
    segs = store.list_segments()
    firsts = [s for s, _ in segs]
    headers = {s: j._header(s) for s in firsts}
    next_first = {s: h.prev for s, h in headers.items()}
    # The oldest kept snapshot that is really usable bounds what old segments may go.
    base = next((s for s in keep if _snapshot_ok(j, s, next_first)), None)
    cur = j.writer.seg_first if j.writer is not None else (firsts[-1] if firsts else 0)
    old: list[tuple[int, bool]] = []
    if base is not None:
        for k, (first, sealed) in enumerate(segs):
            nxt = firsts[k + 1] if k + 1 < len(firsts) else None
            if nxt is None or nxt > base + 1 or first == cur:
                break
            old.append((first, sealed))

    sizes = {}
    for first, sealed in old:
        try:
            sizes[first] = len(store.read_segment(first)) if not sealed else 0
        except OSError:
            sizes[first] = 0

    # Old snapshots go first: a crash after pruning must not leave a snapshot behind that
    # refers to records no longer in the journal (verify would report it).
    for seq in drop:
        rep.snapshots_deleted.append(seq)
        if dry_run:
            continue
        try:
            store.delete_snapshot(seq)
        except OSError as e:
            rep.errors.append(f"could not delete snapshot {seq}: {e}")
            log.error("retention: could not delete snapshot %s: %s", seq, e)
    # A snapshot that could not be deleted would be left referring to pruned records.
    if prune and old and not rep.errors:
        rep.segments_deleted = [f for f, _ in old]
        keep_first = firsts[len(old)]
        if not dry_run:
            assert j.writer is not None
            anchor = j.writer.append_anchor(
                first_seq=keep_first, first_prev=headers[keep_first].prev,
                removed=[store.location("segment", f) for f, _ in old])
            j.writer.sync()
            rep.anchor_seq = anchor.seq
            for k, (first, _) in enumerate(old):
                try:
                    store.delete_segment(first)
                    j._headers.pop(first, None)
                except OSError as e:
                    rep.errors.append(f"could not delete segment {first}: {e}")
                    log.error("retention: could not delete segment %s: %s", first, e)
                    # Oldest first, and stop at a failure: deleting on would leave a gap.
                    rep.segments_deleted = rep.segments_deleted[:k]
                    break
    elif compress_segments:
        for first, sealed in old:
            if sealed:
                continue
            rep.segments_compressed.append(first)
            if dry_run:
                continue
            try:
                data = store.read_segment(first)
                store.seal_segment(first, _codec.compress(data))
            except OSError as e:
                rep.errors.append(f"could not compress segment {first}: {e}")
                log.error("retention: could not compress segment %s: %s", first, e)

    if not dry_run:
        j.reader.segments(refresh=True)  # segments were deleted or sealed
        rep.bytes_saved = max(rep.bytes_before - store.disk_usage(), 0)
    else:
        saved = sum(sizes.get(f, 0) for f in rep.segments_deleted)
        for seq in drop:
            try:
                saved += len(store.read_snapshot(seq, j.max_snapshot_bytes)[0])
            except OSError:
                pass
        for f in rep.segments_compressed:
            saved += sizes.get(f, 0) * 3 // 4
        rep.bytes_saved = saved
    return rep

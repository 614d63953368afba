"""Export: pass 1 verifies the journal and chooses what to copy; pass 2 copies it.

See :mod:`agentjournal.exchange` for the file layout.
"""


from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import IO

import msgspec

from .. import _codec
from .._version import __version__
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    JournalChangedError,
    LimitExceededError,
    StepNotFoundError,
    StepPrunedError,
)
from ..events import FORMAT_VERSION, Anchor, SnapshotMark
from ..journal.reader import Scan, scan
from ..replay.journal import Journal
from ..snapshot.check import snapshot_mismatch
from ..snapshot.store import decode_snapshot
from .fileformat import (
    EXPORT_FORMAT,
    ChainWalk,
    ExportReport,
    Manifest,
    Progress,
    RangeInfo,
    SegmentInfo,
    SnapshotInfo,
    SnapshotLine,
    check_key,
    encoder,
    segment_pieces,
)

__all__ = ["export_journal"]

_record_encoder = msgspec.json.Encoder()
"""Encodes the one record an export writes (a range's anchor), as the journal writer does."""

_Steps = tuple[int | None, int | None]
"""A range's ``(from_step, to_step)``; None: from the start, or to the end."""

_ATTEMPTS = 5
"""Exports of a live journal tried before giving up when retention keeps removing files."""


# --------------------------------------------------------------------------------- export


def _tool() -> str:
    return f"agentjournal {__version__}"


@dataclass
class _Plan:
    """What pass 1 of an export found: what to copy, and the manifest."""

    rep: ExportReport
    infos: list[SegmentInfo] = field(default_factory=list)
    snaps: list[tuple[SnapshotInfo, str]] = field(default_factory=list)
    """The snapshots to write, with the digest of the content checked."""
    copy: list[tuple[int, bool, int]] = field(default_factory=list)
    """``(first seq, sealed, bytes)`` of each segment's verbatim prefix to copy."""
    tail: bytes = b""
    """A line written after the last segment's copied bytes (a range export's anchor)."""
    range: RangeInfo | None = None


@dataclass(slots=True)
class _Seg:
    """One segment as pass 1 checked it."""

    first: int
    sealed: bool
    prev: str
    """Its header's ``prev``: the hash of the record before it."""
    bytes: int
    records: int
    last_seq: int
    last_step: int
    last_hash: str
    first_step: int
    """The step of its first record."""


@dataclass
class _Walk:
    """Pass 1's findings over the segments it read (all of them, or up to a range's end)."""

    segs: list[_Seg] = field(default_factory=list)
    at: dict[int, str] = field(default_factory=dict)
    """Hash of record ``seq`` for each snapshot seq (the chain the snapshot must match)."""
    marks: dict[int, tuple[int, str]] = field(default_factory=dict)
    """``at -> (seq of the snapshot record, digest)``."""
    anchors: list[Anchor] = field(default_factory=list)
    stopped: bool = False
    """A range's end was found before the journal's (a record after ``to_step``)."""
    start_seq: int | None = None
    """A range's first record: the first with a step at or after ``from_step``."""
    cut: tuple[int, int, int, int, str, float] | None = None
    """A range's last record: ``(segment index, end offset, seq, step, hash, ts)``."""


class _Changed(Exception):
    """Internal: a file read in pass 1 was removed or rewritten before pass 2 copied it."""


def export_journal(journal: Journal, out: IO[bytes], *, snapshots: bool = True,
                   progress: Progress | None = None, from_step: int | None = None,
                   to_step: int | None = None) -> ExportReport:
    """Write ``journal`` (or the steps ``from_step..to_step`` of it) to ``out`` as one
    export file.

    The journal may be live (a writer appending, and pruning, in another process): what is
    exported is a consistent prefix, every complete and valid record up to the moment each
    segment is read. When retention removes a file between reading and copying it, the export
    starts over (``out`` must then be seekable; it is rewound and truncated).

    A **range** (``from_step`` or ``to_step`` given) is exported as pruning and a cut would
    leave the journal: the records from the newest usable snapshot at or before the first
    record of ``from_step`` (or from the journal's own start) up to the last record of
    ``to_step``, byte for byte, with that snapshot, and, when this does not start at seq 1, one
    ``anchor`` record written by the export (sealed with the journal's key) that vouches for
    the records before it. ``agentjournal import`` verifies and imports it like any export;
    the manifest's ``range`` (and the report's) says what it holds. Only the range's segments
    are read and verified. See ``docs/cli.md`` for what such a file proves.

    Args:
        journal: an open journal (read-only is enough).
        out: a binary file to write to.
        snapshots: include every usable snapshot. Without it, a history that does not start
            at seq 1 still carries the snapshot it starts from.
        progress: called with ``(bytes done, bytes total)``.
        from_step: the first step of a range (None: from the journal's start).
        to_step: the last step of a range (None, or past the end: up to the last step).

    Raises:
        CorruptRecordError: the journal does not verify (run ``agentjournal verify``).
        JournalChangedError: a live writer's retention kept removing the files being
            exported (or ``out`` cannot be rewound); nothing is damaged, try again.
        StepNotFoundError: ``from_step`` is after the journal's last step.
        StepPrunedError: ``from_step`` is before the history the journal keeps.
        ValueError: the journal was opened with an empty key; ``to_step < from_step``.
    """
    if journal.key is not None:
        check_key(journal.key)
    if from_step is not None and to_step is not None and to_step < from_step:
        raise ValueError(f"the range ends (step {to_step}) before it starts (step {from_step})")
    if (from_step is not None and from_step < 0) or (to_step is not None and to_step < 0):
        raise ValueError("steps are >= 0")
    ranged = from_step is not None or to_step is not None
    try:
        start: int | None = out.tell() if _can_seek(out) else None
    except (OSError, io.UnsupportedOperation):
        start = None
    for _attempt in range(_ATTEMPTS):
        try:
            plan = _plan(journal, snapshots, (from_step, to_step) if ranged else None)
        except FileNotFoundError:
            continue  # a file went between listing and reading: list again
        try:
            return _write(journal, plan, out, progress)
        except _Changed as e:
            if start is None:
                raise JournalChangedError(
                    f"{e} while exporting {journal.agent_id!r}",
                    hint="export to a file (-o FILE) rather than a pipe, or when retention is "
                    "not running") from None
            out.seek(start)
            out.truncate()
    raise JournalChangedError(
        f"the journal of {journal.agent_id!r} kept changing under the export "
        f"({_ATTEMPTS} attempts)", hint="try again, or export while retention is not running")


def _walk(journal: Journal, snap_seqs: set[int], steps: _Steps | None,
          segs: list[tuple[int, bool]]) -> _Walk:
    """Verify each segment and find how much of it is complete (for a range, read segments
    until the range's end).

    Keeps per segment only its first seq, its chain hash before it and its size; of the
    records, only the hashes and snapshot digests at the snapshots' seqs, the anchors, and a
    range's bounds.
    """
    store = journal.store
    key = journal.key
    found = _Walk()
    lo, hi = steps if steps is not None else (None, None)
    done = False
    prev: str | None = None
    expect: int | None = None
    for k, (first, sealed) in enumerate(segs):  # k: the index in ``found.segs`` too
        last_seg = k == len(segs) - 1
        where = store.location("segment", first)
        if expect is not None and first != expect:
            raise CorruptRecordError(f"records {expect}..{first - 1} are missing", path=where,
                                     seq=expect, hint="run 'agentjournal verify' for details")
        walk = ChainWalk(first_seq=first, agent_id=journal.agent_id, key=key, where=where,
                         prev=prev)

        first_step: int | None = None

        def visit(sc: Scan, k: int = k) -> None:
            nonlocal done, first_step
            if first_step is None and sc.records:
                first_step = sc.records[0].step
            for rec, end in zip(sc.records, sc.ends, strict=True):
                if done:
                    return
                if rec.seq in snap_seqs:
                    found.at[rec.seq] = rec.h
                if isinstance(rec, SnapshotMark):
                    found.marks[rec.at] = (rec.seq, rec.digest)
                elif isinstance(rec, Anchor):
                    found.anchors.append(rec)
                if steps is None:
                    continue
                if hi is not None and rec.step > hi:
                    done = found.stopped = True  # steps never go back: the range ended
                    return
                if found.start_seq is None and (lo is None or rec.step >= lo):
                    found.start_seq = rec.seq
                found.cut = (k, end, rec.seq, rec.step, rec.h, rec.ts)

        for offset, piece in segment_pieces(store, first, sealed):
            sc = walk.feed(offset, piece)
            visit(sc)
            if sc.error is not None:
                # Whether it is a torn tail depends on what follows, beyond this piece.
                rest = store.read_segment(first, sc.error.offset or 0)
                if rest:
                    sc = scan(rest, first_seq=first, agent_id=journal.agent_id, key=key,
                              where=where, offset=sc.error.offset or 0,
                              next_seq=walk.next_seq, prev=walk.prev, header=walk.header)
                if sc.error is not None and not (sc.tail and last_seg):
                    raise sc.error
                break
            if done:
                break
        if walk.header is None or not walk.records:
            if last_seg:
                break  # a segment being started by a live writer
            raise CorruptRecordError("segment has no records", path=where,
                                     hint="run 'agentjournal verify' for details")
        if first - 1 in snap_seqs:
            found.at.setdefault(first - 1, walk.header.prev)
        found.segs.append(_Seg(first=first, sealed=sealed, prev=walk.header.prev,
                               bytes=walk.valid_end, records=walk.records,
                               last_seq=walk.last_seq, last_step=walk.last_step,
                               last_hash=walk.last_hash,
                               first_step=first_step if first_step is not None else 0))
        prev, expect = walk.last_hash, walk.last_seq + 1
        if done:
            break
    return found


def _plan(journal: Journal, with_snapshots: bool, steps: _Steps | None) -> _Plan:
    """Pass 1: verify the segments, choose what to copy and the snapshots."""
    store = journal.store
    rep = ExportReport(agent_id=journal.agent_id, keyed=journal.key is not None)
    plan = _Plan(rep=rep)
    snap_seqs = set(store.list_snapshots())
    segs = store.list_segments()
    start = _range_start(journal, segs, snap_seqs, steps[0]) if steps is not None else 0
    found = _walk(journal, snap_seqs, steps, segs[start:])
    chosen = found.segs
    end_seq = chosen[-1].last_seq if chosen else 0
    if steps is not None and chosen:
        try:
            chosen, end_seq = _select_range(journal, found, steps, plan, origin=start == 0)
        except _Rewalk:  # the snapshot it was to start from cannot be used: read it all
            found = _walk(journal, snap_seqs, steps, segs)
            chosen, end_seq = _select_range(journal, found, steps, plan, origin=True)
    for i, seg in enumerate(chosen):
        nbytes, records = seg.bytes, seg.records
        if i == len(chosen) - 1 and steps is not None:
            assert found.cut is not None
            nbytes, records = found.cut[1], end_seq - seg.first + 1
        plan.copy.append((seg.first, seg.sealed, nbytes))
        tail = plan.tail if i == len(chosen) - 1 else b""  # the anchor ends the last one
        plan.infos.append(SegmentInfo(first_seq=seg.first, lines=records + 1 + bool(tail),
                                      bytes=nbytes + len(tail), sealed=seg.sealed))
        rep.records += records
    if chosen:
        rep.first_seq = chosen[0].first
        last = chosen[-1]
        rep.last_seq, rep.last_step, rep.last_hash = (last.last_seq, last.last_step,
                                                      last.last_hash)
        if found.cut is not None and steps is not None:
            rep.last_seq, rep.last_step, rep.last_hash = found.cut[2], found.cut[3], found.cut[4]
        if plan.range is not None and plan.range.anchor_seq:
            rep.records += 1
            rep.last_seq, rep.last_hash = plan.range.anchor_seq, _line_hash(plan.tail)
    lo = rep.first_seq - 1 if rep.first_seq else 0
    usable = [s for s in sorted(snap_seqs) if lo <= s <= end_seq and s >= 1]
    needed = rep.first_seq - 1 if rep.first_seq > 1 else None
    for seq in usable:
        if not with_snapshots and seq != needed:
            continue
        mark = _mark_in(found, seq, rep.first_seq, end_seq)
        if steps is not None and journal.key is not None and mark is None:
            continue  # its snapshot record is after the range: not the file's to vouch for
        why, digest, compressed = _check_snapshot(journal, seq, found.at.get(seq), mark)
        if why is not None:
            rep.skipped.append({"seq": seq, "reason": why})
            continue
        plan.snaps.append((SnapshotInfo(seq=seq, compressed=compressed), digest))
    if needed is not None and not plan.snaps:
        # A pruned history needs a snapshot to start from. (Between retention's deletion of
        # an old snapshot and its pruning of the segments before the new one, the oldest
        # records have none, yet the journal is whole from the new snapshot on.)
        if set(store.list_snapshots()) != snap_seqs or store.list_segments()[:1] != segs[:1]:
            raise FileNotFoundError("retention ran while listing")  # list again
        why = next((s["reason"] for s in rep.skipped if s["seq"] == needed), "missing")
        raise CorruptSnapshotError(
            f"history starts at seq {rep.first_seq} and no snapshot to rebuild it from can "
            f"be used (seq {needed}: {why})", seq=needed,
            hint="run 'agentjournal verify'; the journal cannot be rebuilt without one")
    if plan.range is not None:
        rep.range = msgspec.structs.asdict(plan.range)
    return plan


def _mark_in(found: _Walk, seq: int, first: int, last: int) -> str | None:
    """The digest the snapshot record of snapshot ``seq`` gives, if that record is within
    seqs ``first..last`` (it is for a whole journal)."""
    got = found.marks.get(seq)
    if got is None or not first <= got[0] <= last:
        return None
    return got[1]


def _range_start(journal: Journal, segs: list[tuple[int, bool]], snap_seqs: set[int],
                 lo: int | None) -> int:
    """Index of the segment a range's walk may start at: the newest one, at or before the
    first that can hold step ``lo``, that follows a snapshot (0: the journal's start).

    Segments wholly before the range are not read (their headers say where steps start):
    a range near the end of a long journal costs its own segments, and damage before it does
    not keep it from being exported.
    """
    if lo is None:
        return 0
    try:
        k = 0
        while k + 1 < len(segs) and journal.first_step_of_segment(segs[k + 1][0]) < lo:
            k += 1  # every record of segment k is of a step before ``lo``
    except (CorruptRecordError, OSError):
        return 0  # an unreadable header: read it all (and report it)
    while k > 0 and segs[k][0] - 1 not in snap_seqs:
        k -= 1
    return k


class _Rewalk(Exception):
    """Internal: the range's walk began at a snapshot that cannot be used."""


def _select_range(journal: Journal, found: _Walk, steps: _Steps, plan: _Plan, *,
                  origin: bool) -> tuple[list[_Seg], int]:
    """The segments of a range export and its last seq; sets ``plan.range`` and
    ``plan.tail`` (the anchor record, when the range does not start at seq 1).

    ``origin``: ``found`` starts at the journal's first segment (else at one that follows a
    snapshot, which must then be usable, or :class:`_Rewalk` is raised).
    """
    lo, hi = steps
    segs = found.segs
    first_step = segs[0].first_step
    pruned = origin and segs[0].first > 1
    if found.start_seq is None and not found.stopped:
        raise StepNotFoundError(
            f"{journal.agent_id!r} ends at step {segs[-1].last_step}, before step {lo}",
            hint=f"export from step {segs[-1].last_step} or before")
    if pruned and lo is not None and lo < first_step:
        raise StepPrunedError(f"steps before {first_step} of {journal.agent_id!r} were pruned",
                              hint=f"export from step {first_step} on")
    if found.cut is None:
        raise StepNotFoundError(f"{journal.agent_id!r} has no step up to step {hi}",
                                hint=f"its history starts at step {first_step}")
    k_end, _off, end_seq, end_step, end_hash, end_ts = found.cut
    start_seq = min(found.start_seq or end_seq, end_seq)
    # The newest segment start at or before the range whose previous record is a usable
    # snapshot (segments roll at snapshots), else the journal's own start.
    pick: int | None = 0 if origin else None
    for i in range(k_end, 0 if origin else -1, -1):
        first = segs[i].first
        if first > start_seq or first - 1 not in found.at:
            continue
        why, _, _ = _check_snapshot(journal, first - 1, found.at.get(first - 1),
                                    _mark_in(found, first - 1, first, end_seq))
        if why is None:
            pick = i
            break
    if pick is None:
        raise _Rewalk
    chosen = segs[pick:k_end + 1]
    first = chosen[0].first
    anchor_seq = 0
    vouched = any(a.seq <= end_seq and a.first_seq == first and a.first_prev == chosen[0].prev
                  for a in found.anchors)
    if first > 1 and not vouched:
        # What pruning would write: the records before ``first`` are not here, and the chain
        # from the hash before them on is. It is the export's record, not the journal's.
        anchor_seq = end_seq + 1
        rec = Anchor(seq=anchor_seq, ts=max(time.time(), end_ts), step=end_step,
                     prev=end_hash, first_seq=first, first_prev=chosen[0].prev)
        plan.tail, _ = _codec.seal_line(_record_encoder.encode(rec), journal.key)
    plan.range = RangeInfo(
        from_step=first_step if lo is None else lo,
        to_step=hi if hi is not None and found.stopped else end_step,
        first_step=segs[pick].first_step, base_seq=first - 1, end_seq=end_seq,
        anchor_seq=anchor_seq)
    return chosen, end_seq


def _line_hash(line: bytes) -> str:
    """The ``h`` of a sealed journal line."""
    return line[-_codec.HASH_HEX_LEN - 3: -3].decode()


def _check_snapshot(journal: Journal, seq: int, chain_at: str | None, mark: str | None
                    ) -> tuple[str | None, str, bool]:
    """``(why it is not used or None, its digest, compressed)`` of snapshot ``seq``.

    Raises:
        FileNotFoundError: it was removed meanwhile (retention): start again.
    """
    store = journal.store
    where = store.location("snapshot", seq)
    limit = journal.max_snapshot_bytes
    try:
        raw, compressed = store.read_snapshot(seq, limit)
        doc, digest = decode_snapshot(raw, compressed, where=where, limit=limit)
    except (CorruptSnapshotError, LimitExceededError) as e:
        return e.message, "", False
    why = snapshot_mismatch(doc, agent_id=journal.agent_id, seq=seq, chain_at=chain_at,
                            digest=digest, recorded_digest=mark)
    if why is None and journal.key is not None and mark is None:
        # Keyed: a snapshot is bound to the keyed record written after it; one without
        # (planted by someone without the key) is not the journal's.
        why = "no snapshot record vouches for it"
    return why, digest, compressed


def _write(journal: Journal, plan: _Plan, out: IO[bytes], progress: Progress | None
           ) -> ExportReport:
    """Pass 2: the manifest, then the bytes checked in pass 1, then the snapshots."""
    store = journal.store
    rep = plan.rep
    manifest = Manifest(
        export_format=EXPORT_FORMAT, format=FORMAT_VERSION, agent_id=journal.agent_id,
        keyed=rep.keyed, created=time.time(), tool=_tool(), records=rep.records,
        first_seq=rep.first_seq, last_seq=rep.last_seq, last_step=rep.last_step,
        last_hash=rep.last_hash, segments=plan.infos, snapshots=[s for s, _ in plan.snaps],
        range=plan.range)
    line, _ = _codec.seal_line(encoder.encode(manifest), journal.key)
    total = len(line) + sum(i.bytes for i in plan.infos)
    done = 0
    out.write(line)
    rep.bytes = len(line)
    # Segments only grow (or are sealed with the same content), so the prefix checked in
    # pass 1 is what is copied; one that went (pruned) means starting over.
    for first, sealed, size in plan.copy:
        copied = 0
        try:
            for _offset, piece in segment_pieces(store, first, sealed):
                piece = piece[: size - copied]
                out.write(piece)
                copied += len(piece)
                if copied >= size:
                    break
        except FileNotFoundError:
            raise _Changed(f"segment {first} was removed") from None
        if copied != size:
            raise _Changed(f"segment {first} shrank")
        rep.bytes += copied
        done += copied
        if progress is not None:
            progress(done, total)
    out.write(plan.tail)  # a range's anchor, counted in its last segment's bytes
    rep.bytes += len(plan.tail)
    for snap, digest in plan.snaps:
        data = _snapshot_line(journal, snap, digest)
        out.write(data)
        rep.bytes += len(data)
    rep.segments, rep.snapshots = len(plan.infos), len(plan.snaps)
    if progress is not None:
        progress(total, total)
    return rep


def _snapshot_line(journal: Journal, snap: SnapshotInfo, digest: str) -> bytes:
    """The export line of a snapshot checked in pass 1 (its digest proves it unchanged)."""
    store = journal.store
    limit = journal.max_snapshot_bytes
    try:
        raw, compressed = store.read_snapshot(snap.seq, limit)
        if compressed:
            raw = _codec.decompress(raw, limit, what=store.location("snapshot", snap.seq))
    except (FileNotFoundError, ValueError):
        raise _Changed(f"snapshot {snap.seq} was removed") from None
    nl = raw.find(b"\n")
    if nl < 0 or _codec.content_digest(raw[:nl]) != digest:
        raise _Changed(f"snapshot {snap.seq} was rewritten")
    entry = SnapshotLine(seq=snap.seq, compressed=snap.compressed, blake2b=digest,
                         doc=msgspec.Raw(raw[:nl]))
    return encoder.encode(entry) + b"\n"


def _can_seek(f: IO[bytes]) -> bool:
    """Whether ``f`` can be rewound (Python 3.10's ``SpooledTemporaryFile`` has no
    ``seekable()``, though it seeks)."""
    probe = getattr(f, "seekable", None)
    if probe is not None:
        return bool(probe())
    try:
        f.tell()
    except (OSError, ValueError, AttributeError):
        return False
    return True

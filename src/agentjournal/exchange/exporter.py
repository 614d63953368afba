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
)
from ..events import FORMAT_VERSION, AnyRecord, SnapshotMark
from ..journal.reader import scan
from ..replay.journal import Journal
from ..snapshot.check import snapshot_mismatch
from ..snapshot.store import decode_snapshot
from .fileformat import (
    EXPORT_FORMAT,
    ChainWalk,
    ExportReport,
    Manifest,
    Progress,
    SegmentInfo,
    SnapshotInfo,
    SnapshotLine,
    check_key,
    encoder,
    segment_pieces,
)

__all__ = ["export_journal"]

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


class _Changed(Exception):
    """Internal: a file read in pass 1 was removed or rewritten before pass 2 copied it."""


def export_journal(journal: Journal, out: IO[bytes], *, snapshots: bool = True,
                   progress: Progress | None = None) -> ExportReport:
    """Write ``journal`` to ``out`` as one export file.

    The journal may be live (a writer appending, and pruning, in another process): what is
    exported is a consistent prefix, every complete and valid record up to the moment each
    segment is read. When retention removes a file between reading and copying it, the export
    starts over (``out`` must then be seekable; it is rewound and truncated).

    Args:
        journal: an open journal (read-only is enough).
        out: a binary file to write to.
        snapshots: include every usable snapshot. Without it, a pruned journal still
            carries its oldest snapshot, which it needs to rebuild any state.
        progress: called with ``(bytes done, bytes total)``.

    Raises:
        CorruptRecordError: the journal does not verify (run ``agentjournal verify``).
        JournalChangedError: a live writer's retention kept removing the files being
            exported (or ``out`` cannot be rewound); nothing is damaged, try again.
        ValueError: the journal was opened with an empty key.
    """
    if journal.key is not None:
        check_key(journal.key)
    try:
        start: int | None = out.tell() if _can_seek(out) else None
    except (OSError, io.UnsupportedOperation):
        start = None
    for _attempt in range(_ATTEMPTS):
        try:
            plan = _plan(journal, snapshots)
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


def _plan(journal: Journal, with_snapshots: bool) -> _Plan:
    """Pass 1: verify each segment, find how much of it is complete, choose the snapshots.

    Keeps per segment only its first seq, its chain hash before it and its size; of the
    records, only the hashes and snapshot digests at the snapshots' seqs.
    """
    store = journal.store
    key = journal.key
    rep = ExportReport(agent_id=journal.agent_id, keyed=key is not None)
    plan = _Plan(rep=rep)
    snap_seqs = set(store.list_snapshots())
    at: dict[int, str] = {}
    """Hash of record ``seq`` for each snapshot seq (the chain the snapshot must match)."""
    marks: dict[int, str] = {}
    prev: str | None = None
    expect: int | None = None
    segs = store.list_segments()
    for k, (first, sealed) in enumerate(segs):
        last_seg = k == len(segs) - 1
        where = store.location("segment", first)
        if expect is not None and first != expect:
            raise CorruptRecordError(f"records {expect}..{first - 1} are missing", path=where,
                                     seq=expect, hint="run 'agentjournal verify' for details")
        walk = ChainWalk(first_seq=first, agent_id=journal.agent_id, key=key, where=where,
                         prev=prev)

        def visit(recs: list[AnyRecord]) -> None:
            for rec in recs:
                if rec.seq in snap_seqs:
                    at[rec.seq] = rec.h
                if isinstance(rec, SnapshotMark):
                    marks[rec.at] = rec.digest

        for offset, piece in segment_pieces(store, first, sealed):
            sc = walk.feed(offset, piece)
            visit(sc.records)
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
        if walk.header is None or not walk.records:
            if last_seg:
                break  # a segment being started by a live writer
            raise CorruptRecordError("segment has no records", path=where,
                                     hint="run 'agentjournal verify' for details")
        if first - 1 in snap_seqs:
            at.setdefault(first - 1, walk.header.prev)
        plan.infos.append(SegmentInfo(first_seq=first, lines=walk.records + 1,
                                      bytes=walk.valid_end, sealed=sealed))
        prev, expect = walk.last_hash, walk.last_seq + 1
        rep.records += walk.records
        rep.last_seq, rep.last_step, rep.last_hash = (walk.last_seq, walk.last_step,
                                                      walk.last_hash)
        if not rep.first_seq:
            rep.first_seq = walk.first_rec_seq
    lo = rep.first_seq - 1 if rep.first_seq else 0
    usable = [s for s in sorted(snap_seqs) if lo <= s <= rep.last_seq and s >= 1]
    needed = rep.first_seq - 1 if rep.first_seq > 1 else None
    for seq in usable:
        if not with_snapshots and seq != needed:
            continue
        why, digest, compressed = _check_snapshot(journal, seq, at.get(seq), marks.get(seq))
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
    return plan


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
        last_hash=rep.last_hash, segments=plan.infos, snapshots=[s for s, _ in plan.snaps])
    line, _ = _codec.seal_line(encoder.encode(manifest), journal.key)
    total = len(line) + sum(i.bytes for i in plan.infos)
    done = 0
    out.write(line)
    rep.bytes = len(line)
    # Segments only grow (or are sealed with the same content), so the prefix checked in
    # pass 1 is what is copied; one that went (pruned) means starting over.
    for info in plan.infos:
        copied = 0
        try:
            for _offset, piece in segment_pieces(store, info.first_seq, info.sealed):
                piece = piece[: info.bytes - copied]
                out.write(piece)
                copied += len(piece)
                if copied >= info.bytes:
                    break
        except FileNotFoundError:
            raise _Changed(f"segment {info.first_seq} was removed") from None
        if copied != info.bytes:
            raise _Changed(f"segment {info.first_seq} shrank")
        rep.bytes += copied
        done += copied
        if progress is not None:
            progress(done, total)
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

"""Full verification of a journal: every record, the chain across segments, every snapshot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CorruptSnapshotError, JournalError, LimitExceededError
from ..events import Anchor, Cut, SnapshotMark
from ..journal.reader import scan

if TYPE_CHECKING:
    from .journal import Journal


@dataclass
class Problem:
    """One thing wrong, with where it is."""

    kind: str
    """``corrupt``, ``torn_tail``, ``missing_segment``, ``chain_break``, ``unanchored``,
    ``snapshot``, ``unreadable`` or ``rollback`` (the journal does not reach, or does not
    match, a head anchored off the store)."""
    message: str
    path: str | None = None
    offset: int | None = None
    seq: int | None = None


@dataclass
class CutInfo:
    """One ``cut`` record: recovery cut bytes off the journal when it was opened."""

    seq: int
    """Seq of the ``cut`` record."""
    ts: float
    reason: str
    segment: int
    offset: int
    size: int
    digest: str
    quarantine: str
    kept: bool
    """The quarantine file it names is still there."""


@dataclass
class VerifyReport:
    """What :meth:`Journal.verify` checked and found."""

    agent_id: str
    records: int = 0
    segments: int = 0
    snapshots: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_step: int = 0
    last_hash: str = ""
    """Hash of the last record: with ``last_seq``, the head to keep off the store."""
    chain_ok: bool = True
    snapshots_ok: bool = True
    problems: list[Problem] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    """Bytes recovery cut off this journal, kept for inspection (a crash's torn tail, or a
    repair). Not a problem of the journal as it is, but never to be passed over in silence."""
    cuts: list[CutInfo] = field(default_factory=list)
    """The cuts recorded in the chain (``cut`` records, format 3), oldest first."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def verify_journal(j: Journal, progress: Callable[[int, int], None] | None) -> VerifyReport:
    store = j.store
    rep = VerifyReport(agent_id=j.agent_id)
    rep.quarantined = store.list_quarantine()
    kept = {q.rsplit("/", 1)[-1] for q in rep.quarantined}
    segs = store.list_segments()
    snaps = set(store.list_snapshots())
    rep.segments, rep.snapshots = len(segs), len(snaps)
    seq_hash: dict[int, str] = {}
    after: dict[int, object] = {}
    """The record right after each snapshot's seq (keyed: it must be the snapshot's record)."""
    marks: dict[int, str] = {}
    anchors: list[Anchor] = []
    prev: str | None = None
    expect: int | None = None
    first_prev: str | None = None
    seg_prev: dict[int, str] = {}

    def chain_problem(kind: str, msg: str, **kw: Any) -> None:
        rep.chain_ok = False
        rep.problems.append(Problem(kind, msg, **kw))

    for i, (first, _sealed) in enumerate(segs):
        where = store.location("segment", first)
        if expect is not None and first != expect:
            if first > expect:
                chain_problem("missing_segment", f"records {expect}..{first - 1} are missing "
                              "(a segment was deleted)", path=where, seq=expect)
            else:
                chain_problem("chain_break", f"segment starts at seq {first}, overlapping the "
                              f"previous one (expected {expect})", path=where, seq=first)
            prev = None
        try:
            data = store.read_segment(first)
        except (OSError, JournalError, ValueError) as e:
            chain_problem("unreadable", f"cannot read segment: {e}", path=where,
                          offset=e.offset if isinstance(e, JournalError) else None)
            prev, expect = None, None
            continue
        sc = scan(data, first_seq=first, agent_id=j.agent_id, key=j.key, where=where, prev=prev)
        if sc.header is not None:
            seg_prev[first] = sc.header.prev
            if i == 0:
                first_prev = sc.header.prev
        rep.records += len(sc.records)
        for rec in sc.records:
            if rec.seq in snaps:
                seq_hash[rec.seq] = rec.h
            if rec.seq - 1 in snaps:
                after[rec.seq - 1] = rec
            if isinstance(rec, SnapshotMark):
                marks[rec.at] = rec.digest
            elif isinstance(rec, Anchor):
                anchors.append(rec)
            elif isinstance(rec, Cut):
                rep.cuts.append(CutInfo(
                    seq=rec.seq, ts=rec.ts, reason=rec.reason, segment=rec.segment,
                    offset=rec.offset, size=rec.size, digest=rec.digest,
                    quarantine=rec.quarantine, kept=rec.quarantine in kept))
        if sc.records:
            rep.last_seq, rep.last_step = sc.records[-1].seq, sc.records[-1].step
            rep.last_hash = sc.records[-1].h
            if not rep.first_seq:
                rep.first_seq = sc.records[0].seq
        if sc.error is not None:
            err = sc.error
            if sc.tail and i == len(segs) - 1:
                chain_problem("torn_tail", f"torn tail of {len(data) - sc.valid_end} bytes "
                              f"({err.message}); it is cut off when the journal is next opened "
                              "for writing", path=where, offset=err.offset, seq=sc.last_seq + 1)
            else:
                chain_problem("corrupt", err.message, path=where, offset=err.offset, seq=err.seq)
        elif sc.partial:
            # Only the last segment can be mid-write; elsewhere a cut line is corruption.
            chain_problem("torn_tail" if i == len(segs) - 1 else "corrupt",
                          f"incomplete last line of {sc.partial} bytes",
                          path=where, offset=sc.valid_end)
        elif not data and i < len(segs) - 1:
            chain_problem("corrupt", "segment is empty (no header, no records)", path=where,
                          offset=0, seq=first)
        if sc.header is not None:
            prev = sc.last_hash if sc.records else sc.header.prev
            expect = sc.last_seq + 1 if sc.records else first
        elif data:
            prev, expect = None, None
        # (an empty file: keep expecting the records it should hold, so the gap is reported)
        if sc.error is not None and not sc.tail:
            prev, expect = None, None
        if progress is not None:
            progress(i + 1, len(segs))

    if segs and segs[0][0] != 1:
        # A crash part-way through pruning leaves some of the segments an anchor removes: it
        # still vouches for them when the segment it names continues the verified chain.
        ok = any(a.first_seq >= segs[0][0] and seg_prev.get(a.first_seq) == a.first_prev
                 for a in anchors)
        if not ok:
            chain_problem("unanchored", f"history starts at seq {segs[0][0]} but no anchor "
                          "record vouches for the removed records",
                          path=store.location("segment", segs[0][0]), seq=segs[0][0])
    elif segs and first_prev not in (None, ""):
        chain_problem("chain_break", "first segment does not start the chain",
                      path=store.location("segment", 1), seq=1)

    for seq in sorted(snaps):
        where = store.location("snapshot", seq)
        try:
            data, compressed = store.read_snapshot(seq, j.max_snapshot_bytes)
            from ..snapshot.store import decode_snapshot

            doc, digest = decode_snapshot(data, compressed, where=where,
                                          limit=j.max_snapshot_bytes)
        except (CorruptSnapshotError, LimitExceededError, OSError) as e:
            rep.snapshots_ok = False
            rep.problems.append(Problem("snapshot", f"unreadable snapshot: {e}", path=where,
                                        seq=seq))
            continue
        msg = None
        if doc.seq != seq or doc.agent_id != j.agent_id:
            msg = f"snapshot holds agent {doc.agent_id!r} seq {doc.seq}"
        elif seq not in seq_hash and seq + 1 not in seg_prev:
            msg = f"snapshot refers to record {seq}, which is not in the journal"
        elif seq_hash.get(seq, seg_prev.get(seq + 1)) != doc.chain_hash:
            msg = f"snapshot chain hash does not match record {seq}"
        elif seq in marks and marks[seq] != digest:
            msg = "snapshot content differs from the digest recorded in the journal"
        elif (j.key is not None and seq not in marks and seq in after
              and not isinstance(after[seq], Cut)):
            # Keyed: only the keyed record written right after a snapshot binds it (anyone can
            # copy a chain hash). None yet at the tip, or torn off (a `cut` follows): a crash.
            msg = "no keyed snapshot record vouches for this snapshot (planted?); it is not used"
        if msg:
            rep.snapshots_ok = False
            rep.problems.append(Problem("snapshot", msg, path=where, seq=seq))
    return rep

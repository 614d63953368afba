"""The parts of an export file shared by export and import: its lines, its reports, and the
piecewise chain walk that both use to check segments with bounded memory.

See :mod:`agentjournal.exchange` for the layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from ..backends.base import AgentStore
from ..events import Header
from ..journal.reader import MAX_RECORD_BYTES, Scan, scan

EXPORT_FORMAT = 1
"""Version of the export file layout written by this code."""

MANIFEST_KIND = "agentjournal-export"
SNAPSHOT_KIND = "snapshot-file"

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called as work advances (units are bytes)."""

PIECE_BYTES = 1 << 20
"""Bytes of a segment checked (and held) at once, besides one record that is longer."""

SNAPSHOT_LINE_OVERHEAD = 4096
"""What a snapshot line adds to the snapshot document (its kind, seq, digest)."""

class SegmentInfo(msgspec.Struct, frozen=True):
    """One segment in the manifest."""

    first_seq: int
    lines: int
    """Lines of the segment in the file, its header included."""
    bytes: int
    sealed: bool = False


class SnapshotInfo(msgspec.Struct, frozen=True):
    """One snapshot in the manifest."""

    seq: int
    compressed: bool = True


class RangeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The manifest's ``range``: what part of the journal a range export holds.

    A range export is the journal as pruning and a cut would leave it: its records
    ``first_seq..end_seq`` verbatim, starting right after a snapshot of the journal (or at its
    own start), then, when it does not start at seq 1, one ``anchor`` record written by the
    export (``anchor_seq``) that vouches for the records left out before it.
    """

    from_step: int
    """The first step asked for (0: from the start)."""
    to_step: int
    """The last step asked for, or the journal's last step when it ends before."""
    first_step: int
    """The first step whose state the file rebuilds (its base snapshot's, or the start's)."""
    base_seq: int
    """The snapshot the history starts from (0: none, it starts at seq 1)."""
    end_seq: int
    """The journal's last record in the file (the anchor after it is the export's)."""
    anchor_seq: int = 0
    """The anchor record added by the export (0: none was needed)."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
               tag=MANIFEST_KIND, omit_defaults=False):
    """The first line of an export file.

    Its hash is the ``h`` member that sealing appends (as on a journal line). Files written
    before this version also carry an empty ``"h":""`` before it; it is hashed with the rest
    of the line and otherwise ignored.
    """

    export_format: int
    format: int
    agent_id: str
    keyed: bool
    created: float
    tool: str
    records: int
    first_seq: int
    last_seq: int
    last_step: int
    last_hash: str
    segments: list[SegmentInfo]
    snapshots: list[SnapshotInfo]
    range: RangeInfo | None = None
    """Set for the export of a step range (None: the whole journal)."""


class SnapshotLine(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                   tag=SNAPSHOT_KIND):
    """A snapshot in an export file: its document line verbatim, with its digest."""

    seq: int
    compressed: bool
    blake2b: str
    doc: msgspec.Raw


encoder = msgspec.json.Encoder()
manifest_decoder = msgspec.json.Decoder(Manifest)
snapshot_line_decoder = msgspec.json.Decoder(SnapshotLine)


@dataclass
class ExportReport:
    """What :func:`export_journal` wrote."""

    agent_id: str
    records: int = 0
    segments: int = 0
    snapshots: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_step: int = 0
    last_hash: str = ""
    keyed: bool = False
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """Snapshots left out because the journal would not use them: ``{"seq", "reason"}``."""
    range: dict[str, Any] | None = None
    """For a range export, its :class:`RangeInfo` as a dict; None for a whole journal."""

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return asdict(self)


@dataclass
class ImportReport(ExportReport):
    """What :func:`import_journal` (or :func:`verify_export`) found and wrote."""

    written: bool = False


def check_key(key: bytes | str | None) -> bytes | None:
    """``key`` as bytes, None for no key.

    Raises:
        ValueError: an empty key: it would write (or expect) an unkeyed chain while saying
            keyed, so it is refused rather than guessed at.
    """
    if key is None:
        return None
    k = key.encode() if isinstance(key, str) else bytes(key)
    if not k:
        raise ValueError("the key is empty: pass key=None for an unkeyed journal, or the "
                         "journal's secret")
    return k


# --------------------------------------------------------------------------------- pieces


def split_pieces(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` of whole lines of ``data``, about :data:`PIECE_BYTES` at a time."""
    pos, n = 0, len(data)
    while pos < n:
        end = data.rfind(b"\n", pos, pos + PIECE_BYTES) + 1
        if end <= pos:
            nl = data.find(b"\n", pos + PIECE_BYTES)
            end = n if nl < 0 else nl + 1
        yield start + pos, data[pos:end]
        pos = end


def segment_pieces(store: AgentStore, first: int, sealed: bool) -> Iterator[tuple[int, bytes]]:
    """The segment's lines as ``(offset, bytes)`` pieces; the last may end mid-line.

    A plain segment is read a piece at a time, up to its size when first asked (a live writer
    appends after it); a sealed one (or one sealed meanwhile) is decompressed once, bounded by
    the sealed-segment limit.

    Raises:
        FileNotFoundError: the segment was removed meanwhile (or shrank).
    """
    if not sealed:
        try:
            size = store.segment_size(first)
        except FileNotFoundError:
            sealed = True  # compressed by retention since it was listed
    if sealed:
        yield from split_pieces(store.read_segment(first))
        return
    pos = 0
    while pos < size:
        want = min(PIECE_BYTES, size - pos)
        data = store.read_segment(first, pos, want)
        if len(data) < want:
            raise FileNotFoundError(f"segment {first} shrank while being read")
        end = data.rfind(b"\n") + 1
        if end == 0 and pos + want < size:
            # One record longer than a piece: read it whole (bounded by the record limit).
            data = store.read_segment(first, pos, min(MAX_RECORD_BYTES + 2, size - pos))
            end = data.find(b"\n") + 1
        if end == 0:
            end = len(data)  # the end of the segment, mid-line: the scan says so
        yield pos, data[:end]
        pos += end


class ChainWalk:
    """Checks one segment piece by piece with :func:`scan`, keeping only where it is."""

    def __init__(self, *, first_seq: int, agent_id: str, key: bytes | None, where: str,
                 prev: str | None) -> None:
        self.first_seq = first_seq
        self.agent_id = agent_id
        self.key = key
        self.where = where
        self.prev = prev
        self.next_seq: int | None = None
        self.header: Header | None = None
        self.records = 0
        self.first_rec_seq = 0
        self.last_seq = 0
        self.last_step = 0
        self.last_hash = ""
        self.valid_end = 0

    def feed(self, offset: int, piece: bytes) -> Scan:
        """Scan the next piece (starting at ``offset`` in the segment)."""
        sc = scan(piece, first_seq=self.first_seq, agent_id=self.agent_id, key=self.key,
                  where=self.where, offset=offset, next_seq=self.next_seq, prev=self.prev,
                  header=self.header)
        self.take(sc)
        return sc

    def take(self, sc: Scan) -> None:
        """Advance past what ``sc`` found valid."""
        if sc.header is not None and self.header is None:
            self.header = sc.header
            self.prev = sc.header.prev
        if sc.records:
            if not self.records:
                self.first_rec_seq = sc.records[0].seq
            self.records += len(sc.records)
            last = sc.records[-1]
            self.last_seq, self.last_step, self.last_hash = last.seq, last.step, last.h
            self.prev, self.next_seq = last.h, last.seq + 1
        self.valid_end = sc.valid_end

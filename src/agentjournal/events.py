"""The journal's record types: tagged, frozen ``msgspec.Struct`` s, one JSON object per line.

A segment starts with a :class:`Header` line; every other line is a record with a gap-free
``seq``, the agent ``step`` it belongs to, ``prev`` (the previous record's hash) and ``h``
(BLAKE2b-256 of the line's bytes without the ``h`` member, keyed when the journal is keyed).
The exact format is specified in ``docs/format.md``. Fields are only ever added, with defaults;
unknown fields are ignored on read.
"""

from __future__ import annotations

from typing import Any

import msgspec

FORMAT_VERSION = 3
"""Version of the on-disk format written by this code (segment header and snapshot ``format``).

Version 2 added the optional ``meta`` member of ``step`` records; version 3 the ``cut`` record
kind (recovery records in the chain what it cut off). Files of every earlier version read as
before.
"""


class _Line(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    """Common base: every line is a JSON object whose ``kind`` names its type."""

    @property
    def kind(self) -> str:
        """The line's ``kind``, the tag written in its JSON (``step``, ``anchor``, ``cut``...)."""
        return str(type(self).__struct_config__.tag)


class Header(_Line, tag="header", frozen=True):
    """First line of every segment file."""

    format: int
    agent_id: str
    first_seq: int
    first_step: int
    prev: str
    """Hash of the record before ``first_seq`` ("" for a journal's first segment)."""
    keyed: bool = False
    created: float = 0.0
    h: str = ""


class Record(_Line, frozen=True):
    """Fields every record has."""

    seq: int
    ts: float
    step: int
    prev: str


class Step(Record, tag="step", frozen=True):
    """One agent step: the RFC 6902 JSON Patch from the previous state to this one."""

    ops: list[dict[str, Any]]
    meta: dict[str, Any] | None = None
    """Caller-supplied JSON metadata of the step (format 2; omitted when None), hashed with it."""
    h: str = ""


class SnapshotMark(Record, tag="snapshot", frozen=True):
    """A snapshot of the state as of record ``at`` was written; ``digest`` is its content hash."""

    at: int
    digest: str
    h: str = ""


class Fork(Record, tag="fork", frozen=True):
    """First record of a journal forked from ``parent`` at ``parent_seq``.

    ``ops`` sets the whole state (one ``replace`` of the root), so replay needs nothing else;
    or, for a state too big for one record, ``ops`` is empty and ``in_snapshot`` is true: the
    state is the journal's snapshot at this record's seq (written right after it).
    """

    ops: list[dict[str, Any]]
    parent: str
    parent_seq: int
    parent_step: int
    parent_hash: str
    in_snapshot: bool = False
    """The forked state is in the snapshot at this seq, not in ``ops`` (omitted when false)."""
    h: str = ""


class Anchor(Record, tag="anchor", frozen=True):
    """Written by pruning compaction: records before ``first_seq`` were removed.

    ``first_prev`` is the hash of record ``first_seq - 1``, so the chain of what remains
    still verifies from here.
    """

    first_seq: int
    first_prev: str
    removed: list[str] = []
    h: str = ""


class Cut(Record, tag="cut", frozen=True):
    """Written by recovery (format 3): bytes were cut off the end of a segment on open.

    A crash's torn tail, or (``repair``) damage and what followed it. The bytes themselves are
    kept in the agent's ``quarantine/`` under ``quarantine``; ``digest`` (BLAKE2b-256, unkeyed,
    hex) and ``size`` identify them, so the chain itself says that and where history was cut.
    """

    reason: str
    """``torn_tail`` (a line cut short by a crash) or ``damage`` (cut by ``repair``)."""
    segment: int
    """First seq of the segment the bytes were cut from (its file name)."""
    offset: int
    """Byte offset in that segment where the cut started."""
    size: int
    """How many bytes were cut."""
    digest: str
    quarantine: str
    """Name of the file in ``quarantine/`` holding the bytes (a name, never a path)."""
    cut_seq: int
    """The seq the first cut line would have had (this record's seq for a torn tail)."""
    lines_after: int = 0
    """(``damage``) complete lines after the damaged one whose hash verified."""
    h: str = ""


AnyRecord = Step | SnapshotMark | Fork | Anchor | Cut
AnyLine = Header | Step | SnapshotMark | Fork | Anchor | Cut

line_decoder: msgspec.json.Decoder[AnyLine] = msgspec.json.Decoder(AnyLine)
header_decoder: msgspec.json.Decoder[Header] = msgspec.json.Decoder(Header)

STATE_KINDS = (Step, Fork)
"""Record types that change the state (carry ``ops``)."""

"""Reading segments: parse lines, verify the hash chain, find torn tails and corruption.

A segment is a header line followed by record lines. Every line ends with ``"h":"<hash>"}``;
the hash covers the rest of the line, and each record's ``prev`` is the hash of the record
before it, so an edit, a deletion, a reordering or an insertion anywhere breaks the chain.

Damage at the very end of the last segment with nothing valid after it is a *torn tail*
(a write cut short by a crash): readers stop before it, and the writer cuts it off on open.
A crash cuts a line short or leaves garbage; it never leaves a complete line that is a
well-formed record failing its hash, nor a record whose own hash verifies but that does not
chain (a forged record after the tip, a record spliced in from another journal): such a last
line is *tampering*, refused like damage in the middle, never cut as a tail.
Damage followed by valid records is *corruption*: a :class:`CorruptRecordError` naming the
segment and byte offset, or, with ``valid_prefix=True``, the end of what can be trusted.
"""

from __future__ import annotations

import bisect
import hashlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from .. import _codec
from ..backends.base import AgentStore
from ..errors import CorruptRecordError, LimitExceededError, TamperedError
from ..events import FORMAT_VERSION, AnyLine, AnyRecord, Header, header_decoder, line_decoder

_HASH_OPEN = b',"h":"'
_SUFFIX_LEN = _codec.HASH_SUFFIX_LEN  # ,"h":"<64 hex>"}
_HASH_AT = _SUFFIX_LEN - len(_HASH_OPEN)  # the hex digits start this far before the newline

MAX_RECORD_BYTES = 64 << 20
"""Largest line accepted (a record holding a whole forked state can be big)."""


class TornTailWarning(UserWarning):
    """A read passed a torn or unfinished tail: the records before it were read, the bytes
    after them were not (a writer's crash left them; the next writer cuts them off into
    ``quarantine/``). Raised as a warning, not an error: every record read is valid."""


@dataclass
class Scan:
    """What :func:`scan` found in one segment's bytes."""

    header: Header | None = None
    records: list[AnyRecord] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    """Byte offset just past each record's line (parallel to ``records``)."""
    valid_end: int = 0
    """Offset just past the last valid line: everything before it can be trusted."""
    last_seq: int = 0
    last_hash: str = ""
    error: CorruptRecordError | None = None
    """The first invalid line (None if all complete lines are valid)."""
    tail: bool = False
    """``error`` is a torn tail: no valid line follows it."""
    partial: int = 0
    """Bytes of an incomplete last line (no newline yet) after ``valid_end``, if no error."""
    end: int = 0
    """Offset just past the bytes scanned (the segment's size when scanned whole)."""


def _check_line(line: bytes, key: bytes | None, where: str, offset: int) -> None:
    parts = _codec.split_line(line)
    if parts is None:
        raise CorruptRecordError("malformed journal line", path=where, offset=offset,
                                 hint="the line is cut short or overwritten")
    body, stored = parts
    if _codec.chain_hash(body, key) != stored:
        raise TamperedError(
            "record hash does not match its bytes", path=where, offset=offset,
            hint="the record was altered or corrupted"
            + ("" if key else "; if the journal is keyed, pass its key"),
        )


def _check_header_key(line: bytes, key: bytes | None, where: str, offset: int) -> None:
    """Say "wrong key" rather than "tampered" when the header's keyed flag disagrees."""
    try:
        hdr = header_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return  # reported by the full checks
    if hdr.keyed != bool(key):
        raise TamperedError(
            "journal is keyed; its key is needed to read it" if hdr.keyed
            else "journal is not keyed but a key was given", path=where, offset=offset,
            hint="pass the key the journal was written with (AGENTJOURNAL_KEY for the CLI)")


def _decode(line: bytes, where: str, offset: int) -> AnyLine:
    try:
        return line_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # msgspec: bad UTF-8 is the latter
        raise CorruptRecordError(f"undecodable record: {e}", path=where, offset=offset,
                                 hint="written by a newer agentjournal, or damaged") from None
    except RecursionError:
        raise LimitExceededError("record nested too deeply", path=where, offset=offset) from None


_RECORD_START = b'{"kind":'
"""How every line starts. Strings escape their quotes, so it never occurs inside a line."""


def _looks_written(line: bytes, key: bytes | None) -> bool:
    """Whether ``line`` (without its newline) is a record written on purpose: its hash
    verifies, or (wrong key) it still decodes as a record."""
    parts = _codec.split_line(line)
    if parts is None:
        return False
    if _codec.chain_hash(parts[0], key) == parts[1]:
        return True
    try:
        line_decoder.decode(line)
        return True
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False


def _record_inside(line: bytes, key: bytes | None) -> bool:
    """Whether a whole record starts inside the damaged ``line``: a damaged newline merged it
    with the line before. A crash only cuts a line short, so this is corruption, not a tail."""
    i = line.find(_RECORD_START, 1)
    while i >= 0:
        if _looks_written(line[i:], key):
            return True
        i = line.find(_RECORD_START, i + 1)
    return False


def _valid_after(data: bytes, pos: int, key: bytes | None) -> bool:
    """Whether any complete line after ``pos`` looks written on purpose (so damage is mid-log).

    A line counts when its hash verifies or when it decodes as a record at all: a crash leaves
    a cut-off line or garbage, never well-formed records after the damage. (With a wrong key
    every hash fails but the records still decode: that is not a torn tail, and cutting it off
    would destroy the journal.)
    """
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return False
        if _looks_written(data[pos:nl], key):
            return True
        pos = nl + 1
    return False


def scan(
    data: bytes,
    *,
    first_seq: int,
    agent_id: str,
    key: bytes | None,
    where: str,
    offset: int = 0,
    next_seq: int | None = None,
    prev: str | None = None,
    header: Header | None = None,
) -> Scan:
    """Parse and verify the lines of a segment.

    Args:
        data: the segment's bytes from ``offset`` on.
        first_seq: the seq in the segment's file name.
        agent_id: the agent the segment must belong to.
        key: the chain key, or None for an unkeyed journal.
        where: the segment's location, for messages.
        offset: where ``data`` starts in the segment (0 = with the header).
        next_seq, prev, header: where to continue when ``offset`` > 0 (tailing).
    """
    n = len(data)
    out = Scan(header=header, valid_end=offset, end=offset + n)
    pos = 0
    expect_seq = first_seq if next_seq is None else next_seq
    expect_prev = prev
    mv = memoryview(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if (out.header is not None and nl > pos + _SUFFIX_LEN
                and nl - pos <= MAX_RECORD_BYTES
                and data[nl - _SUFFIX_LEN : nl - _HASH_AT] == _HASH_OPEN
                and data[nl - 2 : nl] == b'"}'):
            # Fast path for a well-formed record: hash and decode it in place, no copies.
            # Anything unusual falls through to the full checks, which name the problem.
            hsh = hashlib.blake2b(mv[pos : nl - _SUFFIX_LEN], digest_size=32, key=key or b"")
            hsh.update(b"}")
            if hsh.hexdigest().encode() == data[nl - _HASH_AT : nl - 2]:
                try:
                    fast = line_decoder.decode(mv[pos:nl])
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                    fast = None
                if (fast is not None and not isinstance(fast, Header)
                        and fast.seq == expect_seq and fast.prev == expect_prev):
                    out.records.append(fast)
                    out.ends.append(offset + nl + 1)
                    out.last_seq = fast.seq
                    out.last_hash = fast.h
                    expect_seq = fast.seq + 1
                    expect_prev = fast.h
                    pos = nl + 1
                    out.valid_end = offset + pos
                    continue
        if nl < 0:
            out.partial = n - pos
            if n - pos > MAX_RECORD_BYTES:
                out.error = CorruptRecordError("unterminated line over the record size limit",
                                               path=where, offset=offset + pos)
                out.tail = True
            break
        line = data[pos:nl]
        at = offset + pos
        try:
            if len(line) > MAX_RECORD_BYTES:
                raise LimitExceededError(f"line of {len(line)} bytes over the limit",
                                         path=where, offset=at)
            if out.header is None:
                _check_header_key(line, key, where, at)
            _check_line(line, key, where, at)
            rec = _decode(line, where, at)
            if out.header is None:
                if not isinstance(rec, Header):
                    raise CorruptRecordError("segment does not start with a header",
                                             path=where, offset=at)
                if rec.format > FORMAT_VERSION:
                    raise CorruptRecordError(
                        f"segment format {rec.format} is newer than this agentjournal "
                        f"({FORMAT_VERSION})", path=where, offset=at,
                        hint="upgrade agentjournal to read it")
                if rec.agent_id != agent_id or rec.first_seq != first_seq:
                    raise CorruptRecordError(
                        f"header names agent {rec.agent_id!r} seq {rec.first_seq}, expected "
                        f"{agent_id!r} seq {first_seq}", path=where, offset=at,
                        hint="a segment was moved or renamed")
                if rec.keyed != bool(key):
                    raise TamperedError(
                        "journal is keyed; a key is needed to read it" if rec.keyed
                        else "journal is not keyed but a key was given",
                        path=where, offset=at,
                        hint="pass the same key the journal was written with")
                if expect_prev is not None and rec.prev != expect_prev:
                    raise CorruptRecordError(
                        "segment does not continue the chain of the previous one",
                        path=where, offset=at, hint="a segment is missing or was replaced")
                out.header = rec
                expect_prev = rec.prev
            else:
                if isinstance(rec, Header):
                    raise CorruptRecordError("header in the middle of a segment",
                                             path=where, offset=at)
                if rec.seq != expect_seq:
                    raise CorruptRecordError(
                        f"record seq {rec.seq} where {expect_seq} was expected",
                        path=where, offset=at, seq=expect_seq,
                        hint="records were deleted, duplicated or reordered")
                if rec.prev != expect_prev:
                    raise TamperedError("record does not chain to the one before it",
                                        path=where, offset=at, seq=rec.seq,
                                        hint="records were deleted, inserted or reordered")
                out.records.append(rec)
                out.ends.append(offset + nl + 1)
                out.last_seq = rec.seq
                out.last_hash = rec.h
                expect_seq = rec.seq + 1
                expect_prev = rec.h
        except CorruptRecordError as e:
            out.error = e
            out.tail = not (_looks_written(line, key) or _record_inside(line, key)
                            or _valid_after(data, nl + 1, key))
            break
        except LimitExceededError as e:
            out.error = CorruptRecordError(str(e.message), path=where, offset=at)
            out.tail = not (_record_inside(line, key) or _valid_after(data, nl + 1, key))
            break
        pos = nl + 1
        out.valid_end = offset + pos
    return out


class SegmentReader:
    """Reads an agent's records in seq order across segments, verifying the chain.

    Args:
        store: the agent's store.
        key: chain key (None for unkeyed journals).
        valid_prefix: on corruption, stop before the damage instead of raising
            (point-in-time recovery); :attr:`damage` then holds the error.
    """

    def __init__(self, store: AgentStore, key: bytes | None = None,
                 valid_prefix: bool = False) -> None:
        self.store = store
        self.key = key
        self.valid_prefix = valid_prefix
        self.damage: CorruptRecordError | None = None
        self._segments: list[int] | None = None
        self.scans: dict[int, Scan] | None = None
        """Scans kept for reuse within one read-only call (None: no caching)."""
        self.tail: int | None = None
        """First seq of a segment known to be the last (set by the writer): reads from it
        on need no directory listing."""
        self.writer_alive: Callable[[], bool] | None = None
        """Whether a writer holds the agent's lock now (set for read-only journals). An
        unfinished last line is then a write in progress; without a writer it is a tail a
        crash left, which reads warn about (:class:`TornTailWarning`). None: not known, so
        only a tail that fails its checks is warned about."""
        self._warned: set[tuple[int, int, int]] = set()

    def segments(self, refresh: bool = False) -> list[int]:
        if self._segments is None or refresh:
            self._segments = [s for s, _ in self.store.list_segments()]
        return self._segments

    def cached_segments(self) -> list[int] | None:
        """The listing kept from the last call (None: none kept)."""
        return self._segments

    def invalidate(self) -> None:
        """Forget the listing: the next read lists the segments again."""
        self._segments = None

    def forget(self, first_seq: int) -> None:
        """A segment was deleted: drop it from the cached listing and scans."""
        if self._segments is not None and first_seq in self._segments:
            self._segments = [s for s in self._segments if s != first_seq]
        if self.scans is not None:
            self.scans.pop(first_seq, None)

    def read(self, first_seq: int) -> Scan:
        """Scan one whole segment."""
        data = self.store.read_segment(first_seq)
        sc = scan(data, first_seq=first_seq, agent_id=self.store.agent_id, key=self.key,
                  where=self.store.location("segment", first_seq))
        if self.scans is not None:
            self.scans[first_seq] = sc
        return sc

    def records(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AnyRecord]:
        """Records with ``from_seq <= seq <= to_seq`` in order, chain-verified.

        Raises:
            CorruptRecordError: damage before the end (unless ``valid_prefix``), a missing
                segment, or a segment that does not continue its predecessor.
        """
        if self._segments is None and self.tail is not None and from_seq >= self.tail:
            segs = [self.tail]
        else:
            segs = self.segments()
            if self.tail is not None and (not segs or segs[-1] < self.tail):
                segs = self.segments(refresh=True)  # listed before the writer rolled
        if not segs:
            return
        i = max(bisect.bisect_right(segs, from_seq) - 1, 0)
        prev_hash: str | None = None
        expect_first: int | None = None
        j = i - 1
        while True:
            j += 1
            if j >= len(segs):
                # The listing may predate a roll: a segment right after the last one read?
                if (expect_first is None or expect_first <= segs[-1]
                        or not self.store.segment_exists(expect_first)):
                    return
                segs = self.segments(refresh=True)
                j = bisect.bisect_left(segs, expect_first)
                if j >= len(segs):
                    return
            first = segs[j]
            where = self.store.location("segment", first)
            if expect_first is not None and first != expect_first:
                self._fail(CorruptRecordError(
                    f"segment starting at seq {expect_first} is missing",
                    path=where, seq=expect_first, hint="a segment file was deleted"))
                return
            cached = self.scans.get(first) if self.scans is not None else None
            if cached is not None and j + 1 < len(segs) and segs[j + 1] != (
                    (cached.last_seq + 1) if cached.records else first):
                # Scanned while it was the last segment: the writer has since appended to it
                # and started the next one, so the kept scan lacks its end.
                cached = None
            if cached is not None and (prev_hash is None or (
                    cached.header is not None and cached.header.prev == prev_hash)):
                fresh: Scan | None = cached
            else:
                fresh = self._scan_file(first, where, prev_hash, last=j == len(segs) - 1)
            if fresh is None:
                return
            sc = fresh
            last_segment = j == len(segs) - 1 and not self.store.segment_exists(
                (sc.last_seq + 1) if sc.records else first + 1)
            for rec in sc.records:
                if rec.seq < from_seq:
                    continue
                if to_seq is not None and rec.seq > to_seq:
                    return
                yield rec
            if sc.error is not None:
                if not (sc.tail and last_segment):
                    self._fail(sc.error)
                    return
                # A torn tail: the writer cuts it off on open; a reader says it stopped.
                self._warn_tail(first, sc, sc.error.message)
                return
            if sc.header is None:
                if last_segment:
                    # A segment whose header is still being written, or (no writer) the
                    # part of one a crash while rolling left.
                    if sc.partial and self.writer_alive is not None and not self.writer_alive():
                        self._warn_tail(first, sc, "part of a segment header and no writer "
                                        "is running")
                    return
                self._fail(CorruptRecordError("segment has no header", path=where, offset=0))
                return
            if sc.partial and not last_segment:
                # Only the last segment can be mid-write: a later one exists, so this line
                # lost its end (e.g. a damaged final newline).
                self._fail(CorruptRecordError(
                    f"segment ends in an incomplete line of {sc.partial} bytes", path=where,
                    offset=sc.valid_end, hint="the segment was truncated or damaged"))
                return
            if sc.partial and last_segment and self.writer_alive is not None:
                if not self.writer_alive():
                    self._warn_tail(first, sc, f"incomplete last line of {sc.partial} bytes "
                                    "and no writer is running")
            prev_hash = sc.last_hash if sc.records else sc.header.prev
            expect_first = (sc.last_seq + 1) if sc.records else first
            if to_seq is not None and expect_first > to_seq:
                return  # everything asked for was read: the next segment is not needed

    def _warn_tail(self, first: int, sc: Scan, why: str) -> None:
        """Warn, once per tail, that a read stopped before the unreadable end of the last
        segment (the records read are all valid; the bytes after them are not records)."""
        key = (first, sc.valid_end, sc.end)
        if key in self._warned:
            return
        self._warned.add(key)
        where = self.store.location("segment", first)
        warnings.warn(
            f"torn tail: {sc.end - sc.valid_end} bytes at byte {sc.valid_end} of {where} are "
            f"not a valid record ({why}); the read stopped after seq {sc.last_seq or first - 1}. "
            "The next open for writing cuts them off into quarantine/ "
            "('agentjournal verify' shows it)", TornTailWarning, stacklevel=3)

    def _scan_file(self, first: int, where: str, prev_hash: str | None,
                   last: bool) -> Scan | None:
        """Read and scan one segment for :meth:`records`; None when reading must stop."""
        try:
            data = self.store.read_segment(first)
        except FileNotFoundError:
            if last:
                # The last segment held no record yet (a writer killed while rolling) and
                # the writer's recovery removed it: the history ends before it.
                return None
            # Deleted under us (compaction) or missing: the listing is stale.
            self._fail(CorruptRecordError("segment vanished while reading", path=where))
            return None
        except CorruptRecordError as e:  # a sealed segment whose lz4 frame is damaged
            self._fail(e)
            return None
        sc = scan(data, first_seq=first, agent_id=self.store.agent_id, key=self.key,
                  where=where, prev=prev_hash)
        if self.scans is not None and prev_hash is None:
            self.scans[first] = sc
        return sc

    def _fail(self, err: CorruptRecordError) -> None:
        if self.valid_prefix:
            self.damage = err
            return
        raise err

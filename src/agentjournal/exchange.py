"""Export a journal to one self-contained file and import it back, verified.

An export file is JSON Lines. Its first line is a *manifest*; after it come the journal's
segment lines **verbatim** (each segment's header line, then its records, exactly the bytes
that were on disk) and then one line per snapshot::

    {"kind":"agentjournal-export","export_format":1,"agent_id":"a",...,"h":"<hash>"}
    {"kind":"header","format":1,"agent_id":"a","first_seq":1,...,"h":"..."}
    {"kind":"step","seq":1,...,"h":"..."}
    ...
    {"kind":"snapshot-file","seq":40,"compressed":true,"blake2b":"...","doc":{...}}

Because the journal lines are copied byte for byte, the importer checks them with the same
code that reads a journal (:func:`agentjournal.journal.reader.scan`): every record hash, the
chain across segments, gap-free seqs, and, for a pruned journal, the anchor that vouches for
the removed records. The manifest is sealed like a journal line (BLAKE2b, keyed for a keyed
journal) and names the last seq and hash, so a truncated file is refused rather than imported
as a shorter history. A snapshot line carries the snapshot document verbatim, so its digest
and its chain hash are checked against the records too.

Import verifies the whole file before it writes anything, writes through the backend
(:meth:`~agentjournal.backends.base.AgentStore.create_segment`), refuses an agent that already
has a journal, and finally runs :meth:`Journal.verify` on what it wrote.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

import msgspec

from . import _codec
from ._ids import validate_agent_id
from ._version import __version__
from .backends.base import AgentStore, Backend
from .backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from .errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    ImportRefusedError,
    JournalExistsError,
    LimitExceededError,
    TamperedError,
)
from .events import FORMAT_VERSION, Anchor, SnapshotMark
from .journal.reader import MAX_RECORD_BYTES, scan
from .replay.journal import Journal
from .snapshot.store import decode_snapshot

__all__ = [
    "EXPORT_FORMAT",
    "ExportReport",
    "ImportRefusedError",
    "ImportReport",
    "Manifest",
    "export_journal",
    "import_journal",
    "read_manifest",
    "verify_export",
]

EXPORT_FORMAT = 1
"""Version of the export file layout written by this code."""

MANIFEST_KIND = "agentjournal-export"
SNAPSHOT_KIND = "snapshot-file"

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called as work advances (units are bytes)."""

_WRITE_CHUNK = 1 << 20


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


class Manifest(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
               tag=MANIFEST_KIND, omit_defaults=False):
    """The first line of an export file."""

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
    h: str = ""


class _SnapshotLine(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                    tag=SNAPSHOT_KIND):
    seq: int
    compressed: bool
    blake2b: str
    doc: msgspec.Raw


_manifest_decoder = msgspec.json.Decoder(Manifest)
_snapshot_decoder = msgspec.json.Decoder(_SnapshotLine)
_encoder = msgspec.json.Encoder()


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

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return asdict(self)


@dataclass
class ImportReport(ExportReport):
    """What :func:`import_journal` (or :func:`verify_export`) found and wrote."""

    written: bool = False


# --------------------------------------------------------------------------------- export


def _tool() -> str:
    return f"agentjournal {__version__}"


def export_journal(journal: Journal, out: IO[bytes], *, snapshots: bool = True,
                   progress: Progress | None = None) -> ExportReport:
    """Write ``journal`` to ``out`` as one export file.

    The journal may be live (a writer appending in another process): what is exported is a
    consistent prefix, every complete and valid record up to the moment each segment is read.

    Args:
        journal: an open journal (read-only is enough).
        out: a binary file to write to.
        snapshots: include every snapshot. Without it, a pruned journal still carries its
            oldest snapshot, which it needs to rebuild any state.
        progress: called with ``(bytes done, bytes total)``.

    Raises:
        CorruptRecordError: the journal does not verify (run ``agentjournal verify``).
        FileNotFoundError: a segment vanished while exporting (compaction); try again.
    """
    store = journal.store
    key = journal.key
    # Pass 1: verify each segment and find how much of it is complete.
    infos: list[SegmentInfo] = []
    hashes: dict[int, str] = {}
    first_prev: dict[int, str] = {}
    prev: str | None = None
    expect: int | None = None
    rep = ExportReport(agent_id=journal.agent_id, keyed=key is not None)
    segs = store.list_segments()
    for k, (first, sealed) in enumerate(segs):
        where = store.location("segment", first)
        if expect is not None and first != expect:
            raise CorruptRecordError(f"records {expect}..{first - 1} are missing", path=where,
                                     seq=expect, hint="run 'agentjournal verify' for details")
        data = store.read_segment(first)
        sc = scan(data, first_seq=first, agent_id=journal.agent_id, key=key, where=where,
                  prev=prev)
        if sc.error is not None and not (sc.tail and k == len(segs) - 1):
            raise sc.error
        if sc.header is None or not sc.records:
            if k == len(segs) - 1:
                break  # a segment being started by a live writer
            raise CorruptRecordError("segment has no records", path=where,
                                     hint="run 'agentjournal verify' for details")
        first_prev[first] = sc.header.prev
        for rec in sc.records:
            hashes[rec.seq] = rec.h
        infos.append(SegmentInfo(first_seq=first, lines=len(sc.records) + 1,
                                 bytes=sc.valid_end, sealed=sealed))
        prev, expect = sc.last_hash, sc.last_seq + 1
        rep.records += len(sc.records)
        rep.last_seq, rep.last_step, rep.last_hash = (sc.last_seq, sc.records[-1].step,
                                                      sc.last_hash)
        if not rep.first_seq:
            rep.first_seq = sc.records[0].seq

    snaps: list[SnapshotInfo] = []
    all_snaps = [s for s in store.list_snapshots() if s in hashes or s + 1 in first_prev]
    chosen = all_snaps if snapshots else (
        all_snaps[:1] if infos and infos[0].first_seq > 1 else [])
    for seq in chosen:
        _data, compressed = store.read_snapshot(seq, journal.max_snapshot_bytes)
        snaps.append(SnapshotInfo(seq=seq, compressed=compressed))

    manifest = Manifest(
        export_format=EXPORT_FORMAT, format=FORMAT_VERSION, agent_id=journal.agent_id,
        keyed=key is not None, created=time.time(), tool=_tool(), records=rep.records,
        first_seq=rep.first_seq, last_seq=rep.last_seq, last_step=rep.last_step,
        last_hash=rep.last_hash, segments=infos, snapshots=snaps)
    line, _ = _codec.seal_line(_encoder.encode(manifest), key)
    total = len(line) + sum(i.bytes for i in infos)
    done = 0
    out.write(line)
    rep.bytes += len(line)
    # Pass 2: copy the verified bytes. Segments only grow (or are sealed with the same
    # content), so the prefix checked above is what is copied.
    for info in infos:
        data = store.read_segment(info.first_seq)[: info.bytes]
        if len(data) != info.bytes:
            raise CorruptRecordError("segment shrank while exporting",
                                     path=store.location("segment", info.first_seq),
                                     hint="something else rewrote the journal; try again")
        out.write(data)
        rep.bytes += len(data)
        done += len(data)
        if progress is not None:
            progress(done, total)
    for snap in snaps:
        raw, compressed = store.read_snapshot(snap.seq, journal.max_snapshot_bytes)
        where = store.location("snapshot", snap.seq)
        if compressed:
            raw = _codec.decompress(raw, journal.max_snapshot_bytes, what=where)
        nl = raw.find(b"\n")
        _doc, digest = decode_snapshot(raw, False, where=where, limit=journal.max_snapshot_bytes)
        entry = _SnapshotLine(seq=snap.seq, compressed=snap.compressed, blake2b=digest,
                              doc=msgspec.Raw(raw[:nl]))
        data = _encoder.encode(entry) + b"\n"
        out.write(data)
        rep.bytes += len(data)
    rep.segments, rep.snapshots = len(infos), len(snaps)
    if progress is not None:
        progress(total, total)
    return rep


# --------------------------------------------------------------------------------- import


def _refuse(message: str, where: str, *, offset: int | None = None, seq: int | None = None,
            hint: str | None = None) -> ImportRefusedError:
    return ImportRefusedError(message, path=where, offset=offset, seq=seq,
                              hint=hint or "the file is damaged, truncated or was altered; "
                              "export the journal again")


def _lines(src: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, line)`` of each line, newline included; bounded line length."""
    pos = 0
    while True:
        line = src.readline(MAX_RECORD_BYTES + 2)
        if not line:
            return
        yield pos, line
        pos += len(line)


def read_manifest(line: bytes, *, key: bytes | None, where: str) -> Manifest:
    """Check and decode the manifest line of an export file.

    Raises:
        ImportRefusedError: not an export file, a newer layout, or a manifest that fails its
            hash (wrong or missing key for a keyed export).
    """
    body = line.rstrip(b"\n")
    try:
        m = _manifest_decoder.decode(body)
    except msgspec.DecodeError as e:
        raise _refuse(f"not an agentjournal export file ({e})", where, offset=0,
                      hint="give a file written by 'agentjournal export'") from None
    if m.export_format > EXPORT_FORMAT or m.format > FORMAT_VERSION:
        raise _refuse(f"export format {m.export_format} (journal format {m.format}) is newer "
                      "than this agentjournal", where, offset=0, hint="upgrade agentjournal")
    parts = _codec.split_line(body)
    if m.keyed and not key:
        raise TamperedError("the export is of a keyed journal; a key is needed to verify it",
                            path=where, offset=0,
                            hint="pass --key or set AGENTJOURNAL_KEY to the journal's key")
    if parts is None or _codec.chain_hash(parts[0], key if m.keyed else None) != parts[1]:
        raise TamperedError("export manifest does not match its hash", path=where, offset=0,
                            hint="the manifest was altered, or the key is wrong")
    validate_agent_id(m.agent_id)
    return m


def verify_export(src: IO[bytes], *, key: bytes | str | None = None, where: str = "<export>",
                  progress: Progress | None = None, total: int = 0) -> ImportReport:
    """Verify an export file completely without writing anything.

    Returns what it holds. ``src`` is read from its current position to the end.

    Raises:
        ImportRefusedError: anything that does not verify, with the byte offset in the file.
        TamperedError: a keyed export without its key (or with the wrong one).
    """
    k = key.encode() if isinstance(key, str) else (key or None)
    return _Importer(src, k, where, progress, total).run(None)


def import_journal(src: IO[bytes], *, root: str | os.PathLike[str] = DEFAULT_ROOT,
                   backend: Backend | None = None, key: bytes | str | None = None,
                   where: str = "<export>", progress: Progress | None = None) -> ImportReport:
    """Import an export file as a new journal, after verifying all of it.

    ``src`` must be seekable: it is read twice (verify, then write).

    Args:
        src: the export file, opened in binary mode.
        root: the store root (ignored when ``backend`` is given).
        backend: where to write; default the filesystem under ``root``.
        key: the journal's key if it was keyed.
        where: the file's name, for messages.
        progress: called with ``(bytes done, bytes total)`` over both passes.

    Raises:
        ImportRefusedError: the file does not verify; nothing was written.
        JournalExistsError: the agent already has a journal under this root.
        JournalLockedError: a writer holds the agent's lock.
    """
    be: Backend = backend or FilesystemBackend(root)
    k = key.encode() if isinstance(key, str) else (key or None)
    start = src.tell()
    src.seek(0, os.SEEK_END)
    total = (src.tell() - start) * 2
    src.seek(start)

    first = _Importer(src, k, where, _shifted(progress, 0, total), total).run(None)
    if be.exists(first.agent_id):
        _refuse_existing(be, first.agent_id)
    store = be.agent(first.agent_id, create=True)
    try:
        store.lock()
        if store.list_segments() or store.list_snapshots():
            raise JournalExistsError(f"agent {first.agent_id!r} already has a journal under "
                                     f"{be.describe()}",
                                     hint="import into another --root, or remove that journal")
        src.seek(start)
        try:
            rep = _Importer(src, k, where, _shifted(progress, total // 2, total),
                            total).run(store)
        except BaseException:
            _rollback(store)
            raise
        if (rep.last_hash, rep.records) != (first.last_hash, first.records):
            _rollback(store)
            raise _refuse("the file changed while importing", where,
                          hint="import it again when nothing is writing it")
    finally:
        store.close()
    with Journal(rep.agent_id, backend=be, key=k, readonly=True) as j:
        check = j.verify()
    if not check.ok:
        p = check.problems[0]
        raise CorruptRecordError(f"the imported journal does not verify: {p.message}",
                                 path=p.path, offset=p.offset, seq=p.seq,
                                 hint="the disk may be failing; run 'agentjournal verify'")
    rep.written = True
    return rep


def _shifted(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """``progress`` for one of two passes: ``done`` is shifted by ``offset`` of ``total``."""
    if progress is None:
        return None
    cb = progress

    def shifted(done: int, _n: int) -> None:
        cb(min(offset + done, total), total)

    return shifted


def _refuse_existing(be: Backend, agent_id: str) -> None:
    store = be.agent(agent_id, create=False)
    try:
        if store.list_segments():
            raise JournalExistsError(f"agent {agent_id!r} already has a journal under "
                                     f"{be.describe()}",
                                     hint="import into another --root, or remove that journal")
    finally:
        store.close()


def _rollback(store: AgentStore) -> None:
    """Remove what a failed import wrote (best effort: the import already failed)."""
    for seq in store.list_snapshots():
        try:
            store.delete_snapshot(seq)
        except OSError:
            pass
    for first, _ in store.list_segments():
        try:
            store.delete_segment(first)
        except OSError:
            pass


class _Importer:
    """One pass over an export file: verify everything, and write it when given a store."""

    def __init__(self, src: IO[bytes], key: bytes | None, where: str,
                 progress: Progress | None, total: int) -> None:
        self.src = src
        self.key = key
        self.where = where
        self.progress = progress
        self.total = total

    def run(self, store: AgentStore | None) -> ImportReport:
        """Verify the whole file; write each verified part to ``store`` when given."""
        where = self.where
        lines = _lines(self.src)
        got = next(lines, None)
        if got is None:
            raise _refuse("empty file", where, hint="give a file written by 'agentjournal export'")
        m = read_manifest(got[1], key=self.key, where=where)
        key = self.key if m.keyed else None
        if self.key and not m.keyed:
            raise TamperedError("the export is of an unkeyed journal but a key was given",
                                path=where, offset=0, hint="import it without --key")
        rep = ImportReport(agent_id=m.agent_id, keyed=m.keyed, bytes=len(got[1]))
        want_snaps = {s.seq: s for s in m.snapshots}
        hashes: dict[int, str] = {}
        marks: dict[int, str] = {}
        anchors: list[Anchor] = []
        seg_prev: dict[int, str] = {}
        prev: str | None = None
        expect: int | None = None
        for i, info in enumerate(m.segments):
            chunk: list[bytes] = []
            at = -1
            for _ in range(info.lines):
                nxt = next(lines, None)
                if nxt is None:
                    raise _refuse(f"file ends inside segment {info.first_seq}", where,
                                  offset=rep.bytes, hint="the file is truncated")
                if at < 0:
                    at = nxt[0]
                chunk.append(nxt[1])
            data = b"".join(chunk)
            rep.bytes += len(data)
            if expect is not None and info.first_seq != expect:
                raise _refuse(f"segment starts at seq {info.first_seq}, expected {expect}",
                              where, offset=at, seq=expect)
            sc = scan(data, first_seq=info.first_seq, agent_id=m.agent_id, key=key, where=where,
                      offset=at, prev=prev if i else None)
            if sc.error is not None:
                e = sc.error
                raise ImportRefusedError(e.message, path=where, offset=e.offset, seq=e.seq,
                                         hint=e.hint)
            if sc.partial or sc.header is None or len(sc.records) != info.lines - 1:
                raise _refuse(f"segment {info.first_seq} is incomplete", where, offset=at)
            if i == 0 and info.first_seq == 1 and sc.header.prev != "":
                raise _refuse("the first segment does not start the chain", where, offset=at)
            seg_prev[info.first_seq] = sc.header.prev
            for rec in sc.records:
                if rec.seq in want_snaps:
                    hashes[rec.seq] = rec.h
                if isinstance(rec, SnapshotMark):
                    marks[rec.at] = rec.digest
                elif isinstance(rec, Anchor):
                    anchors.append(rec)
            if not rep.first_seq:
                rep.first_seq = sc.records[0].seq
            rep.records += len(sc.records)
            rep.last_seq, rep.last_step = sc.last_seq, sc.records[-1].step
            rep.last_hash = sc.last_hash
            prev, expect = sc.last_hash, sc.last_seq + 1
            if store is not None:
                self._write_segment(store, info, data, last=i == len(m.segments) - 1)
            if self.progress is not None:
                self.progress(rep.bytes, self.total)
        rep.segments = len(m.segments)
        if m.segments and m.segments[0].first_seq > 1:
            head = m.segments[0]
            if not any(a.first_seq == head.first_seq and a.first_prev == seg_prev[head.first_seq]
                       for a in anchors):
                raise _refuse(f"history starts at seq {head.first_seq} but no anchor record "
                              "vouches for the removed records", where, seq=head.first_seq)
        if (rep.records, rep.first_seq, rep.last_seq, rep.last_step, rep.last_hash) != (
                m.records, m.first_seq, m.last_seq, m.last_step, m.last_hash):
            raise _refuse("the records do not match the manifest (last seq "
                          f"{rep.last_seq}, manifest says {m.last_seq})", where,
                          hint="the file is truncated or was altered")
        for snap in m.snapshots:
            nxt = next(lines, None)
            if nxt is None:
                raise _refuse(f"file ends before snapshot {snap.seq}", where, offset=rep.bytes,
                              hint="the file is truncated")
            at, line = nxt
            rep.bytes += len(line)
            data, compressed = self._check_snapshot(
                line, at, snap, m.agent_id, hashes.get(snap.seq, seg_prev.get(snap.seq + 1)),
                marks.get(snap.seq))
            if store is not None:
                store.write_snapshot(snap.seq, _codec.compress(data) if compressed else data,
                                     compressed)
            rep.snapshots += 1
        extra = next(lines, None)
        if extra is not None:
            raise _refuse("unexpected data after the last snapshot", where, offset=extra[0])
        if store is not None:
            store.sync_dirs()
        return rep

    def _write_segment(self, store: AgentStore, info: SegmentInfo, data: bytes, *,
                       last: bool) -> None:
        nl = data.find(b"\n") + 1
        app = store.create_segment(info.first_seq, data[:nl], True)
        try:
            for pos in range(nl, len(data), _WRITE_CHUNK):
                app.write(data[pos : pos + _WRITE_CHUNK])
            app.sync()
        finally:
            app.close()
        if info.sealed and not last:
            store.seal_segment(info.first_seq, _codec.compress(data))

    def _check_snapshot(self, line: bytes, at: int, snap: SnapshotInfo, agent_id: str,
                        chain_hash: str | None, mark: str | None) -> tuple[bytes, bool]:
        where = self.where
        try:
            entry = _snapshot_decoder.decode(line.rstrip(b"\n"))
        except msgspec.DecodeError as e:
            raise _refuse(f"bad snapshot line: {e}", where, offset=at) from None
        if entry.seq != snap.seq:
            raise _refuse(f"snapshot line for seq {entry.seq} where the manifest lists "
                          f"{snap.seq}", where, offset=at)
        doc_bytes = bytes(entry.doc)
        data = b"".join((doc_bytes, b'\n{"blake2b":"', entry.blake2b.encode(), b'"}\n'))
        try:
            doc, digest = decode_snapshot(data, False, where=f"{where} byte {at}")
        except (CorruptSnapshotError, LimitExceededError) as e:
            raise _refuse(f"snapshot {snap.seq} does not verify: {e.message}", where,
                          offset=at, seq=snap.seq) from None
        if doc.agent_id != agent_id or doc.seq != snap.seq:
            raise _refuse(f"snapshot holds agent {doc.agent_id!r} seq {doc.seq}", where,
                          offset=at, seq=snap.seq)
        if chain_hash is None or doc.chain_hash != chain_hash:
            raise _refuse(f"snapshot {snap.seq} does not match the journal's chain", where,
                          offset=at, seq=snap.seq)
        if mark is not None and mark != digest:
            raise _refuse(f"snapshot {snap.seq} differs from the digest recorded in the journal",
                          where, offset=at, seq=snap.seq)
        return data, snap.compressed

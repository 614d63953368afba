"""Importing an export file: verify all of it, then write it, and undo the writing on failure.

The file is untrusted. Every seq, count and size in its manifest is checked before anything
is written; segments are checked a piece at a time with the journal's own reader
(:func:`~agentjournal.journal.reader.scan`), so memory is bounded by the record limit (and, for
a snapshot line, by the snapshot limit), not by the file. See :mod:`agentjournal.exchange`.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO

import lz4.frame
import msgspec

from .. import _codec
from .._ids import validate_agent_id
from ..backends.base import AgentStore, Appender, Backend
from ..backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    ImportRefusedError,
    JournalExistsError,
    JournalLockedError,
    LimitExceededError,
    TamperedError,
)
from ..events import FORMAT_VERSION, Anchor, SnapshotMark
from ..journal.reader import MAX_RECORD_BYTES
from ..replay.journal import Journal
from ..snapshot.check import snapshot_mismatch
from ..snapshot.store import DEFAULT_MAX_SNAPSHOT_BYTES, decode_snapshot
from .fileformat import (
    EXPORT_FORMAT,
    PIECE_BYTES,
    SNAPSHOT_LINE_OVERHEAD,
    ChainWalk,
    ImportReport,
    Manifest,
    Progress,
    SegmentInfo,
    SnapshotInfo,
    check_key,
    manifest_decoder,
    snapshot_line_decoder,
)


def _refuse(message: str, where: str, *, offset: int | None = None, seq: int | None = None,
            hint: str | None = None) -> ImportRefusedError:
    return ImportRefusedError(message, path=where, offset=offset, seq=seq,
                              hint=hint or "the file is damaged, truncated or was altered; "
                              "export the journal again")


class _Lines:
    """The file's lines with their byte offsets, each bounded by the limit asked for."""

    def __init__(self, src: IO[bytes], where: str) -> None:
        self.src = src
        self.where = where
        self.pos = 0

    def next(self, limit: int, what: str) -> tuple[int, bytes] | None:
        """The next line (newline included), or None at the end of the file.

        Raises:
            ImportRefusedError: a line longer than ``limit``, or a last line cut short.
        """
        line = self.src.readline(limit + 1)
        if not line:
            return None
        at = self.pos
        self.pos += len(line)
        if not line.endswith(b"\n"):
            if len(line) > limit:
                raise _refuse(f"{what} is longer than the limit of {limit} bytes", self.where,
                              offset=at)
            raise _refuse(f"the file ends inside {what}", self.where, offset=at,
                          hint="the file is truncated")
        return at, line


def read_manifest(line: bytes, *, key: bytes | None, where: str) -> Manifest:
    """Check and decode the manifest line of an export file.

    Raises:
        ImportRefusedError: not an export file, a newer layout, a manifest that fails its
            hash, or seqs and counts that cannot describe a journal.
        TamperedError: a keyed export without its key (or with the wrong one).
    """
    body = line.rstrip(b"\n")
    try:
        m = manifest_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise _refuse(f"not an agentjournal export file ({e})", where, offset=0,
                      hint="give a file written by 'agentjournal export'") from None
    except RecursionError:
        raise _refuse("the manifest is nested too deeply", where, offset=0) from None
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
    _check_manifest(m, where)
    return m


def _check_manifest(m: Manifest, where: str) -> None:
    """Refuse seqs, counts and sizes no journal has (an unkeyed manifest is easy to forge)."""
    def bad(why: str) -> ImportRefusedError:
        return _refuse(f"the manifest is inconsistent: {why}", where, offset=0)

    if not m.segments:
        if m.records or m.snapshots or m.first_seq or m.last_seq:
            raise bad("records or snapshots without segments")
        return
    first = m.segments[0].first_seq
    if first < 1 or m.first_seq != first:
        raise bad(f"history starts at seq {m.first_seq} (first segment {first}); seqs start at 1")
    if m.last_seq < m.first_seq or m.records != m.last_seq - m.first_seq + 1:
        raise bad(f"{m.records} records for seqs {m.first_seq}..{m.last_seq}")
    prev = 0
    for s in m.segments:
        if s.first_seq <= prev or s.first_seq > m.last_seq:
            raise bad(f"segment at seq {s.first_seq} out of order or after the last seq")
        if s.lines < 2 or s.bytes < 1:
            raise bad(f"segment at seq {s.first_seq} holds no record")
        prev = s.first_seq
    prev = -1
    for snap in m.snapshots:
        if snap.seq <= prev or not max(1, m.first_seq - 1) <= snap.seq <= m.last_seq:
            raise bad(f"snapshot at seq {snap.seq} out of order or outside the history")
        prev = snap.seq
    if first > 1 and not m.snapshots:
        raise bad(f"history starts at seq {first} without a snapshot to rebuild it from")
    r = m.range
    if r is not None and not (
            r.base_seq == m.first_seq - 1 and r.first_step <= r.to_step
            and r.end_seq == m.last_seq - (1 if r.anchor_seq else 0)
            and r.anchor_seq in (0, m.last_seq) and r.from_step <= r.to_step):
        raise bad("its range does not describe its records")


def verify_export(src: IO[bytes], *, key: bytes | str | None = None, where: str = "<export>",
                  progress: Progress | None = None, total: int = 0,
                  max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES) -> ImportReport:
    """Verify an export file completely without writing anything.

    Returns what it holds. ``src`` is read from its current position to the end.

    Raises:
        ImportRefusedError: anything that does not verify, with the byte offset in the file.
        TamperedError: a keyed export without its key (or with the wrong one).
        ValueError: an empty key.
    """
    return _Importer(src, check_key(key), where, progress, total, max_snapshot_bytes).run(None)


def import_journal(src: IO[bytes], *, root: str | os.PathLike[str] = DEFAULT_ROOT,
                   backend: Backend | None = None, key: bytes | str | None = None,
                   where: str = "<export>", progress: Progress | None = None,
                   max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES) -> ImportReport:
    """Import an export file as a new journal, after verifying all of it.

    ``src`` must be seekable: it is read twice (verify, then write). When anything fails
    after writing started (an I/O error, the file changing, the final verify), what was
    written is removed again.

    Args:
        src: the export file, opened in binary mode.
        root: the store root (ignored when ``backend`` is given).
        backend: where to write; default the filesystem under ``root``.
        key: the journal's key if it was keyed.
        where: the file's name, for messages.
        progress: called with ``(bytes done, bytes total)`` over both passes.
        max_snapshot_bytes: the largest snapshot accepted (as for :class:`Journal`).

    Raises:
        ImportRefusedError: the file does not verify; nothing was written.
        JournalExistsError: the agent already has a journal under this root.
        JournalLockedError: a writer holds the agent's lock.
        ValueError: an empty key.
    """
    be: Backend = backend or FilesystemBackend(root)
    k = check_key(key)
    start = src.tell()
    src.seek(0, os.SEEK_END)
    total = (src.tell() - start) * 2
    src.seek(start)

    def importer(offset: int) -> _Importer:
        return _Importer(src, k, where, _shifted(progress, offset, total), total,
                         max_snapshot_bytes)

    first = importer(0).run(None)
    if be.exists(first.agent_id):
        _refuse_existing(be, first.agent_id)
    try:
        store = be.agent(first.agent_id, create=True)
    except BaseException:
        _discard(be, first.agent_id)  # directories made before the failure
        raise
    mine = done = False
    theirs = True  # until the lock is ours and the store empty, nothing in it is ours
    try:
        try:
            store.lock()
        except JournalLockedError:
            raise
        except OSError:
            theirs = False  # e.g. LOCK could not be created: the directories are ours
            raise
        if store.list_segments() or store.list_snapshots():
            raise JournalExistsError(f"agent {first.agent_id!r} already has a journal under "
                                     f"{be.describe()}",
                                     hint="import into another --root, or remove that journal")
        mine, theirs = True, False  # from here on, everything in the store is ours
        src.seek(start)
        rep = importer(total // 2).run(store)
        if (rep.last_hash, rep.records) != (first.last_hash, first.records):
            raise _refuse("the file changed while importing", where,
                          hint="import it again when nothing is writing it")
        with Journal(rep.agent_id, backend=be, key=k, readonly=True,
                     max_snapshot_bytes=max_snapshot_bytes) as j:
            check = j.verify()
        if not check.ok:
            p = check.problems[0]
            raise CorruptRecordError(f"the imported journal does not verify: {p.message}",
                                     path=p.path, offset=p.offset, seq=p.seq,
                                     hint="the disk may be failing; run 'agentjournal verify'")
        done = True
    finally:
        if mine and not done:
            _rollback(store)
        store.close()
        if not done and not theirs:
            _discard(be, first.agent_id)
    rep.written = True
    return rep


def _discard(be: Backend, agent_id: str) -> None:
    """Remove the agent's (empty) directory, where the backend can (best effort)."""
    discard = getattr(be, "discard_empty", None)
    if discard is not None:
        with contextlib.suppress(OSError):
            discard(agent_id)


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
    with contextlib.suppress(OSError):
        for seq in store.list_snapshots():
            with contextlib.suppress(OSError):
                store.delete_snapshot(seq)
    with contextlib.suppress(OSError):
        for first, _ in store.list_segments():
            with contextlib.suppress(OSError):
                store.delete_segment(first)


class _SegmentOut:
    """Writes one verified segment to the store as its pieces are checked."""

    def __init__(self, store: AgentStore, info: SegmentInfo, seal: bool) -> None:
        self.store = store
        self.info = info
        self.app: Appender | None = None
        self.sealer = lz4.frame.LZ4FrameCompressor(content_checksum=True) if seal else None
        self.sealed: list[bytes] = []

    def write(self, piece: bytes) -> None:
        if self.sealer is not None:
            if not self.sealed:
                self.sealed.append(self.sealer.begin(source_size=self.info.bytes))
            self.sealed.append(self.sealer.compress(piece))
        if self.app is None:
            nl = piece.find(b"\n") + 1
            self.app = self.store.create_segment(self.info.first_seq, piece[:nl], True)
            piece = piece[nl:]
        if piece:
            self.app.write(piece)

    def finish(self) -> None:
        if self.app is None:
            return
        try:
            self.app.sync()
        finally:
            self.app.close()
        if self.sealer is not None:
            self.sealed.append(self.sealer.flush())
            self.store.seal_segment(self.info.first_seq, b"".join(self.sealed))

    def abandon(self) -> None:
        if self.app is not None:
            with contextlib.suppress(OSError):
                self.app.close()


class _Importer:
    """One pass over an export file: verify everything, and write it when given a store."""

    def __init__(self, src: IO[bytes], key: bytes | None, where: str,
                 progress: Progress | None, total: int, max_snapshot_bytes: int) -> None:
        self.lines = _Lines(src, where)
        self.key = key
        self.where = where
        self.progress = progress
        self.total = total
        self.max_snapshot_bytes = max_snapshot_bytes
        self.want: set[int] = set()
        """Seqs of the snapshots in the file: of the records, only these are remembered."""
        self.chain_at: dict[int, str] = {}
        self.marks: dict[int, str] = {}
        self.vouched = False
        """An anchor record vouches for the records removed before the history."""
        self.seg_prev: dict[int, str] = {}
        """The chain hash before each segment of the file (its header's ``prev``)."""

    def run(self, store: AgentStore | None) -> ImportReport:
        """Verify the whole file; write each verified part to ``store`` when given."""
        where = self.where
        got = self.lines.next(MAX_RECORD_BYTES, "the manifest")
        if got is None:
            raise _refuse("empty file", where, hint="give a file written by 'agentjournal export'")
        m = read_manifest(got[1], key=self.key, where=where)
        if self.key and not m.keyed:
            raise TamperedError("the export is of an unkeyed journal but a key was given",
                                path=where, offset=0, hint="import it without --key")
        rep = ImportReport(agent_id=m.agent_id, keyed=m.keyed,
                           range=None if m.range is None else msgspec.structs.asdict(m.range))
        self.want = {s.seq for s in m.snapshots}
        self.chain_at = {}
        self.marks = {}
        self.vouched = False
        self.seg_prev = {}
        prev: str | None = None
        for i, info in enumerate(m.segments):
            walk = self._segment(m, info, prev, store,
                                 seal=info.sealed and i < len(m.segments) - 1)
            header = walk.header
            assert header is not None  # _segment refuses a segment without one
            if i == 0 and info.first_seq == 1 and header.prev != "":
                raise _refuse("the first segment does not start the chain", where,
                              offset=len(got[1]))
            if info.first_seq - 1 in self.want:
                self.chain_at[info.first_seq - 1] = header.prev
            if not rep.first_seq:
                rep.first_seq = walk.first_rec_seq
            rep.records += walk.records
            rep.last_seq, rep.last_step, rep.last_hash = (walk.last_seq, walk.last_step,
                                                          walk.last_hash)
            prev = walk.last_hash
            if self.progress is not None:
                self.progress(self.lines.pos, self.total)
        rep.segments = len(m.segments)
        if m.segments and m.segments[0].first_seq > 1 and not self.vouched:
            raise _refuse(f"history starts at seq {m.segments[0].first_seq} but no anchor "
                          "record vouches for the removed records", where,
                          seq=m.segments[0].first_seq)
        if (rep.records, rep.first_seq, rep.last_seq, rep.last_step, rep.last_hash) != (
                m.records, m.first_seq, m.last_seq, m.last_step, m.last_hash):
            raise _refuse("the records do not match the manifest (last seq "
                          f"{rep.last_seq}, manifest says {m.last_seq})", where,
                          hint="the file is truncated or was altered")
        limit = self.max_snapshot_bytes + SNAPSHOT_LINE_OVERHEAD
        for snap in m.snapshots:
            nxt = self.lines.next(limit, f"snapshot {snap.seq}")
            if nxt is None:
                raise _refuse(f"file ends before snapshot {snap.seq}", where,
                              offset=self.lines.pos, hint="the file is truncated")
            at, line = nxt
            data = self._check_snapshot(line, at, snap, m.agent_id,
                                        self.chain_at.get(snap.seq), self.marks.get(snap.seq))
            if store is not None:
                store.write_snapshot(snap.seq, _codec.compress(data) if snap.compressed
                                     else data, snap.compressed)
            rep.snapshots += 1
            del data, line
        extra = self.lines.next(MAX_RECORD_BYTES, "a line after the last snapshot")
        if extra is not None:
            raise _refuse("unexpected data after the last snapshot", where, offset=extra[0])
        rep.bytes = self.lines.pos
        if store is not None:
            store.sync_dirs()
        return rep

    def _segment(self, m: Manifest, info: SegmentInfo, prev: str | None,
                 store: AgentStore | None, *, seal: bool) -> ChainWalk:
        """Check (and write) one segment's lines, a piece at a time."""
        where = self.where
        walk = ChainWalk(first_seq=info.first_seq, agent_id=m.agent_id,
                         key=self.key if m.keyed else None, where=where, prev=prev)
        out = _SegmentOut(store, info, seal) if store is not None else None
        start = self.lines.pos
        buf: list[bytes] = []
        size = 0
        piece_at = start
        try:
            for n in range(info.lines):
                nxt = self.lines.next(MAX_RECORD_BYTES, f"segment {info.first_seq}")
                if nxt is None:
                    raise _refuse(f"file ends inside segment {info.first_seq}", where,
                                  offset=self.lines.pos, hint="the file is truncated")
                buf.append(nxt[1])
                size += len(nxt[1])
                if size >= PIECE_BYTES or n == info.lines - 1:
                    self._piece(walk, piece_at, b"".join(buf), out)
                    piece_at += size
                    buf, size = [], 0
            if out is not None:
                out.finish()
        except BaseException:
            if out is not None:
                out.abandon()
            raise
        if walk.header is None or walk.records != info.lines - 1:
            raise _refuse(f"segment {info.first_seq} is incomplete", where, offset=start)
        if walk.valid_end - start != info.bytes:
            raise _refuse(f"segment {info.first_seq} is {walk.valid_end - start} bytes, the "
                          f"manifest says {info.bytes}", where, offset=start)
        return walk

    def _piece(self, walk: ChainWalk, at: int, piece: bytes, out: _SegmentOut | None) -> None:
        """Check one piece of a segment, note what later checks need, write it."""
        sc = walk.feed(at, piece)
        if sc.error is not None:
            e = sc.error
            raise ImportRefusedError(e.message, path=self.where, offset=e.offset, seq=e.seq,
                                     hint=e.hint)
        if sc.partial or sc.header is None:
            raise _refuse("segment lines do not parse", self.where, offset=at)
        self.seg_prev.setdefault(walk.first_seq, sc.header.prev)
        for rec in sc.records:
            if rec.seq in self.want:
                self.chain_at[rec.seq] = rec.h
            if isinstance(rec, SnapshotMark) and rec.at in self.want:
                self.marks[rec.at] = rec.digest
            elif (isinstance(rec, Anchor)
                  and self.seg_prev.get(rec.first_seq, "-") == rec.first_prev):
                # Records before a segment start of this file were removed, and the chain
                # to that start is the anchor's. (An export of a live journal may still
                # hold segments that a pruning removed just after they were read.)
                self.vouched = True
        if out is not None:
            out.write(piece)

    def _check_snapshot(self, line: bytes, at: int, snap: SnapshotInfo, agent_id: str,
                        chain_at: str | None, mark: str | None) -> bytes:
        """The snapshot file's bytes for a verified snapshot line."""
        where = self.where
        try:
            entry = snapshot_line_decoder.decode(line.rstrip(b"\n"))
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise _refuse(f"bad snapshot line: {e}", where, offset=at) from None
        except RecursionError:
            raise _refuse("snapshot line nested too deeply", where, offset=at) from None
        if entry.seq != snap.seq:
            raise _refuse(f"snapshot line for seq {entry.seq} where the manifest lists "
                          f"{snap.seq}", where, offset=at)
        data = b"".join((bytes(entry.doc), b'\n{"blake2b":"', entry.blake2b.encode(),
                         b'"}\n'))
        del entry
        try:
            doc, digest = decode_snapshot(data, False, where=f"{where} byte {at}",
                                          limit=self.max_snapshot_bytes)
        except (CorruptSnapshotError, LimitExceededError) as e:
            raise _refuse(f"snapshot {snap.seq} does not verify: {e.message}", where,
                          offset=at, seq=snap.seq) from None
        why = snapshot_mismatch(doc, agent_id=agent_id, seq=snap.seq, chain_at=chain_at,
                                digest=digest, recorded_digest=mark)
        if why is None and self.key is not None and mark is None:
            why = "no snapshot record vouches for it"
        if why is not None:
            raise _refuse(f"snapshot {snap.seq} is not the journal's: {why}", where,
                          offset=at, seq=snap.seq)
        return data

"""The embedded default backend: one directory per agent under a root on the local disk.

Layout (see ``docs/format.md``)::

    <root>/<agent_id>/LOCK
    <root>/<agent_id>/segments/<first_seq:020d>.jsonl[.lz4]
    <root>/<agent_id>/snapshots/<seq:020d>.json[.lz4]
    <root>/<agent_id>/quarantine/
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

import msgspec

from .. import _codec, _fs
from .._ids import validate_agent_id
from ..errors import (
    CorruptRecordError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
)
from .base import (
    SEALED_SUFFIX,
    SEGMENT_SUFFIX,
    SNAPSHOT_LZ4_SUFFIX,
    SNAPSHOT_SUFFIX,
    Hint,
    seq_name,
)

DEFAULT_ROOT = ".agentjournal"
MAX_SEALED_SEGMENT = 1 << 30
MAX_SEGMENT_BYTES = 1 << 30
"""Largest segment file read (writers roll at 64 MiB by default): a planted huge file is refused
with LimitExceededError instead of being read into memory."""
_HINT_OFFSET = 32  # LOCK: the pid in bytes 0-20, the hint (JSON, space padded) from here
_HINT_SIZE = 96
_hint_decoder = msgspec.json.Decoder(Hint)


class _FileAppender:
    __slots__ = ("_fd", "_path")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path

    def write(self, data: bytes) -> None:
        n = _fs.ops.write(self._fd, data)
        if n != len(data):
            raise OSError(errno.EIO, f"short write ({n} of {len(data)} bytes) to {self._path}")

    def sync(self) -> None:
        _fs.ops.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            _fs.ops.close(fd)


class FileAgentStore:
    """One agent's directory."""

    def __init__(self, root: _fs.Dir, agent_id: str, *, create: bool) -> None:
        self.agent_id = agent_id
        self._dir = root.subdir(agent_id, create=create)
        try:
            self._segments = self._dir.subdir("segments", create=create)
            try:
                self._snapshots = self._dir.subdir("snapshots", create=create)
            except BaseException:
                self._segments.close()  # else its descriptor leaks
                raise
        except BaseException:
            self._dir.close()
            raise
        self._quarantine: _fs.Dir | None = None
        self._lock_fd = -1
        self._unclean_synced = False
        self._hint: Hint | None = None

    def location(self, kind: str, seq: int | None = None) -> str:
        if kind == "segment" and seq is not None:
            plain = seq_name(seq) + SEGMENT_SUFFIX
            if not self._segments.exists(plain) and self._segments.exists(
                seq_name(seq) + SEALED_SUFFIX
            ):
                return self._segments.join(seq_name(seq) + SEALED_SUFFIX)
            return self._segments.join(plain)
        if kind == "snapshot" and seq is not None:
            for suffix in (SNAPSHOT_LZ4_SUFFIX, SNAPSHOT_SUFFIX):
                if self._snapshots.exists(seq_name(seq) + suffix):
                    return self._snapshots.join(seq_name(seq) + suffix)
            return self._snapshots.join(seq_name(seq) + SNAPSHOT_LZ4_SUFFIX)
        return self._dir.path

    # --- locking ---------------------------------------------------------------------------
    def lock(self) -> None:
        if self._lock_fd >= 0:
            return
        fd = self._dir.open("LOCK", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                # The pid's line only: the hint after it starts at byte 32, past a NUL gap.
                first = _fs.ops.pread(fd, 32, 0).split(b"\n", 1)[0]
                raw = first.decode("ascii", "replace").strip()
            finally:
                _fs.ops.close(fd)
            pid = int(raw) if raw.isdigit() else None
            raise JournalLockedError(
                f"journal of agent {self.agent_id!r} is locked by another writer"
                + (f" (pid {pid})" if pid else ""),
                pid=pid,
                path=self._dir.join("LOCK"),
                hint="only one process may write an agent's journal; stop the other one "
                "or open this one read-only",
            ) from None
        except BaseException:
            _fs.ops.close(fd)
            raise
        try:
            # Fixed width, so no truncate (a metadata update costing milliseconds) is needed.
            _fs.ops.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
        except OSError:
            pass  # the pid is only informational
        self._lock_fd = fd
        self._unclean_synced = False

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            fd, self._lock_fd = self._lock_fd, -1
            _fs.ops.close(fd)  # closing releases the flock

    def read_hint(self) -> Hint | None:
        try:
            fd = self._dir.open("LOCK", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            raw = _fs.ops.pread(fd, _HINT_SIZE, _HINT_OFFSET).strip()
        finally:
            _fs.ops.close(fd)
        try:
            return _hint_decoder.decode(raw) if raw else None
        except msgspec.DecodeError:
            return None

    def write_hint(self, hint: Hint) -> None:
        if self._lock_fd < 0:
            return
        data = msgspec.json.encode(hint)
        if len(data) < _HINT_SIZE:
            try:
                _fs.ops.pwrite(self._lock_fd, data.ljust(_HINT_SIZE - 1) + b"\n", _HINT_OFFSET)
                self._hint = hint
            except OSError:
                pass  # a hint that is not written only costs the next open a listing

    def _before_temp_files(self) -> None:
        """Make "not closed cleanly" durable before this session's first temp file.

        Only atomic writes leave temp files behind, so only they need it: a power loss must
        not bring back the last clean close's hint, or a crashed session's temp files would
        never be removed. Once per open, and not at open itself (resume stays sync-free).
        """
        if self._lock_fd < 0 or self._unclean_synced:
            return
        hint = self._hint or self.read_hint() or Hint()
        if hint.clean:
            hint = Hint(seg=hint.seg, snap=hint.snap, clean=False)
        self.write_hint(hint)
        try:
            _fs.ops.fdatasync(self._lock_fd)
        except OSError:
            return  # the temp file's own write will fail the same way and say so
        self._unclean_synced = True

    # --- segments --------------------------------------------------------------------------
    def segment_exists(self, first_seq: int) -> bool:
        name = seq_name(first_seq)
        return self._segments.exists(name + SEGMENT_SUFFIX) or self._segments.exists(
            name + SEALED_SUFFIX)

    def list_segments(self) -> list[tuple[int, bool]]:
        found: dict[int, bool] = {}
        for name in self._segments.listdir():
            # Names are fixed-format: 20 digits + suffix; anything else is not ours.
            n = len(name)
            if n == 26 and name.endswith(SEGMENT_SUFFIX) and name[:20].isdigit():
                found[int(name[:20])] = False
            elif n == 30 and name.endswith(SEALED_SUFFIX) and name[:20].isdigit():
                found.setdefault(int(name[:20]), True)
        return sorted(found.items())

    def read_segment(self, first_seq: int, offset: int = 0, length: int | None = None) -> bytes:
        name = seq_name(first_seq) + SEGMENT_SUFFIX
        try:
            return self._segments.read(name, limit=MAX_SEGMENT_BYTES, offset=offset, length=length)
        except FileNotFoundError:
            sealed = seq_name(first_seq) + SEALED_SUFFIX
            raw = self._segments.read(sealed, limit=MAX_SEALED_SEGMENT)
            try:
                if length is not None:
                    # A peek (a header): inflate that much, not the whole frame.
                    data = _codec.decompress_prefix(raw, offset + length,
                                                    what=self._segments.join(sealed))
                    return data[offset:]
                data = _codec.decompress(raw, MAX_SEALED_SEGMENT, what=self._segments.join(sealed))
            except LimitExceededError:
                raise
            except ValueError as e:  # a damaged lz4 frame: the whole sealed segment is unreadable
                raise CorruptRecordError(str(e), path=self._segments.join(sealed), offset=0,
                                         hint="the sealed segment's lz4 frame is damaged") from None
            return data[offset:] if length is None else data[offset:offset + length]

    def segment_size(self, first_seq: int) -> int:
        return self._segments.size(seq_name(first_seq) + SEGMENT_SUFFIX)

    def segment_bytes(self, first_seq: int) -> int:
        name = seq_name(first_seq)
        try:
            return self._segments.size(name + SEGMENT_SUFFIX)
        except FileNotFoundError:
            return self._segments.size(name + SEALED_SUFFIX)

    def snapshot_bytes(self, seq: int) -> int:
        try:
            return self._snapshots.size(seq_name(seq) + SNAPSHOT_LZ4_SUFFIX)
        except FileNotFoundError:
            return self._snapshots.size(seq_name(seq) + SNAPSHOT_SUFFIX)

    def name(self, kind: str, seq: int) -> str:
        """A file's name relative to the agent's directory (for records: no host paths)."""
        full = self.location(kind, seq)
        return os.path.relpath(full, self._dir.path)

    def create_segment(self, first_seq: int, header: bytes, durable: bool) -> _FileAppender:
        name = seq_name(first_seq) + SEGMENT_SUFFIX
        fd = self._segments.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        app = _FileAppender(fd, self._segments.join(name))
        try:
            app.write(header)
            if durable:
                app.sync()
                self._segments.fsync()
        except BaseException:
            app.close()
            raise
        return app

    def open_segment(self, first_seq: int) -> _FileAppender:
        name = seq_name(first_seq) + SEGMENT_SUFFIX
        fd = self._segments.open(name, os.O_WRONLY | os.O_APPEND)
        return _FileAppender(fd, self._segments.join(name))

    def truncate_segment(self, first_seq: int, size: int) -> None:
        name = seq_name(first_seq) + SEGMENT_SUFFIX
        fd = self._segments.open(name, os.O_WRONLY)
        try:
            _fs.ops.ftruncate(fd, size)
            _fs.ops.fsync(fd)
        finally:
            _fs.ops.close(fd)

    def delete_segment(self, first_seq: int) -> None:
        for suffix in (SEGMENT_SUFFIX, SEALED_SUFFIX):
            try:
                self._segments.unlink(seq_name(first_seq) + suffix)
            except FileNotFoundError:
                pass
        self._segments.fsync()

    def seal_segment(self, first_seq: int, data: bytes) -> None:
        self._before_temp_files()
        self._segments.atomic_write(seq_name(first_seq) + SEALED_SUFFIX, data)
        self._segments.unlink(seq_name(first_seq) + SEGMENT_SUFFIX)
        self._segments.fsync()

    def list_quarantine(self) -> list[str]:
        if not self._dir.exists("quarantine"):
            return []
        q = self._dir.subdir("quarantine", create=False)
        try:
            return sorted(q.join(n) for n in q.listdir() if not n.startswith(".tmp-"))
        finally:
            q.close()

    def quarantine(self, first_seq: int, offset: int, data: bytes) -> str:
        if self._quarantine is None:
            self._quarantine = self._dir.subdir("quarantine", create=True)
        name = f"{seq_name(first_seq)}{SEGMENT_SUFFIX}.{offset}.{time.time_ns()}"
        self._before_temp_files()
        self._quarantine.atomic_write(name, data)
        return self._quarantine.join(name)

    # --- snapshots -------------------------------------------------------------------------
    def list_snapshots(self) -> list[int]:
        seqs = set()
        for name in self._snapshots.listdir():
            n = len(name)
            if ((n == 29 and name.endswith(SNAPSHOT_LZ4_SUFFIX))
                    or (n == 25 and name.endswith(SNAPSHOT_SUFFIX))) and name[:20].isdigit():
                seqs.add(int(name[:20]))
        return sorted(seqs)

    def write_snapshot(self, seq: int, data: bytes, compressed: bool) -> None:
        suffix = SNAPSHOT_LZ4_SUFFIX if compressed else SNAPSHOT_SUFFIX
        self._before_temp_files()
        self._snapshots.atomic_write(seq_name(seq) + suffix, data)
        other = SNAPSHOT_SUFFIX if compressed else SNAPSHOT_LZ4_SUFFIX
        try:
            self._snapshots.unlink(seq_name(seq) + other)
        except FileNotFoundError:
            pass

    def read_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        try:
            return self._snapshots.read(seq_name(seq) + SNAPSHOT_LZ4_SUFFIX, limit), True
        except FileNotFoundError:
            return self._snapshots.read(seq_name(seq) + SNAPSHOT_SUFFIX, limit), False

    def delete_snapshot(self, seq: int) -> None:
        for suffix in (SNAPSHOT_LZ4_SUFFIX, SNAPSHOT_SUFFIX):
            try:
                self._snapshots.unlink(seq_name(seq) + suffix)
            except FileNotFoundError:
                pass
        self._snapshots.fsync()

    # --- housekeeping ----------------------------------------------------------------------
    def remove_temps(self) -> list[str]:
        removed = self._snapshots.remove_temps() + self._segments.remove_temps()
        if self._dir.exists("quarantine"):
            q = self._dir.subdir("quarantine", create=False)
            try:
                removed += q.remove_temps()
            finally:
                q.close()
        return removed

    def disk_usage(self) -> int:
        total = 0
        for d in (self._segments, self._snapshots):
            for name in d.listdir():
                try:
                    total += d.size(name)
                except FileNotFoundError:
                    pass
        return total

    def sync_dirs(self) -> None:
        self._segments.fsync()
        self._snapshots.fsync()

    def close(self) -> None:
        self.unlock()
        for d in (self._quarantine, self._segments, self._snapshots, self._dir):
            if d is not None:
                d.close()


class FilesystemBackend:
    """Journals in directories under ``root`` (default ``./.agentjournal``).

    Args:
        root: the store root; created 0700 if missing.
        allow_insecure_root: accept a root that is group/world-writable or owned by another
            user (refused by default, since anyone who can write it can rewrite history).
    """

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT, *,
                 allow_insecure_root: bool = False) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.allow_insecure_root = allow_insecure_root

    def _open_root(self, create: bool) -> _fs.Dir:
        root = _fs.Dir.open_root(self.root, create=create)
        try:
            _fs.check_root_permissions(root, allow_insecure=self.allow_insecure_root)
        except BaseException:
            root.close()
            raise
        return root

    def agent(self, agent_id: str, *, create: bool) -> FileAgentStore:
        validate_agent_id(agent_id)
        try:
            root = self._open_root(create)
        except FileNotFoundError:
            raise JournalNotFoundError(
                f"no store at {self.root}", path=self.root,
                hint="check --root / AGENTJOURNAL_ROOT, or record a step first",
            ) from None
        try:
            return FileAgentStore(root, agent_id, create=create)
        except FileNotFoundError:
            raise JournalNotFoundError(
                f"no journal for agent {agent_id!r} under {self.root}",
                path=os.path.join(self.root, agent_id),
                hint="list the agents with 'agentjournal ls'",
            ) from None
        finally:
            root.close()

    def exists(self, agent_id: str) -> bool:
        validate_agent_id(agent_id)
        return os.path.isdir(os.path.join(self.root, agent_id, "segments"))

    # --- optional capability: remove what a failed import or fork created -------------------
    def discard_empty(self, agent_id: str) -> bool:
        """Remove the directory of ``agent_id`` if it holds no segment and no snapshot (what
        a failed import or fork leaves); returns whether it is gone. Anything else in it
        (a record, a quarantined tail) keeps it."""
        validate_agent_id(agent_id)
        path = os.path.join(self.root, agent_id)
        if os.path.islink(path) or not os.path.isdir(path):
            return not os.path.lexists(path)
        try:
            for sub in ("segments", "snapshots", "quarantine"):
                p = os.path.join(path, sub)
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)  # fails, and keeps the agent, unless it is empty
            for name in os.listdir(path):
                if name != "LOCK":
                    return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, "LOCK"))
            os.rmdir(path)
        except OSError:
            return False
        return True

    def list_agents(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            p = os.path.join(self.root, name)
            if (not name.startswith(".") and not os.path.islink(p)
                    and os.path.isdir(os.path.join(p, "segments"))):
                out.append(name)
        return sorted(out)

    def describe(self) -> str:
        return self.root

    def lock_holders(self) -> dict[str, int]:
        """``{agent_id: pid}`` of the agents whose writer lock is held now.

        Reads ``/proc/locks`` once for the whole store (never the locks themselves, so a
        writer starting at the same moment is not disturbed); empty where it does not exist.
        """
        try:
            with open("/proc/locks", encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        held: dict[str, int] = {}
        for line in lines:
            parts = line.split()
            if "->" in parts or len(parts) < 6 or parts[1] not in ("FLOCK", "OFDLCK", "POSIX"):
                continue
            if parts[4].isdigit():
                held[parts[5]] = int(parts[4])
        if not held:
            return {}
        out: dict[str, int] = {}
        for agent_id in self.list_agents():
            try:
                st = os.stat(os.path.join(self.root, agent_id, "LOCK"))
            except OSError:
                continue
            pid = held.get(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}")
            if pid is not None:
                out[agent_id] = pid
        return out

    def identity(self) -> tuple[str, str]:
        """Equal for two backends on the same directory (writers in one process share)."""
        return ("fs", os.path.realpath(self.root))

    # --- removing a whole journal (added for integrations/langgraph.py: delete_thread) -----
    def delete_agent(self, agent_id: str) -> bool:
        """Remove an agent's journal (segments, snapshots, quarantine) from the disk.

        Refused while a writer holds its lock (this process's own open writers included).
        The directory is first renamed to ``.deleted.<agent_id>.<ns>`` (one atomic rename,
        so a crash never leaves half a journal under the agent's name), then removed;
        leftovers of an interrupted removal are removed by the next call. Returns whether
        there was a journal.

        Raises:
            JournalLockedError: a writer has the journal open.
        """
        import shutil

        validate_agent_id(agent_id)
        try:
            root = self._open_root(False)
        except FileNotFoundError:
            return False
        try:
            for name in os.listdir(root.path):
                if name.startswith(".deleted."):
                    shutil.rmtree(root.join(name), ignore_errors=True)
            try:
                store = FileAgentStore(root, agent_id, create=False)
            except FileNotFoundError:
                return False
            try:
                store.lock()  # raises JournalLockedError while a writer holds it
                trash = f".deleted.{agent_id}.{time.time_ns()}"
                os.rename(agent_id, trash, src_dir_fd=root.fd, dst_dir_fd=root.fd)
                root.fsync()
            finally:
                store.close()
            shutil.rmtree(root.join(trash), ignore_errors=True)
            root.fsync()
            return True
        finally:
            root.close()

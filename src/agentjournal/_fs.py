"""Every file-system call the engine makes, in one place.

All calls go through the module-level :data:`ops` object so that tests can replace it with a
layer that injects faults (``OSError(ENOSPC)`` on the Nth write) or simulates power loss (drops
unsynced writes and directory entries). Nothing else in the engine calls ``os`` for file I/O.

Files are always opened relative to a directory file descriptor with ``O_NOFOLLOW``, so a
symlink planted under the root is never followed, and created with exact modes (0600 files,
0700 directories) whatever the process umask.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import UnsafePathError

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".tmp-"


class FileOps:
    """The real operating-system calls. Subclass and assign to :data:`ops` to inject faults."""

    def open(self, name: str, flags: int, mode: int = FILE_MODE, dir_fd: int | None = None) -> int:
        return os.open(name, flags, mode, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fchmod(self, fd: int, mode: int) -> None:
        os.fchmod(fd, mode)

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        os.replace(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    def unlink(self, name: str, dir_fd: int) -> None:
        os.unlink(name, dir_fd=dir_fd)

    def mkdir(self, name: str, mode: int, dir_fd: int | None = None) -> None:
        os.mkdir(name, mode, dir_fd=dir_fd)

    def listdir(self, fd: int) -> list[str]:
        return os.listdir(fd)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        return os.pwrite(fd, data, offset)


ops: FileOps = FileOps()


def _check_dir_fd(fd: int, path: str) -> None:
    st = ops.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path} is not a directory")


class Dir:
    """An open directory: every file under it is reached relative to its descriptor."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open_root(cls, path: str, *, create: bool) -> Dir:
        """Open (and with ``create`` make, 0700, with any missing parents) the store root."""
        path = os.path.abspath(path)
        if create:
            try:
                try:
                    ops.mkdir(path, DIR_MODE)
                except FileNotFoundError:
                    # ``root="a/b/c"`` with missing parents: make them, as ``mkdir -p`` does
                    # (with the umask's mode; the root itself is 0700).
                    os.makedirs(os.path.dirname(path), DIR_MODE, exist_ok=True)
                    ops.mkdir(path, DIR_MODE)
            except FileExistsError:
                pass
            else:
                os.chmod(path, DIR_MODE)
        try:
            fd = ops.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, 0)
        except OSError as e:
            # O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR on Linux, not ELOOP.
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePathError(
                    f"store root {path} is a symlink or not a directory", path=path,
                    hint="point --root at the real directory",
                ) from None
            raise
        return cls(fd, path)

    def subdir(self, name: str, *, create: bool) -> Dir:
        """Open (and with ``create`` make, 0700) the directory ``name`` under this one."""
        if create:
            try:
                ops.mkdir(name, DIR_MODE, dir_fd=self.fd)
            except FileExistsError:
                pass
            else:
                fd = ops.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, 0, dir_fd=self.fd)
                try:
                    ops.fchmod(fd, DIR_MODE)
                finally:
                    ops.close(fd)
                self.fsync()
        path = os.path.join(self.path, name)
        try:
            fd = ops.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, 0, dir_fd=self.fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePathError(
                    f"{path} is a symlink or not a directory; refusing to follow it",
                    path=path, hint="remove the planted file; agentjournal never follows links",
                ) from None
            raise
        return Dir(fd, path)

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def open(self, name: str, flags: int) -> int:
        """Open the regular file ``name`` under this directory without following symlinks.

        ``O_NONBLOCK`` (no effect on regular files) keeps a FIFO planted under the root from
        blocking the open; anything but a regular file is then refused. A file opened for
        writing must have one link: a hard link planted at ``LOCK`` or at a segment would
        make the writer overwrite or truncate a file outside the store (``O_NOFOLLOW`` only
        stops symlinks).
        """
        try:
            fd = ops.open(name, flags | _NOFOLLOW | os.O_NONBLOCK, FILE_MODE, dir_fd=self.fd)
        except OSError as e:
            if e.errno == errno.ELOOP or (
                    e.errno == errno.EEXIST and flags & os.O_EXCL and self._is_link(name)):
                raise UnsafePathError(
                    f"{self.join(name)} is a symlink; refusing to follow it",
                    path=self.join(name), hint="remove the planted symlink",
                ) from None
            if e.errno == errno.EISDIR:
                raise UnsafePathError(f"{self.join(name)} is not a regular file",
                                      path=self.join(name)) from None
            raise
        try:
            st = ops.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"{self.join(name)} is not a regular file",
                                      path=self.join(name))
            if flags & (os.O_WRONLY | os.O_RDWR) and st.st_nlink > 1:
                raise UnsafePathError(
                    f"{self.join(name)} has {st.st_nlink} hard links; refusing to write "
                    "through it", path=self.join(name),
                    hint="a hard link makes writes land in a file outside the store: remove "
                    "the planted link (agentjournal's files have exactly one)")
            if flags & os.O_CREAT and stat.S_IMODE(st.st_mode) != FILE_MODE:
                ops.fchmod(fd, FILE_MODE)
        except BaseException:
            ops.close(fd)
            raise
        return fd

    def _is_link(self, name: str) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    def read(self, name: str, limit: int, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``name`` from ``offset`` to its end (or ``length`` bytes), refusing files
        larger than ``limit``."""
        fd = self.open(name, os.O_RDONLY)
        try:
            st = ops.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"{self.join(name)} is not a regular file",
                                      path=self.join(name))
            size = st.st_size
            if size > limit:
                from .errors import LimitExceededError

                raise LimitExceededError(
                    f"{self.join(name)} is {size} bytes, over the limit of {limit}",
                    path=self.join(name), hint="raise the size limit only if you trust this file",
                )
            chunks = []
            pos = offset
            if length is not None:
                size = min(size, offset + length)
            while pos < size:
                chunk = ops.pread(fd, size - pos, pos)
                if not chunk:
                    break
                chunks.append(chunk)
                pos += len(chunk)
            return b"".join(chunks)
        finally:
            ops.close(fd)

    def size(self, name: str) -> int:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_size

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def listdir(self) -> list[str]:
        return ops.listdir(self.fd)

    def fsync(self) -> None:
        ops.fsync(self.fd)

    def unlink(self, name: str) -> None:
        ops.unlink(name, self.fd)

    def atomic_write(self, name: str, data: bytes) -> None:
        """Write ``name`` so that it is either its old content or all of ``data``, durably.

        Temp file in this directory (``O_EXCL|O_NOFOLLOW``, 0600) -> write -> fsync ->
        ``os.replace`` -> fsync the directory. The temp file is removed on any error.
        """
        tmp = f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{name}"
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            try:
                pos = 0
                while pos < len(data):
                    n = ops.write(fd, data[pos:] if pos else data)
                    if n <= 0:
                        raise OSError(errno.EIO, f"short write to {self.join(tmp)}")
                    pos += n
                ops.fsync(fd)
            finally:
                ops.close(fd)
            ops.replace(tmp, name, self.fd)
        except BaseException:
            try:
                ops.unlink(tmp, self.fd)
            except OSError:
                pass
            raise
        self.fsync()

    def remove_temps(self) -> list[str]:
        """Remove temp files left behind by a crash inside :meth:`atomic_write`."""
        removed = []
        for name in self.listdir():
            if name.startswith(TEMP_PREFIX):
                try:
                    self.unlink(name)
                    removed.append(name)
                except FileNotFoundError:
                    pass
        return removed

    def close(self) -> None:
        if self.fd >= 0:
            try:
                ops.close(self.fd)
            finally:
                self.fd = -1


def check_root_permissions(root: Dir, *, allow_insecure: bool) -> None:
    """Refuse a root that others could write to or that belongs to another user."""
    if allow_insecure:
        return
    st = ops.fstat(root.fd)
    problems = []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"is writable by {'group' if st.st_mode & stat.S_IWGRP else 'others'}")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        problems.append(f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
    if problems:
        raise UnsafePathError(
            f"store root {root.path} " + " and ".join(problems),
            path=root.path,
            hint=f"run 'chmod 700 {root.path}' (or chown it), or pass allow_insecure_root=True",
        )


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Temporarily set the process umask (tests)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


FDS_PER_JOURNAL = 6
"""Descriptors an open writer holds at most (lock, agent dir, segments/, snapshots/, the
open segment, quarantine/)."""
FD_RESERVE = 64
"""Descriptors left for everything else of the process (sockets, logs, snapshot writes)."""


def open_journals_within_fd_limit() -> int:
    """How many writers fit in the process's soft descriptor limit (at least 1).

    A bound for keeping writers open (``StateManager``): its ``max_open_journals`` default
    assumes the usual limit of 1024; under a lower one (``ulimit -n 256``) fewer fit.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 1 << 30
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, (soft - FD_RESERVE) // FDS_PER_JOURNAL)

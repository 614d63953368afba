"""T5 snapshot crash matrix.

A journal with two snapshots already (``keep_snapshots=2``, a snapshot every 3 steps) goes on
appending; a file-ops shim crashes the process at one point of the n-th snapshot it writes:

* ``temp_created``: the temp file exists, nothing written;
* ``after_temp_write``: written, before its ``fsync``;
* ``after_temp_fsync``: synced, before the ``rename``;
* ``after_rename``: renamed into place, before the directory ``fsync``;
* ``after_dir_fsync``: the snapshot is durable, before its journal record;
* ``unlink_old``: retention removing the oldest snapshot, before the ``unlink``;
* ``after_unlink_old``: after it, before the directory ``fsync``.

"Crash" is a real ``SIGKILL`` of a forked child at that point (no cleanup runs), or, in the same
process, an ``OSError(EIO)`` raised there (cleanup runs; the journal is closed and reopened).
Snapshots compressed and not, the first snapshot of the run and a later one.

Then, with the real file ops: the journal opens; no temp file remains; the snapshot resume uses
is complete and valid (its state is exactly what was written at its step), an older one, or none;
resume equals our full replay; every check of ``crash_helpers.check_journal`` passes.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import (
    AGENT,
    History,
    caught_warnings,
    check_journal,
    count_warnings,
    report,
    run_killed,
    state_for,
    temp_files,
)

from agentjournal import Journal, _fs

POINTS = ["temp_created", "after_temp_write", "after_temp_fsync", "after_rename",
          "after_dir_fsync", "unlink_old", "after_unlink_old"]
OPTIONS = dict(snapshot_every=3, segment_max_records=5, keep_snapshots=2)
PREP_STEPS = 7  # snapshots after steps 3 and 6


class CrashOps(_fs.FileOps):
    """Crashes at the ``nth`` occurrence of ``point`` in the snapshots directory."""

    def __init__(self, point: str, nth: int, mode: str) -> None:
        self.point, self.nth, self.mode = point, nth, mode
        self.seen = 0
        self.fired = False
        self.names: dict[int, str] = {}
        self.last_replace_snap = False
        self.last_unlink_snap = False

    def _hit(self, point: str) -> None:
        if point != self.point or self.fired:
            return
        self.seen += 1
        if self.seen < self.nth:
            return
        self.fired = True
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.EIO, f"injected crash at {point}")

    def _in_snaps(self, dir_fd: int | None) -> bool:
        return dir_fd is not None and self.names.get(dir_fd) == "snapshots"

    def open(self, name: str, flags: int, mode: int = _fs.FILE_MODE,
             dir_fd: int | None = None) -> int:
        fd = super().open(name, flags, mode, dir_fd)
        self.names[fd] = os.path.basename(name)
        if flags & os.O_CREAT and name.startswith(".tmp-") and self._in_snaps(dir_fd):
            self.names[fd] = "snaptemp"
            self._hit("temp_created")
        return fd

    def close(self, fd: int) -> None:
        self.names.pop(fd, None)
        super().close(fd)

    def fsync(self, fd: int) -> None:
        if self.names.get(fd) == "snaptemp":
            self._hit("after_temp_write")
            super().fsync(fd)
            return
        super().fsync(fd)
        if self.names.get(fd) == "snapshots":
            if self.last_replace_snap:
                self.last_replace_snap = False
                self._hit("after_dir_fsync")
            if self.last_unlink_snap:
                self.last_unlink_snap = False

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        snap = self._in_snaps(dir_fd)
        if snap:
            self._hit("after_temp_fsync")
        super().replace(src, dst, dir_fd)
        if snap:
            self.last_replace_snap = True
            self._hit("after_rename")

    def unlink(self, name: str, dir_fd: int) -> None:
        old = (self._in_snaps(dir_fd) and not name.startswith(".tmp-")
               and _exists(name, dir_fd))
        if old:
            self._hit("unlink_old")
        super().unlink(name, dir_fd)
        if old:
            self.last_unlink_snap = True
            self._hit("after_unlink_old")


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _prepare(root: Path, compress: bool) -> None:
    with Journal(AGENT, root, compress=compress, **OPTIONS) as j:
        for step in range(1, PREP_STEPS + 1):
            j.append(state_for(step))
    assert len(os.listdir(root / AGENT / "snapshots")) == 2


def _work(root: Path, shim: CrashOps, compress: bool, ackfile: Path | None = None) -> int:
    """Append until the shim fires; returns the largest acknowledged seq (also kept in
    ``ackfile`` after every append, for a child that is killed)."""
    acked = 0
    saved = _fs.ops
    _fs.ops = shim
    try:
        j = Journal(AGENT, root, compress=compress, **OPTIONS)
        try:
            acked = j.last_seq
            step = j.last_step
            for _ in range(12):
                step += 1
                try:
                    j.append(state_for(step))
                except OSError:
                    if not shim.fired:
                        raise
                    break
                acked = j.last_seq
                if ackfile is not None:
                    ackfile.write_text(str(acked))
        finally:
            try:
                j.close()
            except OSError:
                pass
    finally:
        _fs.ops = saved
    return acked


def _run_killed(root: Path, shim: CrashOps, compress: bool, tmp: Path) -> int:
    """Run :func:`_work` in a forked child that SIGKILLs itself at the point."""
    acks = tmp / "acked"
    errs = tmp / "child-error"
    run_killed(lambda: _work(root, shim, compress, acks), errs)
    return int(acks.read_text()) if acks.exists() else 0


def _case(tmp: Path, point: str, mode: str, compress: bool, nth: int, stats: dict) -> None:
    root = tmp / "root"
    _prepare(root, compress)
    with Journal(AGENT, root, readonly=True) as j:
        acked = j.last_seq
    shim = CrashOps(point, nth, mode)
    if mode == "kill":
        acked = max(acked, _run_killed(root, shim, compress, tmp))
    else:
        acked = _work(root, shim, compress)
        assert shim.fired, f"{point} never happened"
    before = set(os.listdir(root / AGENT / "snapshots"))
    stats["temps_left"] += sum(1 for n in before if n.startswith(".tmp-"))
    with caught_warnings() as got:
        with Journal(AGENT, root, compress=compress, **OPTIONS) as j:
            assert not temp_files(root), "a temp file survived the next open"
            res = check_journal(j, History(), acked=acked, state_at_samples=0)
            snaps = j.snapshot_seqs()
            if res.snapshot_used is None:
                stats["used_none"] += 1
            elif res.snapshot_used == max(snaps):
                stats["used_newest"] += 1
            else:
                stats["used_older"] += 1
            a = j.append(state_for(res.last_step + 1))
            assert a.seq == res.last_seq + 1
            assert j.verify().ok
    _n_rec, n_skip, other = count_warnings(got)
    assert not other, other
    stats["skipped"] += n_skip


def test_t5_snapshot_crash_matrix(tmp_path: Path) -> None:
    t0 = time.monotonic()
    stats: dict[str, Any] = dict(cases=0, kills=0, exceptions=0, temps_left=0, used_newest=0,
                                 used_older=0, used_none=0, skipped=0)
    n = 0
    for point in POINTS:
        for mode in ("kill", "exception"):
            for compress in (True, False):
                for nth in (1, 2):
                    n += 1
                    case_dir = tmp_path / f"case{n}"
                    case_dir.mkdir()
                    try:
                        _case(case_dir, point, mode, compress, nth, stats)
                    except BaseException as e:
                        raise AssertionError(f"{point} {mode} compress={compress} nth={nth}: "
                                             f"{e}") from e
                    stats["cases"] += 1
                    stats["kills" if mode == "kill" else "exceptions"] += 1
    report("T5", crash_points=len(POINTS), cases=stats["cases"], kills=stats["kills"],
           exceptions=stats["exceptions"], temps_left_by_crash=stats["temps_left"],
           resumed_from_newest=stats["used_newest"], resumed_from_older=stats["used_older"],
           resumed_from_genesis=stats["used_none"], snapshots_skipped=stats["skipped"], lost=0,
           seconds=round(time.monotonic() - t0, 1))


@pytest.mark.parametrize("point", POINTS)
def test_t5_point_is_reached(tmp_path: Path, point: str) -> None:
    """Guard against a matrix that tests nothing: every point fires in a run."""
    _prepare(tmp_path / "root", True)
    shim = CrashOps(point, 1, "exception")
    _work(tmp_path / "root", shim, True)
    assert shim.fired

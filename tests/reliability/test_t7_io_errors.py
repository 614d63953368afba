"""T7 I/O error injection.

:class:`FaultOps` counts the calls of each kind (``write``, ``fsync``, ``fdatasync``,
``replace``, ``open``, ``mkdir``, and also ``unlink``, ``ftruncate`` and ``pwrite``) and makes
the Nth call of one kind fail. A clean run of the
workload gives the number of calls of each kind; then, for every kind and every N, the workload
runs again with the Nth call failing with ``EIO``, ``ENOSPC`` or ``EDQUOT`` (at CI scale one
errno per N, rotating; the ``slow`` variant runs all three for every N, and each again as a
persistent fault: every call of the kind from the Nth on fails, as on a disk that stays full),
and for writes also as a *short write* (half the bytes written, then ``ENOSPC`` on the next
write), as a full disk does.

Two workloads: a fresh journal (creating the directories), and a journal left by a crash (a torn
tail and a stale temp file to recover). Each opens the journal, appends 12 steps (a snapshot
every 3, a roll every 4 records, retention keeping 2 snapshots with pruning or compression) and
closes it. After the fault:

* every exception that reaches the caller is typed (a ``JournalError`` or an ``OSError``); an
  append that raised is not acknowledged, and after an append raised ``JournalPoisonedError``
  (always the case when a write or sync of the journal itself failed) the writer refuses every
  further append with ``JournalPoisonedError``;
* an append that returned acknowledged its record, even if a snapshot or retention behind it
  failed (housekeeping never fails a step that is already durable);
* no file descriptor is leaked (``/proc/self/fd`` before and after) and, after reopening with
  the real file ops, no temp file remains;
* reopened, the history holds every acknowledged record, is exactly what was written
  (``crash_helpers.check_journal``), verifies, and takes the next append at last + 1.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import (
    AGENT,
    SCALE,
    History,
    caught_warnings,
    check_journal,
    count_warnings,
    open_fds,
    report,
    run_killed,
    state_for,
    temp_files,
)

from agentjournal import Journal, JournalError, JournalPoisonedError, Step, _fs

KINDS = ("write", "fsync", "fdatasync", "replace", "open", "mkdir", "unlink", "ftruncate",
         "pwrite")
ERRNOS = (errno.EIO, errno.ENOSPC, errno.EDQUOT)
STEPS = 12
WORKLOADS = {
    "fresh": dict(snapshot_every=3, segment_max_records=4, keep_snapshots=2, prune=True),
    "recover": dict(snapshot_every=3, segment_max_records=4, keep_snapshots=2,
                    compress_segments=True),
}


class FaultOps(_fs.FileOps):
    """Counts calls per kind; the ``n``-th call of ``kind`` fails with ``err``."""

    def __init__(self, kind: str | None = None, n: int = 0, err: int = errno.EIO,
                 short: bool = False, persistent: bool = False) -> None:
        self.kind, self.n, self.err, self.short = kind, n, err, short
        self.persistent = persistent
        """Every call of ``kind`` from the ``n``-th on fails (a disk that stays full)."""
        self.counts = dict.fromkeys(KINDS, 0)
        self.fired: str | None = None
        """Name of the file or directory the fault hit."""
        self.fault_is_journal_sync = False
        self._fail_next_write = False
        self.names: dict[int, str] = {}

    def _check(self, kind: str, what: str, fd: int | None = None) -> None:
        self.counts[kind] += 1
        if kind == self.kind and (self.counts[kind] == self.n and not self.fired
                                  or self.persistent and self.counts[kind] >= self.n):
            self.fired = self.fired or what
            if kind in ("fsync", "fdatasync") and fd is not None:
                self.fault_is_journal_sync = _is_journal(self.names.get(fd, ""))
            raise OSError(self.err, f"injected {os.strerror(self.err)} on {kind} #{self.n}")

    def open(self, name: str, flags: int, mode: int = _fs.FILE_MODE,
             dir_fd: int | None = None) -> int:
        self._check("open", name)
        fd = super().open(name, flags, mode, dir_fd)
        self.names[fd] = os.path.basename(name)
        return fd

    def close(self, fd: int) -> None:
        self.names.pop(fd, None)
        super().close(fd)

    def write(self, fd: int, data: bytes) -> int:
        if self._fail_next_write:
            self._fail_next_write = False
            self.counts["write"] += 1
            raise OSError(errno.ENOSPC, "injected ENOSPC after a short write")
        if self.short and self.kind == "write" and self.counts["write"] + 1 == self.n:
            self.counts["write"] += 1
            self.fired = self.names.get(fd, "?")
            self._fail_next_write = True
            return super().write(fd, data[: max(1, len(data) // 2)])
        self._check("write", self.names.get(fd, "?"))
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._check("fsync", self.names.get(fd, "?"), fd)
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self._check("fdatasync", self.names.get(fd, "?"), fd)
        super().fdatasync(fd)

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        self._check("replace", dst)
        super().replace(src, dst, dir_fd)

    def mkdir(self, name: str, mode: int, dir_fd: int | None = None) -> None:
        self._check("mkdir", name)
        super().mkdir(name, mode, dir_fd)

    def unlink(self, name: str, dir_fd: int) -> None:
        self._check("unlink", name)
        super().unlink(name, dir_fd)

    def ftruncate(self, fd: int, size: int) -> None:
        self._check("ftruncate", self.names.get(fd, "?"))
        super().ftruncate(fd, size)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        self._check("pwrite", self.names.get(fd, "?"))
        return super().pwrite(fd, data, offset)


def _is_journal(name: str) -> bool:
    """A segment file or the segments directory (the journal itself, not a snapshot)."""
    return name == "segments" or name.endswith(".jsonl")


def _prepare(base: Path) -> dict[str, Path]:
    """Template stores: ``fresh`` (empty root) and ``recover`` (left by a crash: a torn tail
    and a stale temp file, in a child that SIGKILLs itself with the journal open)."""
    fresh = base / "fresh"
    fresh.mkdir(mode=0o700, parents=True)
    rec = base / "recover"

    def crash_with_torn_tail() -> None:
        j = Journal(AGENT, rec, **WORKLOADS["recover"])
        for step in range(1, 6):
            j.append(state_for(step))
        segs = sorted((rec / AGENT / "segments").iterdir())
        with open(segs[-1], "ab") as f:
            f.write(b'{"kind":"step","seq":99,"ts":1.0,"st')  # a torn tail
        tmp = rec / AGENT / "snapshots" / ".tmp-1-dead-00000000000000000009.json.lz4"
        tmp.write_bytes(b"half a snapshot")
        tmp.chmod(0o600)
        os.kill(os.getpid(), signal.SIGKILL)

    run_killed(crash_with_torn_tail, base / "template-error")
    return {"fresh": fresh, "recover": rec}


@dataclass
class Outcome:
    acked: int = 0
    errors: list[BaseException] = field(default_factory=list)
    poisoned_then_refused: int = 0
    swallowed: bool = False
    raised_step: int | None = None
    """The step of the append that raised (its outcome is only unknown after a failed sync)."""
    unknown_outcome: bool = False


def _workload(root: Path, options: dict[str, Any], shim: FaultOps) -> Outcome:
    out = Outcome()
    saved = _fs.ops
    _fs.ops = shim
    try:
        try:
            j = Journal(AGENT, root, **options)
        except (OSError, JournalError) as e:
            out.errors.append(e)
            return out
        try:
            out.acked = j.last_seq
            step = j.last_step
            for _ in range(STEPS):
                try:
                    j.append(state_for(step + 1))
                except (OSError, JournalError) as e:
                    out.errors.append(e)
                    out.raised_step = step + 1
                    out.unknown_outcome = shim.fault_is_journal_sync
                    if isinstance(e, JournalPoisonedError) or shim.fault_is_journal_sync:
                        assert isinstance(e, JournalPoisonedError), \
                            f"a failed journal sync raised {type(e).__name__}, not poisoned"
                        try:
                            j.append(state_for(step + 1))
                        except JournalPoisonedError:
                            out.poisoned_then_refused += 1
                        else:
                            raise AssertionError("a poisoned writer accepted an append") from None
                    break
                step += 1
                out.acked = j.last_seq
        finally:
            try:
                j.close()
            except (OSError, JournalError) as e:
                out.errors.append(e)
    finally:
        _fs.ops = saved
    out.swallowed = shim.fired is not None and not out.errors
    return out


def _check_after(root: Path, options: dict[str, Any], out: Outcome) -> int:
    with caught_warnings() as got:
        with Journal(AGENT, root, **options) as j:
            assert not temp_files(root), "a temp file survived the reopen"
            res = check_journal(j, History(), acked=out.acked,
                                prune=bool(options.get("prune")), state_at_samples=0)
            if out.raised_step is not None and not out.unknown_outcome:
                steps = {r.step for r in j.records() if isinstance(r, Step)}
                assert out.raised_step not in steps, (
                    f"append of step {out.raised_step} raised {out.errors[-1]!r} but the step "
                    "was recorded: a caller that retries would record it twice")
            a = j.append(state_for(res.last_step + 1))
            assert a.seq == res.last_seq + 1
            assert j.verify().ok
    _rec, _skip, other = count_warnings(got)
    assert not other, other
    return res.records


@dataclass
class Stats:
    runs: int = 0
    faults: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    typed_errors: int = 0
    poisoned: int = 0
    refused_after_poison: int = 0
    housekeeping_only: int = 0
    records_verified: int = 0


def _t7(tmp_path: Path, all_errnos: bool, seed: int, persistent: bool = False) -> None:
    t0 = time.monotonic()
    rng = random.Random(seed)
    templates = _prepare(tmp_path / "templates")
    stats = Stats()
    for name, options in WORKLOADS.items():
        clean = FaultOps()
        root = tmp_path / "clean"
        shutil.copytree(templates[name], root)
        with caught_warnings():
            _workload(root, options, clean)
        shutil.rmtree(root)
        plans = []
        for kind in KINDS:
            for n in range(1, clean.counts[kind] + 1):
                errs = ERRNOS if all_errnos else (ERRNOS[(n + rng.randrange(3)) % 3],)
                plans += [(kind, n, e, False, False) for e in errs]
                if kind == "write":
                    plans.append((kind, n, errno.ENOSPC, True, False))
                if persistent:
                    plans += [(kind, n, e, False, True) for e in errs]
        for kind, n, err, short, always in plans:
            root = tmp_path / "run"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(templates[name], root)
            shim = FaultOps(kind, n, err, short, always)
            fds = open_fds()
            try:
                with caught_warnings() as got:
                    out = _workload(root, options, shim)
                assert not count_warnings(got)[2], count_warnings(got)[2]
                assert shim.fired, "the fault never happened"
                assert open_fds() == fds, f"leaked fds: {open_fds() - fds}"
                for e in out.errors:
                    assert isinstance(e, (OSError, JournalError)), repr(e)
                stats.records_verified += _check_after(root, options, out)
            except BaseException as e:
                raise AssertionError(
                    f"{name}: {kind} #{n} failing with {errno.errorcode[err]}"
                    f"{' (short write)' if short else ''}{' from then on' if always else ''} "
                    f"on {shim.fired}: {e}") from e
            stats.runs += 1
            stats.faults += 1
            stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
            stats.typed_errors += len(out.errors)
            stats.poisoned += sum(isinstance(e, JournalPoisonedError) for e in out.errors)
            stats.refused_after_poison += out.poisoned_then_refused
            stats.housekeeping_only += out.swallowed
    report("T7", workloads=len(WORKLOADS), faults_injected=stats.faults,
           **{f"faults_{k}": v for k, v in sorted(stats.by_kind.items())},
           errnos="EIO,ENOSPC,EDQUOT" + ("(all per N)" if all_errnos else "(rotating)"),
           persistent_faults=persistent,
           typed_errors=stats.typed_errors, poisoned=stats.poisoned,
           refused_after_poison=stats.refused_after_poison,
           absorbed_by_housekeeping=stats.housekeeping_only,
           records_verified=stats.records_verified, leaked_fds=0, temp_files_left=0, lost=0,
           seconds=round(time.monotonic() - t0, 1), seed=seed)


def test_t7_io_error_injection(tmp_path: Path) -> None:
    _t7(tmp_path, all_errnos=SCALE > 1, seed=7)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t7_io_error_injection_slow(tmp_path: Path) -> None:
    _t7(tmp_path, all_errnos=True, seed=7007, persistent=True)

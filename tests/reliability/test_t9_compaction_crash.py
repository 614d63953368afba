"""T9 compaction crash safety.

A template journal (30 steps, a snapshot every 3, a roll every 4 records, no retention yet: ten
snapshots and a dozen segments) is compacted with ``keep_snapshots=K``, pruning or compressing
old segments. A file-ops shim, armed just before ``compact()``, counts the calls that change
the disk (create, write, fsync, fdatasync, rename, truncate, unlink); a clean run gives their
number, and the sweep crashes before each one in turn:

* by ``SIGKILL`` of a forked child (nothing runs after the crash point), and
* by an ``OSError(EIO)`` raised there in this process (the engine's error handling runs; the
  journal is closed as a caller would).

After each crash, with the real file ops: the journal opens; no snapshot is skipped; the history
starts at the first record (or, pruned, at a segment an anchor vouches for) and every check of
``crash_helpers.check_journal`` passes (gap-free, exactly what was written, resume equals our full
replay, ``verify`` ok); nothing after the oldest snapshot compaction keeps is lost (every
template record after it is present, unchanged, and that snapshot still loads). Then compaction
runs twice: the first finishes the job (the snapshots left are exactly those of an uncrashed
compaction), the second changes nothing (idempotent), and everything still verifies.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import (
    AGENT,
    SLOW_FACTOR,
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

BASE = dict(snapshot_every=3, segment_max_records=4)


class CrashOps(_fs.FileOps):
    """Counts disk-changing calls once armed; crashes before the ``at``-th (0: never)."""

    def __init__(self, at: int = 0, mode: str = "kill") -> None:
        self.at, self.mode = at, mode
        self.armed = False
        self.count = 0
        self.fired = ""

    def _op(self, what: str) -> None:
        if not self.armed:
            return
        self.count += 1
        if self.count == self.at:
            self.fired = what
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.EIO, f"injected crash before {what}")

    def open(self, name: str, flags: int, mode: int = _fs.FILE_MODE,
             dir_fd: int | None = None) -> int:
        if flags & os.O_CREAT:
            self._op(f"create {name}")
        return super().open(name, flags, mode, dir_fd)

    def write(self, fd: int, data: bytes) -> int:
        self._op("write")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._op("fsync")
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self._op("fdatasync")
        super().fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        self._op("truncate")
        super().ftruncate(fd, size)

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        self._op(f"rename to {dst}")
        super().replace(src, dst, dir_fd)

    def unlink(self, name: str, dir_fd: int) -> None:
        self._op(f"unlink {name}")
        super().unlink(name, dir_fd)


@dataclass(frozen=True)
class Config:
    keep: int
    prune: bool
    steps: int = 30
    compress: bool = True

    @property
    def mode(self) -> dict[str, Any]:
        return dict(prune=self.prune, compress_segments=not self.prune)


@dataclass
class Template:
    root: Path
    hashes: dict[int, str]
    snaps: list[int]
    last_seq: int
    reference_snaps: list[int]


def _template(base: Path, cfg: Config) -> Template:
    root = base / "template"
    with Journal(AGENT, root, compress=cfg.compress, **BASE) as j:
        for step in range(1, cfg.steps + 1):
            j.append(state_for(step))
        hashes = {r.seq: r.h for r in j.records()}
        snaps = j.snapshot_seqs()
        last = j.last_seq
    ref = base / "reference"
    shutil.copytree(root, ref)
    with Journal(AGENT, ref, compress=cfg.compress, **BASE) as j:
        j.compact(keep_snapshots=cfg.keep, **cfg.mode)
        ref_snaps = j.snapshot_seqs()
    shutil.rmtree(ref)
    assert len(snaps) > cfg.keep + 2
    return Template(root, hashes, snaps, last, ref_snaps)


def _compact(root: Path, cfg: Config, shim: CrashOps) -> None:
    saved = _fs.ops
    _fs.ops = shim
    try:
        j = Journal(AGENT, root, compress=cfg.compress, **BASE)
        try:
            shim.armed = True
            j.compact(keep_snapshots=cfg.keep, **cfg.mode)
        except OSError:
            if not shim.fired:
                raise
        finally:
            shim.armed = False
            try:
                j.close()
            except OSError:
                pass
    finally:
        _fs.ops = saved


def _killed(root: Path, cfg: Config, shim: CrashOps, tmp: Path) -> None:
    errs = tmp / "child-error"
    run_killed(lambda: _compact(root, cfg, shim), errs)


def _check(root: Path, cfg: Config, tpl: Template) -> int:
    keep0 = tpl.snaps[-cfg.keep]  # the oldest snapshot compaction keeps
    with caught_warnings() as got:
        with Journal(AGENT, root, compress=cfg.compress, **BASE) as j:
            assert not temp_files(root), "a temp file survived the next open"
            hist = History()
            res = check_journal(j, hist, acked=tpl.last_seq, prune=cfg.prune,
                                state_at_samples=0)
            recs = {r.seq: r.h for r in j.records()}
            for seq in range(keep0 + 1, tpl.last_seq + 1):
                assert recs.get(seq) == tpl.hashes[seq], f"record {seq} after the kept " \
                    f"snapshot {keep0} was lost or changed"
            assert res.first_seq <= keep0 + 1
            assert keep0 in j.snapshot_seqs()
            assert j.load_snapshot(keep0).state == state_for(j.load_snapshot(keep0).step)
            for k in (j.load_snapshot(keep0).step, res.last_step):
                assert j.state_at(k) == state_for(k)
            # Compaction twice: the first finishes the job, the second changes nothing.
            j.compact(keep_snapshots=cfg.keep, **cfg.mode)
            after = (j.snapshot_seqs(), j.segment_seqs(), [r.h for r in j.records()])
            assert after[0] == tpl.reference_snaps, "compaction did not finish the job"
            rep2 = j.compact(keep_snapshots=cfg.keep, **cfg.mode)
            assert not (rep2.snapshots_deleted or rep2.segments_deleted
                        or rep2.segments_compressed or rep2.anchor_seq), f"not idempotent: {rep2}"
            assert (j.snapshot_seqs(), j.segment_seqs(), [r.h for r in j.records()]) == after
            check_journal(j, hist, acked=tpl.last_seq, prune=cfg.prune, state_at_samples=0)
    _rec, n_skip, other = count_warnings(got)
    assert not other, other
    assert n_skip == 0, "a snapshot was skipped after a crash in compaction"
    return hist.verified


def _sweep(tmp: Path, cfg: Config, stats: dict[str, int]) -> None:
    tpl = _template(tmp, cfg)
    clean = CrashOps()
    run = tmp / "run"
    shutil.copytree(tpl.root, run)
    _compact(run, cfg, clean)
    shutil.rmtree(run)
    assert clean.count > 0
    for mode in ("kill", "exception"):
        for at in range(1, clean.count + 1):
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(tpl.root, run)
            shim = CrashOps(at, mode)
            try:
                if mode == "kill":
                    _killed(run, cfg, shim, tmp)
                else:
                    _compact(run, cfg, shim)
                    assert shim.fired
                stats["records_verified"] += _check(run, cfg, tpl)
            except BaseException as e:
                raise AssertionError(f"{cfg} {mode} before disk op #{at} "
                                     f"({shim.fired or '?'}): {e}") from e
            stats["kills" if mode == "kill" else "exceptions"] += 1
        stats["crash_points"] += clean.count
    stats["configs"] += 1


def _t9(tmp_path: Path, configs: list[Config]) -> None:
    t0 = time.monotonic()
    stats = dict(configs=0, crash_points=0, kills=0, exceptions=0, records_verified=0)
    for i, cfg in enumerate(configs):
        d = tmp_path / f"cfg{i}"
        d.mkdir()
        _sweep(d, cfg, stats)
    report("T9", **stats, compactions_rerun=2 * (stats["kills"] + stats["exceptions"]),
           idempotent=stats["kills"] + stats["exceptions"], lost=0,
           seconds=round(time.monotonic() - t0, 1))


def test_t9_compaction_crash_safety(tmp_path: Path) -> None:
    _t9(tmp_path, [Config(keep=2, prune=True), Config(keep=2, prune=False)])


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t9_compaction_crash_safety_slow(tmp_path: Path) -> None:
    configs = [Config(keep=k, prune=p, steps=s, compress=c)
               for k in (1, 2, 3) for p in (True, False) for s in (30, 45) for c in (True, False)]
    assert len(configs) >= 2 * SLOW_FACTOR
    _t9(tmp_path, configs)

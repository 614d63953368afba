"""T1 kill -9 torture.

A real child process (``crash_child.py``) appends a long run in ``sync`` mode (and, in a fifth
trial, ``group`` mode, where an append is acknowledged after ``write``) with small
``snapshot_every`` (snapshots), small ``segment_max_records`` (segment rolls) and retention
(``keep_snapshots`` with pruning, compression or neither, one mode per trial), reporting every
acknowledged seq over a pipe. The parent SIGKILLs it, one kill per child:

* *timed* kills: after a random number of acknowledged appends plus a random busy-wait of up to
  3 ms, wherever the child is;
* *targeted* kills: the child runs with a file-ops shim that stops before and after every
  create/fsync/rename/truncate/unlink and waits for the parent, which kills it at the chosen
  stop inside a snapshot write, a segment roll, compaction or (when the previous crash was left
  unrepaired for the child to recover) recovery.

After each kill the parent recovers and checks (``crash_helpers.check_journal``): the history is
an exact prefix of what was written (gap-free, unchanged, every record's content is what the
deterministic writer wrote), its last seq is >= the largest acknowledged seq, resume (snapshot +
replay) equals our full replay, verify is ok, no temp file survives the open, no snapshot is
skipped, and the next append gets last + 1. Usually the parent does this in place and the same
journal goes on; some crashes (half of those inside a snapshot, roll, compaction or recovery,
a fifth of the others) are checked on a copy so that the next child has to recover them.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from crash_helpers import (
    AGENT,
    SCALE,
    SLOW_FACTOR,
    Child,
    History,
    caught_warnings,
    check_journal,
    count_warnings,
    report,
    state_for,
    temp_files,
)

from agentjournal import Journal

TRIALS = [
    dict(snapshot_every=4, segment_max_records=5, keep_snapshots=2, compress_segments=True),
    dict(snapshot_every=3, segment_max_records=4, keep_snapshots=2, prune=True),
    dict(snapshot_every=5, segment_max_records=3, keep_snapshots=1, prune=True, compress=False),
    dict(snapshot_every=2, segment_max_records=6, keep_snapshots=3),
    # group commit: an append returns after write(); a kill -9 must lose none of them either
    dict(snapshot_every=4, segment_max_records=5, keep_snapshots=2, prune=True,
         durability="group", group_records=4, group_ms=5.0),
]
KILLS_PER_TRIAL = 25


@dataclass
class Stats:
    kills: int = 0
    by_point: dict[str, int] = field(default_factory=dict)
    acked_max: int = 0
    records_verified: int = 0
    recovery_warnings: int = 0
    checked_on_copy: int = 0
    appends_acked: int = 0


def _timed_kill(child: Child, rng: random.Random) -> str:
    child.kill_after(rng.randint(1, 30), rng)
    return "timed"


def _targeted_kill(child: Child, rng: random.Random, recovery_pending: bool) -> str:
    cats = ["snapshot", "roll", "compaction"] + (["recovery"] * 3 if recovery_pending else [])
    target = rng.choice(cats)
    when = rng.choice("BE")
    nth = rng.randint(1, 2 if target == "recovery" else 4)
    seen = 0
    while True:
        line = child.lines.readline()
        if line is None:
            return "none"
        child.handle(line)
        if line[0] in "BE":
            _, cat, op, _name = line.split(" ", 3)
            if child.ready and target == "recovery":
                target = rng.choice(["snapshot", "roll", "compaction"])  # nothing to recover
            if cat == target and line[0] == when:
                seen += 1
                if seen == nth:
                    child.kill()
                    return f"{cat}:{when}{op}"
            child.go_on()
        elif child.appends > 150:
            child.kill()
            return "timed"


def _check(root: Path, options: dict, hist: History, acked: int, rng: random.Random,
           stats: Stats) -> int:
    """Recover, check, append one step; returns the new acknowledged seq."""
    with caught_warnings() as got:
        with Journal(AGENT, root, **options) as j:
            assert not temp_files(root), "temp files survived recovery"
            res = check_journal(j, hist, acked=acked, rng=rng,
                                prune=bool(options.get("prune")))
            a = j.append(state_for(res.last_step + 1))
            assert a.seq == res.last_seq + 1, "the next append did not get last + 1"
            rep = j.verify()
            assert rep.ok, rep.problems
            new_acked = j.last_seq
    n_rec, n_skip, other = count_warnings(got)
    assert n_skip == 0, "a snapshot was skipped after a kill -9 (kill never tears a snapshot)"
    assert not other, other
    stats.recovery_warnings += n_rec
    return new_acked


def _run_trial(tmp: Path, k: int, options: dict, kills: int, rng: random.Random,
               stats: Stats) -> None:
    root = tmp / f"trial{k}"
    errlog = tmp / f"trial{k}.stderr"
    hist = History()
    acked = 0
    recovery_pending = False
    for _ in range(kills):
        pause = rng.random() < (0.8 if recovery_pending else 0.6)
        child = Child(root, AGENT, options, errlog, pause=pause)
        try:
            if pause:
                point = _targeted_kill(child, rng, recovery_pending)
            else:
                point = _timed_kill(child, rng)
        except BaseException:
            child.kill()
            raise
        finally:
            child.finish(errlog)
        stats.kills += 1
        stats.by_point[point.split(":")[0]] = stats.by_point.get(point.split(":")[0], 0) + 1
        acked = max(acked, child.acked)
        stats.appends_acked += child.appends
        dirty = point.split(":")[0] in ("snapshot", "roll", "compaction", "recovery")
        if rng.random() < (0.5 if dirty else 0.2):
            # Check a copy; leave the crash unrepaired so that the next child recovers it.
            scratch = tmp / "scratch"
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(root, scratch)
            _check(scratch, options, hist, acked, rng, stats)
            shutil.rmtree(scratch)
            stats.checked_on_copy += 1
            recovery_pending = True
        else:
            acked = max(acked, _check(root, options, hist, acked, rng, stats))
            recovery_pending = False
    stats.records_verified += hist.verified
    stats.acked_max = max(stats.acked_max, acked)


def _t1(tmp_path: Path, factor: int, seed: int) -> None:
    rng = random.Random(seed)
    stats = Stats()
    t0 = time.monotonic()
    for k, options in enumerate(TRIALS):
        _run_trial(tmp_path, k, options, KILLS_PER_TRIAL * factor, rng, stats)
    assert stats.kills >= 100 * factor
    report("T1", trials=len(TRIALS), kills=stats.kills,
           kills_timed=stats.by_point.get("timed", 0),
           kills_in_snapshot=stats.by_point.get("snapshot", 0),
           kills_in_roll=stats.by_point.get("roll", 0),
           kills_in_compaction=stats.by_point.get("compaction", 0),
           kills_in_recovery=stats.by_point.get("recovery", 0),
           checked_on_copy=stats.checked_on_copy, appends_acked=stats.appends_acked,
           records_verified=stats.records_verified, recovery_warnings=stats.recovery_warnings,
           snapshots_skipped=0, lost=0, seconds=round(time.monotonic() - t0, 1), seed=seed)


def test_t1_kill9_torture(tmp_path: Path) -> None:
    _t1(tmp_path, SCALE, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t1_kill9_torture_slow(tmp_path: Path) -> None:
    _t1(tmp_path, SCALE * SLOW_FACTOR, seed=1001)

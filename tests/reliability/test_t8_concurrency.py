"""T8 single writer, concurrent readers.

* Two processes open one agent for writing: while a writer child holds the journal, a second
  writer (this process, and another child process) fails at once with
  :class:`JournalLockedError` naming the holder's pid; read-only opens still work; once the
  holder is SIGKILLed the lock is free again (the kernel drops the ``flock``).
* Reader processes (``crash_reader.py``) tail the journal read-only with ``records()`` while a
  writer child (``crash_child.py``) appends in ``sync`` mode with snapshots, rolls and
  segment compression, and is SIGKILLed and restarted (recovering) again and again. Afterwards:
  every reader saw seqs 1, 2, 3, ... exactly once each, in order; no reader reported an error
  or a record that changed; and every record a reader saw (so never a partial one) is in the
  final recovered history with the same hash: none later disappeared.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_helpers import (
    AGENT,
    HERE,
    SCALE,
    Child,
    History,
    caught_warnings,
    check_journal,
    report,
)

from agentjournal import Journal, JournalLockedError

READER = os.path.join(HERE, "crash_reader.py")
OPTIONS = dict(snapshot_every=4, segment_max_records=5, keep_snapshots=2, compress_segments=True)

_SECOND_WRITER = """
import json, sys, time
from agentjournal import Journal, JournalLockedError
t = time.perf_counter()
try:
    Journal(sys.argv[2], sys.argv[1]).close()
    print(json.dumps({"error": None}))
except JournalLockedError as e:
    print(json.dumps({"error": type(e).__name__, "pid": e.pid, "message": str(e),
                      "seconds": time.perf_counter() - t}))
"""


def test_t8_second_writer_fails_fast(tmp_path: Path) -> None:
    root = tmp_path / "root"
    holder = Child(root, AGENT, OPTIONS, tmp_path / "holder.stderr", hold=True)
    try:
        line = holder.lines.readline()
        assert line is not None and line.startswith("R "), line
        t = time.perf_counter()
        with pytest.raises(JournalLockedError) as err:
            Journal(AGENT, root)
        in_process = time.perf_counter() - t
        assert err.value.pid == holder.proc.pid
        assert str(holder.proc.pid) in str(err.value)
        out = subprocess.run([sys.executable, "-c", _SECOND_WRITER, str(root), AGENT],
                             capture_output=True, text=True, timeout=60, check=True)
        got = json.loads(out.stdout)
        assert got["error"] == "JournalLockedError", got
        assert got["pid"] == holder.proc.pid and str(holder.proc.pid) in got["message"]
        with Journal(AGENT, root, readonly=True) as ro:  # readers never need the lock
            assert ro.last_seq == 0
    finally:
        holder.kill()
        holder.finish(tmp_path / "holder.stderr")
    with Journal(AGENT, root, **OPTIONS) as j:  # the dead holder's lock is gone
        j.append({"x": 1})
    report("T8-lock", second_writers=2, refused=2, holder_pid_named=2,
           refusal_ms_in_process=round(in_process * 1000, 2),
           refusal_ms_other_process=round(got["seconds"] * 1000, 2))


def _t8_tail(tmp_path: Path, kills: int, readers: int, seed: int) -> None:
    t0 = time.monotonic()
    rng = random.Random(seed)
    root = tmp_path / "root"
    stop = tmp_path / "stop"
    outs = [tmp_path / f"reader{i}.out" for i in range(readers)]
    procs = []
    for i, out in enumerate(outs):
        with open(tmp_path / f"reader{i}.stderr", "wb") as err:
            procs.append(subprocess.Popen(
                [sys.executable, READER, str(root), AGENT, str(out), str(stop)], cwd=HERE,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
    acked = 0
    appends = 0
    try:
        for _ in range(kills):
            child = Child(root, AGENT, OPTIONS, tmp_path / "writer.stderr")
            n = rng.randint(3, 25)
            try:
                child.kill_after(n, rng)
            finally:
                child.kill()
                child.finish(tmp_path / "writer.stderr")
            acked = max(acked, child.acked)
            appends += child.appends
    finally:
        stop.touch()
        for p in procs:
            p.wait(timeout=120)
    for i, p in enumerate(procs):
        assert p.returncode == 0, (tmp_path / f"reader{i}.stderr").read_text()[-3000:]

    with caught_warnings():
        with Journal(AGENT, root, **OPTIONS) as j:
            res = check_journal(j, History(), acked=acked, state_at_samples=0)
            final = {r.seq: r.h for r in j.records()}
    seen_total = 0
    passes = 0
    for out in outs:
        lines = out.read_text().splitlines()
        bad = [ln for ln in lines if ln[0] in "EC"]
        assert not bad, f"{out.name}: {bad[:5]}"
        seqs = [int(ln.split()[1]) for ln in lines if ln[0] == "S"]
        assert seqs == list(range(1, len(seqs) + 1)), f"{out.name}: seqs not 1..n in order"
        for ln in lines:
            if ln[0] == "S":
                _, seq, h = ln.split()
                assert final.get(int(seq)) == h, f"{out.name}: record {seq} later disappeared"
        assert lines[-1].startswith("P ")
        passes += int(lines[-1].split()[1])
        seen_total += len(seqs)
    report("T8", writer_kills=kills, readers=readers, reader_passes=passes,
           records_seen_by_readers=seen_total, records_final=res.records,
           appends_acked=appends, gaps=0, duplicates=0, partial=0, disappeared=0, lost=0,
           seconds=round(time.monotonic() - t0, 1), seed=seed)


def test_t8_readers_tail_a_killed_writer(tmp_path: Path) -> None:
    _t8_tail(tmp_path, kills=12 * SCALE, readers=2, seed=8)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t8_readers_tail_a_killed_writer_slow(tmp_path: Path) -> None:
    _t8_tail(tmp_path, kills=120 * SCALE, readers=2, seed=8008)

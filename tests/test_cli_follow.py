"""``agentjournal log --follow`` against a writer in another process.

It must see every record, in order, never a partial one, and stop cleanly (on --to, on
--max-records, on --timeout and on Ctrl-C).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentjournal import Journal
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.cli.schemas import validate
from agentjournal.journal.follow import Tail
from test_cli_support import make_agent, segment_files

SENTINEL_STEP = 999

WRITER = textwrap.dedent("""
    import sys, time
    from agentjournal import Journal
    root, steps, sentinel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    state = {"conversation_history": [], "budget_spent_usd": 0.0, "status": "running"}
    with Journal("live", root, snapshot_every=5, segment_max_records=6,
                 durability="none") as j:
        for i in range(1, steps + 1):
            # Now and then a large record, so the follower is likely to meet a line that
            # is only partly written when it reads.
            big = "x" * (300_000 if i % 7 == 0 else 10)
            state["conversation_history"].append({"role": "assistant", "content": big})
            state["budget_spent_usd"] = round(0.01 * i, 2)
            j.append(state)
            time.sleep(0.002)
        state["status"] = "done"
        j.append(state, step=sentinel)
""")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentjournal.cli", *args]


def test_follow_sees_every_record_of_a_live_writer_in_order(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "AGENTJOURNAL_ROOT": "", "AGENTJOURNAL_KEY": ""}
    follower = subprocess.Popen(
        _cli("--root", str(root), "log", "live", "--follow", "--json", "--to",
             str(SENTINEL_STEP - 1), "--interval", "0.005", "--timeout", "120"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        writer = subprocess.run([sys.executable, "-c", WRITER, str(root), "40",
                                 str(SENTINEL_STEP)], env=env,
                                capture_output=True, timeout=120)
        assert writer.returncode == 0, writer.stderr.decode()
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err.decode()
    assert b"Traceback" not in err
    entries = [json.loads(line) for line in out.decode().splitlines()]
    for e in entries:
        validate("log", e)
    with Journal("live", root, readonly=True) as j:
        recs = [r for r in j.records() if r.step < SENTINEL_STEP]
        assert len(j.segment_seqs()) > 3  # it followed across segment rolls
    assert [e["seq"] for e in entries] == list(range(1, len(recs) + 1))
    assert [e["h"] for e in entries] == [r.h for r in recs]
    assert [e["ops"] for e in entries] == [getattr(r, "ops", None) for r in recs]
    big = [e for e in entries if e["ops"] and len(json.dumps(e["ops"])) > 300_000]
    assert len(big) == 40 // 7


def _copy_agent(src_root: Path, dst_root: Path, agent: str) -> None:
    dst_root.mkdir(mode=0o700)
    shutil.copytree(src_root / agent, dst_root / agent)


def test_tail_never_returns_a_partial_or_torn_record(tmp_path: Path) -> None:
    make_agent(tmp_path / "a", "t", 5, snapshot_every=None)
    _copy_agent(tmp_path / "a", tmp_path / "b", "t")
    seg = segment_files(tmp_path / "b", "t")[0]
    full = seg.read_bytes()
    last = full.rindex(b"\n", 0, len(full) - 1) + 1
    cut = last + (len(full) - last) // 2
    seg.write_bytes(full[:cut])  # the last record is half written
    store = FilesystemBackend(tmp_path / "b").agent("t", create=False)
    try:
        tail = Tail(store)
        assert [r.seq for r in tail.poll()] == [1, 2, 3, 4]
        assert tail.poll() == []
        with open(seg, "ab") as f:
            f.write(full[cut:-1])  # all but the newline: still not complete
        assert tail.poll() == []
        with open(seg, "ab") as f:
            f.write(b"\n")
        got = tail.poll()
        assert [r.seq for r in got] == [5]
        with Journal("t", tmp_path / "a", readonly=True) as j:
            assert got[0].h == list(j.records())[-1].h
        with open(seg, "ab") as f:
            f.write(b'{"kind":"step","seq":6,"garbage\n')  # a torn tail from a crash
        assert tail.poll() == []
    finally:
        store.close()


def test_tail_from_a_later_seq_and_across_segments(tmp_path: Path) -> None:
    make_agent(tmp_path, "t", 25, snapshot_every=4)
    with Journal("t", tmp_path, readonly=True) as j:
        want = [r.h for r in j.records(9)]
        tail = Tail(j.store, from_seq=9)
        assert [r.h for r in tail.poll()] == want
        assert tail.poll() == []


def test_follow_prints_only_complete_records_through_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_agent(tmp_path / "a", "t", 5, snapshot_every=None)
    _copy_agent(tmp_path / "a", root, "t")
    seg = segment_files(root, "t")[0]
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])
    res = subprocess.run(_cli("--root", str(root), "log", "t", "--follow", "--json",
                              "--timeout", "0.1", "--interval", "0.01"),
                         capture_output=True, timeout=60)
    assert res.returncode == 0
    assert [json.loads(line)["seq"] for line in res.stdout.splitlines()] == [1, 2, 3, 4]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_follow_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    make_agent(tmp_path, "t", 3)
    proc = subprocess.Popen(_cli("--root", str(tmp_path), "log", "t", "--follow",
                                 "--interval", "0.01"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is running and has printed the backlog
        assert first.split()[:2] == [b"1", b"#1"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err

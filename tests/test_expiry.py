"""Fleet expiry (``agentjournal.expiry.expire``) on the filesystem and memory backends.

Journals of mixed ages are made for real: records are written, a cutoff moment is taken, and
more records are written after it, so the ages are those the engine stamped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.backends.base import Backend
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.backends.memory import MemoryBackend
from agentjournal.events import Step
from agentjournal.expiry import cutoff_of, expire

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(params=["fs", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield FilesystemBackend(str(tmp_path / "store")) if request.param == "fs" else MemoryBackend()


def _moment() -> float:
    """A cutoff strictly between the records written before and after it."""
    time.sleep(0.02)
    t = time.time()
    time.sleep(0.02)
    return t


def _write(backend: Backend, agent: str, steps: range, states: dict[int, Any],
           **options: Any) -> None:
    with Journal(agent, backend=backend, snapshot_every=5, **options) as j:
        for i in steps:
            st = {"i": i, "log": [f"m{k}" for k in range(i % 7)], "agent": agent}
            a = j.append(st)
            states[a.step] = st


def _shape(backend: Backend, agent: str, key: bytes | None = None) -> tuple[Any, ...]:
    with Journal(agent, backend=backend, key=key, readonly=True, create=False) as j:
        return j.last_seq, j.segment_seqs(), j.snapshot_seqs()


def _check(backend: Backend, agent: str, states: dict[int, Any], cutoff: float,
           key: bytes | None = None) -> list[int]:
    """Verify, and compare the state at every retained step; returns the retained steps."""
    with Journal(agent, backend=backend, key=key, readonly=True, create=False) as j:
        assert j.verify().ok
        steps = [r for r in j.history() if isinstance(r, Step)]
        for rec in steps:
            assert j.state_at(rec.step) == states[rec.step]
        assert j.resume().state == states[max(states)]
        # every step recorded at or after the cutoff is still there
        kept = {r.step for r in steps}
        assert {r.step for r in steps if r.ts >= cutoff} <= kept
        return sorted(kept)


def _fleet(backend: Backend) -> tuple[float, dict[str, dict[int, Any]]]:
    states: dict[str, dict[int, Any]] = {a: {} for a in ("old", "mixed", "new", "zipped",
                                                         "pruned")}
    _write(backend, "old", range(42), states["old"])  # its last state has no snapshot
    _write(backend, "mixed", range(40), states["mixed"])
    _write(backend, "zipped", range(40), states["zipped"], keep_snapshots=3,
           compress_segments=True)
    _write(backend, "pruned", range(40), states["pruned"], keep_snapshots=3, prune=True)
    cut = _moment()
    _write(backend, "mixed", range(40, 60), states["mixed"])
    _write(backend, "zipped", range(40, 60), states["zipped"], keep_snapshots=3,
           compress_segments=True)
    _write(backend, "pruned", range(40, 46), states["pruned"], keep_snapshots=3, prune=True)
    _write(backend, "new", range(30), states["new"])
    return cut, states


@pytest.mark.parametrize("workers", [1, 3])
def test_mixed_ages(backend: Backend, workers: int) -> None:
    cut, states = _fleet(backend)
    before = {a: _shape(backend, a) for a in states}
    seen: list[tuple[int, int]] = []
    rep = expire(backend, older_than=datetime.fromtimestamp(cut, timezone.utc),
                 workers=workers, batch=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 5) for d in range(1, 6)]
    assert seen[-1] == (5, 5) and rep.agents_seen == 5
    assert not rep.errors and not rep.skipped and not rep.dropped
    assert {p.agent_id for p in rep.pruned} == {"old", "mixed", "zipped", "pruned"}
    assert rep.unchanged == 1
    assert _shape(backend, "new") == before["new"]
    for agent, st in states.items():
        kept = _check(backend, agent, st, cut)
        if agent == "old":
            # idle: what follows its newest snapshot before its last step stays (that step
            # is its age); no snapshot is written
            assert kept == [41, 42]
        elif agent != "new":
            assert 1 < kept[0] <= 41 and kept[-1] == max(st)  # older history went
            assert len(_shape(backend, agent)[1]) < len(before[agent][1])
    old = next(p for p in rep.pruned if p.agent_id == "old")
    assert old.anchor_seq is not None
    assert rep.segments_deleted == sum(p.segments_deleted for p in rep.pruned) > 0
    # re-running changes nothing
    after = {a: _shape(backend, a) for a in states}
    again = expire(backend, older_than=cut)
    assert not again.pruned and again.unchanged == 5
    assert {a: _shape(backend, a) for a in states} == after


def test_dry_run_changes_nothing(backend: Backend) -> None:
    cut, states = _fleet(backend)
    before = {a: _shape(backend, a) for a in states}
    dry = expire(backend, older_than=cut, dry_run=True, drop_idle_agents=None)
    assert {a: _shape(backend, a) for a in states} == before
    real = expire(backend, older_than=cut)
    by = {p.agent_id: p for p in real.pruned}
    for p in dry.pruned:
        assert p.agent_id in by
        assert p.segments_deleted == by[p.agent_id].segments_deleted, p.agent_id
    assert {p.agent_id for p in dry.pruned} == set(by)


def test_drop_idle_agents(backend: Backend) -> None:
    states: dict[int, Any] = {}
    _write(backend, "idle", range(12), states)
    cut = _moment()
    _write(backend, "busy", range(12), {})
    dry = expire(backend, older_than=cut, drop_idle_agents=cut, dry_run=True)
    assert [d.agent_id for d in dry.dropped] == ["idle"] and backend.exists("idle")
    rep = expire(backend, older_than=cut, drop_idle_agents=cut)
    assert [d.agent_id for d in rep.dropped] == ["idle"]
    assert not backend.exists("idle") and backend.exists("busy")
    assert backend.list_agents() == ["busy"]


def test_housekeeping_does_not_make_an_agent_active(backend: Backend) -> None:
    """The snapshot and anchor an expiry writes are new records, but not activity: a later
    run with --drop-idle still finds the agent idle."""
    _write(backend, "a", range(12), {})
    cut = _moment()
    first = expire(backend, older_than=cut)
    assert [p.agent_id for p in first.pruned] == ["a"]
    rep = expire(backend, older_than=cut, drop_idle_agents=cut)
    assert [d.agent_id for d in rep.dropped] == ["a"]


def test_keyed_journal(backend: Backend) -> None:
    key = b"fleet-secret"
    states: dict[int, Any] = {}
    _write(backend, "k", range(30), states, key=key)
    cut = _moment()
    _write(backend, "k", range(30, 40), states, key=key)
    wrong = expire(backend, older_than=cut)  # no key: an error for that agent, not a raise
    assert [e.agent_id for e in wrong.errors] == ["k"]
    rep = expire(backend, older_than=cut, key=key)
    assert [p.agent_id for p in rep.pruned] == ["k"]
    kept = _check(backend, "k", states, cut, key=key)
    assert kept[0] > 1


def test_writer_in_this_process_is_used(backend: Backend) -> None:
    states: dict[int, Any] = {}
    with Journal("w", backend=backend, snapshot_every=5) as j:
        for i in range(30):
            states[j.append({"i": i}).step] = {"i": i}
        cut = _moment()
        for i in range(30, 35):
            states[j.append({"i": i}).step] = {"i": i}
        rep = expire(backend, older_than=cut)
        assert [p.agent_id for p in rep.pruned] == ["w"]
        states[j.append({"i": 99}).step] = {"i": 99}  # the writer goes on
    _check(backend, "w", states, cut)


def test_agents_argument_and_missing(backend: Backend) -> None:
    _write(backend, "a", range(12), {})
    _write(backend, "b", range(12), {})
    cut = _moment()
    rep = expire(backend, older_than=cut, agents=["b", "nope"], batch=1)
    assert [p.agent_id for p in rep.pruned] == ["b"]
    assert [e.agent_id for e in rep.errors] == ["nope"]
    assert len(_shape(backend, "a")[1]) > 1


def test_live_writer_elsewhere_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "store"
    backend = FilesystemBackend(str(root))
    _write(backend, "held", range(20), {})
    _write(backend, "free", range(20), {})
    cut = _moment()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from agentjournal import Journal
            j = Journal("held", root={str(root)!r}, snapshot_every=None)
            print("ready", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        before = _shape(backend, "held")
        rep = expire(backend, older_than=cut, drop_idle_agents=cut)
        assert [s.agent_id for s in rep.skipped] == ["held"]
        assert str(child.pid) in rep.skipped[0].detail
        assert [d.agent_id for d in rep.dropped] == ["free"]
        assert _shape(backend, "held") == before
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    rep = expire(backend, older_than=cut)
    assert [p.agent_id for p in rep.pruned] == ["held"]


def test_cutoff_of() -> None:
    from datetime import timedelta

    assert cutoff_of(timedelta(seconds=10), now=100.0) == 90.0
    assert cutoff_of(datetime(1970, 1, 1, 0, 1)) == 60.0  # naive: UTC
    assert cutoff_of(5.5) == 5.5
    with pytest.raises(ValueError):
        cutoff_of(timedelta(seconds=-1))
    with pytest.raises(ValueError):
        expire(MemoryBackend(), older_than=1.0, batch=0)
    with pytest.raises(ValueError):
        expire(MemoryBackend(), older_than=1.0, workers=0)


# --- the command ------------------------------------------------------------------------


def _holder(root: Path, agent: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from agentjournal import Journal
            j = Journal({agent!r}, root={str(root)!r}, snapshot_every=None)
            print("ready", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": SRC})
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    child.wait(timeout=30)
    child.stdout.close()


def test_cli_expire(tmp_path: Path) -> None:
    from test_cli_support import run, run_json

    root = tmp_path / "store"
    backend = FilesystemBackend(str(root))
    _write(backend, "a", range(20), {})
    _write(backend, "b", range(20), {})
    _write(backend, "k", range(20), {}, key=b"s3cret")
    cut = _moment()
    _write(backend, "b", range(20, 25), {})
    before = {x: _shape(backend, x, b"s3cret" if x == "k" else None) for x in "abk"}
    age = f"{time.time() - cut:.3f}s"
    dry = run_json("expire", "--older-than", age, "--dry-run", "a", "b", root=root)
    assert dry["dry_run"] and {p["agent_id"] for p in dry["pruned"]} == {"a", "b"}
    assert {x: _shape(backend, x, b"s3cret" if x == "k" else None) for x in "abk"} == before
    # the keyed agent fails without its key: exit 1, the others are done all the same
    doc = run_json("expire", "--older-than", str(cut), root=root, code=1)
    assert [e["agent_id"] for e in doc["errors"]] == ["k"]
    assert {p["agent_id"] for p in doc["pruned"]} == {"a", "b"}
    assert doc["segments_deleted"] == sum(p["segments_deleted"] for p in dry["pruned"])
    res = run("expire", "--older-than", str(cut), "k", root=root,
              env={"AGENTJOURNAL_KEY": "s3cret"})
    assert res.exit_code == 0, res.stderr
    assert "prune 1 agent" in res.stdout
    assert run("expire", "--older-than", "1d", "nope", root=root).exit_code == 3
    assert run("expire", "--older-than", "soon", root=root).exit_code == 2
    child = _holder(root, "a")
    try:
        res = run("expire", "--older-than", "0s", "--drop-idle", "0s", "a", root=root)
        assert res.exit_code == 4 and "skipped a" in res.stderr
        # the whole store: a running agent is no failure (the keyed one without its key is)
        res = run("expire", "--older-than", "0s", "--drop-idle", "0s", root=root)
        assert res.exit_code == 1 and "error: k:" in res.stderr, res.stderr
        assert backend.list_agents() == ["a", "k"]
        res = run("expire", "--older-than", "0s", "--drop-idle", "0s", "k", root=root,
                  env={"AGENTJOURNAL_KEY": "s3cret"})
        assert res.exit_code == 0, res.stderr
        assert backend.list_agents() == ["a"]
    finally:
        _release(child)


def test_bench_expiry_smoke() -> None:
    """benchmarks/bench_expiry.py runs on a tiny fleet and prints its JSON line (no timing
    is asserted)."""
    import json

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_expiry.py"),
                        "--agents", "4", "--steps", "12", "--no-postgres"],
                       capture_output=True, text=True, timeout=300, cwd=root,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert p.returncode == 0, p.stdout + p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("BENCH_EXPIRY "))
    doc = json.loads(line.split(" ", 1)[1])
    fs = doc["results"]["filesystem"]
    assert fs["expire"]["pruned"] == 4 and fs["re-run"]["unchanged"] == 4
    assert fs["dry-run"]["segments_deleted"] == fs["expire"]["segments_deleted"] > 0

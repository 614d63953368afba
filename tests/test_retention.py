"""Retention through the StateManager: counts, what is never deleted, crashes mid-compaction."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    AgentState,
    FilesystemStorage,
    Journal,
    RecoveryWarning,
    StateManager,
    StepPrunedError,
)
from agentjournal.backends.filesystem import FileAgentStore

SRC = str(Path(__file__).resolve().parents[1] / "src")


def expected(k: int) -> dict[str, Any]:
    """The state content after step k of `drive` (timestamps aside)."""
    return {"history": [f"message {i}" for i in range(1, k + 1)], "budget": k * 0.5}


async def drive(sm: StateManager, steps: range, agent_id: str = "a") -> AgentState:
    s = await sm.resume_from_latest(agent_id) or AgentState(agent_id=agent_id)
    for k in steps:
        s.step_number = k
        s.conversation_history.append({"role": "user", "content": f"message {k}"})
        s.budget_spent_usd = k * 0.5
        await sm.save_checkpoint(s)
    return s


def content(s: AgentState) -> dict[str, Any]:
    return {"history": [m["content"] for m in s.conversation_history],
            "budget": s.budget_spent_usd}


def manager(root: Path, **kw: Any) -> StateManager:
    old = kw.pop("old_segments", "keep")
    kw.setdefault("checkpoint_frequency", 2)
    kw.setdefault("checkpoint_interval", None)
    return StateManager(FilesystemStorage(root, durability="none", old_segments=old), **kw)


def files(root: Path, agent: str, sub: str) -> list[str]:
    return sorted(os.listdir(root / agent / sub))


def test_keeps_the_newest_snapshots_and_every_step(tmp_path: Path) -> None:
    async def main() -> None:
        async with manager(tmp_path, retention_count=3) as sm:
            await drive(sm, range(1, 21))
            for k in range(1, 21):  # old segments are kept: every step restores
                assert content(await sm.state_at("a", k)) == expected(k)
            assert (await sm.verify("a")).ok

    asyncio.run(main())
    with Journal("a", tmp_path, readonly=True) as j:
        steps = [next(iter(j.records(s, s))).step for s in j.snapshot_seqs()]
    # The newest three, and the oldest as the sparse snapshot kept for time travel into the
    # old history (sparse_snapshots: one per ten intervals).
    assert steps == [2, 16, 18, 20]


def test_prune_removes_old_segments_behind_an_anchor(tmp_path: Path) -> None:
    async def main() -> None:
        async with manager(tmp_path, retention_count=2, old_segments="prune") as sm:
            await drive(sm, range(1, 13))
            assert content(await sm.state_at("a", 10)) == expected(10)
            assert content(await sm.state_at("a", 12)) == expected(12)
            with pytest.raises(StepPrunedError):
                await sm.state_at("a", 3)
            listed = await sm.list_checkpoints("a")
            assert [c.step_number for c in listed] == [12, 11, 10]
            assert [c.snapshot for c in listed] == [True, False, True]
            assert (await sm.load_checkpoint("a@0000000010")).step_number == 10
            rep = await sm.verify("a")
            assert rep.ok, rep.problems
            hist = await sm.history("a")
            assert "anchor" in {e.kind for e in hist}

    asyncio.run(main())
    assert len([f for f in files(tmp_path, "a", "snapshots") if not f.startswith(".")]) == 2
    with Journal("a", tmp_path, readonly=True) as j:
        assert j.segment_seqs()[0] > 1


def test_compress_seals_old_segments(tmp_path: Path) -> None:
    async def main() -> None:
        async with manager(tmp_path, retention_count=2, old_segments="compress") as sm:
            await drive(sm, range(1, 13))
            for k in range(1, 13):
                assert content(await sm.state_at("a", k)) == expected(k)
            assert (await sm.verify("a")).ok

    asyncio.run(main())
    segs = files(tmp_path, "a", "segments")
    assert any(f.endswith(".jsonl.lz4") for f in segs)
    assert any(f.endswith(".jsonl") for f in segs)  # the live segment stays plain


def test_retention_of_one_never_deletes_the_newest_snapshot(tmp_path: Path) -> None:
    async def main() -> None:
        async with manager(tmp_path, retention_count=1, old_segments="prune") as sm:
            await drive(sm, range(1, 10))
        async with manager(tmp_path, retention_count=1) as sm:
            s = await sm.resume_from_latest("a")
            assert s is not None and content(s) == expected(9)
            assert content(await sm.state_at("a", 8)) == expected(8)
            assert content(await sm.state_at("a", 9)) == expected(9)

    asyncio.run(main())
    with Journal("a", tmp_path, readonly=True) as j:
        assert [j.load_snapshot(s).step for s in j.snapshot_seqs()] == [8]


def test_on_demand_cleanup_and_temp_files(tmp_path: Path) -> None:
    async def main() -> None:
        async with manager(tmp_path, retention_count=None) as sm:
            await drive(sm, range(1, 11))
        (tmp_path / "a" / "snapshots" / ".tmp-999-dead-00000000000000000099.json.lz4") \
            .write_bytes(b"half a snapshot")
        async with manager(tmp_path, retention_count=2) as sm:
            # 5 snapshots: the newest 2 stay, and the first as a sparse one for old history.
            assert await sm.cleanup_old_checkpoints("a") == 2
            assert await sm.cleanup_old_checkpoints("a") == 0
            rep = await sm.compact("a", dry_run=True)
            assert rep.snapshots_deleted == []
        async with manager(tmp_path, retention_count=None) as sm:
            assert await sm.cleanup_old_checkpoints("a") == 0

    asyncio.run(main())
    assert not [f for f in files(tmp_path, "a", "snapshots") if f.startswith(".tmp-")]
    with Journal("a", tmp_path, readonly=True) as j:
        assert len(j.snapshot_seqs()) == 3  # the newest 2 and the sparse one


def test_deletion_errors_are_logged_and_never_fail_a_save(tmp_path: Path, caplog: Any,
                                                          monkeypatch: Any) -> None:
    def refuse(self: FileAgentStore, seq: int) -> None:
        raise PermissionError(13, "read-only file system (injected)")

    monkeypatch.setattr(FileAgentStore, "delete_snapshot", refuse)

    async def main() -> None:
        async with manager(tmp_path, retention_count=1) as sm:
            await drive(sm, range(1, 8))
            assert content(await sm.state_at("a", 7)) == expected(7)

    with caplog.at_level(logging.ERROR, logger="agentjournal"):
        asyncio.run(main())
    assert "injected" in caplog.text
    with Journal("a", tmp_path, readonly=True) as j:
        assert j.last_step == 7 and len(j.snapshot_seqs()) == 3


CHILD = """
import asyncio, sys
from agentjournal import AgentState, FilesystemStorage, HookEvent, HookManager, StateManager

async def main(root, policy):
    hm = HookManager()
    hm.register(HookEvent.POST_CHECKPOINT_SAVE,
                lambda ctx: print("saved", ctx.data["step_number"], flush=True))
    storage = FilesystemStorage(root, durability="sync", old_segments=policy,
                                segment_max_bytes=4096)
    sm = StateManager(storage, checkpoint_frequency=1, checkpoint_interval=None,
                      retention_count=2, hook_manager=hm)
    s = await sm.resume_from_latest("a") or AgentState(agent_id="a")
    for k in range(s.step_number + 1, 100000):
        s.step_number = k
        s.conversation_history.append({"role": "user", "content": f"message {k}"})
        s.budget_spent_usd = k * 0.5
        await sm.save_checkpoint(s)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("policy", ["prune", "compress", "keep"])
def test_kill_during_compaction_loses_nothing(tmp_path: Path, policy: str) -> None:
    """Every step snapshots and compacts, so a kill lands inside compaction often."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    rng = random.Random(f"retention-{policy}")
    root = tmp_path / "store"
    for _ in range(3):
        kill_after = rng.randrange(3, 25)
        p = subprocess.Popen([sys.executable, str(script), str(root), policy],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert p.stdout is not None
        lines: list[str] = []
        for line in p.stdout:
            lines.append(line)
            if len(lines) >= kill_after:
                break
        os.kill(p.pid, signal.SIGKILL)
        _, err = p.communicate(timeout=30)
        assert p.returncode == -signal.SIGKILL, err
        acked = int(lines[-1].split()[1])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)

            async def check(acked: int) -> None:
                async with manager(root, retention_count=2, old_segments=policy) as sm:
                    s = await sm.resume_from_latest("a")
                    assert s is not None and s.step_number >= acked
                    assert content(s) == expected(s.step_number)
                    rep = await sm.verify("a")
                    assert rep.ok, rep.problems
                    listed = await sm.list_checkpoints("a")
                    oldest_snap = min(c.step_number for c in listed if c.snapshot)
                    for k in range(oldest_snap, s.step_number + 1):
                        assert content(await sm.state_at("a", k)) == expected(k)
                    if policy != "prune":
                        for k in range(1, s.step_number + 1):
                            assert content(await sm.state_at("a", k)) == expected(k)

            asyncio.run(check(acked))
        # Temp files of an interrupted snapshot or seal are gone once a writer reopened (the
        # check above only reads, and reads never take the writer).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)
            Journal("a", root=root).close()
        assert not [f for d in ("segments", "snapshots")
                    for f in os.listdir(root / "a" / d) if f.startswith(".tmp-")]

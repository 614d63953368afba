"""Import of seed-format checkpoint files (one JSON object per .jsonl / .jsonl.gz file)."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    FilesystemStorage,
    Journal,
    StateManager,
    import_seed_checkpoints,
)
from agentjournal.migrate import read_seed_file

T0 = datetime(2025, 10, 25, 12, 0, tzinfo=timezone.utc)


def seed_state(agent_id: str, step: int, **extra: Any) -> dict[str, Any]:
    """A checkpoint as the seed system's AgentState.to_dict() wrote it."""
    d: dict[str, Any] = {
        "checkpoint_id": f"ckpt_{agent_id[:4]}{step:08x}",
        "agent_id": agent_id, "model": "llama3.2",
        "timestamp": (T0 + timedelta(minutes=step)).isoformat(), "updated_at": None,
        "step_number": step,
        "conversation_history": [{"role": "user", "content": f"m{i}"} for i in range(step)],
        "memory_contents": {"notes": step}, "pending_actions": [], "completed_actions": [],
        "budget_spent_usd": 0.1 * step, "approval_history": [], "tool_usage_counts": {},
        "tool_results_cache": {}, "active_specialists": [], "specialist_invocations": [],
        "workflow_run_id": None, "workflow_state": {}, "control_protocol_state": {},
        "registered_hooks": [], "hook_event_history": [], "parent_checkpoint_id": None,
        "status": "running", "metadata": {},
    }
    d.update(extra)
    return d


def write(dirpath: Path, state: dict[str, Any], gz: bool = False) -> str:
    line = (json.dumps(state) + "\n").encode()
    name = f"{state['checkpoint_id']}.jsonl" + (".gz" if gz else "")
    (dirpath / name).write_bytes(gzip.compress(line) if gz else line)
    return name


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kaizen" / "checkpoints"
    d.mkdir(parents=True)
    return d


def test_imports_each_agent_oldest_first(tmp_path: Path, seed_dir: Path) -> None:
    for step in (3, 1, 2, 5):  # written out of order
        write(seed_dir, seed_state("researcher", step), gz=step % 2 == 1)
    write(seed_dir, seed_state("writer", 4, status="completed"))
    store = FilesystemStorage(tmp_path / "store", durability="none")
    rep = import_seed_checkpoints(seed_dir, store)
    assert rep.ok and rep.agents == {"researcher": 4, "writer": 1}
    assert [c.step for c in rep.imported if c.agent_id == "researcher"] == [1, 2, 3, 5]
    first = rep.imported[0]
    assert first.seed_checkpoint_id == "ckpt_rese00000001"
    assert first.checkpoint_id == "researcher@0000000001.0000000001"
    assert "researcher: 4 checkpoints, steps 1..5" in rep.summary()

    async def check() -> None:
        async with StateManager(store) as sm:
            s = await sm.resume_from_latest("researcher")
            assert s is not None and s.step_number == 5
            assert len(s.conversation_history) == 5 and s.model == "llama3.2"
            assert s.timestamp == T0 + timedelta(minutes=5)
            s2 = await sm.load_checkpoint("researcher@0000000002")
            assert s2.memory_contents == {"notes": 2}
            w = await sm.resume_from_latest("writer")
            assert w is not None and w.status == "completed"
            assert (await sm.verify("researcher")).ok

    asyncio.run(check())
    with Journal("researcher", tmp_path / "store", readonly=True) as j:
        assert j.snapshot_seqs()  # resume does not replay the whole import


def test_truncated_unknown_field_and_bad_files_are_reported_not_fatal(
        tmp_path: Path, seed_dir: Path) -> None:
    write(seed_dir, seed_state("a", 1))
    write(seed_dir, seed_state("a", 2, sentiment_score=0.9, new_block={"x": 1}))
    good3 = gzip.compress((json.dumps(seed_state("a", 3)) + "\n").encode())
    (seed_dir / "ckpt_trunc.jsonl.gz").write_bytes(good3[: len(good3) // 2])
    (seed_dir / "ckpt_half.jsonl").write_text(json.dumps(seed_state("a", 4))[:300])
    (seed_dir / "ckpt_list.jsonl").write_text("[1, 2]\n")
    (seed_dir / "ckpt_empty.jsonl").write_text("")
    write(seed_dir, seed_state("", 6))  # the seed's default agent_id
    write(seed_dir, seed_state("b", 1, status="paused"))
    write(seed_dir, seed_state("../evil", 1, checkpoint_id="ckpt_evil"))
    (seed_dir / "notes.txt").write_text("ignored")
    (seed_dir / "ckpt_secret.enc.jsonl.gz").write_bytes(b"\x00ciphertext")
    rep = import_seed_checkpoints(seed_dir, tmp_path / "store")
    assert rep.agents == {"a": 2}
    assert rep.imported[1].unknown_fields == ["new_block", "sentiment_score"]
    reasons = {s.file: s.reason for s in rep.skipped}
    assert "truncated gzip" in reasons["ckpt_trunc.jsonl.gz"]
    assert "invalid JSON" in reasons["ckpt_half.jsonl"]
    assert "not an object" in reasons["ckpt_list.jsonl"]
    assert "empty" in reasons["ckpt_empty.jsonl"]
    assert "no agent_id" in reasons["ckpt_00000006.jsonl"]
    assert "status" in reasons["ckpt_b00000001.jsonl"]
    assert "invalid agent id" in reasons["ckpt_evil.jsonl"]
    assert "encrypted" in reasons["ckpt_secret.enc.jsonl.gz"]
    assert "notes.txt" not in reasons
    assert not rep.ok and "skipped 8 files" in rep.summary()
    assert not (tmp_path / "evil").exists()

    async def check() -> None:
        async with StateManager(FilesystemStorage(tmp_path / "store")) as sm:
            s = await sm.load_checkpoint("a@0000000002")
            assert s.unknown_fields == {"sentiment_score": 0.9, "new_block": {"x": 1}}

    asyncio.run(check())


def test_reimport_skips_what_is_there_and_default_agent_id(tmp_path: Path,
                                                           seed_dir: Path) -> None:
    write(seed_dir, seed_state("a", 1))
    write(seed_dir, seed_state("a", 2))
    store = FilesystemStorage(tmp_path / "store", durability="none")
    assert len(import_seed_checkpoints(seed_dir, store).imported) == 2
    write(seed_dir, seed_state("a", 3))
    write(seed_dir, seed_state("", 7))
    rep = import_seed_checkpoints(seed_dir, store, default_agent_id="legacy")
    assert [(c.agent_id, c.step) for c in rep.imported] == [("a", 3), ("legacy", 7)]
    assert all("already in the journal" in s.reason for s in rep.skipped)
    assert len(rep.skipped) == 2
    with Journal("a", tmp_path / "store", readonly=True) as j:
        assert j.last_step == 3 and j.verify().ok


def test_a_step_that_goes_back_is_skipped(tmp_path: Path, seed_dir: Path) -> None:
    write(seed_dir, seed_state("a", 5))
    # A later checkpoint with a lower step: the seed's fork of the same agent.
    write(seed_dir, seed_state("a", 2, timestamp=(T0 + timedelta(hours=1)).isoformat(),
                               checkpoint_id="ckpt_fork"))
    rep = import_seed_checkpoints(seed_dir, tmp_path / "store")
    assert [c.step for c in rep.imported] == [5]
    assert "goes back" in rep.skipped[0].reason and rep.skipped[0].file == "ckpt_fork.jsonl"


def test_dry_run_writes_nothing(tmp_path: Path, seed_dir: Path) -> None:
    write(seed_dir, seed_state("a", 1))
    rep = import_seed_checkpoints(seed_dir, tmp_path / "store", dry_run=True)
    assert rep.dry_run and len(rep.imported) == 1 and "would import" in rep.summary()
    assert not (tmp_path / "store" / "a").exists()
    with pytest.raises(NotADirectoryError):
        import_seed_checkpoints(tmp_path / "nope", tmp_path / "store")


def test_read_seed_file_bounds(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"a": "' + b"x" * 100_000 + b'"}\n'))
    with pytest.raises(ValueError, match="more than"):
        read_seed_file(p, max_bytes=10_000)
    assert read_seed_file(p)["a"] == "x" * 100_000

"""What a test suite written for the seed's StateManager checks, against ours (equivalents
written here; the cases that pin the seed's private counters, file names or ``ckpt_`` ids are
the ones docs/guide.md lists as different)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentjournal import AgentState, FilesystemStorage, StateManager

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def manager(tmp_path: Path) -> Any:
    sm = StateManager(storage=FilesystemStorage(base_dir=tmp_path))
    yield sm
    sm.close()


def test_defaults_and_custom_configuration() -> None:
    sm = StateManager()
    assert (sm.checkpoint_frequency, sm.checkpoint_interval, sm.retention_count) == \
        (10, 60.0, 100)
    sm = StateManager(checkpoint_frequency=5, checkpoint_interval=30.0, retention_count=50)
    assert (sm.checkpoint_frequency, sm.checkpoint_interval, sm.retention_count) == \
        (5, 30.0, 50)


def test_a_new_agent_needs_a_checkpoint(manager: StateManager) -> None:
    assert manager.should_checkpoint("test_agent", current_step=0, current_time=time.time())


def test_save_then_load_by_the_returned_id(manager: StateManager) -> None:
    original = AgentState(agent_id="agent1", step_number=5)
    cid = run(manager.save_checkpoint(original))
    assert run(manager.save_checkpoint(AgentState(agent_id="agent1", step_number=6),
                                       force=True))
    loaded = run(manager.load_checkpoint(cid))
    assert (loaded.checkpoint_id, loaded.agent_id, loaded.step_number) == (cid, "agent1", 5)
    with pytest.raises(FileNotFoundError):
        run(manager.load_checkpoint("nonexistent"))


def test_resume_from_latest_and_without_checkpoints(manager: StateManager) -> None:
    for step in (10, 20, 30):
        run(manager.save_checkpoint(AgentState(agent_id="agent1", step_number=step)))
    latest = run(manager.resume_from_latest("agent1"))
    assert latest is not None and latest.step_number == 30
    assert run(manager.resume_from_latest("nonexistent_agent")) is None


def test_fork_is_a_new_checkpoint_with_the_same_data_and_independent(
        manager: StateManager) -> None:
    original = AgentState(agent_id="agent1", step_number=10,
                          conversation_history=[{"role": "user", "content": "Hello"}])
    cid = run(manager.save_checkpoint(original))
    forked = run(manager.fork_from_checkpoint(cid))
    assert forked.checkpoint_id != cid and forked.parent_checkpoint_id == cid
    assert forked.step_number == 10
    assert forked.conversation_history == original.conversation_history
    forked.conversation_history.append({"role": "assistant", "content": "Hi"})
    assert len(run(manager.load_checkpoint(cid)).conversation_history) == 1


def test_list_all_and_by_agent(manager: StateManager) -> None:
    for agent in ("agent1", "agent2", "agent1"):
        run(manager.save_checkpoint(AgentState(agent_id=agent)))
    assert len(run(manager.list_checkpoints())) == 3
    mine = run(manager.list_checkpoints(agent_id="agent1"))
    assert len(mine) == 2 and all(c.agent_id == "agent1" for c in mine)
    assert mine[0].timestamp >= mine[1].timestamp  # newest first


def test_cleanup_under_the_limit_deletes_nothing(manager: StateManager) -> None:
    manager.retention_count = 10
    for _ in range(3):
        run(manager.save_checkpoint(AgentState(agent_id="agent1")))
    assert run(manager.cleanup_old_checkpoints("agent1")) == 0
    assert len(run(manager.list_checkpoints("agent1"))) == 3


def test_checkpoint_tree_with_two_children_and_a_grandchild(manager: StateManager) -> None:
    parent = run(manager.save_checkpoint(AgentState(agent_id="agent1")))
    child1 = run(manager.fork_from_checkpoint(parent))
    child2 = run(manager.fork_from_checkpoint(parent))
    grandchild = run(manager.fork_from_checkpoint(child1.checkpoint_id))
    tree = run(manager.get_checkpoint_tree("agent1"))
    assert sorted(tree[parent]) == sorted([child1.checkpoint_id, child2.checkpoint_id])
    assert tree[child1.checkpoint_id] == [grandchild.checkpoint_id]


def test_snapshot_is_a_deep_copy(manager: StateManager) -> None:
    state = AgentState(agent_id="agent1", step_number=10,
                       conversation_history=[{"role": "user", "content": "Hello"}])
    snap = manager.create_snapshot(state, reason="debug")
    assert snap.state.checkpoint_id == state.checkpoint_id and snap.snapshot_reason == "debug"
    state.conversation_history.append({"role": "assistant", "content": "Hi"})
    assert len(snap.state.conversation_history) == 1

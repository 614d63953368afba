"""agentjournal.integrations.kaizen under kailash-kaizen's own StateManager and autonomous loop,
and tests equivalent to Kaizen's state-storage unit tests (written here, pointed at our backend)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("kaizen.core.autonomy.state")

from kaizen.core.autonomy.state import AgentState, StateManager  # noqa: E402
from kaizen.core.autonomy.state.storage import StorageBackend  # noqa: E402

from agentjournal import Journal, Step  # noqa: E402
from agentjournal.integrations.kaizen import JournalStorage  # noqa: E402

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def storage(tmp_path: Path) -> Any:
    st = JournalStorage(tmp_path / "ck", durability="none")
    yield st
    st.close()


# --- equivalents of Kaizen's storage tests ---------------------------------------------------
def test_is_a_kaizen_storage_backend_with_its_base_dir(storage: JournalStorage) -> None:
    assert isinstance(storage, StorageBackend)
    assert storage.base_dir.is_dir() and isinstance(storage.base_dir, Path)


def test_save_returns_the_states_id_and_records_it(storage: JournalStorage) -> None:
    cid = run(storage.save(AgentState(checkpoint_id="ckpt_test", agent_id="agent1",
                                      step_number=5)))
    assert cid == "ckpt_test"
    with storage.journal("agent1") as j:  # one record in the agent's journal, with the id
        (rec,) = [r for r in j.records() if isinstance(r, Step)]
        assert rec.meta is not None and rec.meta["kaizen"]["id"] == "ckpt_test"
        assert j.state_at(5)["agent_id"] == "agent1"


def test_load_round_trips_a_complex_state(storage: JournalStorage) -> None:
    original = AgentState(
        checkpoint_id="ckpt_complex", agent_id="agent1", step_number=42,
        conversation_history=[{"role": "user", "content": "Hello"},
                              {"role": "assistant", "content": "Hi there!"}],
        memory_contents={"key1": "value1", "key2": [1, 2, 3]},
        pending_actions=[{"tool": "search", "query": "test"}],
        completed_actions=[{"tool": "read", "result": "data"}], budget_spent_usd=2.5,
        tool_usage_counts={"search": 3, "read": 5}, status="running")
    run(storage.save(original))
    loaded = run(storage.load("ckpt_complex"))
    assert loaded == original  # every field, the timestamp included


def test_load_and_delete_of_an_unknown_id_raise_file_not_found(storage: JournalStorage) -> None:
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        run(storage.load("nonexistent"))
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        run(storage.delete("nonexistent"))


def test_exists_and_delete(storage: JournalStorage) -> None:
    run(storage.save(AgentState(checkpoint_id="ckpt_test", agent_id="agent1")))
    assert run(storage.exists("ckpt_test")) is True
    assert run(storage.exists("nonexistent")) is False
    run(storage.delete("ckpt_test"))
    assert run(storage.exists("ckpt_test")) is False
    with pytest.raises(FileNotFoundError):
        run(storage.load("ckpt_test"))
    with pytest.raises(FileNotFoundError):
        run(storage.delete("ckpt_test"))


def test_list_empty_single_multiple_filtered_and_sized(storage: JournalStorage) -> None:
    assert run(storage.list_checkpoints()) == []
    run(storage.save(AgentState(checkpoint_id="ckpt_a", agent_id="agent1", step_number=5)))
    (one,) = run(storage.list_checkpoints())
    assert (one.checkpoint_id, one.agent_id, one.step_number) == ("ckpt_a", "agent1", 5)
    assert one.size_bytes > 0
    for i in range(3):
        run(storage.save(AgentState(checkpoint_id=f"ckpt_{i}", agent_id=f"agent{1 + i % 2}",
                                    step_number=10 + i * 10)))
    assert len(run(storage.list_checkpoints())) == 4
    mine = run(storage.list_checkpoints(agent_id="agent1"))
    assert {c.checkpoint_id for c in mine} == {"ckpt_a", "ckpt_0", "ckpt_2"}
    assert all(c.agent_id == "agent1" for c in mine)


def test_list_is_newest_timestamp_first(storage: JournalStorage) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    # Saved out of timestamp order: the listing follows the states' timestamps, as Kaizen's.
    for cid, minutes in (("ckpt_2", 2), ("ckpt_1", 1), ("ckpt_3", 3)):
        run(storage.save(AgentState(checkpoint_id=cid, agent_id="agent1",
                                    timestamp=t0 + timedelta(minutes=minutes))))
    assert [c.checkpoint_id for c in run(storage.list_checkpoints())] == \
        ["ckpt_3", "ckpt_2", "ckpt_1"]


def test_compressed_and_plain_stores_read_each_other(tmp_path: Path) -> None:
    plain = JournalStorage(tmp_path / "ck", compress=False, durability="none",
                           snapshot_every=1)
    c1 = run(plain.save(AgentState(agent_id="agent1", step_number=1)))
    plain.close()
    packed = JournalStorage(tmp_path / "ck", compress=True, durability="none",
                            snapshot_every=1)
    c2 = run(packed.save(AgentState(agent_id="agent1", step_number=2)))
    assert {c.checkpoint_id for c in run(packed.list_checkpoints("agent1"))} == {c1, c2}
    assert run(packed.load(c1)).step_number == 1
    assert run(packed.exists(c1)) and run(packed.exists(c2))
    packed.close()


def test_checkpoints_survive_a_restart_and_deletions_too(tmp_path: Path) -> None:
    st = JournalStorage(tmp_path / "ck", durability="none")
    ids = [run(st.save(AgentState(agent_id="agent1", step_number=k))) for k in range(4)]
    run(st.delete(ids[0]))
    st.close()  # records the pending deletion
    again = JournalStorage(tmp_path / "ck", durability="none")
    assert [c.checkpoint_id for c in run(again.list_checkpoints("agent1"))] == ids[:0:-1]
    assert not run(again.exists(ids[0])) and run(again.load(ids[3])).step_number == 3
    run(again.delete(ids[1]))
    run(again.save(AgentState(agent_id="agent1", step_number=9)))  # carries the deletion
    again.close()
    third = JournalStorage(tmp_path / "ck", durability="none")
    assert ids[1] not in {c.checkpoint_id for c in run(third.list_checkpoints())}
    with third.journal("agent1") as j:  # the journal is append-only: the records remain
        assert j.verify().ok
        assert len([r for r in j.records() if isinstance(r, Step)]) == 6
    third.close()


def test_saving_an_id_again_replaces_it_and_earlier_steps_are_accepted(
        storage: JournalStorage) -> None:
    s = AgentState(checkpoint_id="ckpt_same", agent_id="agent1", step_number=5)
    run(storage.save(s))
    s.memory_contents["v"] = 2
    s.step_number = 3  # Kaizen may save an earlier step (its fork does)
    run(storage.save(s))
    assert [c.step_number for c in run(storage.list_checkpoints("agent1"))] == [3]
    assert run(storage.load("ckpt_same")).memory_contents == {"v": 2}


def test_an_agent_id_that_is_not_a_journal_id_is_kept(storage: JournalStorage) -> None:
    cid = run(storage.save(AgentState(agent_id="")))  # Kaizen's default agent id
    (meta,) = run(storage.list_checkpoints())
    assert meta.agent_id == "" and run(storage.load(cid)).agent_id == ""


# --- equivalents of Kaizen's retention tests, through Kaizen's own StateManager --------------
def test_kaizen_manager_retention_keeps_the_latest(storage: JournalStorage) -> None:
    manager = StateManager(storage=storage, retention_count=3)
    ids = [run(storage.save(AgentState(agent_id="test_agent", step_number=i)))
           for i in range(5)]
    assert len(run(storage.list_checkpoints(agent_id="test_agent"))) == 5
    assert run(manager.cleanup_old_checkpoints("test_agent")) == 2
    assert {c.checkpoint_id for c in run(storage.list_checkpoints("test_agent"))} == \
        set(ids[2:])


def test_kaizen_manager_retention_with_fewer_than_the_count(storage: JournalStorage) -> None:
    manager = StateManager(storage=storage, retention_count=10)
    for i in range(3):
        run(manager.save_checkpoint(AgentState(agent_id="test_agent", step_number=i),
                                    force=True))
    assert run(manager.cleanup_old_checkpoints("test_agent")) == 0
    assert len(run(storage.list_checkpoints(agent_id="test_agent"))) == 3


def test_kaizen_manager_retention_survives_a_failing_delete(
        storage: JournalStorage, caplog: Any) -> None:
    manager = StateManager(storage=storage, retention_count=2)
    for i in range(4):
        run(storage.save(AgentState(agent_id="test_agent", step_number=i)))
    real = storage.delete
    calls = [0]

    async def flaky(checkpoint_id: str) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError("simulated delete error")
        await real(checkpoint_id)

    storage.delete = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.CRITICAL, logger="kaizen"):
        assert run(manager.cleanup_old_checkpoints("test_agent")) == 1


def test_kaizen_manager_save_resume_fork_tree_snapshot(storage: JournalStorage) -> None:
    manager = StateManager(storage=storage, retention_count=100)

    async def main() -> None:
        ids = []
        for k in range(1, 6):
            st = AgentState(agent_id="agent1", step_number=k,
                            conversation_history=[{"role": "user", "content": f"m{i}"}
                                                  for i in range(k)])
            ids.append(await manager.save_checkpoint(st))
        latest = await manager.resume_from_latest("agent1")
        assert latest is not None and latest.step_number == 5
        assert (await manager.load_checkpoint(ids[1])).step_number == 2
        assert await manager.resume_from_latest("nobody") is None
        fork = await manager.fork_from_checkpoint(ids[2])
        assert fork.parent_checkpoint_id == ids[2] and fork.step_number == 3
        assert await manager.get_checkpoint_tree("agent1") == {ids[2]: [fork.checkpoint_id]}
        snap = manager.create_snapshot(fork, reason="debug")
        assert snap.get_summary()["snapshot_reason"] == "debug"

    run(main())
    # Every checkpoint is a delta in one journal: verifiable, with time travel.
    with storage.journal("agent1") as j:
        assert j.verify().ok
        steps = [r for r in j.records() if isinstance(r, Step)]
        assert len(steps) == 6
        assert len(j.state_at(4)["conversation_history"]) == 4
        sizes = [len(str(r.ops)) for r in steps]
        assert sizes[4] < sizes[0] * 3  # step 5 recorded its one new message, not all five


# --- Kaizen's real autonomous loop, with a scripted strategy (no model, no network) ----------
class ScriptedStrategy:
    """Stands in for Kaizen's LLM strategy: seven cycles, then no more tool calls."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.fail_at = fail_at

    def execute(self, agent: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("model unavailable")
        agent.record_tool_usage("search")
        done = self.calls >= 7
        return {"result": f"r{self.calls}", "observation": f"o{self.calls}",
                "tool_calls": [] if done else [{"name": "search"}]}


def _agent(storage: JournalStorage, strategy: ScriptedStrategy, **cfg: Any) -> Any:
    base = pytest.importorskip("kaizen_agents.agents.autonomous.base")
    config = base.AutonomousConfig(max_cycles=10, checkpoint_frequency=2,
                                   resume_from_checkpoint=True, planning_enabled=False,
                                   enable_interrupts=False, llm_provider="mock", model="mock",
                                   **cfg)
    manager = StateManager(storage=storage, checkpoint_frequency=2,
                           checkpoint_interval=1e9, retention_count=3)
    return base.BaseAutonomousAgent(config=config, signature=None, strategy=strategy,
                                    state_manager=manager)


def test_kaizens_autonomous_loop_checkpoints_into_the_journal(tmp_path: Path) -> None:
    storage = JournalStorage(tmp_path / "ck", durability="none")
    result = run(_agent(storage, ScriptedStrategy())._autonomous_loop("research"))
    assert result["cycles_used"] == 7 and result["tool_calls"] == []
    listed = run(storage.list_checkpoints("autonomous_agent"))
    assert len(listed) == 3  # Kaizen's retention_count, through our delete
    assert max(c.step_number for c in listed) == 7
    storage.close()
    with Journal("autonomous_agent", tmp_path / "ck", readonly=True) as j:
        assert j.verify().ok
        saves = [r for r in j.records() if isinstance(r, Step) and r.meta
                 and "kaizen" in r.meta]
        # Kaizen's cadence (its interval trigger fires on the first step), then the final one.
        assert [r.meta["kaizen"]["step"] for r in saves] == [1, 3, 5, 7, 7]  # type: ignore[index]
        assert j.state_at(4)["tool_usage_counts"] == {"search": 3}

    # A restarted agent resumes from the latest checkpoint in the journal.
    again = JournalStorage(tmp_path / "ck", durability="none")
    agent = _agent(again, ScriptedStrategy())
    run(agent._autonomous_loop("research"))
    assert agent.current_step > 7
    again.close()


def test_a_second_storage_reads_what_a_live_one_writes(tmp_path: Path) -> None:
    writer = JournalStorage(tmp_path / "ck", durability="none")
    reader = JournalStorage(tmp_path / "ck", durability="none")
    first = run(writer.save(AgentState(agent_id="agent1", step_number=1)))
    assert [c.checkpoint_id for c in run(reader.list_checkpoints("agent1"))] == [first]
    second = run(writer.save(AgentState(agent_id="agent1", step_number=2)))
    assert run(reader.load(second)).step_number == 2  # an unknown id: the index catches up
    assert len(run(reader.list_checkpoints())) == 2
    writer.close()
    reader.close()

"""AgentState: seed field names, cheap to_dict, forward-compatible from_dict, save-time errors."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentjournal import (
    AgentState,
    FilesystemStorage,
    Journal,
    NotJSONEncodableError,
    StateManager,
)

SEED_FIELDS = {
    "checkpoint_id", "agent_id", "model", "timestamp", "updated_at", "step_number",
    "conversation_history", "memory_contents", "pending_actions", "completed_actions",
    "budget_spent_usd", "approval_history", "tool_usage_counts", "tool_results_cache",
    "active_specialists", "specialist_invocations", "workflow_run_id", "workflow_state",
    "control_protocol_state", "registered_hooks", "hook_event_history",
    "parent_checkpoint_id", "status", "metadata",
}


def _manager(tmp_path: Any, **kw: Any) -> StateManager:
    kw.setdefault("checkpoint_frequency", None)
    kw.setdefault("checkpoint_interval", None)
    return StateManager(FilesystemStorage(tmp_path / "store", durability="none"), **kw)


def test_has_every_seed_field_with_seed_defaults() -> None:
    names = {f.name for f in dataclasses.fields(AgentState)}
    assert SEED_FIELDS <= names
    s = AgentState()
    assert s.agent_id == "" and s.step_number == 0 and s.status == "running"
    assert s.budget_spent_usd == 0.0 and s.parent_checkpoint_id is None
    assert s.checkpoint_id.startswith("ckpt_")
    assert isinstance(s.timestamp, datetime) and s.timestamp.tzinfo is not None
    # Mutable defaults are not shared between instances.
    t = AgentState()
    s.conversation_history.append({"role": "user", "content": "hi"})
    assert t.conversation_history == []


def test_to_dict_shares_containers_and_converts_datetimes() -> None:
    s = AgentState(agent_id="a", updated_at=datetime(2024, 5, 1, tzinfo=timezone.utc))
    d = s.to_dict()
    assert d["conversation_history"] is s.conversation_history
    assert d["memory_contents"] is s.memory_contents
    assert d["timestamp"] == s.timestamp.isoformat()
    assert d["updated_at"] == "2024-05-01T00:00:00+00:00"
    assert "unknown_fields" not in d
    assert set(d) == SEED_FIELDS


def test_from_dict_keeps_unknown_fields_and_writes_them_back() -> None:
    d = AgentState(agent_id="a").to_dict()
    d["future_field"] = {"x": 1}
    s = AgentState.from_dict(d)
    assert s.unknown_fields == {"future_field": {"x": 1}}
    assert s.to_dict()["future_field"] == {"x": 1}


def test_from_dict_fills_missing_fields_and_parses_datetimes() -> None:
    s = AgentState.from_dict({"agent_id": "a", "step_number": 3,
                              "timestamp": "2024-01-02T03:04:05+00:00"})
    assert s.step_number == 3 and s.conversation_history == []
    assert s.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="timestamp"):
        AgentState.from_dict({"timestamp": "yesterday"})
    with pytest.raises(TypeError):
        AgentState.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def test_datetimes_and_unknown_fields_round_trip_through_the_journal(tmp_path: Any) -> None:
    async def main() -> AgentState:
        async with _manager(tmp_path) as sm:
            s = AgentState(agent_id="a", updated_at=datetime(2030, 1, 1, tzinfo=timezone.utc)
                           + timedelta(microseconds=7))
            s.unknown_fields["from_the_future"] = [1, 2]
            await sm.save_checkpoint(s)
            return await sm.load_checkpoint("a@0000000000")

    loaded = asyncio.run(main())
    assert isinstance(loaded.timestamp, datetime) and isinstance(loaded.updated_at, datetime)
    assert loaded.updated_at == datetime(2030, 1, 1, 0, 0, 0, 7, tzinfo=timezone.utc)
    assert loaded.unknown_fields == {"from_the_future": [1, 2]}


def test_non_json_value_is_refused_at_save_naming_its_path(tmp_path: Any) -> None:
    async def main() -> None:
        async with _manager(tmp_path) as sm:
            s = AgentState(agent_id="a")
            await sm.save_checkpoint(s)
            s.step_number = 1
            s.memory_contents["client"] = object()
            with pytest.raises(NotJSONEncodableError) as ei:
                await sm.save_checkpoint(s)
            assert ei.value.path == "/memory_contents/client"
            # The failed save did not change the checkpoint id nor record anything.
            assert s.checkpoint_id == "a@0000000000.0000000001"
            del s.memory_contents["client"]
            s.conversation_history.append({"role": "user", "content": ("a", "tuple")})
            with pytest.raises(NotJSONEncodableError) as ei:
                await sm.save_checkpoint(s)
            assert ei.value.path == "/conversation_history/0/content"

    asyncio.run(main())
    with Journal("a", tmp_path / "store", readonly=True) as j:
        assert j.last_seq == 1 and j.verify().ok


def test_mutated_in_place_state_records_only_the_change(tmp_path: Any) -> None:
    async def main() -> None:
        async with _manager(tmp_path) as sm:
            s = AgentState(agent_id="a")
            s.conversation_history.extend({"role": "user", "content": f"m{i}"}
                                          for i in range(200))
            await sm.save_checkpoint(s)
            s.step_number += 1
            s.conversation_history.append({"role": "assistant", "content": "new"})
            s.budget_spent_usd += 0.5
            await sm.save_checkpoint(s)
            hist = await sm.history("a", 1, 1)
            ops = hist[-1].ops
            assert {"op": "add", "path": "/conversation_history/-",
                    "value": {"role": "assistant", "content": "new"}} in ops
            assert {o["path"] for o in ops} == {"/checkpoint_id", "/step_number",
                                                "/conversation_history/-",
                                                "/budget_spent_usd"}
            # An in-place edit of an old message is recorded too.
            s.step_number += 1
            s.conversation_history[3]["content"] = "edited"
            await sm.save_checkpoint(s)
            assert (await sm.load_checkpoint("a@0000000002")).conversation_history[3] == \
                {"role": "user", "content": "edited"}
            assert (await sm.load_checkpoint("a@0000000001")).conversation_history[3] == \
                {"role": "user", "content": "m3"}

    asyncio.run(main())


def test_summary() -> None:
    s = AgentState(agent_id="a", step_number=4, budget_spent_usd=1.5)
    s.conversation_history.append({"role": "user", "content": "x"})
    assert s.summary()["conversation_turns"] == 1
    assert s.summary()["step_number"] == 4

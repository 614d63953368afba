"""The one-line change summaries of ``agentjournal log``."""

from __future__ import annotations

from typing import Any

import pytest

from agentjournal import delta
from agentjournal.summary import UNKNOWN, summarize_ops

BEFORE: dict[str, Any] = {
    "conversation_history": [{"role": "user", "content": "hi"}],
    "budget_spent_usd": 0.12, "status": "running", "step_number": 3,
    "checkpoint_id": "a@3", "memory_contents": {"a": 1},
    "pending_actions": [{"action": "search"}, {"action": "write"}], "completed_actions": [],
    "tool_usage_counts": {"search": 2}, "other": {"x": 1, "y": [1, 2]},
}


def _after(**changes: Any) -> dict[str, Any]:
    import copy

    after = copy.deepcopy(BEFORE)
    for k, v in changes.items():
        after[k] = v
    return after


@pytest.mark.parametrize(("after", "expected"), [
    (_after(conversation_history=BEFORE["conversation_history"]
            + [{"role": "assistant", "content": "hello"}], budget_spent_usd=0.15,
            step_number=4, checkpoint_id="a@4"),
     "+1 message (assistant), budget 0.12→0.15"),
    (_after(step_number=4, checkpoint_id="a@4"), "step_number 3→4, checkpoint_id a@3→a@4"),
    (_after(status="completed"), "status running→completed"),
    (_after(pending_actions=[{"action": "write"}], completed_actions=[{"action": "search"}]),
     "-1 pending action (search), +1 completed action (search)"),
    (_after(memory_contents={"a": 1, "b": 2}), "memory +1 (b)"),
    (_after(memory_contents={}), "memory -1 (a)"),
    (_after(tool_usage_counts={"search": 3, "fetch": 1}), "tools search +1, fetch +1"),
    (_after(other={"x": 2, "y": [1, 2, 3]}), "2 ops: /other/x, /other/y/-"),
    (_after(status="failed", other={"x": 2, "y": [1, 2]}),
     "status running→failed, +1 other op: /other/x"),
    (BEFORE, "no change"),
])
def test_seed_fields_and_generic_fallback(after: dict[str, Any], expected: str) -> None:
    ops = delta.diff(BEFORE, after)
    assert summarize_ops(ops, BEFORE) == expected


def test_without_the_state_before_old_values_are_left_out() -> None:
    ops = delta.diff(BEFORE, _after(budget_spent_usd=0.2))
    assert summarize_ops(ops, UNKNOWN) == "budget 0.2"


def test_first_record_and_whole_state_replacement() -> None:
    assert summarize_ops(delta.diff({}, BEFORE), {}) == "initial state (10 fields)"
    assert summarize_ops([{"op": "replace", "path": "", "value": {"a": 1}}],
                         BEFORE) == "state replaced (1 field)"


def test_edited_messages_and_many_paths_are_shortened() -> None:
    after = _after(conversation_history=[{"role": "user", "content": "edited"}])
    assert summarize_ops(delta.diff(BEFORE, after), BEFORE) == "edited message 0"
    ops = [{"op": "add", "path": f"/k{i}", "value": i} for i in range(5)]
    assert summarize_ops(ops, BEFORE) == "5 ops: /k0, /k1, /k2…"


def test_removed_items_are_named_after_appends_in_the_same_step() -> None:
    before = {"pending_actions": [{"action": "a"}, {"action": "b"}]}
    ops: list[dict[str, Any]] = [
           {"op": "add", "path": "/pending_actions/-", "value": {"action": "c"}},
           {"op": "remove", "path": "/pending_actions/0"},
           {"op": "remove", "path": "/pending_actions/1"}]
    assert summarize_ops(ops, before) == "+1 pending action (c), -2 pending actions (a, c)"

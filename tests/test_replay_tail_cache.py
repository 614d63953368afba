"""Regression: reads between opening a journal and its next append replay the writer's cached
scan of the last segment; replaying must not alias (and later mutate) the cached op values."""

from __future__ import annotations

from pathlib import Path

from agentjournal import Journal


def _build(root: Path, steps: int) -> list[dict]:
    states = []
    state: dict = {"messages": [], "counter": 0}
    with Journal("a", root, durability="none", snapshot_every=None) as j:
        for i in range(1, steps + 1):
            state["messages"].append({"i": i})
            state["counter"] = i
            j.append(state)
            states.append({"messages": list(state["messages"]), "counter": i})
    return states


def test_reads_after_open_do_not_corrupt_each_other(tmp_path: Path) -> None:
    states = _build(tmp_path, 12)
    with Journal("a", tmp_path) as j:
        assert j.resume().state == states[-1]
        for k in (3, 12, 1, 7, 7):
            assert j.state_at(k) == states[k - 1]
        assert j.resume().state == states[-1]
        # the shadow (used to diff the next append) is not shared with the cache either
        states[-1]["messages"].append({"i": 13})
        states[-1]["counter"] = 13
        j.append(states[-1])
        assert j.state_at(5) == states[4]
        assert j.resume().state == states[-1]

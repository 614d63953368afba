"""Real LangGraph graphs (no model) on JournalSaver, compared with InMemorySaver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.types import Command  # noqa: E402
from lg_graphs import (  # noqa: E402
    chat_graph,
    chat_input,
    fan_graph,
    nested_graph,
    review_graph,
    run_config,
)

from agentjournal import Journal  # noqa: E402
from agentjournal.integrations.langgraph import JournalSaver, thread_agent_id  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"


def shape(history: list[Any]) -> list[Any]:
    """What two savers must agree on in a state history (ids differ: they are fresh uuids)."""
    index = {h.config["configurable"]["checkpoint_id"]: i for i, h in enumerate(history)}
    out = []
    for h in history:
        parent = h.parent_config["configurable"]["checkpoint_id"] if h.parent_config else None
        out.append((h.values, h.next, h.metadata.get("source"), h.metadata.get("step"),
                    [t.name for t in h.tasks], [i.value for i in h.interrupts],
                    index.get(parent) if parent else None))
    return out


def child(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}"}
    return subprocess.run([sys.executable, str(HERE / "lg_graphs.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=True)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_growing_conversation_1000_steps(tmp_path: Path, durability: str) -> None:
    steps = 1000
    cfg = run_config("long", steps)
    expected = chat_graph(None).invoke(chat_input(steps), cfg)
    ref = InMemorySaver()
    chat_graph(ref).invoke(chat_input(steps), cfg, durability=durability)
    ref_ids = sorted(ref.storage["long"][""])  # (listing would decode 1000 growing states)
    with JournalSaver(tmp_path) as saver:
        out = chat_graph(saver).invoke(chat_input(steps), cfg, durability=durability)
    assert out == expected
    with JournalSaver(tmp_path) as saver:  # a new process would see the same: from disk
        g = chat_graph(saver)
        assert g.get_state(cfg).values == expected
        last_two = list(saver.list(cfg, limit=2))
        assert [t.metadata["step"] for t in last_two] == \
            [ref.get_tuple(cfg).metadata["step"] - i for i in range(len(last_two))]  # type: ignore[union-attr]
    with Journal(thread_agent_id("long"), tmp_path, readonly=True) as j:
        assert j.verify().ok
        puts = [r.meta["id"] for r in j.records()
                if getattr(r, "meta", None) and r.meta.get("op") == "put"]  # type: ignore[union-attr]
        assert len(puts) == len(ref_ids)
        # ~0.5 MB of new data; SqliteSaver writes ~500 MB for this run. Snapshots included.
        assert j.disk_usage() < 12 << 20


def test_interrupt_and_resume_across_a_process_restart(tmp_path: Path) -> None:
    first = child(str(tmp_path), "review", "0", "--review")
    assert "approve?" in first.stdout
    second = child(str(tmp_path), "review", "0", "--answer", "yes")
    ref = InMemorySaver()
    g = review_graph(ref)
    cfg = run_config("review", 0)
    g.invoke({"draft": "memo", "verdict": ""}, cfg)
    want = g.invoke(Command(resume="yes"), cfg)
    assert second.stdout.strip().endswith(f"final {want}")
    with JournalSaver(tmp_path) as saver:
        ours = review_graph(saver)
        assert shape(list(ours.get_state_history(cfg))) == shape(list(g.get_state_history(cfg)))


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    steps = 300
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}"}
    proc = subprocess.Popen([sys.executable, str(HERE / "lg_graphs.py"), str(tmp_path), "k",
                             str(steps)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if line.startswith("step "):
            seen = int(line.split()[1])
            if seen >= 120:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL and 120 <= seen < steps
    with JournalSaver(tmp_path) as saver:
        before = chat_graph(saver).get_state(run_config("k", steps)).values["n"]
    assert 100 <= before < steps  # resumes from the last durable checkpoint, not from zero
    resumed = child(str(tmp_path), "k", str(steps), "--resume")
    assert resumed.stdout.strip().endswith(f"final {steps + 1} {steps}")
    assert f"step {before + 1}\n" in resumed.stdout and "step 1\n" not in resumed.stdout
    expected = chat_graph(None).invoke(chat_input(steps), run_config("k", steps))
    with JournalSaver(tmp_path) as saver:
        assert chat_graph(saver).get_state(run_config("k", steps)).values == expected
    with Journal(thread_agent_id("k"), tmp_path, readonly=True) as j:
        assert j.verify().ok


def test_send_fan_out_matches_in_memory_saver(tmp_path: Path) -> None:
    cfg = run_config("fan", 10)
    inp = {"items": [3, 1, 2, 5, 4], "results": []}
    ref = fan_graph(InMemorySaver())
    want = ref.invoke(inp, cfg)
    with JournalSaver(tmp_path) as saver:
        got = fan_graph(saver).invoke(inp, cfg)
    assert got == want and len(got["results"]) == 5
    with JournalSaver(tmp_path) as saver:
        ours = fan_graph(saver)
        assert shape(list(ours.get_state_history(cfg))) == shape(list(ref.get_state_history(cfg)))


def test_subgraph_checkpoints_in_a_child_namespace(tmp_path: Path) -> None:
    cfg = run_config("nest", 10)
    ref_saver = InMemorySaver()
    ref = nested_graph(ref_saver)
    ref.invoke({"log": []}, cfg)
    with JournalSaver(tmp_path) as saver:
        nested_graph(saver).invoke({"log": []}, cfg)
        namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list(None)}
        assert "" in namespaces and any(ns.startswith("sub:") for ns in namespaces)
    with JournalSaver(tmp_path) as saver:  # the child namespace survives a restart
        g = nested_graph(saver)
        ours_state = g.get_state(cfg, subgraphs=True)
        ref_state = ref.get_state(cfg, subgraphs=True)
        assert ours_state.values == ref_state.values
        assert [t.state.values for t in ours_state.tasks] == \
            [t.state.values for t in ref_state.tasks]  # type: ignore[union-attr]
        want = ref.invoke(Command(resume="ok"), cfg)
        assert g.invoke(Command(resume="ok"), cfg) == want
        assert want["log"][-3:] == ["inner a", "inner b ok", "after"]
        assert shape(list(g.get_state_history(cfg))) == shape(list(ref.get_state_history(cfg)))


def test_state_history_and_update_state_time_travel_match_in_memory(tmp_path: Path) -> None:
    cfg = run_config("tt", 10)

    def scenario(g: Any) -> list[Any]:
        g.invoke(chat_input(4), cfg)
        history = list(g.get_state_history(cfg))
        old = history[3]  # a few steps back
        fork = g.update_state(old.config, {"goal": 6})
        g.invoke(None, fork)  # continue from the fork: a branch
        return list(g.get_state_history(cfg))

    want = scenario(chat_graph(InMemorySaver()))
    with JournalSaver(tmp_path) as saver:
        got = scenario(chat_graph(saver))
    assert shape(got) == shape(want)
    assert got[0].values["n"] == 6
    with JournalSaver(tmp_path) as saver:
        again = list(chat_graph(saver).get_state_history(cfg))
    assert shape(again) == shape(want)
    # The fork's first checkpoint (source "update") has an older checkpoint as parent.
    update = next(h for h in again if h.metadata["source"] == "update")
    parent = update.parent_config["configurable"]["checkpoint_id"]  # type: ignore[index]
    ids = [h.config["configurable"]["checkpoint_id"] for h in again]
    assert ids.index(parent) > ids.index(update.config["configurable"]["checkpoint_id"]) + 1


def test_ainvoke_uses_the_async_methods(tmp_path: Path) -> None:
    import asyncio

    cfg = run_config("async", 30)
    expected = chat_graph(None).invoke(chat_input(30), cfg)

    async def go() -> tuple[Any, Any, int]:
        async with JournalSaver(tmp_path) as saver:
            g = chat_graph(saver)
            out = await g.ainvoke(chat_input(30), cfg)
            state = await g.aget_state(cfg)
            n = len([h async for h in g.aget_state_history(cfg)])
            return out, state.values, n

    out, values, n = asyncio.run(go())
    assert out == expected and values == expected
    ref = InMemorySaver()
    chat_graph(ref).invoke(chat_input(30), cfg)
    assert n == len(list(ref.list(cfg)))


def test_delta_channel_graph_matches_in_memory_saver(tmp_path: Path) -> None:
    """LangGraph's DeltaChannel works on JournalSaver (through get_delta_channel_history)."""
    channels = pytest.importorskip("langgraph.channels")
    if not hasattr(channels, "DeltaChannel"):
        pytest.skip("this langgraph has no DeltaChannel")
    sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))
    import bench_langgraph as bench

    steps = 120  # past the channel's snapshot_frequency (100)
    cfg = {"configurable": {"thread_id": "delta"}, "recursion_limit": steps + 10}
    inp = {"messages": [], "n": 0, "goal": steps}
    ref = bench.build("sqlite-delta", InMemorySaver(), [])
    want = ref.invoke(inp, cfg)
    with JournalSaver(tmp_path) as saver:
        assert bench.build("sqlite-delta", saver, []).invoke(inp, cfg) == want
    with JournalSaver(tmp_path) as saver:
        g = bench.build("sqlite-delta", saver, [])
        assert g.get_state(cfg).values == want
        ours = [h.values for h in g.get_state_history(cfg, limit=30)]
        assert ours == [h.values for h in ref.get_state_history(cfg, limit=30)]

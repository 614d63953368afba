"""The agentjournal CLI on LangGraph threads: log, show (by checkpoint id), diff, verify,
stats and fork work on a thread's journal, namespaces and branches visible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from click.testing import CliRunner, Result  # noqa: E402
from lg_graphs import chat_graph, chat_input, nested_graph, run_config  # noqa: E402

from agentjournal import Journal  # noqa: E402
from agentjournal.cli import cli  # noqa: E402
from agentjournal.integrations._lg_codec import decode  # noqa: E402
from agentjournal.integrations.langgraph import JournalSaver, thread_agent_id  # noqa: E402


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False,
                              env={"AGENTJOURNAL_ROOT": None, "AGENTJOURNAL_KEY": None})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lgcli")
    with JournalSaver(root) as saver:
        g = chat_graph(saver)
        cfg = run_config("cli", 10)
        g.invoke(chat_input(4), cfg)
        old = list(g.get_state_history(cfg))[2]
        g.update_state(old.config, {"goal": 5})  # a branch from an older checkpoint
        nested_graph(saver).invoke({"log": []}, run_config("nest", 10))
    return root


def log_entries(root: Path, agent: str) -> list[dict[str, Any]]:
    res = run(root, "log", agent, "--json")
    assert res.exit_code == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_log_shows_checkpoints_writes_and_the_branch(store: Path) -> None:
    agent = thread_agent_id("cli")
    text = run(store, "log", agent)
    assert text.exit_code == 0 and "[put " in text.stdout and "[writes " in text.stdout
    puts = [e["details"]["meta"] for e in log_entries(store, agent)
            if e["details"].get("meta", {}).get("op") == "put"]
    assert [p["parent"] for p in puts[1:-1]] == [p["id"] for p in puts[:-2]]
    update = puts[-1]  # update_state's checkpoint: its parent is not the one before it
    assert update["parent"] != puts[-2]["id"] and update["parent"] in [p["id"] for p in puts]


def test_namespaces_are_visible(store: Path) -> None:
    metas = [e["details"].get("meta") or {} for e in log_entries(store, thread_agent_id("nest"))]
    namespaces = {m.get("ns") for m in metas if m.get("op") == "put"}
    assert "" in namespaces and any(str(ns).startswith("sub:") for ns in namespaces)
    res = run(store, "show", thread_agent_id("nest"), "--path", "/ns")
    assert res.exit_code == 0 and set(json.loads(res.stdout)) == namespaces


def test_show_at_a_checkpoint_id_equals_get_tuple(store: Path) -> None:
    agent = thread_agent_id("cli")
    with JournalSaver(store) as saver:
        tuples = list(saver.list(run_config("cli", 10)))
        for t in tuples[:3]:
            cid = t.config["configurable"]["checkpoint_id"]
            res = run(store, "show", agent, "--at", cid, "--path", "/ns/", "--json")
            assert res.exit_code == 0, res.stderr
            values = {ch: decode(saver.serde, v) for ch, v in json.loads(res.stdout)
                      ["value"].items()}
            assert values == t.checkpoint["channel_values"]
    assert run(store, "show", agent, "--at", "no-such-checkpoint").exit_code == 3


def test_diff_verify_stats_and_fork_on_a_thread(store: Path) -> None:
    agent = thread_agent_id("cli")
    res = run(store, "diff", agent, "2", "4", "--json")
    assert res.exit_code == 0
    assert any(op["path"].startswith("/ns//messages") for op in json.loads(res.stdout))
    assert run(store, "verify", agent).exit_code == 0
    stats = run(store, "stats", agent, "--json")
    assert stats.exit_code == 0 and json.loads(stats.stdout)
    fork = run(store, "fork", agent, "--at", "3", "--to", "cli-fork")
    assert fork.exit_code == 0, fork.stderr
    with Journal("cli-fork", store, readonly=True) as f, \
            Journal(agent, store, readonly=True) as j:
        assert f.resume().state == j.state_at(3)


def test_history_queries_on_a_thread(store: Path) -> None:
    """blame, touching and grep answer on a LangGraph thread's journal (issue 13)."""
    from agentjournal.query import blame, grep, touching

    agent = thread_agent_id("cli")
    with Journal(agent, store, readonly=True) as j:
        last = j.resume().state
        channels = last["ns"][""]
        assert "messages" in channels
        pointer = "/ns//messages"
        hits = list(touching(j, pointer))
        assert hits and all(any(op["path"].startswith(pointer) for op in m.ops) for m in hits)
        b = blame(j, pointer)
        assert b.last is not None and b.last.seq == hits[-1].seq
        text = json.dumps(channels["messages"])
        word = "question" if "question" in text else text[text.index('"') + 1:][:6]
        assert list(grep(j, word, under=pointer))
    res = run(store, "blame", agent, pointer, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["last"]["seq"] == b.last.seq

"""The history-query commands: blame, grep, bisect, log --touching/--since/--until and
show --at-time, with their JSON schemas and exit codes (in-process and as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentjournal import Journal
from agentjournal.cli.schemas import json_schema, validate
from test_cli_support import make_agent, run, run_json


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    make_agent(tmp_path, "researcher", 30, snapshot_every=10, keep_states=False)
    return tmp_path


def _lines(res_stdout: str, command: str) -> list[dict[str, object]]:
    docs = [json.loads(line) for line in res_stdout.splitlines()]
    for d in docs:
        validate(command, d)
    return docs


def test_blame_json_and_text(root: Path) -> None:
    doc = run_json("blame", "researcher", "/budget_spent_usd", root=root)
    assert doc["value"] == 0.9 and doc["last"]["step"] == 30
    assert doc["last"]["previous"] == 0.87 and doc["last"]["had_previous"] is True
    assert doc["last"]["time"].endswith("+00:00") and doc["earlier"] == []
    msg = run_json("blame", "researcher", "/conversation_history/20/content", root=root)
    assert (msg["last"]["step"], msg["last"]["path"], msg["last"]["relation"]) == (
        21, "/conversation_history/-", "parent")
    assert msg["last"]["had_previous"] is False and msg["last"]["previous"] is None
    mem = run_json("blame", "researcher", "/memory_contents", root=root)
    assert [c["last"]["step"] for c in mem["children"]] == [5, 10, 15, 20, 25, 30]
    every = run_json("blame", "researcher", "/status", "--all", root=root)
    assert [every["last"]["step"]] + [w["step"] for w in every["earlier"]] == [30, 1]
    bare = run_json("blame", "researcher", "/memory_contents", "--no-children", root=root)
    assert bare["children"] == []
    res = run("blame", "researcher", "/status", "--all", root=root)
    assert res.exit_code == 0 and '"running" → "completed"' in res.stdout
    res = run("blame", "researcher", "/memory_contents", root=root)
    assert "/memory_contents/fact30" in res.stdout and "6 members" in res.stdout


def test_blame_errors(root: Path) -> None:
    res = run("blame", "researcher", "/nope", root=root)
    assert res.exit_code == 3 and "no step wrote it" in res.stderr
    res = run("blame", "researcher", "nope", root=root)
    assert res.exit_code == 2 and "start with '/'" in res.stderr
    assert run("blame", "ghost", "/x", root=root).exit_code == 3


def test_grep_json_lines(root: Path) -> None:
    res = run("grep", "researcher", "learned", "--reverse", "--limit", "2", "--json", root=root)
    docs = _lines(res.stdout, "grep")
    assert [d["step"] for d in docs] == [30, 25]
    assert docs[0]["pointers"] == ["/memory_contents/fact30"]
    res = run("grep", "researcher", r"task\d+", "--regex", "--under", "/pending_actions",
              "--from", "10", "--to", "20", root=root)
    assert res.exit_code == 0
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["12", "15", "18"]
    res = run("grep", "researcher", "zzz", root=root)
    assert res.exit_code == 0 and "no matches" in res.stderr
    res = run("grep", "researcher", "(", "--regex", root=root)
    assert res.exit_code == 2 and "bad regular expression" in res.stderr
    assert run("grep", "researcher", "x", "--from", "5", "--to", "4", root=root).exit_code == 2


def test_bisect_json_and_errors(root: Path) -> None:
    doc = run_json("bisect", "researcher", "--where", "len(/conversation_history) >= 17",
                   root=root)
    assert (doc["found"], doc["step"], doc["mode"]) == (True, 17, "monotone")
    assert doc["materializations"] <= 7
    lin = run_json("bisect", "researcher", "--where", '/status == "completed"', root=root)
    assert (lin["step"], lin["mode"], lin["materializations"]) == (30, "linear", 1)
    forced = run_json("bisect", "researcher", "--where", "/budget_spent_usd > 0.5", "--linear",
                      root=root)
    assert (forced["step"], forced["mode"]) == (17, "linear")
    none = run_json("bisect", "researcher", "--where", "/budget_spent_usd > 99", root=root)
    assert none["found"] is False and none["step"] is None and none["time"] is None
    res = run("bisect", "researcher", "--where", "len(/x", root=root)
    assert res.exit_code == 2 and "at character 7" in res.stderr
    res = run("bisect", "researcher", "--where", "exists(/memory_contents/fact15)", root=root)
    assert res.exit_code == 0 and res.stdout.startswith("first step: 15")


def test_log_touching_since_until(root: Path) -> None:
    res = run("log", "researcher", "--touching", "/memory_contents", "--json", root=root)
    docs = _lines(res.stdout, "log")
    assert [d["step"] for d in docs] == [1, 5, 10, 15, 20, 25, 30]
    res = run("log", "researcher", "--touching", "/memory_contents", "--limit", "2", root=root)
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["25", "30"]
    res = run("log", "researcher", "--touching", "/memory_contents", "--limit", "2",
              "--reverse", root=root)
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["30", "25"]
    res = run("log", "researcher", "--touching", "/memory_contents", "--from", "6",
              "--limit", "2", root=root)
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["10", "15"]
    with Journal("researcher", root, readonly=True) as j:
        recs = list(j.records())
    mid = datetime.fromtimestamp(recs[15].ts, tz=timezone.utc).isoformat()
    since = _lines(run("log", "researcher", "--since", mid, "--json", root=root).stdout, "log")
    until = _lines(run("log", "researcher", "--until", mid, "--json", root=root).stdout, "log")
    assert since and until and since[0]["ts"] >= recs[15].ts - 1e-6
    assert all(d["ts"] <= recs[15].ts + 1e-6 for d in until)
    assert {d["seq"] for d in since} | {d["seq"] for d in until} == {r.seq for r in recs}
    assert run("log", "researcher", "--touching", "/x", "--follow", root=root).exit_code == 2
    res = run("log", "researcher", "--since", "not-a-time", root=root)
    assert res.exit_code == 2 and "ISO 8601" in res.stderr


def test_show_at_time(root: Path) -> None:
    with Journal("researcher", root, readonly=True) as j:
        recs = [r for r in j.records() if r.kind == "step"]
    t = recs[11].ts
    doc = run_json("show", "researcher", "--at-time", repr(t), "--path", "/step_number",
                   root=root)
    assert doc["step"] >= 12 and doc["value"] == doc["step"]
    later = run_json("show", "researcher", "--at-time", "2999-01-01T00:00Z", root=root)
    assert later["step"] == 30
    res = run("show", "researcher", "--at-time", "2000-01-01T00:00+02:00", root=root)
    assert res.exit_code == 3 and "history starts at" in res.stderr
    assert run("show", "researcher", "--at-time", "2000-01-01", "--at", "3",
               root=root).exit_code == 2


def test_schemas_are_known() -> None:
    for command in ("blame", "grep", "bisect"):
        assert json_schema(command)["$schema"].endswith("2020-12/schema")
        res = run("schema", command)
        assert res.exit_code == 0 and json.loads(res.stdout)["title"]


def test_grep_and_touching_as_processes(root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    for args in (["grep", "researcher", "message 2", "--json"],
                 ["log", "researcher", "--touching", "/status", "--json"]):
        p = subprocess.run([sys.executable, "-m", "agentjournal.cli", "--root", str(root),
                            *args], capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() and p.stderr == ""

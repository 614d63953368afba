"""Helpers shared by the CLI tests: real journals made by the engine, and a CLI runner.

(Named ``test_cli_support`` so it sits with the CLI tests; it holds no tests itself.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from agentjournal import Journal
from agentjournal.cli import cli
from agentjournal.cli.schemas import validate


def seed_state() -> dict[str, Any]:
    return {"conversation_history": [], "budget_spent_usd": 0.0, "status": "running",
            "step_number": 0, "memory_contents": {}, "pending_actions": [],
            "completed_actions": []}


def advance(state: dict[str, Any], i: int, *, last: bool = False) -> None:
    """Step ``i`` of the seed-style test agent (deterministic)."""
    state["conversation_history"].append(
        {"role": "user" if i % 2 else "assistant", "content": f"message {i}"})
    state["budget_spent_usd"] = round(0.03 * i, 2)
    state["step_number"] = i
    if i % 5 == 0:
        state["memory_contents"][f"fact{i}"] = f"learned at step {i}"
    if i % 3 == 0:
        state["pending_actions"].append({"name": f"task{i}"})
    if i % 4 == 0 and state["pending_actions"]:
        state["completed_actions"].append(state["pending_actions"].pop(0))
    if last:
        state["status"] = "completed"


def make_agent(root: str | os.PathLike[str], agent: str = "researcher", steps: int = 30,
               *, snapshot_every: int | None = 10, finished: bool = True,
               keep_states: bool = True, **options: Any) -> list[dict[str, Any]]:
    """Record ``steps`` steps with the engine; returns the state after each step (index 0:
    before step 1)."""
    state = seed_state()
    states = [json.loads(json.dumps(state))]
    with Journal(agent, root, snapshot_every=snapshot_every, durability="none",
                 **options) as j:
        for i in range(1, steps + 1):
            advance(state, i, last=finished and i == steps)
            j.append(state)
            if keep_states:
                states.append(json.loads(json.dumps(state)))
    return states


def run(*args: str, root: str | os.PathLike[str] | None = None, input: bytes | str | None = None,
        env: dict[str, str | None] | None = None) -> Result:
    """Invoke the CLI in-process (stdout and stderr kept apart)."""
    argv = (["--root", os.fspath(root)] if root is not None else []) + list(args)
    runner = CliRunner()
    return runner.invoke(cli, argv, input=input, env={"AGENTJOURNAL_ROOT": None,
                                                       "AGENTJOURNAL_STORE": None,
                                                       "AGENTJOURNAL_KEY": None, **(env or {})},
                         catch_exceptions=False)


_NEVER_ON_STDERR = ("Traceback", "Warning:", "DeprecationWarning", "UserWarning",
                    "ResourceWarning", "\x1b[")


def assert_clean_stderr(res: Result, *allowed: str) -> None:
    """stderr holds nothing but the lines matching one of the ``allowed`` regexes (searched),
    and never a traceback, a Python warning or an escape code (tests are not terminals).

    A library warning (a deprecation from click, say) printed on every run is a bug the user
    sees; this catches it where the exit code and stdout look fine.
    """
    for bad in _NEVER_ON_STDERR:
        assert bad not in res.stderr, (bad, res.stderr)
    for line in res.stderr.splitlines():
        if line.strip():
            assert any(re.search(p, line) for p in allowed), (line, res.stderr)


def run_json(command: str, *args: str, root: str | os.PathLike[str] | None = None,
             code: int = 0, env: dict[str, str | None] | None = None) -> Any:
    """Run ``command --json``, check its exit code and validate the output's schema."""
    res = run(command, *args, "--json", root=root, env=env)
    assert res.exit_code == code, (res.stdout, res.stderr)
    if code == 0:
        assert_clean_stderr(res, r"^warning: ", r"^  ")
    doc = json.loads(res.stdout)
    validate(command, doc)
    return doc


def segment_files(root: Path, agent: str) -> list[Path]:
    return sorted((root / agent / "segments").iterdir())


_HOLDER = """
import sys
from agentjournal import Journal
with Journal(sys.argv[2], sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def writer_in_another_process(root: str | os.PathLike[str], agent: str) -> Iterator[int]:
    """Hold the agent's writer lock in a child process (the CLI is usually another process
    than the agent; in one process the two would share the writer); yields the child's pid."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), agent],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()

"""``agentjournal demo``: a fake agent journals its steps, crashes midway, and resumes.

The agent is deterministic and calls no model. It runs in a child process
(``python -m agentjournal.demo --child ...``) that is killed with SIGKILL in the middle of a step,
as a crash would; the parent then resumes it from the journal and shows what was recorded.
Each run uses a fresh agent id (``demo-1``, ``demo-2``, ...) so it can be repeated in one store.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .agent import AutonomousConfig, BaseAutonomousAgent
from .manager import StateManager
from .state import AgentState
from .storage import FilesystemStorage

__all__ = ["demo_plan", "demo_step", "run_demo"]

_CRASH_MARK = "AGENTJOURNAL-DEMO-CRASH-POINT"
_PLAN = ["read the brief", "list sources", "fetch source A", "fetch source B", "take notes",
         "compare findings", "draft outline", "write section 1", "write section 2",
         "check facts", "edit", "summarise"]


def demo_plan(steps: int = len(_PLAN)) -> list[str]:
    """The demo agent's plan for a task of ``steps`` steps, one action per step.

    The twelve actions of the usual plan; a longer task writes more sections before editing
    and summarising, a shorter one keeps the first actions and still ends by summarising.
    """
    if steps <= 1:
        return _PLAN[-1:]
    if steps <= len(_PLAN):
        return _PLAN[:steps - 1] + _PLAN[-1:]
    head, tail = _PLAN[:-3], _PLAN[-3:]  # ... write section 2 | check facts, edit, summarise
    extra = [f"write section {n}" for n in range(3, steps - len(_PLAN) + 3)]
    return head + extra + tail


def demo_step(state: AgentState, task: str, steps: int = len(_PLAN)) -> dict[str, Any] | None:
    """One cycle of the fake research agent: deterministic, no model.

    Takes the next item of the plan (:func:`demo_plan` of ``steps``), "works" on it (adds a
    user and an assistant message and a note), spends a little budget, and reports done when
    the plan is empty.
    """
    k = state.step_number
    if k == 1 and not state.pending_actions and not state.completed_actions:
        state.pending_actions.extend({"action": a} for a in demo_plan(steps))
    action = state.pending_actions.pop(0) if state.pending_actions else {"action": "review"}
    state.conversation_history.append(
        {"role": "user", "content": f"step {k}: {action['action']}"})
    state.conversation_history.append(
        {"role": "assistant", "content": f"did '{action['action']}' for task {task!r}"})
    state.memory_contents[f"note_{k}"] = f"finding #{k} ({len(action['action'])} chars)"
    state.completed_actions.append({**action, "step": k})
    state.tool_usage_counts["search"] = state.tool_usage_counts.get("search", 0) + 1
    state.budget_spent_usd = round(state.budget_spent_usd + 0.01 * k, 2)
    return {"done": True} if not state.pending_actions and k > 1 else None


def _next_agent_id(storage: FilesystemStorage) -> str:
    taken = set(storage.list_agents())
    n = 1
    while f"demo-{n}" in taken:
        n += 1
    return f"demo-{n}"


def _config(agent_id: str, steps: int, root: str) -> AutonomousConfig:
    return AutonomousConfig(max_cycles=steps, checkpoint_frequency=5,
                            checkpoint_interval_seconds=None, resume_from_checkpoint=True,
                            agent_id=agent_id, base_dir=root, retention_count=10)


def _run_child(root: str, agent_id: str, steps: int, crash_at: int) -> None:
    """Child process: run the agent and block forever inside step ``crash_at + 1``."""

    def step(state: AgentState, task: str) -> dict[str, Any] | None:
        if state.step_number == crash_at + 1:
            demo_step(state, task, steps)  # half-done work that will never be journaled
            print(_CRASH_MARK, flush=True)
            sys.stdin.readline()  # "waiting for the model" until the parent kills us
        return demo_step(state, task, steps)

    agent = BaseAutonomousAgent(_config(agent_id, steps, root), step=step)
    agent.run(_TASK)


_TASK = "write a short report on journaling agents"


def run_demo(root: str = ".agentjournal", *, echo: Callable[[str], None] = print,
             steps: int = 12, crash_at: int = 7) -> dict[str, Any]:
    """Run the demo in store ``root``; print what happens through ``echo``; return a summary.

    Args:
        root: the store root (created if missing).
        echo: where the text goes (one call per line).
        steps: steps the agent runs in total.
        crash_at: the last step journaled before the crash (1 <= crash_at < steps).

    Returns:
        ``agent_id``, ``root``, ``steps``, ``crash_at``, ``recorded_before_crash`` (steps
        journaled before the kill), ``last_step_before_crash``, ``resumed_at`` (the first step
        run after resuming), ``final_step``, ``status``, ``snapshot_steps``, ``history`` (short
        lines), ``diff`` (ops between two steps), ``diff_steps`` and ``verify_ok``.

    Raises:
        ValueError: ``steps``/``crash_at`` out of range.
        RuntimeError: the child agent did not reach the crash point.
    """
    if not (isinstance(steps, int) and 2 <= steps <= 10_000):
        raise ValueError("steps must be an int from 2 to 10000")
    if not (isinstance(crash_at, int) and 1 <= crash_at < steps):
        raise ValueError(
            f"the crash point {crash_at!r} is past the end of the {steps}-step task: the crash "
            f"must come before the last step (1 to {steps - 1}); give a smaller --crash-at or "
            "a larger --steps")
    root = os.path.abspath(root)
    storage = FilesystemStorage(root)
    agent_id = _next_agent_id(storage)
    echo(f"agentjournal demo: agent {agent_id} in {root}")
    echo("")
    echo(f"1. A fake agent (no model) starts a {steps}-step task in a child process,")
    echo(f"   journaling every step. During step {crash_at + 1} the process is killed (SIGKILL).")

    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentjournal.demo", "--child", "--root", root,
         "--agent-id", agent_id, "--steps", str(steps), "--crash-at", str(crash_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True)
    assert proc.stdout is not None
    reached = False
    try:
        for line in proc.stdout:
            if line.strip() == _CRASH_MARK:
                reached = True
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    if not reached:
        why = err.strip() or (f"it exited with status {proc.returncode} without an error "
                              f"message, before step {crash_at + 1}")
        raise RuntimeError(f"the demo agent stopped before its crash point: {why}")
    echo(f"   killed: {proc.returncode == -signal.SIGKILL and 'yes (SIGKILL)' or proc.returncode}")
    return asyncio.run(_after_crash(storage, agent_id, steps, crash_at, echo))


async def _after_crash(storage: FilesystemStorage, agent_id: str, steps: int, crash_at: int,
                       echo: Callable[[str], None]) -> dict[str, Any]:
    async with StateManager(storage, checkpoint_frequency=5, checkpoint_interval=None,
                            retention_count=10) as sm:
        listed = await sm.list_checkpoints(agent_id)
        last = listed[0].step_number if listed else 0
        snaps = sorted(c.step_number for c in listed if c.snapshot)
        echo("")
        snap_text = ("no snapshot yet" if not snaps else f"a snapshot at step {snaps[0]}"
                     if len(snaps) == 1 else f"snapshots at steps {', '.join(map(str, snaps))}")
        echo(f"2. The journal survived the crash: {len(listed)} steps recorded "
             f"(steps 0..{last}), {snap_text}.")
        echo(f"   Step {crash_at + 1} was in progress and never acknowledged, so it is not there.")

        agent = BaseAutonomousAgent(_config(agent_id, steps, str(storage.base_dir)),
                                    state_manager=sm,
                                    step=functools.partial(demo_step, steps=steps))
        result = await agent.arun(_TASK)
        resumed_at = (result["resumed_from"] or 0) + 1
        echo("")
        echo(f"3. Resumed from the journal at step {resumed_at} (the state after step "
             f"{result['resumed_from']}, not the last snapshot), ran to step {result['step']}:")
        echo(f"   status {result['status']}, {result['cycles_used']} steps run after resuming.")

        hist = await sm.history(agent_id, max(resumed_at - 2, 0), resumed_at + 1)
        lines = [f"   step {e.step:>3}  {e.kind:<8}  {e.describe(76)}" for e in hist]
        echo("")
        echo(f"4. History around the crash (steps {max(resumed_at - 2, 0)}..{resumed_at + 1}):")
        for line in lines:
            echo(line)

        a, b = crash_at - 1, crash_at + 1
        ops = await sm.diff(agent_id, a, b)
        echo("")
        echo(f"5. Diff of step {a} -> step {b} (RFC 6902 JSON Patch):")
        for op in ops:
            value = json.dumps(op.get("value"), ensure_ascii=False) if "value" in op else ""
            if len(value) > 60:
                value = value[:57] + "..."
            echo(f"   {op['op']:<7} {op['path']:<28} {value}")

        report = await sm.verify(agent_id)
        echo("")
        echo(f"6. verify: {'ok' if report.ok else 'PROBLEMS'} ({report.records} records, "
             f"hash chain {'intact' if report.chain_ok else 'broken'}).")
        final = await sm.list_checkpoints(agent_id)
    opt = "" if str(storage.base_dir) == os.path.abspath(".agentjournal") else \
        f"--root {shlex.quote(str(storage.base_dir))} "
    echo("")
    echo("Next, look around with the command-line tool:")
    echo(f"   agentjournal {opt}log {agent_id}")
    echo(f"   agentjournal {opt}show {agent_id} --at {crash_at}")
    echo(f"   agentjournal {opt}diff {agent_id} {a} {b}")
    return {
        "agent_id": agent_id,
        "root": str(storage.base_dir),
        "steps": steps,
        "crash_at": crash_at,
        "recorded_before_crash": len(listed),
        "last_step_before_crash": last,
        "resumed_at": resumed_at,
        "final_step": result["step"],
        "status": result["status"],
        "snapshot_steps": sorted(c.step_number for c in final if c.snapshot),
        "history": [line.strip() for line in lines],
        "diff": ops,
        "diff_steps": [a, b],
        "verify_ok": report.ok,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m agentjournal.demo``: the demo (or, with ``--child``, its agent process)."""
    p = argparse.ArgumentParser(prog="python -m agentjournal.demo")
    p.add_argument("--root", default=".agentjournal")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--crash-at", type=int, default=7)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--agent-id", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _run_child(args.root, args.agent_id, args.steps, args.crash_at)
        return 0
    run_demo(args.root, steps=args.steps, crash_at=args.crash_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())

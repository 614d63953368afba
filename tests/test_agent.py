"""The autonomous loop: config validation, cycles, failure, interrupts, resume, SIGKILL."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic
import pytest

from agentjournal import (
    AgentState,
    AutonomousConfig,
    BaseAutonomousAgent,
    FilesystemStorage,
    Journal,
    StateManager,
    Step,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def counting_step(state: AgentState, task: str) -> dict[str, Any] | None:
    k = state.step_number
    state.conversation_history.append({"role": "assistant", "content": f"{task} #{k}"})
    state.budget_spent_usd = round(state.budget_spent_usd + 0.25, 2)
    state.memory_contents[f"k{k}"] = k * k
    return None


def config(tmp_path: Path, **kw: Any) -> AutonomousConfig:
    kw.setdefault("agent_id", "agent-1")
    kw.setdefault("max_cycles", 6)
    kw.setdefault("checkpoint_frequency", 2)
    kw.setdefault("checkpoint_interval_seconds", None)
    return AutonomousConfig(base_dir=tmp_path / "store", durability="none", **kw)


def journal_state(tmp_path: Path, agent_id: str = "agent-1") -> tuple[int, dict[str, Any]]:
    with Journal(agent_id, tmp_path / "store", readonly=True) as j:
        r = j.resume()
        return r.step, r.state


# --- configuration --------------------------------------------------------------------------
@pytest.mark.parametrize(("kw", "field"), [
    ({"max_cycles": "ten"}, "max_cycles"),
    ({"max_cycles": 0}, "max_cycles"),
    ({"checkpoint_frequency": -1}, "checkpoint_frequency"),
    ({"checkpoint_frequency": 2.5}, "checkpoint_frequency"),
    ({"checkpoint_interval_seconds": 0}, "checkpoint_interval_seconds"),
    ({"resume_from_checkpoint": "yes"}, "resume_from_checkpoint"),
    ({"agent_id": "../escape"}, "agent_id"),
    ({"durability": "fast"}, "durability"),
    ({"checkpoint_frequncy": 5}, "checkpoint_frequncy"),
])
def test_config_errors_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as ei:
        AutonomousConfig(**kw)
    assert field in str(ei.value)
    assert [e["loc"][0] for e in ei.value.errors()] == [field]


def test_config_accepts_seed_fields() -> None:
    c = AutonomousConfig(max_cycles=10, checkpoint_frequency=5, resume_from_checkpoint=True,
                         llm_provider="ollama", model="llama3.2",
                         checkpoint_interval_seconds=300, planning_enabled=True)
    assert c.checkpoint_interval_seconds == 300.0 and c.model == "llama3.2"
    with pytest.raises(pydantic.ValidationError):
        c.max_cycles = -3  # validated on assignment too


# --- running --------------------------------------------------------------------------------
def test_runs_max_cycles_journaling_every_cycle(tmp_path: Path) -> None:
    agent = BaseAutonomousAgent(config(tmp_path), step=counting_step)
    r = agent.run("count")
    assert (r["status"], r["step"], r["cycles_used"], r["resumed_from"]) == \
        ("completed", 6, 6, None)
    assert r["checkpoint_id"] == "agent-1@0000000006.0000000009"  # 7 saves and 2 marks before
    step, state = journal_state(tmp_path)
    assert step == 6 and state["status"] == "completed"
    assert [m["content"] for m in state["conversation_history"]] == \
        [f"count #{k}" for k in range(1, 7)]
    assert state["metadata"] == {"task": "count"}
    with Journal("agent-1", tmp_path / "store", readonly=True) as j:
        steps = [next(iter(j.records(s, s))).step for s in j.snapshot_seqs()]
        assert steps == [2, 4, 6]
        assert {rec.step for rec in j.records()} == set(range(0, 7))


def test_async_step_function_and_convergence(tmp_path: Path) -> None:
    async def step(state: AgentState, task: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        counting_step(state, task)
        return {"tool_calls": []} if state.step_number == 3 else {"tool_calls": ["search"]}

    r = BaseAutonomousAgent(config(tmp_path), step=step).run(task="converge")
    assert (r["status"], r["step"], r["converged"]) == ("completed", 3, True)
    assert journal_state(tmp_path)[0] == 3


def test_subclass_overrides_step(tmp_path: Path) -> None:
    class Doubler(BaseAutonomousAgent):
        async def step(self, state: AgentState, task: str) -> Any:
            state.memory_contents["n"] = state.memory_contents.get("n", 1) * 2
            return None

    r = Doubler(config(tmp_path, max_cycles=4)).run("x")
    assert r["step"] == 4 and journal_state(tmp_path)[1]["memory_contents"] == {"n": 16}


def test_failure_ends_the_run_as_failed_and_snapshots_then_resume_retries(
        tmp_path: Path) -> None:
    fail = {"at": 4}

    def step(state: AgentState, task: str) -> None:
        counting_step(state, task)
        if state.step_number == fail["at"]:
            state.memory_contents["half-done"] = True
            raise RuntimeError("model API down")

    # As in the seed: the run ends with status "failed"; nothing is raised.
    r = BaseAutonomousAgent(config(tmp_path, resume_from_checkpoint=True), step=step).run("t")
    assert (r["status"], r["step"], r["error"]) == ("failed", 3, "RuntimeError: model API down")
    assert r["result"] == {"error": "model API down", "status": "failed", "cycle": 4}
    step_no, state = journal_state(tmp_path)
    assert step_no == 3 and state["status"] == "failed"
    assert state["metadata"]["last_error"] == {"type": "RuntimeError",
                                               "message": "model API down", "step": 4}
    assert "half-done" not in state["memory_contents"]  # the failed step is not recorded
    with Journal("agent-1", tmp_path / "store", readonly=True) as j:
        last_snap = j.snapshot_seqs()[-1]
        assert j.load_snapshot(last_snap).state["status"] == "failed"

    fail["at"] = -1
    r = BaseAutonomousAgent(config(tmp_path, resume_from_checkpoint=True), step=step).run("t")
    assert (r["resumed_from"], r["cycles_used"], r["step"], r["status"]) == \
        (3, 3, 6, "completed")


def test_resume_stops_at_max_cycles_in_total_and_never_restarts_a_completed_run(
        tmp_path: Path) -> None:
    def stop_at_3(state: AgentState, task: str) -> None:
        counting_step(state, task)
        if state.step_number == 3:
            raise ConnectionError("lost the model")

    failed = BaseAutonomousAgent(config(tmp_path, resume_from_checkpoint=True),
                                 step=stop_at_3).run("t")
    assert failed["status"] == "failed" and journal_state(tmp_path)[0] == 2
    r = BaseAutonomousAgent(config(tmp_path, resume_from_checkpoint=True),
                            step=counting_step).run("t")
    assert (r["resumed_from"], r["cycles_used"], r["step"]) == (2, 4, 6)
    before = journal_state(tmp_path)
    before_id = before[1]["checkpoint_id"]
    again = BaseAutonomousAgent(config(tmp_path, resume_from_checkpoint=True),
                                step=counting_step).run("t")
    assert again["already_completed"] and again["cycles_used"] == 0 and again["step"] == 6
    assert journal_state(tmp_path) == before

    # Resume off on an agent with a journal: a new run in the same journal, after the old one.
    fresh = BaseAutonomousAgent(config(tmp_path, max_cycles=2), step=counting_step).run("u")
    assert (fresh["run"], fresh["step"], fresh["cycles_used"], fresh["status"]) == \
        (2, 8, 2, "completed")
    step_no, state = journal_state(tmp_path)
    assert step_no == 8 and state["metadata"] == {"task": "u", "run": 2, "run_start_step": 6}
    assert [m["content"] for m in state["conversation_history"]] == ["u #7", "u #8"]

    async def old_run() -> AgentState:
        with StateManager(FilesystemStorage(tmp_path / "store")) as sm:
            return await sm.load_checkpoint(before_id)

    old = asyncio.run(old_run())  # the first run's last save stays addressable by its id
    assert old.status == "completed" and len(old.conversation_history) == 6


def test_task_cancellation_records_interrupted(tmp_path: Path) -> None:
    started = asyncio.Event

    async def main() -> None:
        gate = started()

        async def step(state: AgentState, task: str) -> None:
            counting_step(state, task)
            if state.step_number == 3:
                gate.set()
                await asyncio.sleep(60)

        agent = BaseAutonomousAgent(config(tmp_path, enable_interrupts=False), step=step)
        task = asyncio.create_task(agent.arun("t"))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    step_no, state = journal_state(tmp_path)
    assert step_no == 2 and state["status"] == "interrupted"
    assert len(state["conversation_history"]) == 2


def test_agent_ids_without_configuration(tmp_path: Path) -> None:
    def make(task: str, resume: bool) -> str:
        a = BaseAutonomousAgent(config(tmp_path, agent_id=None, resume_from_checkpoint=resume,
                                       max_cycles=1), step=counting_step)
        r = a.run(task)
        return str(r["agent_id"])

    a1 = make("task one", True)
    assert a1.startswith("task-") and make("task one", True) == a1  # finds its own journal
    assert make("task two", True) != a1  # another task never resumes it
    u1, u2 = make("same", False), make("same", False)
    assert u1 != u2 and u1.startswith("agent-")


def test_run_inside_a_loop_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="arun"):
            BaseAutonomousAgent(config(tmp_path), step=counting_step).run("t")

    asyncio.run(main())
    with pytest.raises(ValueError):
        BaseAutonomousAgent(config(tmp_path), step=counting_step).run("  ")


def test_a_given_state_manager_snapshots_on_its_own_triggers(tmp_path: Path) -> None:
    async def main() -> None:
        sm = StateManager(FilesystemStorage(tmp_path / "store", durability="none"),
                          checkpoint_frequency=3, checkpoint_interval=None)
        async with sm:
            agent = BaseAutonomousAgent(config(tmp_path, checkpoint_frequency=2,
                                               max_cycles=7), state_manager=sm,
                                        step=counting_step)
            await agent._autonomous_loop("t")
            listed = await sm.list_checkpoints("agent-1")
            # The manager's (the config's are for the default manager, as in the seed); the
            # last step is always snapshotted.
            assert sorted(c.step_number for c in listed if c.snapshot) == [3, 6, 7]
            assert len(listed) == 8  # every cycle is recorded, and step 0

    asyncio.run(main())


# --- real processes -------------------------------------------------------------------------
CHILD_SIGNAL = """
import asyncio, sys
from agentjournal import AutonomousConfig, BaseAutonomousAgent

async def step(state, task):
    state.conversation_history.append({"role": "assistant", "content": str(state.step_number)})
    print("step", state.step_number, flush=True)
    await asyncio.sleep(0.01 if state.step_number < 3 else 60)

cfg = AutonomousConfig(max_cycles=50, agent_id="sig", base_dir=sys.argv[1],
                       checkpoint_frequency=100, durability="none")
r = BaseAutonomousAgent(cfg, step=step).run("t")
print("RESULT", r["status"], r["step"], r["interrupted_by"], flush=True)
"""


CHILD_SYNC_SIGNAL = """
import sys, time
from agentjournal import AutonomousConfig, BaseAutonomousAgent

def step(state, task):
    print("step", state.step_number, flush=True)
    time.sleep(0.01 if state.step_number < 3 else 1.0)
    state.conversation_history.append({"role": "assistant", "content": str(state.step_number)})

cfg = AutonomousConfig(max_cycles=50, agent_id="sig", base_dir=sys.argv[1],
                       checkpoint_frequency=100, durability="none")
r = BaseAutonomousAgent(cfg, step=step).run("t")
print("RESULT", r["status"], r["step"], r["interrupted_by"], flush=True)
"""


def test_signal_during_a_sync_step_lets_it_finish(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SYNC_SIGNAL)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert p.stdout is not None
    for line in p.stdout:
        if line.strip() == "step 3":
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "RESULT interrupted 3 SIGINT" in out and "step 4" not in out
    step_no, state = journal_state(tmp_path, "sig")
    assert step_no == 3 and state["status"] == "interrupted"
    assert [m["content"] for m in state["conversation_history"]] == ["1", "2", "3"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_records_interrupted_and_exits_cleanly(tmp_path: Path,
                                                      sig: signal.Signals) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SIGNAL)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert p.stdout is not None
    for line in p.stdout:
        if line.strip() == "step 3":
            break
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert f"RESULT interrupted 2 {sig.name}" in out
    step_no, state = journal_state(tmp_path, "sig")
    assert step_no == 2 and state["status"] == "interrupted"
    with Journal("sig", tmp_path / "store", readonly=True) as j:
        assert j.load_snapshot(j.snapshot_seqs()[-1]).state["status"] == "interrupted"


AGENT_MODULE = '''
import sys, time
from agentjournal import AgentState, AutonomousConfig, BaseAutonomousAgent, HookEvent, HookManager
from agentjournal import FilesystemStorage, StateManager

MAX = 40

def step(state, task):
    k = state.step_number
    state.conversation_history.append({"role": "user", "content": f"q{k}"})
    state.conversation_history.append({"role": "assistant", "content": f"a{k}" * (k % 7)})
    state.memory_contents[f"m{k % 5}"] = k
    if state.pending_actions:
        state.completed_actions.append(state.pending_actions.pop(0))
    else:
        state.pending_actions.extend({"todo": k + i} for i in range(3))
    state.budget_spent_usd = round(state.budget_spent_usd + 0.001 * k, 6)
    state.tool_usage_counts["t"] = state.tool_usage_counts.get("t", 0) + 1
    time.sleep(0.002)
    return None

def make(root, announce=False):
    hm = HookManager()
    if announce:
        hm.register(HookEvent.POST_CHECKPOINT_SAVE,
                    lambda ctx: print("saved", ctx.data["step_number"], flush=True))
    sm = StateManager(FilesystemStorage(root, durability="sync"), checkpoint_frequency=4,
                      checkpoint_interval=None, retention_count=3, hook_manager=hm)
    cfg = AutonomousConfig(max_cycles=MAX, agent_id="crashy", resume_from_checkpoint=True,
                           checkpoint_frequency=4, checkpoint_interval_seconds=None)
    return BaseAutonomousAgent(cfg, state_manager=sm, step=step)

if __name__ == "__main__":
    make(sys.argv[1], announce=True).run("crash test")
'''


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("agent_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "timestamp"}


def test_sigkill_at_a_random_cycle_resumes_at_the_next_step(tmp_path: Path) -> None:
    mod_path = tmp_path / "agent_under_test.py"
    mod_path.write_text(AGENT_MODULE)
    mod = _load(mod_path)
    ref_root = tmp_path / "reference"
    asyncio.run(mod.make(str(ref_root)).arun("crash test"))
    with Journal("crashy", ref_root, readonly=True) as ref:
        reference = {k: ref.state_at(k) for k in range(0, mod.MAX + 1)}

    rng = random.Random(os.environ.get("PYTEST_SEED", "agentjournal"))
    for trial in range(3):
        root = tmp_path / f"run{trial}"
        kill_after = rng.randrange(1, mod.MAX - 2)
        p = subprocess.Popen([sys.executable, str(mod_path), str(root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env())
        assert p.stdout is not None
        for line in p.stdout:
            if line.split() == ["saved", str(kill_after)]:
                break
        p.kill()
        p.communicate(timeout=30)
        assert p.returncode == -signal.SIGKILL
        with Journal("crashy", root, readonly=True) as j:
            last = j.resume()
        assert last.step >= kill_after
        assert last.state["status"] == "running"
        assert _comparable(last.state) == _comparable(reference[last.step])

        agent = mod.make(str(root))
        result = asyncio.run(agent.arun("crash test"))
        assert result["resumed_from"] == last.step
        assert result["cycles_used"] == mod.MAX - last.step
        assert result["step"] == mod.MAX and result["status"] == "completed"
        with Journal("crashy", root, readonly=True) as j:
            assert j.verify().ok
            final = j.resume().state
            assert _comparable(final) == _comparable(reference[mod.MAX])
            # Every step after the last one recorded before the crash is there exactly once.
            steps = [r.step for r in j.history(last.step + 1) if isinstance(r, Step)]
            assert steps == list(range(last.step + 1, mod.MAX + 1))
        del agent


def test_child_module_is_deterministic(tmp_path: Path) -> None:
    """Guard for the test above: two uninterrupted runs give the same states."""
    mod_path = tmp_path / "agent_under_test.py"
    mod_path.write_text(textwrap.dedent(AGENT_MODULE))
    mod = _load(mod_path)
    for name in ("x", "y"):
        asyncio.run(mod.make(str(tmp_path / name)).arun("crash test"))
    with Journal("crashy", tmp_path / "x", readonly=True) as a, \
            Journal("crashy", tmp_path / "y", readonly=True) as b:
        assert _comparable(a.state_at(17)) == _comparable(b.state_at(17))
        assert _comparable(a.state_at(16)) != _comparable(b.state_at(17))

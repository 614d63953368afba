"""The autonomous loop: run a strategy or step function for up to ``max_cycles`` steps, journaling
each.

``BaseAutonomousAgent`` has the seed system's shape (``BaseAutonomousAgent(config=...,
signature=..., strategy=..., state_manager=...)``, ``_autonomous_loop(task)``, the helpers
``record_approval``, ``record_tool_usage``, ``update_workflow_state`` and a settable
``current_step``) but bundles no model and calls no network. A cycle is one of, in this order:

* a step function ``step(state, task)`` (sync or async) passed as ``step=``, mutating the
  :class:`~agentjournal.AgentState` -- this is where you call your model;
* the seed's pluggable strategy: an object whose ``execute(agent, inputs)`` (sync or async)
  does one cycle with the agent's helpers and returns the cycle's result dict (its
  ``"observation"`` is passed to the next cycle in ``inputs``);
* or an override of :meth:`BaseAutonomousAgent.step`.

Every cycle is recorded (one save); snapshots follow the state manager's triggers; the last
cycle is snapshotted. Step ``0`` is the initial state; cycle ``k`` produces step ``k``.

* An exception in a cycle ends the run, as in the seed: the state is put back to the last
  recorded step, marked ``failed`` with the error in ``metadata["last_error"]``, snapshotted,
  and the result says ``status="failed"`` with the ``error``. Nothing is re-raised.
* SIGINT/SIGTERM: an async cycle in progress is cancelled (its partial changes are dropped); a
  sync one, which runs on the event loop's thread, finishes and is recorded first. The state of
  the last recorded step is marked ``interrupted`` and snapshotted; the loop returns. A second
  signal hands signal handling back to Python, so a third one stops the process at once.
* Task cancellation: the same record, then ``CancelledError`` propagates.
* ``resume_from_checkpoint=True``: a restarted run continues at the step after the last one
  recorded and stops at ``max_cycles`` steps for the run. A run that already completed is not
  started again (the result says ``already_completed``).
* ``resume_from_checkpoint=False`` on an agent that has a journal starts a *new run* in the same
  journal: a fresh state (``metadata["run"]`` one higher, ``metadata["run_start_step"]`` the
  journal's last step) recorded at the journal's last step, so its cycles continue the step
  numbers. The earlier runs stay addressable by their checkpoint ids and ``state_at``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ._ids import AGENT_ID_PATTERN
from .hooks import HookEvent, HookManager
from .manager import StateManager
from .state import AgentState
from .storage import FilesystemStorage

__all__ = ["AutonomousConfig", "BaseAutonomousAgent", "StepFunction", "Strategy"]

log = logging.getLogger("agentjournal.agent")

StepFunction = Callable[[AgentState, str], Any]
"""``step(state, task)``: do one cycle, mutating ``state``; return None to go on, or a dict with
``"done": True`` (or the seed's ``"tool_calls": []``) when the task is finished."""


class Strategy(Protocol):
    """The seed's pluggable strategy: ``execute(agent, inputs)`` runs one cycle (sync or async)
    and returns its result dict (``{"tool_calls": []}`` or ``{"done": True}`` ends the run)."""

    def execute(self, agent: Any, inputs: dict[str, Any]) -> Any: ...


class AutonomousConfig(BaseModel):
    """Configuration of :class:`BaseAutonomousAgent` (validated; wrong types or ranges raise a
    ``pydantic.ValidationError`` naming the field; unknown fields are refused).

    Attributes:
        max_cycles: steps in total for the run, counting those of an interrupted run when
            resuming.
        checkpoint_frequency: snapshot every N steps (None: not on steps); used by the default
            state manager (a given one has its own triggers, as in the seed).
        checkpoint_interval_seconds: ... or every T seconds since the last (None: not on time).
        resume_from_checkpoint: continue the agent's journal if it has one.
        agent_id: the agent's journal. Without one, a resuming run uses an id derived from the
            task text (``task-<hash>``: a restart of the same task finds its journal, another
            task never does) and a fresh run gets a unique ``agent-<random>``.
        base_dir: store root of the default state manager (when none is passed).
        durability: of the default state manager: ``sync``, ``group`` or ``none``.
        retention_count: snapshots kept by the default state manager.
        enable_interrupts: handle SIGINT/SIGTERM (main thread only).
        checkpoint_on_interrupt: snapshot when interrupted or failing.
        llm_provider, model, temperature, max_tokens, provider_config, planning_enabled,
            graceful_shutdown_timeout, and the seed's feature flags: accepted for compatibility;
            no model is called (``model`` is recorded in the state).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              protected_namespaces=())

    max_cycles: int = Field(default=20, ge=1, le=1_000_000_000)
    checkpoint_frequency: int | None = Field(default=5, ge=1)
    checkpoint_interval_seconds: float | None = Field(default=60.0, gt=0)
    resume_from_checkpoint: bool = False
    agent_id: str | None = Field(default=None, pattern=AGENT_ID_PATTERN)
    base_dir: str | Path = ".agentjournal"
    durability: Literal["sync", "group", "none"] = "sync"
    retention_count: int | None = Field(default=100, ge=1)
    enable_interrupts: bool = True
    checkpoint_on_interrupt: bool = True
    graceful_shutdown_timeout: float = Field(default=5.0, gt=0)
    planning_enabled: bool = False

    llm_provider: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    provider_config: dict[str, Any] | None = None

    logging_enabled: bool = True
    performance_enabled: bool = False
    error_handling_enabled: bool = True
    batch_processing_enabled: bool = False
    memory_enabled: bool = False
    transparency_enabled: bool = False
    mcp_enabled: bool = False
    strategy_type: str = "multi_cycle"




def _converged(out: Any) -> bool:
    if isinstance(out, dict):
        if out.get("done"):
            return True
        return "tool_calls" in out and out["tool_calls"] == []
    return False


class _Interrupted(Exception):
    """Internal: a signal stopped the loop."""


class BaseAutonomousAgent:
    """Runs a strategy or step function as a journaled, resumable autonomous loop.

    Args:
        config: the loop's configuration (default ``AutonomousConfig()``).
        signature: accepted for seed compatibility and stored as ``self.signature``.
        strategy: the seed's strategy object (``execute(agent, inputs)``), used when no
            ``step`` function is given.
        checkpoint_dir: seed name for ``config.base_dir`` (used by the default state manager).
        state_manager: where to journal; default a ``StateManager`` over
            ``FilesystemStorage(config.base_dir)`` with the config's triggers and retention.
        step: the step function (see :data:`StepFunction`); or override :meth:`step`.
    """

    def __init__(
        self,
        config: AutonomousConfig | None = None,
        signature: Any = None,
        strategy: Strategy | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        state_manager: StateManager | None = None,
        *,
        step: StepFunction | None = None,
    ) -> None:
        self.config = config if config is not None else AutonomousConfig()
        if not isinstance(self.config, AutonomousConfig):
            raise TypeError(f"config must be an AutonomousConfig, not {type(config).__name__}")
        if strategy is not None and not callable(getattr(strategy, "execute", None)):
            raise TypeError("strategy must have an execute(agent, inputs) method")
        self.signature = signature
        self.strategy = strategy
        self._owns_manager = state_manager is None
        if state_manager is None:
            storage = FilesystemStorage(checkpoint_dir or os.fspath(self.config.base_dir),
                                        durability=self.config.durability)
            state_manager = StateManager(
                storage, checkpoint_frequency=self.config.checkpoint_frequency,
                checkpoint_interval=self.config.checkpoint_interval_seconds,
                retention_count=self.config.retention_count)
        self.state_manager = state_manager
        self._step_fn = step
        self._agent_id: str | None = self.config.agent_id
        self.state: AgentState | None = None
        self._staged = AgentState()  # what the helpers record before a run has a state
        self.cycle_count = 0
        self.inputs: dict[str, Any] = {}
        self._interrupt: str | None = None
        self._step_task: asyncio.Future[Any] | None = None
        self._removers: list[Callable[[], None]] = []
        self._warned_noop = False

    @property
    def autonomous_config(self) -> AutonomousConfig:
        """Seed name of :attr:`config`."""
        return self.config

    @property
    def agent_id(self) -> str | None:
        """The agent id in use (known once a run started, or when configured)."""
        return self._agent_id

    def _live(self) -> AgentState:
        return self.state if self.state is not None else self._staged

    @property
    def current_step(self) -> int:
        """The step of the current state (0 before a run); settable, as in the seed."""
        return self._live().step_number

    @current_step.setter
    def current_step(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"current_step must be an int >= 0, not {value!r}")
        self._live().step_number = value

    # --- the seed's helpers (they change the state the next save records) ----------------
    def record_approval(self, tool_name: str, approved: bool, action: str = "once",
                        tool_input: dict[str, Any] | None = None) -> None:
        """Record a permission decision in ``approval_history`` (the input summarized to 200
        characters, as in the seed)."""
        summary = ""
        if tool_input:
            text = str(tool_input)
            summary = text[:200] + "..." if len(text) > 200 else text
        self._live().approval_history.append({
            "tool_name": tool_name, "approved": approved, "action": action,
            "timestamp": datetime.now(timezone.utc).isoformat(), "input_summary": summary})

    def record_tool_usage(self, tool_name: str, increment: int = 1) -> None:
        """Add ``increment`` to ``tool_usage_counts[tool_name]``."""
        counts = self._live().tool_usage_counts
        counts[tool_name] = counts.get(tool_name, 0) + increment

    def update_workflow_state(self, run_id: str | None = None, status: str | None = None,
                              current_node: str | None = None,
                              node_results: dict[str, Any] | None = None,
                              execution_time: float | None = None, **kwargs: Any) -> None:
        """Update ``workflow_state`` (and ``workflow_run_id`` with ``run_id``); stamps
        ``last_updated``."""
        st = self._live()
        ws = st.workflow_state
        if run_id is not None:
            ws["run_id"] = run_id
            st.workflow_run_id = run_id
        for key, value in (("status", status), ("current_node", current_node),
                           ("node_results", node_results), ("execution_time", execution_time)):
            if value is not None:
                ws[key] = value
        ws.update(kwargs)
        ws["last_updated"] = datetime.now(timezone.utc).isoformat()

    # --- the step ------------------------------------------------------------------------
    async def step(self, state: AgentState, task: str) -> Any:
        """One cycle: the step function, else the strategy, else nothing but the step number
        (logged once). Override to replace."""
        fn = self._step_fn
        if fn is not None:
            out = fn(state, task)
        elif self.strategy is not None:
            out = self.strategy.execute(self, self.inputs)
        else:
            if not self._warned_noop:
                log.warning("BaseAutonomousAgent has no step function or strategy: cycles only "
                            "record progress (pass step=..., strategy=... or override step())")
                self._warned_noop = True
            return None
        if inspect.isawaitable(out):
            out = await out
        return out

    # --- running -------------------------------------------------------------------------
    def run(self, task: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run the loop to the end (blocking); see :meth:`_autonomous_loop`.

        Raises:
            RuntimeError: called from a running event loop (use ``await agent.arun(task)``).
            ValueError: an empty task.
        """
        task = task if task is not None else kwargs.pop("task", None)
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("run() blocks; inside an event loop use 'await agent.arun(task)'")
        if not isinstance(task, str):
            raise ValueError("the task must be a non-empty string")
        return asyncio.run(self.arun(task))

    async def arun(self, task: str) -> dict[str, Any]:
        """Run the loop to the end; see :meth:`_autonomous_loop`."""
        return await self._autonomous_loop(task)

    def _resolve_agent_id(self, task: str) -> str:
        if self._agent_id is None:
            if self.config.resume_from_checkpoint:
                digest = hashlib.blake2b(task.encode("utf-8"), digest_size=8).hexdigest()
                self._agent_id = f"task-{digest}"
                log.info("no agent_id configured: using %s (from the task text) so that a "
                         "restarted run of this task resumes it", self._agent_id)
            else:
                self._agent_id = f"agent-{uuid.uuid4().hex[:12]}"
        return self._agent_id

    async def _autonomous_loop(self, task: str, session_id: str | None = None) -> dict[str, Any]:
        """Run up to ``max_cycles`` steps, journaling each; returns a summary.

        Returns:
            A dict with ``agent_id``, ``status`` (``completed``, ``failed`` or
            ``interrupted``), ``step`` (the last), ``cycles_used`` (by this run),
            ``total_cycles`` (``max_cycles``), ``resumed_from`` (the step resumed after, or
            None), ``run``, ``already_completed``, ``converged``, ``checkpoint_id`` (of the
            last save), ``result`` (the last cycle's return value) and, after a failure,
            ``error``.

        Raises:
            ValueError: an empty task.
        """
        if not isinstance(task, str) or not task.strip():
            raise ValueError("the task must be a non-empty string")
        sm = self.state_manager
        agent_id = self._resolve_agent_id(task)
        self.cycle_count = 0
        self._interrupt = None
        try:
            return await self._run_owned(task, agent_id)
        finally:
            if self._owns_manager:
                await sm.aclose()

    def _fresh_state(self, agent_id: str, task: str, step: int, run: int) -> AgentState:
        staged, self._staged = self._staged, AgentState()
        state = AgentState(agent_id=agent_id, model=self.config.model or "", step_number=step,
                           metadata={"task": task})
        if run > 1:
            state.metadata.update(run=run, run_start_step=step)
        # What the helpers recorded before the run (the seed keeps it on the agent).
        state.approval_history = staged.approval_history
        state.tool_usage_counts = staged.tool_usage_counts
        state.workflow_state = staged.workflow_state
        state.workflow_run_id = staged.workflow_run_id
        return state

    async def _run_owned(self, task: str, agent_id: str) -> dict[str, Any]:
        cfg = self.config
        sm = self.state_manager
        hm = sm.hook_manager
        state: AgentState | None = None
        resumed_from: int | None = None
        if cfg.resume_from_checkpoint:
            state = await sm.resume_from_latest(agent_id)
            if state is not None:
                resumed_from = state.step_number
                if state.status == "completed":
                    log.info("agent %s already completed at step %s: not starting it again",
                             agent_id, state.step_number)
                    self.state = state
                    return self._summary(state, resumed_from, None, already_completed=True)
                log.info("resuming agent %s after step %s (was %s)", agent_id,
                         state.step_number, state.status)
                state.status = "running"
        else:
            previous = await sm._latest(agent_id)
            if previous is not None:
                run = int(previous.metadata.get("run", 1)) + 1
                log.info("agent %s has a journal and resuming is off: starting run %s after "
                         "step %s (the earlier runs stay in the journal)", agent_id, run,
                         previous.step_number)
                state = self._fresh_state(agent_id, task, previous.step_number, run)
                await sm.save_checkpoint(state)
        if state is None:
            state = self._fresh_state(agent_id, task, 0, 1)
            await sm.save_checkpoint(state)
        self.state = state
        self.inputs = {"task": task}
        if hm is not None:
            await _quiet_trigger(hm, HookEvent.PRE_AGENT_LOOP, agent_id, {
                "agent_id": agent_id, "task": task, "step_number": state.step_number,
                "resumed": resumed_from is not None})
        out: Any = None
        error: BaseException | None = None
        self._removers = self._install_signals()
        try:
            out = await self._cycles(state, task)
        except _Interrupted:
            await self._record_end("interrupted", None)
        except asyncio.CancelledError:
            await self._record_end("interrupted", None)
            raise
        except Exception as e:  # noqa: BLE001 - the seed ends the run as failed, not raised
            log.error("agent %s: cycle %s failed: %s", agent_id, state.step_number, e)
            error = e
            await self._record_end("failed", e)
        finally:
            for remove in self._removers:
                remove()
            self._removers = []
            if hm is not None:
                final = self.state
                await _quiet_trigger(hm, HookEvent.POST_AGENT_LOOP, agent_id, {
                    "agent_id": agent_id, "status": final.status if final else None,
                    "step_number": final.step_number if final else None,
                    "cycles_used": self.cycle_count})
        assert self.state is not None
        summary = self._summary(self.state, resumed_from, out)
        if error is not None:
            summary["error"] = f"{type(error).__name__}: {error}"
            summary["result"] = {"error": str(error), "status": "failed",
                                 "cycle": self.cycle_count + 1}
        return summary

    async def _cycles(self, state: AgentState, task: str) -> Any:
        cfg = self.config
        sm = self.state_manager
        start = int(state.metadata.get("run_start_step", 0))
        out: Any = None
        while state.step_number - start < cfg.max_cycles:
            if self._interrupt is not None:
                raise _Interrupted(self._interrupt)
            state.step_number += 1
            self._step_task = asyncio.ensure_future(self.step(state, task))
            try:
                out = await self._step_task
            except asyncio.CancelledError:
                if self._interrupt is not None and not _being_cancelled():
                    raise _Interrupted(self._interrupt) from None
                raise
            finally:
                self._step_task = None
            self.cycle_count += 1
            if isinstance(out, dict) and "observation" in out:
                self.inputs["observation"] = out["observation"]
            done = _converged(out) or state.step_number - start >= cfg.max_cycles
            if done:
                state.status = "completed"
            await sm.save_checkpoint(state, force=done)
            if done:
                break
        else:
            if state.status != "completed":  # resumed at max_cycles without the final mark
                state.status = "completed"
                await sm.save_checkpoint(state, force=True)
        return out

    async def _record_end(self, status: Literal["failed", "interrupted"],
                          error: BaseException | None) -> None:
        """Record the last completed step again with ``status`` (the interrupted or failed
        step's partial changes are not recorded) and snapshot it."""
        sm = self.state_manager
        agent_id = self._agent_id
        assert agent_id is not None
        hm = sm.hook_manager
        try:
            if hm is not None and status == "interrupted":
                await _quiet_trigger(hm, HookEvent.PRE_INTERRUPT, agent_id,
                                     {"agent_id": agent_id, "signal": self._interrupt})
            last = await sm._latest(agent_id)
            if last is None:
                return
            last.status = status
            if error is not None:
                last.metadata["last_error"] = {
                    "type": type(error).__name__, "message": str(error)[:2000],
                    "step": last.step_number + 1}
            cid = await sm.save_checkpoint(last, force=self.config.checkpoint_on_interrupt)
            self.state = last
            log.info("agent %s %s after step %s (%s)", agent_id, status, last.step_number, cid)
            if hm is not None and status == "interrupted":
                await _quiet_trigger(hm, HookEvent.POST_INTERRUPT, agent_id, {
                    "agent_id": agent_id, "step_number": last.step_number,
                    "signal": self._interrupt})
        except Exception as e:  # noqa: BLE001 - the original error or interrupt matters more
            log.error("could not record that agent %s %s: %s", agent_id, status, e)

    # --- signals -------------------------------------------------------------------------
    def _install_signals(self) -> list[Callable[[], None]]:
        """Python-level handlers (not ``loop.add_signal_handler``): they run as soon as the
        main thread gets the signal, so the flag is set before the loop could start another
        step; the rest happens on the loop."""
        if not self.config.enable_interrupts or threading.current_thread() is not \
                threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        removers: list[Callable[[], None]] = []

        def handler(signum: int, frame: object) -> None:
            sig = signal.Signals(signum)
            first = self._interrupt is None
            if first:
                self._interrupt = sig.name
            try:
                loop.call_soon_threadsafe(self._after_signal, sig, first)
            except RuntimeError:
                pass  # the loop is closing: nothing left to stop

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.signal(sig, handler)
            except (ValueError, OSError):
                continue
            removers.append(_restorer(sig, previous))
        return removers

    def _after_signal(self, sig: signal.Signals, first: bool) -> None:
        if not first:
            # A second signal while the state is being recorded: hand the signals back to
            # Python's default handling, so a third one stops the process at once.
            log.warning("%s again: the next one stops the process without recording", sig.name)
            for remove in self._removers:
                remove()
            self._removers = []
            return
        log.warning("%s received: stopping agent %s after recording its state", sig.name,
                    self._agent_id)
        task = self._step_task
        if task is not None and not task.done():
            task.cancel()

    def _summary(self, state: AgentState, resumed_from: int | None, out: Any, *,
                 already_completed: bool = False) -> dict[str, Any]:
        return {
            "agent_id": state.agent_id,
            "status": state.status,
            "step": state.step_number,
            "cycles_used": self.cycle_count,
            "total_cycles": self.config.max_cycles,
            "resumed_from": resumed_from,
            "run": int(state.metadata.get("run", 1)),
            "already_completed": already_completed,
            "converged": _converged(out),
            "checkpoint_id": state.checkpoint_id,
            "result": out,
            "interrupted_by": self._interrupt,
        }


def _restorer(sig: signal.Signals, previous: Any) -> Callable[[], None]:
    def restore() -> None:
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)

    return restore


def _being_cancelled() -> bool:
    """Whether the current task itself has a pending cancellation (Python 3.11+)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


async def _quiet_trigger(hm: HookManager, event: HookEvent, agent_id: str,
                         data: dict[str, Any]) -> None:
    if hm.has_handlers(event):
        await hm.trigger(event, agent_id, data)

"""``StateManager``: the seed system's checkpoint API over per-agent journals.

Every :meth:`StateManager.save_checkpoint` records the step (the JSON Patch from the previous
recorded state, found at the cost of the change); a full snapshot is written when
``checkpoint_frequency`` steps or ``checkpoint_interval`` seconds have passed since the last
snapshot, whichever comes first, or when ``force=True``. The "last snapshot" is read from the
journal when an agent is opened, so a restart does not reset the triggers. Retention keeps the
newest ``retention_count`` snapshots.

Checkpoint ids are ``<agent_id>@<step:010d>`` (e.g. ``research-7@0000000042``): stable, sorted
in step order, and naming the agent and step. Every recorded step is a checkpoint: any of them
can be loaded, diffed or forked, not only the snapshotted ones.

The manager keeps one writable journal per agent it writes to (holding that agent's lock) until
:meth:`StateManager.close`. Snapshot encoding, compression, retention and reads run in a worker
thread so the event loop is never blocked on them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import msgspec

from . import delta
from ._ids import validate_agent_id
from .errors import (
    CheckpointNotFoundError,
    InvalidAgentIdError,
    JournalError,
    JournalNotFoundError,
    StepNotFoundError,
    StepPrunedError,
)
from .events import Anchor, AnyRecord, Fork, SnapshotMark, Step
from .hooks import HookEvent, HookManager, Redactor, apply_redactor
from .journal.writer import Durability
from .query import BisectResult, Blame, When
from .replay.journal import Journal
from .replay.verify import VerifyReport
from .retention import CompactReport
from .state import (
    STATUSES,
    AgentState,
    CheckpointMetadata,
    HistoryEntry,
    format_checkpoint_id,
    parse_checkpoint_id,
)
from .storage import FilesystemStorage

__all__ = [
    "HistoryEntry",
    "StateManager",
    "format_checkpoint_id",
    "parse_checkpoint_id",
]

log = logging.getLogger("agentjournal")
T = TypeVar("T")

_INLINE_LIMIT_S = 0.002


class _Agent:
    """A writable journal the manager holds, with its snapshot-trigger base."""

    def __init__(self, journal: Journal, snap_step: int, snap_ts: float) -> None:
        self.journal = journal
        self.snap_step = snap_step
        self.snap_ts = snap_ts
        self.lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.offload = False  # record this agent's steps in a worker thread (large state)

    def lock_for_loop(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self.lock is None or self.loop is not loop:
            self.lock, self.loop = asyncio.Lock(), loop
        return self.lock


def _trigger_base(j: Journal) -> tuple[int, float]:
    """(step, time) of the newest snapshot, read from the journal; (0, first record's time)
    when there is none, so counting starts from the same place before and after a restart."""
    try:
        snaps = j.snapshot_seqs()
        if snaps:
            s = snaps[-1]
            recs = list(j.records(s, s + 1))
            for r in recs:
                if isinstance(r, SnapshotMark) and r.at == s:
                    return r.step, r.ts
            if recs:
                return recs[0].step, recs[0].ts
        segs = j.segment_seqs()
        if segs:
            first = next(iter(j.records(segs[0], segs[0])), None)
            if first is not None:
                return 0, first.ts
    except JournalError as e:
        log.warning("could not read the snapshot trigger base of %s: %s", j.agent_id, e)
    return 0, time.time()


class StateManager:
    """Checkpoint orchestration (the seed system's ``StateManager``) over journals.

    Args:
        storage: where journals live; default ``FilesystemStorage()`` (``./.agentjournal``).
        checkpoint_frequency: snapshot every N steps (None: never on steps).
        checkpoint_interval: ... or when this many seconds passed since the last snapshot
            (None: never on time). Whichever comes first.
        retention_count: keep this many newest snapshots per agent (None: keep all). What
            happens to old journal segments is ``storage.old_segments``.
        hook_manager: hooks fired around saves and resumes.
        redact: a redactor run on every state before it is encoded (in addition to the
            hook manager's, see :meth:`HookManager.register_redactor`).
        offload: where recording a step runs: ``"auto"`` (default) records in a worker thread
            when the storage's durability is ``sync`` (the event loop never waits on
            ``fdatasync``) and inline otherwise (a thread hop costs about as much as recording
            a small step), switching an agent to the worker thread for good once one of its
            steps took more than 2 ms inline (a very large state); ``"always"`` or ``"never"``
            force one way. Snapshots and retention always run in a worker thread.

    Raises:
        ValueError: a trigger or count out of range.
    """

    def __init__(
        self,
        storage: FilesystemStorage | None = None,
        checkpoint_frequency: int | None = 10,
        checkpoint_interval: float | None = 60.0,
        retention_count: int | None = 100,
        hook_manager: HookManager | None = None,
        *,
        redact: Redactor | None = None,
        offload: Literal["auto", "always", "never"] = "auto",
    ) -> None:
        if checkpoint_frequency is not None and (
                isinstance(checkpoint_frequency, bool) or not isinstance(checkpoint_frequency, int)
                or checkpoint_frequency < 1):
            raise ValueError(f"checkpoint_frequency must be an int >= 1 or None, "
                             f"not {checkpoint_frequency!r}")
        if checkpoint_interval is not None and (
                isinstance(checkpoint_interval, bool)
                or not isinstance(checkpoint_interval, (int, float)) or checkpoint_interval <= 0):
            raise ValueError(f"checkpoint_interval must be a number > 0 or None, "
                             f"not {checkpoint_interval!r}")
        if retention_count is not None and (
                isinstance(retention_count, bool) or not isinstance(retention_count, int)
                or retention_count < 1):
            raise ValueError(f"retention_count must be an int >= 1 or None (the newest "
                             f"snapshot is always kept), not {retention_count!r}")
        if offload not in ("auto", "always", "never"):
            raise ValueError(f"offload must be 'auto', 'always' or 'never', not {offload!r}")
        if storage is not None and not isinstance(storage, FilesystemStorage):
            raise TypeError(f"storage must be a FilesystemStorage, not {type(storage).__name__}")
        self.storage = storage or FilesystemStorage()
        self.checkpoint_frequency = checkpoint_frequency
        self.checkpoint_interval = (float(checkpoint_interval)
                                    if checkpoint_interval is not None else None)
        self.retention_count = retention_count
        self.hook_manager = hook_manager
        self.redact = redact
        if offload == "auto":
            self._offload_steps = self.storage.durability is Durability.SYNC
        else:
            self._offload_steps = offload == "always"
        self._adaptive = offload == "auto"
        self._agents: dict[str, _Agent] = {}
        self._open_lock: asyncio.Lock | None = None
        self._open_loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every journal this manager holds (syncing them and releasing their locks)."""
        agents, self._agents = self._agents, {}
        for ag in agents.values():
            ag.journal.close()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread."""
        await asyncio.to_thread(self.close)

    def release(self, agent_id: str) -> None:
        """Close one agent's journal so another process may write to it."""
        ag = self._agents.pop(agent_id, None)
        if ag is not None:
            ag.journal.close()

    def __enter__(self) -> StateManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> StateManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (f"StateManager(storage={self.storage!r}, checkpoint_frequency="
                f"{self.checkpoint_frequency}, checkpoint_interval={self.checkpoint_interval}, "
                f"retention_count={self.retention_count})")

    # --- journals --------------------------------------------------------------------------
    def _open_sync(self, agent_id: str, create: bool) -> _Agent:
        ag = self._agents.get(agent_id)
        if ag is not None:
            return ag
        j = self.storage.open_journal(agent_id, create=create)
        try:
            # Load the last state now, in this thread, rather than on the first append.
            j._ensure_shadow()
            step, ts = _trigger_base(j)
        except BaseException:
            j.close()
            raise
        ag = _Agent(j, step, ts)
        self._agents[agent_id] = ag
        return ag

    async def _writer(self, agent_id: str, *, create: bool = True) -> _Agent:
        ag = self._agents.get(agent_id)
        if ag is None:
            # One opening at a time: two tasks saving a new agent at once must share a journal
            # (a second open would find the agent locked by the first).
            loop = asyncio.get_running_loop()
            if self._open_lock is None or self._open_loop is not loop:
                self._open_lock, self._open_loop = asyncio.Lock(), loop
            async with self._open_lock:
                ag = self._agents.get(agent_id)
                if ag is None:
                    ag = await asyncio.to_thread(self._open_sync, agent_id, create)
        return ag

    async def _read(self, agent_id: str, fn: Callable[[Journal], T]) -> T:
        """Run ``fn(journal)`` in a worker thread on the agent's open journal, or a read-only
        one (no lock) when this manager does not hold it."""
        validate_agent_id(agent_id)
        ag = self._agents.get(agent_id)
        if ag is not None:
            async with ag.lock_for_loop():
                return await asyncio.to_thread(fn, ag.journal)

        def run() -> T:
            j = self.storage.open_journal(agent_id, readonly=True, create=False)
            with j:
                return fn(j)

        return await asyncio.to_thread(run)

    # --- triggers --------------------------------------------------------------------------
    def _due(self, ag: _Agent, step: int, now: float, frequency: int | None,
             interval: float | None) -> bool:
        for f in (self.checkpoint_frequency, frequency):
            if f is not None and step - ag.snap_step >= f:
                return True
        for i in (self.checkpoint_interval, interval):
            if i is not None and now - ag.snap_ts >= i:
                return True
        return False

    def should_checkpoint(self, agent_id: str, current_step: int,
                          current_time: float | None = None, *,
                          frequency: int | None = None, interval: float | None = None) -> bool:
        """Whether a snapshot is due for ``agent_id`` at ``current_step`` (seed signature).

        ``frequency``/``interval`` add triggers for this question (the agent loop passes its
        config's). An agent without a journal yet needs one: True.
        """
        now = time.time() if current_time is None else current_time
        ag = self._agents.get(agent_id)
        if ag is None:
            validate_agent_id(agent_id)
            if not self.storage.exists(agent_id):
                return True
            with self.storage.open_journal(agent_id, readonly=True, create=False) as j:
                step, ts = _trigger_base(j)
            ag = _Agent(j, step, ts)
        return self._due(ag, current_step, now, frequency, interval)

    # --- saving ----------------------------------------------------------------------------
    async def save_checkpoint(self, state: AgentState, force: bool = False) -> str:
        """Record ``state`` as its agent's step ``state.step_number``; returns the checkpoint id.

        Every call records a step (only what changed since the previous call). A snapshot is
        written too when a trigger fires or ``force`` is true. ``state.checkpoint_id`` is set
        to the returned id. Do not mutate ``state`` from another task while the save is
        awaited: with ``durability="sync"`` it is compared in a worker thread.

        Raises:
            InvalidAgentIdError: ``state.agent_id`` is empty or not a valid id.
            NotJSONEncodableError: a value JSON cannot represent; ``path`` names it.
            RedactionError: a redactor failed (nothing was recorded).
            JournalLockedError: another process writes this agent.
            ValueError: ``step_number`` is lower than the last recorded step, or a bad status.
        """
        if not isinstance(state, AgentState):
            raise TypeError(f"save_checkpoint takes an AgentState, not {type(state).__name__}")
        agent_id = state.agent_id
        if not agent_id:
            raise InvalidAgentIdError(
                "AgentState.agent_id is empty",
                hint="give each agent or task its own stable id, e.g. "
                     "AgentState(agent_id='research-42'); a shared default would let one "
                     "task resume another's state")
        if state.status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {state.status!r}")
        step = state.step_number
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step_number must be an int >= 0, not {step!r}")
        ag = await self._writer(agent_id)
        hm = self.hook_manager
        async with ag.lock_for_loop():
            now = time.time()
            if hm is not None and hm.has_handlers(HookEvent.PRE_CHECKPOINT_SAVE):
                await hm.trigger(HookEvent.PRE_CHECKPOINT_SAVE, agent_id, {
                    "agent_id": agent_id, "step_number": step, "status": state.status,
                    "timestamp": now}, metadata={"state": state})
            cid = format_checkpoint_id(agent_id, step)
            old_cid, state.checkpoint_id = state.checkpoint_id, cid
            try:
                doc = state.to_dict()
                if self.redact is not None:
                    doc = apply_redactor(self.redact, doc)
                if hm is not None and hm.redactors:
                    doc = hm.redact(doc)
                j = ag.journal
                if self._offload_steps or ag.offload:
                    appended = await asyncio.to_thread(j.append, doc, step=step, snapshot=False)
                else:
                    t0 = time.perf_counter()
                    appended = j.append(doc, step=step, snapshot=False)
                    if self._adaptive and time.perf_counter() - t0 > _INLINE_LIMIT_S:
                        ag.offload = True
            except BaseException:
                state.checkpoint_id = old_cid
                raise
            snap_seq = None
            if force or self._due(ag, step, now, None, None):
                snap_seq = await asyncio.to_thread(self._snapshot_sync, ag)
            if hm is not None and hm.has_handlers(HookEvent.POST_CHECKPOINT_SAVE):
                await hm.trigger(HookEvent.POST_CHECKPOINT_SAVE, agent_id, {
                    "agent_id": agent_id, "checkpoint_id": cid, "step_number": step,
                    "status": state.status, "timestamp": now, "seq": appended.seq,
                    "snapshot": snap_seq is not None, "ops": len(appended.ops)},
                    metadata={"state": state})
        return cid

    def _snapshot_sync(self, ag: _Agent) -> int | None:
        """Write a snapshot, then apply retention (whose errors are logged, never raised)."""
        j = ag.journal
        seq = j.snapshot()
        ag.snap_step, ag.snap_ts = j.last_step, time.time()
        if self.retention_count is not None:
            self._compact_sync(ag)
        return seq

    def _compact_sync(self, ag: _Agent) -> CompactReport | None:
        assert self.retention_count is not None
        try:
            rep: CompactReport = ag.journal.compact(
                keep_snapshots=self.retention_count, prune=self.storage.prune,
                compress_segments=self.storage.compress_segments)
        except Exception as e:  # noqa: BLE001 - housekeeping boundary: never fail a save
            log.error("retention for %s failed (the step and snapshot are safe): %s",
                      ag.journal.agent_id, e)
            return None
        for err in rep.errors:
            log.error("retention for %s: %s", ag.journal.agent_id, err)
        return rep

    async def cleanup_old_checkpoints(self, agent_id: str) -> int:
        """Apply retention now; returns how many snapshots were deleted (0 with no
        ``retention_count``). Errors are logged, not raised.

        Raises:
            JournalNotFoundError: ``agent_id`` has no journal.
        """
        if self.retention_count is None:
            return 0
        validate_agent_id(agent_id)
        ag = await self._writer(agent_id, create=False)
        async with ag.lock_for_loop():
            rep = await asyncio.to_thread(self._compact_sync, ag)
        return len(rep.snapshots_deleted) if rep is not None else 0

    async def compact(self, agent_id: str, *, dry_run: bool = False) -> CompactReport:
        """Apply retention now and return the full report (see :mod:`agentjournal.retention`)."""
        validate_agent_id(agent_id)
        ag = await self._writer(agent_id, create=False)
        async with ag.lock_for_loop():
            return await asyncio.to_thread(
                ag.journal.compact, keep_snapshots=self.retention_count,
                prune=self.storage.prune, compress_segments=self.storage.compress_segments,
                dry_run=dry_run)

    # --- loading ---------------------------------------------------------------------------
    async def resume_from_latest(self, agent_id: str) -> AgentState | None:
        """The state after the agent's last recorded step, or None if it has none.

        This is the last *step*, not the last snapshot. The manager keeps the journal open to
        record the next steps.

        Raises:
            InvalidAgentIdError: not a valid agent id.
            JournalLockedError: another process writes this agent.
        """
        validate_agent_id(agent_id)
        hm = self.hook_manager
        if hm is not None and hm.has_handlers(HookEvent.PRE_RESUME):
            await hm.trigger(HookEvent.PRE_RESUME, agent_id, {"agent_id": agent_id,
                                                              "timestamp": time.time()})
        state = await self._latest(agent_id)
        if state is None:
            log.info("no checkpoint for agent %s: starting fresh", agent_id)
        if hm is not None and hm.has_handlers(HookEvent.POST_RESUME):
            data: dict[str, Any] = {"agent_id": agent_id, "found": state is not None,
                                    "timestamp": time.time()}
            if state is not None:
                data.update(step_number=state.step_number, status=state.status,
                            checkpoint_id=state.checkpoint_id)
            await hm.trigger(HookEvent.POST_RESUME, agent_id, data)
        return state

    async def _latest(self, agent_id: str) -> AgentState | None:
        """The state after the last record, from the (opened) writable journal; no hooks."""
        if agent_id not in self._agents and not self.storage.exists(agent_id):
            return None
        ag = await self._writer(agent_id, create=False)
        async with ag.lock_for_loop():
            res = await asyncio.to_thread(ag.journal.resume)
        if res.seq > 0 and isinstance(res.state, dict) and res.state:
            return AgentState.from_dict(res.state)
        return None

    async def last_step(self, agent_id: str) -> int | None:
        """The agent's last recorded step, or None when it has no journal or no records."""
        validate_agent_id(agent_id)
        if agent_id not in self._agents and not self.storage.exists(agent_id):
            return None

        def get(j: Journal) -> int | None:
            return j.last_step if j.last_seq > 0 else None

        try:
            return await self._read(agent_id, get)
        except JournalNotFoundError:
            return None

    async def load_checkpoint(self, checkpoint_id: str) -> AgentState:
        """The state at a checkpoint id (any recorded step, see :func:`format_checkpoint_id`).

        Raises:
            CheckpointNotFoundError: a malformed id, an unknown agent or an unrecorded step
                (also a ``FileNotFoundError``, like the seed's).
            StepPrunedError: the step was removed by pruning retention.
        """
        agent_id, step = parse_checkpoint_id(checkpoint_id)
        return await self._state_exact(agent_id, step, checkpoint_id)

    async def _state_exact(self, agent_id: str, step: int, cid: str) -> AgentState:
        def get(j: Journal) -> Any:
            return j.state_at(step)

        try:
            doc = await self._read(agent_id, get)
        except StepPrunedError:
            raise
        except (JournalNotFoundError, StepNotFoundError) as e:
            raise CheckpointNotFoundError(f"no checkpoint {cid!r}: {e.message}",
                                          hint=e.hint) from None
        state = AgentState.from_dict(doc)
        if state.step_number != step:
            raise CheckpointNotFoundError(
                f"no checkpoint {cid!r}: agent {agent_id!r} recorded no step {step}",
                hint=f"the nearest earlier step is {state.step_number}")
        return state

    async def state_at(self, agent_id: str, step: int) -> AgentState:
        """The agent's state as of ``step``: after the last record at or before it.

        Raises:
            JournalNotFoundError: unknown agent.
            StepNotFoundError: ``step`` is outside the recorded history (or pruned).
        """
        return AgentState.from_dict(await self._read(agent_id, lambda j: j.state_at(step)))

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        """Every recorded step of ``agent_id`` (or of every agent), newest first."""
        if agent_id is None:
            out: list[CheckpointMetadata] = []
            for a in await asyncio.to_thread(self.storage.list_agents):
                try:
                    out.extend(await self.list_checkpoints(a))
                except JournalError as e:
                    log.warning("could not list checkpoints of %s: %s", a, e)
            out.sort(key=lambda c: (c.timestamp, c.seq), reverse=True)
            return out
        return await self._read(agent_id, _list_steps)

    async def history(self, agent_id: str, start: int | None = None,
                      end: int | None = None) -> list[HistoryEntry]:
        """The records of steps ``start..end`` (inclusive; None: from the first / to the last),
        oldest first.

        Raises:
            JournalNotFoundError: unknown agent.
        """
        def get(j: Journal) -> list[HistoryEntry]:
            return [_entry(agent_id, r) for r in j.history(start, end)]

        return await self._read(agent_id, get)

    async def diff(self, agent_id: str, step_a: int, step_b: int) -> list[delta.Op]:
        """RFC 6902 JSON Patch ops turning the state at ``step_a`` into the state at ``step_b``.

        Raises:
            JournalNotFoundError: unknown agent.
            StepNotFoundError: a step outside the recorded history.
        """
        return await self._read(agent_id, lambda j: j.diff(step_a, step_b))

    # --- history queries (agentjournal.query) --------------------------------------------
    async def state_at_time(self, agent_id: str, when: When) -> AgentState:
        """The agent's state as of a wall-clock time (after the last step at or before it).

        Raises:
            JournalNotFoundError: unknown agent.
            TimeNotFoundError: ``when`` is before the first step.
        """
        return AgentState.from_dict(
            (await self._read(agent_id, lambda j: j.state_at_time(when)))[1])

    async def blame(self, agent_id: str, pointer: str, *, all: bool = False) -> Blame:
        """Which step last wrote ``pointer`` in the agent's state (see
        :func:`agentjournal.query.blame`)."""
        return await self._read(agent_id, lambda j: j.blame(pointer, all=all))

    async def bisect(self, agent_id: str, expr: str, *, monotone: bool | None = None
                     ) -> BisectResult:
        """The first step at which ``expr`` holds (see :func:`agentjournal.query.bisect`)."""
        return await self._read(agent_id, lambda j: j.bisect(expr, monotone=monotone))

    async def verify(self, agent_id: str) -> VerifyReport:
        """Check every record, the hash chain and every snapshot (never raises for damage).

        Raises:
            JournalNotFoundError: unknown agent.
        """
        rep: VerifyReport = await self._read(agent_id, lambda j: j.verify())
        return rep

    # --- forks -----------------------------------------------------------------------------
    async def fork_from_checkpoint(self, checkpoint_id: str,
                                   new_agent_id: str | None = None) -> AgentState:
        """Start a new agent from a checkpoint; returns its state, already recorded.

        The fork gets its own journal (default id ``<agent>-fork-<8 hex>``) whose first record
        names the parent and its chain hash. Its state has ``parent_checkpoint_id`` set to
        ``checkpoint_id`` and the same ``step_number``.

        Raises:
            CheckpointNotFoundError: no such checkpoint.
            JournalExistsError: ``new_agent_id`` already has a journal.
        """
        agent_id, step = parse_checkpoint_id(checkpoint_id)
        src_state = await self._state_exact(agent_id, step, checkpoint_id)
        new_id = new_agent_id or f"{agent_id[:100]}-fork-{uuid.uuid4().hex[:8]}"
        validate_agent_id(new_id)

        def fork(j: Journal) -> Journal:
            return j.fork(step, new_id, **self.storage.journal_options())

        new_j = await self._read(agent_id, fork)
        self._agents[new_id] = _Agent(new_j, step, time.time())
        src_state.agent_id = new_id
        src_state.parent_checkpoint_id = checkpoint_id
        await self.save_checkpoint(src_state)
        return src_state

    async def get_checkpoint_tree(self, agent_id: str) -> dict[str, list[str]]:
        """Fork lineage around ``agent_id``: parent checkpoint id -> child checkpoint ids.

        Includes the forks made from this agent and, if it is itself a fork, its own origin.
        """
        validate_agent_id(agent_id)

        def scan() -> dict[str, list[str]]:
            tree: dict[str, list[str]] = {}
            for other in self.storage.list_agents():
                try:
                    j = self.storage.open_journal(other, readonly=True, create=False)
                except JournalError:
                    continue
                with j:
                    segs = j.segment_seqs()
                    first = next(iter(j.records(segs[0], segs[0])), None) if segs else None
                if isinstance(first, Fork) and (first.parent == agent_id or other == agent_id):
                    parent = format_checkpoint_id(first.parent, first.parent_step)
                    tree.setdefault(parent, []).append(format_checkpoint_id(other, first.step))
            for children in tree.values():
                children.sort()
            return tree

        return await asyncio.to_thread(scan)


def _entry(agent_id: str, r: AnyRecord) -> HistoryEntry:
    kind = {Step: "step", SnapshotMark: "snapshot", Fork: "fork", Anchor: "anchor"}[type(r)]
    ops = r.ops if isinstance(r, (Step, Fork)) else []
    return HistoryEntry(seq=r.seq, step=r.step,
                        timestamp=datetime.fromtimestamp(r.ts, timezone.utc), kind=kind,
                        ops=ops, checkpoint_id=format_checkpoint_id(agent_id, r.step))


_rec_encoder = msgspec.json.Encoder()


def _list_steps(j: Journal) -> list[CheckpointMetadata]:
    """One entry per recorded step (its last record), tracking status through the ops."""
    snaps = set(j.snapshot_seqs())
    agent_id = j.agent_id
    status = "running"
    parent: str | None = None
    by_step: dict[int, CheckpointMetadata] = {}
    segs = j.segment_seqs()
    if segs and segs[0] > 1 and segs[0] - 1 in snaps:
        # Pruned: the history starts at a snapshot whose own record is gone.
        doc = j.load_snapshot(segs[0] - 1)
        if isinstance(doc.state, dict):
            status = str(doc.state.get("status", status))
            parent = doc.state.get("parent_checkpoint_id")
        by_step[doc.step] = CheckpointMetadata(
            checkpoint_id=format_checkpoint_id(agent_id, doc.step), agent_id=agent_id,
            timestamp=datetime.fromtimestamp(doc.ts, timezone.utc), step_number=doc.step,
            status=status, size_bytes=0, parent_checkpoint_id=parent, seq=doc.seq,
            snapshot=True)
    for r in j.records():
        if not isinstance(r, (Step, Fork)):
            continue
        for op in r.ops:
            path = op.get("path")
            if path == "/status" and op.get("op") != "remove":
                status = str(op.get("value"))
            elif path == "/parent_checkpoint_id":
                parent = op.get("value") if op.get("op") != "remove" else None
            elif path == "":
                value = op.get("value")
                if isinstance(value, dict):
                    status = str(value.get("status", status))
                    parent = value.get("parent_checkpoint_id")
        by_step[r.step] = CheckpointMetadata(
            checkpoint_id=format_checkpoint_id(agent_id, r.step), agent_id=agent_id,
            timestamp=datetime.fromtimestamp(r.ts, timezone.utc), step_number=r.step,
            status=status, size_bytes=len(_rec_encoder.encode(r)) + 1,
            parent_checkpoint_id=parent, seq=r.seq, snapshot=r.seq in snaps)
    return sorted(by_step.values(), key=lambda m: m.seq, reverse=True)

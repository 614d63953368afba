"""``StateManager``: the seed system's checkpoint API over per-agent journals.

Every :meth:`StateManager.save_checkpoint` is one journal record: the JSON Patch from the
previous save, found at the cost of the change, under its own checkpoint id
(``<agent_id>@<step:010d>.<seq:010d>``: two saves at the same step are two checkpoints). Full
snapshots are the engine's: each agent's journal is opened with
``snapshot_every=checkpoint_frequency``, ``snapshot_seconds=checkpoint_interval`` (whichever comes
first, counted from the journal's last snapshot, so a restart does not reset them) and
``keep_snapshots=retention_count``; ``force=True`` asks for one now.

Reads (``resume_from_latest``, ``load_checkpoint``, ``list_checkpoints``, ``state_at``,
``history``, ``diff``, ``verify``, ``get_checkpoint_tree``) go through read-only journals, which
take no lock, or through the writer this manager already holds: another manager, process or the
CLI may read while this one writes. The agent's writer lock is taken on its first save and kept
until :meth:`StateManager.close` (or interpreter exit).

Where a save runs: a small one inline on the event loop (a thread hop costs as much as the
append); when several agents save in ``sync`` at once, each is still recorded inline but its
``fdatasync`` runs in a worker thread, so many agents' syncs overlap; a snapshot or a state that
once took more than 2 ms of CPU to record runs in a worker thread, so the event loop never
waits on big encodes (see :mod:`agentjournal._writers`).

Any other object implementing the seed's :class:`~agentjournal.storage.StorageBackend` protocol
may be passed as ``storage``; it keeps the seed's full-state semantics (see
:mod:`agentjournal._fullstate`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from . import delta
from ._fullstate import FullStateStore, is_seed_backend
from ._ids import validate_agent_id
from ._saves import (
    check_state,
    fork_origins,
    history_entry,
    lineage,
    list_saves,
    load_save,
    register_for_exit,
)
from ._workers import run_blocking
from ._writers import OpenAgent, Writers, resume_readonly
from .errors import (
    CheckpointNotFoundError,
    CloseError,
    JournalError,
    JournalNotFoundError,
    UnsupportedOperationError,
)
from .hooks import HookEvent, HookManager, Redactor, apply_redactor
from .journal.writer import Durability
from .query import BisectResult, Blame, When
from .replay import Journal, Resumed
from .replay.verify import VerifyReport
from .retention import CompactReport
from .state import (
    AgentState,
    CheckpointMetadata,
    HistoryEntry,
    StateSnapshot,
    format_checkpoint_id,
    parse_checkpoint_id,
    parse_checkpoint_ref,
)
from .storage import FilesystemStorage, StorageBackend

__all__ = [
    "HistoryEntry",
    "StateManager",
    "format_checkpoint_id",
    "parse_checkpoint_id",
]

log = logging.getLogger("agentjournal")
T = TypeVar("T")



class StateManager:
    """Checkpoint orchestration (the seed system's ``StateManager``) over journals.

    Args:
        storage: where journals live; default ``FilesystemStorage()`` (``./.agentjournal``).
            Any other object implementing the seed's ``StorageBackend`` protocol is used with
            the seed's full-state semantics (no deltas; time travel raises
            :class:`~agentjournal.errors.UnsupportedOperationError`).
        checkpoint_frequency: snapshot every N steps (None: never on steps).
        checkpoint_interval: ... or when this many seconds passed since the last snapshot
            (None: never on time). Whichever comes first.
        retention_count: keep this many newest snapshots per agent (None: keep all). What
            happens to old journal segments is ``storage.old_segments``.
        hook_manager: hooks fired around saves and resumes (never while a lock is held, so a
            hook may call back into this manager).
        redact: a redactor run on every state before it is encoded (in addition to the
            hook manager's, see :meth:`HookManager.register_redactor`).
        offload: where saves run: ``"auto"`` (default, see the module docstring),
            ``"always"`` in the worker pool, or ``"never"`` (inline, snapshots included).
        max_open_journals: keep at most this many agents' writers open (each holds a few
            file descriptors and its agent's lock); the least recently saved idle one is
            closed (synced, lock released) when another is opened, and reopened on its next
            save. A manager serving thousands of agents never runs out of descriptors: fewer
            are kept open when the process's descriptor limit would not hold this many.

    Raises:
        ValueError: a trigger or count out of range.
        TypeError: ``storage`` is neither a ``FilesystemStorage`` nor a seed storage backend.
    """

    def __init__(
        self,
        storage: FilesystemStorage | StorageBackend | None = None,
        checkpoint_frequency: int | None = 10,
        checkpoint_interval: float | None = 60.0,
        retention_count: int | None = 100,
        hook_manager: HookManager | None = None,
        *,
        redact: Redactor | None = None,
        offload: Literal["auto", "always", "never"] = "auto",
        max_open_journals: int = 128,
    ) -> None:
        if isinstance(max_open_journals, bool) or not isinstance(max_open_journals, int) \
                or max_open_journals < 1:
            raise ValueError(f"max_open_journals must be an int >= 1, not {max_open_journals!r}")
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
        self._full: FullStateStore | None = None
        if storage is None:
            storage = FilesystemStorage()
        elif not isinstance(storage, FilesystemStorage):
            if not is_seed_backend(storage):
                raise TypeError(
                    f"storage must be a FilesystemStorage or implement the seed's storage "
                    f"protocol (async save/load/list_checkpoints/delete/exists), not "
                    f"{type(storage).__name__}")
            self._full = FullStateStore(storage, self)
        self.storage: Any = storage
        self.checkpoint_frequency = checkpoint_frequency
        self.checkpoint_interval = (float(checkpoint_interval)
                                    if checkpoint_interval is not None else None)
        self.retention_count = retention_count
        self.hook_manager = hook_manager
        self.redact = redact
        self._offload: Literal["auto", "always", "never"] = offload
        self._writers = Writers(
            lambda agent_id, create: self._fs().open_journal(
                agent_id, create=create, **self.journal_options()),
            max_open=max_open_journals, offload=offload,
            sync_durability=getattr(storage, "durability", None) is Durability.SYNC)
        register_for_exit(self)

    @property
    def max_open_journals(self) -> int:
        """Keep at most this many agents' writers open (see the class docstring)."""
        return self._writers.max_open

    @max_open_journals.setter
    def max_open_journals(self, value: int) -> None:
        self._writers.max_open = value

    @property
    def _agents(self) -> dict[str, OpenAgent]:
        return self._writers.agents

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every journal this manager holds (syncing them and releasing their locks)."""
        agents = self._writers.pop_all()
        errors: list[tuple[str, BaseException]] = []
        for agent_id, ag in agents.items():
            try:
                ag.journal.close()
            except Exception as e:  # noqa: BLE001 - every journal is closed; then we raise
                errors.append((agent_id, e))
        if errors:
            raise CloseError(errors)

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread."""
        await asyncio.to_thread(self.close)

    def release(self, agent_id: str) -> None:
        """Close one agent's journal so another process may write to it."""
        ag = self._writers.pop(agent_id)
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
    def _fs(self) -> FilesystemStorage:
        st = self.storage
        assert isinstance(st, FilesystemStorage)
        return st

    def journal_options(self) -> dict[str, Any]:
        """Keyword arguments of the journals this manager writes: the storage's options with
        this manager's snapshot triggers and retention."""
        st = self._fs()
        return {**st.journal_options(), "snapshot_every": self.checkpoint_frequency,
                "snapshot_seconds": self.checkpoint_interval,
                "keep_snapshots": self.retention_count, "prune": st.prune,
                "compress_segments": st.compress_segments}

    async def _writer(self, agent_id: str, *, create: bool = True) -> OpenAgent:
        return await self._writers.writer(agent_id, create=create)

    def _open_readonly(self, agent_id: str) -> Journal:
        return self._fs().open_journal(agent_id, readonly=True, create=False,
                                       **self.journal_options())

    async def _read(self, agent_id: str, fn: Callable[[Journal], T]) -> T:
        """``fn(journal)`` in the pool, on this manager's writer of the agent (under its lock)
        or on a read-only journal (no lock at all)."""
        validate_agent_id(agent_id)
        ag = self._agents.get(agent_id)
        if ag is not None:
            async with ag.lock_for_loop():
                return await run_blocking(fn, ag.journal)

        def run() -> T:
            with self._open_readonly(agent_id) as j:
                return fn(j)

        return await run_blocking(run)

    def _unsupported(self, what: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"{what} needs a journal; {type(self.storage).__name__} stores whole states",
            hint="use FilesystemStorage (or agentjournal's MemoryBackend) for time travel")

    # --- triggers --------------------------------------------------------------------------
    def should_checkpoint(self, agent_id: str, current_step: int,
                          current_time: float | None = None) -> bool:
        """Whether the agent's journal would write a snapshot after a save at
        ``current_step`` (the engine's triggers, counted from its last snapshot). An agent
        without a journal yet: True. Every save is recorded whatever this says."""
        now = time.time() if current_time is None else current_time
        if self._full is not None:
            return self._full.should_checkpoint(agent_id, current_step, now)
        ag = self._agents.get(agent_id)
        if ag is not None:
            return ag.journal.snapshot_due(current_step, now)
        validate_agent_id(agent_id)
        if not self._fs().has_journal(agent_id):
            return True
        try:
            with self._open_readonly(agent_id) as j:
                return j.last_seq == 0 or j.snapshot_due(current_step, now)
        except JournalNotFoundError:
            return True

    # --- saving ----------------------------------------------------------------------------
    def _prepare(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.redact is not None:
            doc = apply_redactor(self.redact, doc)
        hm = self.hook_manager
        if hm is not None and hm.redactors:
            doc = hm.redact(doc)
        return doc

    async def save_checkpoint(self, state: AgentState, force: bool = False) -> str:
        """Record ``state`` as one save of its agent; returns the checkpoint id.

        Every call records (only what changed since the previous save), even at the same
        step. A snapshot follows when the journal's triggers fire or ``force`` is true.
        ``state.checkpoint_id`` is set to the returned id. Do not mutate ``state`` from another
        task while the save is awaited (it may be compared in a worker thread).

        Raises:
            InvalidAgentIdError: ``state.agent_id`` is empty or not a valid id.
            NotJSONEncodableError: a value JSON cannot represent; ``path`` names it.
            RedactionError: a redactor failed (nothing was recorded).
            JournalLockedError: another process writes this agent.
            ValueError: ``step_number`` is lower than the last recorded step, or a bad status.
        """
        if self._full is not None:
            return await self._full.save_checkpoint(state, force)
        agent_id = check_state(state, self._agents)
        step = state.step_number
        hm = self.hook_manager
        now = time.time()
        if hm is not None and hm.has_handlers(HookEvent.PRE_CHECKPOINT_SAVE):
            await hm.trigger(HookEvent.PRE_CHECKPOINT_SAVE, agent_id, {
                "agent_id": agent_id, "step_number": step, "status": state.status,
                "timestamp": now}, metadata={"state": state})
        ag = self._agents.get(agent_id) or await self._writer(agent_id)
        prepare = (self._prepare if self.redact is not None
                   or (hm is not None and hm.redactors) else None)
        cid, appended = await self._writers.record(agent_id, ag, state, force=force, now=now,
                                                   prepare=prepare)
        if hm is not None and hm.has_handlers(HookEvent.POST_CHECKPOINT_SAVE):
            await hm.trigger(HookEvent.POST_CHECKPOINT_SAVE, agent_id, {
                "agent_id": agent_id, "checkpoint_id": cid, "step_number": step,
                "status": state.status, "timestamp": now, "seq": appended.seq,
                "snapshot": appended.snapshot_seq is not None, "ops": len(appended.ops)},
                metadata={"state": state})
        return cid

    async def cleanup_old_checkpoints(self, agent_id: str) -> int:
        """Apply retention now; returns how many snapshots were deleted (0 with no
        ``retention_count``). Errors are logged, not raised.

        Raises:
            JournalNotFoundError: ``agent_id`` has no journal.
        """
        if self._full is not None:
            return await self._full.cleanup_old_checkpoints(agent_id)
        if self.retention_count is None:
            return 0
        try:
            rep = await self.compact(agent_id)
        except JournalNotFoundError:
            raise
        except JournalError as e:
            log.error("retention for %s failed (the saves are safe): %s", agent_id, e)
            return 0
        for err in rep.errors:
            log.error("retention for %s: %s", agent_id, err)
        return len(rep.snapshots_deleted)

    async def compact(self, agent_id: str, *, dry_run: bool = False) -> CompactReport:
        """Apply retention now and return the full report (see :mod:`agentjournal.retention`)."""
        if self._full is not None:
            raise self._unsupported("compact")
        validate_agent_id(agent_id)
        ag = await self._writer(agent_id, create=False)
        async with ag.lock_for_loop():
            st = self._fs()
            return await run_blocking(functools.partial(
                ag.journal.compact, keep_snapshots=self.retention_count, prune=st.prune,
                compress_segments=st.compress_segments, dry_run=dry_run))

    # --- loading ---------------------------------------------------------------------------
    async def resume_from_latest(self, agent_id: str) -> AgentState | None:
        """The state after the agent's last save, or None if it has none.

        Takes no lock: another manager or process may be writing the agent.

        Raises:
            InvalidAgentIdError: not a valid agent id.
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
        """The state after the last save (no hooks), or None."""
        if self._full is not None:
            return await self._full.latest(agent_id)
        if agent_id not in self._agents and not self._fs().has_journal(agent_id):
            return None
        try:
            if agent_id in self._agents:
                res = await self._read(agent_id, lambda j: j.resume())
            else:
                res = await self._resume_readonly(agent_id)
        except JournalNotFoundError:
            return None
        if res.seq > 0 and isinstance(res.state, dict) and res.state:
            return AgentState.from_dict(res.state)
        return None

    async def _resume_readonly(self, agent_id: str) -> Resumed:
        return await resume_readonly(lambda: self._open_readonly(agent_id),
                                     (str(self._fs().base_dir), agent_id), self._offload)

    async def last_step(self, agent_id: str) -> int | None:
        """The agent's last recorded step, or None when it has no journal or no records."""
        validate_agent_id(agent_id)
        if self._full is not None:
            latest = await self._full.latest(agent_id)
            return latest.step_number if latest is not None else None
        if agent_id not in self._agents and not self._fs().has_journal(agent_id):
            return None

        def get(j: Journal) -> int | None:
            return j.last_step if j.last_seq > 0 else None

        try:
            return await self._read(agent_id, get)
        except JournalNotFoundError:
            return None

    async def load_checkpoint(self, checkpoint_id: str) -> AgentState:
        """The state of a save, by checkpoint id (both ``agent@step.seq`` and the step-only
        ``agent@step``, the last save of that step).

        Raises:
            CheckpointNotFoundError: a malformed id, an unknown agent or no such save
                (also a ``FileNotFoundError``, like the seed's).
            StepPrunedError: the save was removed by pruning retention.
        """
        if self._full is not None:
            return await self._full.load_checkpoint(checkpoint_id)
        agent_id = parse_checkpoint_ref(checkpoint_id)[0]

        def get(j: Journal) -> AgentState | None:
            return load_save(lambda _a, fn: fn(j), checkpoint_id)

        try:
            state = await self._read(agent_id, get)
        except CheckpointNotFoundError:
            raise
        except JournalNotFoundError as e:
            raise CheckpointNotFoundError(f"no checkpoint {checkpoint_id!r}: {e.message}",
                                          hint=e.hint) from None
        assert state is not None
        return state

    async def state_at(self, agent_id: str, step: int) -> AgentState:
        """The agent's state as of ``step``: after the last save at or before it.

        Raises:
            JournalNotFoundError: unknown agent.
            StepNotFoundError: ``step`` is outside the recorded history (or pruned).
        """
        if self._full is not None:
            raise self._unsupported("state_at")
        return AgentState.from_dict(await self._read(agent_id, lambda j: j.state_at(step)))

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        """Every save of ``agent_id`` (or of every agent), newest first."""
        if self._full is not None:
            return await self._full.list_checkpoints(agent_id)
        if agent_id is None:
            out: list[CheckpointMetadata] = []
            for a in await run_blocking(self._fs().list_agents):
                try:
                    out.extend(await self.list_checkpoints(a))
                except JournalError as e:
                    log.warning("could not list checkpoints of %s: %s", a, e)
            out.sort(key=lambda c: (c.timestamp, c.seq), reverse=True)
            return out
        return await self._read(agent_id, list_saves)

    async def history(self, agent_id: str, start: int | None = None,
                      end: int | None = None) -> list[HistoryEntry]:
        """The records of steps ``start..end`` (inclusive; None: from the first / to the last),
        oldest first.

        Raises:
            JournalNotFoundError: unknown agent.
        """
        if self._full is not None:
            raise self._unsupported("history")

        def get(j: Journal) -> list[HistoryEntry]:
            return [history_entry(agent_id, r) for r in j.history(start, end)]

        return await self._read(agent_id, get)

    async def diff(self, agent_id: str, step_a: int, step_b: int) -> list[delta.Op]:
        """RFC 6902 JSON Patch ops turning the state at ``step_a`` into the state at ``step_b``.

        Raises:
            JournalNotFoundError: unknown agent.
            StepNotFoundError: a step outside the recorded history.
        """
        if self._full is not None:
            raise self._unsupported("diff")
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
        if self._full is not None:
            raise self._unsupported("verify")
        rep: VerifyReport = await self._read(agent_id, lambda j: j.verify())
        return rep

    def create_snapshot(self, state: AgentState, reason: str = "manual") -> StateSnapshot:
        """An in-memory deep copy of ``state`` for inspection (the seed's; nothing is written:
        every save is already in the journal)."""
        return StateSnapshot(state=copy.deepcopy(state), snapshot_reason=reason)

    # --- forks -----------------------------------------------------------------------------
    async def fork_from_checkpoint(self, checkpoint_id: str,
                                   new_agent_id: str | None = None) -> AgentState:
        """Start a new agent from a checkpoint; returns its state, already saved.

        The fork gets its own journal (default id ``<agent>-fork-<8 hex>``) whose first record
        names the parent and its chain hash. Its state has ``parent_checkpoint_id`` set to
        ``checkpoint_id`` and the same ``step_number``.

        Raises:
            CheckpointNotFoundError: no such checkpoint.
            JournalExistsError: ``new_agent_id`` already has a journal.
        """
        if self._full is not None:
            return await self._full.fork_from_checkpoint(checkpoint_id, new_agent_id)
        agent_id, step, _seq = parse_checkpoint_ref(checkpoint_id)
        src_state = await self.load_checkpoint(checkpoint_id)
        new_id = new_agent_id or f"{agent_id[:100]}-fork-{uuid.uuid4().hex[:8]}"
        validate_agent_id(new_id)
        options = self.journal_options()

        def fork(j: Journal) -> Journal:
            return j.fork(step, new_id, **options)

        new_j = await self._read(agent_id, fork)
        self._writers.adopt(new_id, new_j)
        src_state.agent_id = new_id
        src_state.parent_checkpoint_id = checkpoint_id
        await self.save_checkpoint(src_state)
        return src_state

    async def get_checkpoint_tree(self, agent_id: str) -> dict[str, list[str]]:
        """Fork lineage around ``agent_id``: parent checkpoint id -> child checkpoint ids.

        Includes every fork made from this agent, forks of those forks and so on, and, if the
        agent is itself a fork, its own origin. A fork whose first records were pruned is not
        found.
        """
        if self._full is not None:
            return await self._full.get_checkpoint_tree(agent_id)
        validate_agent_id(agent_id)
        return lineage(await run_blocking(fork_origins, self._fs()), agent_id)

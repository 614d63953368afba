"""The writable journals one :class:`~agentjournal.StateManager` holds, and where its work runs.

A manager opens an agent's writer on its first save and keeps it (at most
``max_open_journals`` of them; the least recently saved idle one is closed to make room).
Each agent has an ``asyncio.Lock``: its saves, compactions and reads through the writer take
turns, while different agents' saves overlap.

Where a save runs (``offload="auto"``):

- **inline, synced inline**: one agent saving a small state. A thread hop costs as much as the
  append, so the diff, the write and the ``fdatasync`` run on the event loop.
- **inline, synced in a worker**: several agents saving in ``sync`` at once (a fleet). The diff
  and the write run on the loop, one agent after another with no thread switch, and only the
  ``fdatasync`` goes to a worker thread (it releases the GIL), so many agents' syncs overlap
  instead of queueing on the loop. The save is acknowledged when its sync returned. Running
  the whole save in a worker instead (as before) made 64 threads take turns on the GIL for the
  Python part of every save: measured, the GIL hand-offs cost more than the saves.
- **in a worker**: a snapshot is due, ``force=True``, the journal's first record (it creates
  the first segment file), or the agent's state once took more than 2 ms of CPU to record: the
  event loop never waits on a large encode or on creating files.

``offload="always"`` runs every save in a worker, ``"never"`` every save inline (snapshots
included). A fresh manager's resume runs inline once this process has seen the agent's state
resume cheaply (:func:`resume_readonly`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from ._fs import open_journals_within_fd_limit as _fd_budget
from ._saves import record_state
from ._workers import run_blocking
from .errors import JournalPoisonedError
from .replay import Appended, Journal, Resumed
from .state import AgentState

__all__ = ["INLINE_LIMIT_S", "OpenAgent", "Writers", "resume_readonly"]

log = logging.getLogger("agentjournal")

Offload = Literal["auto", "always", "never"]

INLINE_LIMIT_S = 0.002
"""CPU seconds: an agent whose save took more inline has its next saves run in a worker."""
_OVERLAP_S = 0.005
"""Another agent's save ended this recently: several agents are saving at once."""


def _timed_record(j: Journal, state: AgentState,
                  prepare: Callable[[dict[str, Any]], dict[str, Any]] | None,
                  ) -> tuple[str, Appended, float]:
    """:func:`record_state` and the CPU seconds it took in this thread."""
    t0 = time.thread_time()
    cid, appended = record_state(j, state, None, prepare)
    return cid, appended, time.thread_time() - t0


class OpenAgent:
    """A writable journal the manager holds, and how its saves run."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.offload = False  # record this agent's saves in the pool (a large state)
        # No record yet: the first one creates the journal's first segment (a file and two
        # syncs), which must not block the loop.
        self.new = journal.last_seq == 0

    def lock_for_loop(self) -> asyncio.Lock:
        """The agent's lock for the running event loop (a new one for a new loop)."""
        loop = asyncio.get_running_loop()
        if self.lock is None or self.loop is not loop:
            self.lock, self.loop = asyncio.Lock(), loop
        return self.lock


class Writers:
    """The open writers of one manager, by agent id.

    Args:
        open_journal: ``open_journal(agent_id, create)`` opens the agent's writable journal
            (called in a worker thread).
        max_open: keep at most this many open (fewer when the descriptor limit is low).
        offload: where saves run (see the module docstring).
        sync_durability: the storage's durability is ``sync`` (only then can many agents'
            syncs overlap).
    """

    def __init__(self, open_journal: Callable[[str, bool], Journal], *, max_open: int,
                 offload: Offload, sync_durability: bool) -> None:
        self._open_journal = open_journal
        self.max_open = max_open
        self.offload: Offload = offload
        self.sync_durability = sync_durability
        self.agents: dict[str, OpenAgent] = {}
        self._open_lock: asyncio.Lock | None = None
        self._open_loop: asyncio.AbstractEventLoop | None = None
        self._inflight = 0  # saves (or their syncs) running in the pool now
        self._recent: dict[str, float] = {}  # agent -> when its last save ended (perf_counter)
        # The two latest save ends by different agents, newest first: (agent, perf_counter).
        self._end1: tuple[str | None, float] = (None, float("-inf"))
        self._end2: tuple[str | None, float] = (None, float("-inf"))

    # --- opening and closing ---------------------------------------------------------------
    def open_sync(self, agent_id: str, create: bool) -> OpenAgent:
        """The agent's writer, opened now if needed (blocking: call it in a worker)."""
        ag = self.agents.get(agent_id)
        if ag is not None:
            return ag
        self.close_idle(room_for=1)
        j = self._open_journal(agent_id, create)
        try:
            j.snapshot_base()  # loads the last state now, in this thread, not on first append
        except BaseException:
            j.close()
            raise
        ag = self.agents[agent_id] = OpenAgent(j)
        return ag

    async def writer(self, agent_id: str, *, create: bool = True) -> OpenAgent:
        """The agent's writer, opened in a worker thread on first use."""
        ag = self.agents.get(agent_id)
        if ag is None:
            # One opening at a time: two tasks saving a new agent at once must share a journal.
            loop = asyncio.get_running_loop()
            if self._open_lock is None or self._open_loop is not loop:
                self._open_lock, self._open_loop = asyncio.Lock(), loop
            async with self._open_lock:
                ag = self.agents.get(agent_id)
                if ag is None:
                    ag = await run_blocking(self.open_sync, agent_id, create)
        return ag

    def adopt(self, agent_id: str, journal: Journal) -> None:
        """Hold ``journal`` (a writer opened elsewhere, e.g. a new fork) as the agent's."""
        self.agents[agent_id] = OpenAgent(journal)

    def close_idle(self, room_for: int) -> None:
        """Close the least recently saved idle writers until ``room_for`` more fit."""
        excess = len(self.agents) + room_for - min(self.max_open, _fd_budget())
        if excess <= 0:
            return
        idle = [a for a, ag in self.agents.items()
                if ag.lock is None or not ag.lock.locked()]
        idle.sort(key=lambda a: self._recent.get(a, 0.0))
        for agent_id in idle[:excess]:
            ag = self.agents.pop(agent_id)
            self._recent.pop(agent_id, None)
            try:
                ag.journal.close()
            except OSError as e:
                log.error("closing the idle journal of %s failed: %s", agent_id, e)

    def pop(self, agent_id: str) -> OpenAgent | None:
        """Stop holding the agent's writer (the caller closes it)."""
        self._recent.pop(agent_id, None)
        return self.agents.pop(agent_id, None)

    def pop_all(self) -> dict[str, OpenAgent]:
        """Stop holding every writer (the caller closes them)."""
        agents, self.agents = self.agents, {}
        self._recent.clear()
        return agents

    # --- saving ----------------------------------------------------------------------------
    def _fleet(self, agent_id: str, now: float) -> bool:
        """Whether several agents are saving in ``sync`` at once (their syncs should overlap
        in workers rather than queue on the loop)."""
        if not self.sync_durability:
            return False
        if self._inflight > 0:
            return True
        # When the last save of another agent ended (O(1), however many agents).
        other = self._end1[1] if self._end1[0] != agent_id else self._end2[1]
        return other > now - _OVERLAP_S

    def _ended(self, agent_id: str, t: float) -> None:
        self._recent[agent_id] = t
        if self._end1[0] == agent_id:
            self._end1 = (agent_id, t)
        else:
            self._end2, self._end1 = self._end1, (agent_id, t)

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._inflight += 1
        try:
            return await run_blocking(fn, *args)
        finally:
            self._inflight -= 1

    async def record(self, agent_id: str, ag: OpenAgent, state: AgentState, *, force: bool,
                     now: float,
                     prepare: Callable[[dict[str, Any]], dict[str, Any]] | None,
                     ) -> tuple[str, Appended]:
        """Record one save of ``state`` on the agent's writer; returns its id and record.

        Raises:
            JournalPoisonedError: a write or sync failed; the writer is dropped (the next save
                reopens the journal, whose recovery keeps every acknowledged record).
        """
        snap = True if force else None
        inline_synced = False
        async with ag.lock_for_loop():
            j = ag.journal
            try:
                t_start = time.perf_counter()
                if self.offload == "never":
                    cid, appended = record_state(j, state, snap, prepare)
                    inline_synced = True
                elif ag.new and self.offload == "auto" and not force:
                    # The first record: in a worker, and its CPU time tells whether the
                    # state is too large to record on the loop.
                    cid, appended, cpu = await self._in_pool(_timed_record, j, state, prepare)
                    ag.offload = cpu > INLINE_LIMIT_S
                elif (self.offload == "always" or force or ag.offload or ag.new
                      or j.snapshot_due(state.step_number, now)):
                    cid, appended = await self._in_pool(record_state, j, state, snap, prepare)
                else:
                    fleet = self._fleet(agent_id, t_start)
                    # CPU time, not wall time: waiting on fdatasync does not hold the loop's
                    # CPU (and a first save's file creation is no sign of a large state).
                    t0 = time.thread_time()
                    before = state.checkpoint_id
                    cid, appended = record_state(j, state, snap, prepare, sync=not fleet)
                    if time.thread_time() - t0 > INLINE_LIMIT_S:
                        ag.offload = True
                    if fleet:
                        try:
                            await self._in_pool(j.sync)  # acknowledged once durable
                        except Exception:
                            # Not acknowledged, as when the sync inside append fails. (A
                            # cancelled save keeps its id: its record is written and becomes
                            # durable with the next sync, as a cancelled pooled save's did.)
                            state.checkpoint_id = before
                            raise
                    else:
                        inline_synced = True
            except JournalPoisonedError as e:
                # One failed write or sync (ENOSPC...) poisons the writer for good; drop it so
                # the next save reopens the journal, whose recovery keeps every acknowledged
                # record (space may be back by then).
                self.pop(agent_id)
                try:
                    j.close()
                except OSError:
                    pass
                e.hint = ((e.hint + "; ") if e.hint else "") + (
                    "this save was not recorded; the next save reopens the journal")
                raise
            ag.new = False
            self._ended(agent_id, time.perf_counter())
        if inline_synced and len(self.agents) > 1 and self.sync_durability:
            # A save synced inline never suspends: without this, one task of a fleet saving
            # in a loop would keep the loop, and the others could not be seen saving with it.
            await asyncio.sleep(0)
        return cid, appended


_RESUME_CPU: dict[tuple[str, str], float] = {}
"""(storage directory, agent) -> CPU seconds of its last read-only resume in this process."""


async def resume_readonly(open_readonly: Callable[[], Journal], key: tuple[str, str],
                          offload: Offload) -> Resumed:
    """``resume()`` of a read-only journal: inline when this process has resumed the agent
    before at a small CPU cost (a thread hop costs as much as a small resume), else in the
    pool (an unknown or large state never blocks the loop)."""

    def run() -> Resumed:
        t0 = time.thread_time()
        with open_readonly() as j:
            res = j.resume()
        _RESUME_CPU[key] = time.thread_time() - t0
        return res

    cost = _RESUME_CPU.get(key)
    if offload == "never" or (offload == "auto" and cost is not None
                              and cost <= INLINE_LIMIT_S):
        return run()
    return await run_blocking(run)

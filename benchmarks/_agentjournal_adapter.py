"""agentjournal adapters for the checkpointer benchmark (``peers.py``, issue 6).

Registered through :data:`ADAPTERS` (``_peers.py`` imports this module if present).

How agentjournal is used here -- the way its documentation recommends for a raw checkpointer:

* one :class:`agentjournal.Journal` per agent on the filesystem, ``snapshot_every=100``, default
  retention (``keep_snapshots=None``: every snapshot and every segment is kept, so every step
  stays loadable), lz4-compressed snapshots (the default);
* each step calls ``journal.append(state)`` with the **whole** new state. The journal diffs it
  against a private shadow of the last recorded state and writes only the change (one JSON Patch
  record); the caller never computes a delta. (``append(ops=...)`` would be cheaper still; it is
  not used, because "give it the state" is what an agent loop does.)
* durability classes: ``sync`` -- ``append`` returns after ``fdatasync`` (the default; compare
  with LangGraph's SqliteSaver, which syncs every commit); ``group`` -- ``append`` returns after
  ``write``, a background flusher ``fdatasync``\\ s every 64 records or 50 ms, ``close()`` syncs
  the rest (so a "recorded" step here means written to the OS, durable within the window);
  ``none`` -- ``append`` returns after ``write`` and never syncs the log (compare with the seed
  system, which never fsyncs). In every mode a snapshot syncs the log and is written atomically
  with an fsync of the file and of its directory.

Reads: ``resume_latest`` opens a **new** ``Journal`` object on the store (lock, tail check) and
calls ``resume()``; the timed call includes that open, so agentjournal's resume figures are
open + resume (the peers' "fresh object" is built before their timed call). ``load_at(k)`` is
``journal.state_at(k)``; ``list_history`` counts the records ``journal.history()`` yields (every
step plus one marker per snapshot).

Workload 3 (large states): one agent (journal) per key, opened untimed; ``save_state`` is one
``append(state)`` (the first record of that journal: the whole state); ``load_state`` opens a
read-only ``Journal`` on it and calls ``resume()``, reading from the file -- open included.

``agentjournal-manager`` additionally measures the seed-compatible facade,
``StateManager.save_checkpoint`` (async), configured as a drop-in for the seed's defaults:
``FilesystemStorage(durability="none")`` (the seed never fsyncs), ``checkpoint_frequency=100``
(a snapshot every 100 steps; every call records its step), ``retention_count=10``.

``agentjournal-manager-sync`` is the facade as users run it: ``StateManager`` with every default
(``FilesystemStorage()``: ``sync`` durability; ``checkpoint_frequency=10``,
``checkpoint_interval=60``, ``retention_count=100``): the row to compare with LangGraph's
``SqliteSaver``, which also syncs every commit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

try:  # imported as ``benchmarks._agentjournal_adapter``
    from . import _workload as W
    from ._peers import Adapter
except ImportError:  # run as a script from benchmarks/
    import _workload as W  # type: ignore[no-redef]
    from _peers import Adapter  # type: ignore[no-redef]

from agentjournal import Journal

AGENT_ID = "bench-agent"
SNAPSHOT_EVERY = 100

_DURABILITY_WORDS = {
    "sync": "append returns after fdatasync of the journal segment (survives power loss)",
    "group": ("append returns after write; a background flusher fdatasyncs every 64 records "
              "or 50 ms, close() syncs the rest (durable within that window)"),
    "none": "append returns after write, no fsync of the log (survives a process crash)",
}


class AgentJournalAdapter(Adapter):
    family = "agentjournal"
    requires = ("agentjournal",)

    def __init__(self, durability: str) -> None:
        super().__init__()
        assert durability in _DURABILITY_WORDS
        self.mode = durability
        self.name = f"agentjournal-{durability}"
        self.description = (f"agentjournal Journal(durability={durability!r}, snapshot_every="
                            f"{SNAPSHOT_EVERY}), append(whole state) per step")
        self.durability = _DURABILITY_WORDS[durability]
        self.journal: Journal | None = None
        self._large: dict[str, Journal] = {}

    def config(self) -> dict[str, Any]:
        return {"api": "Journal.append(state)", "durability": self.mode,
                "snapshot_every": SNAPSHOT_EVERY, "keep_snapshots": None, "compress": True,
                "resume_timing": "includes opening a new Journal object (lock + tail check)",
                "group_window": {"records": 64, "ms": 50} if self.mode == "group" else None}

    def _root(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "store"

    def _open(self) -> Journal:
        return Journal(AGENT_ID, self._root(), durability=self.mode,
                       snapshot_every=SNAPSHOT_EVERY)

    # -- workload 1 ------------------------------------------------------------------------
    def setup(self, workdir: Path, wl: W.Workload) -> None:
        super().setup(workdir, wl)
        self.journal = self._open()

    def step(self, i: int, delta: dict[str, Any], state: dict[str, Any]) -> None:
        self.journal.append(state)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def reopen(self) -> None:
        # Lazy: the next resume_latest() opens the journal inside its timed call.
        self.close()

    def _j(self) -> Journal:
        if self.journal is None:
            self.journal = self._open()
        return self.journal

    def resume_latest(self) -> dict[str, Any]:
        if self.journal is not None:  # every timed resume is on a new object: open + resume
            self.journal.close()
            self.journal = None
        return self._j().resume().state  # type: ignore[no-any-return]

    def load_at(self, k: int) -> dict[str, Any]:
        return self._j().state_at(k)  # type: ignore[no-any-return]

    def list_history(self) -> int:
        return sum(1 for _ in self._j().history())

    # -- workload 3 ------------------------------------------------------------------------
    def setup_large(self, workdir: Path) -> None:
        super().setup_large(workdir)

    def prepare_key(self, key: str) -> None:
        self._large[key] = Journal(key, self._root(), durability=self.mode,
                                   snapshot_every=SNAPSHOT_EVERY)

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        self._large[key].append(state)

    def load_state(self, key: str) -> dict[str, Any]:
        with Journal(key, self._root(), readonly=True) as j:
            return j.resume().state  # type: ignore[no-any-return]

    def close_large(self) -> None:
        for j in self._large.values():
            j.close()
        self._large.clear()


class AgentJournalManagerAdapter(Adapter):
    """The seed-compatible facade: ``await StateManager.save_checkpoint(AgentState(...))``."""

    family = "agentjournal"
    requires = ("agentjournal",)
    name = "agentjournal-manager"
    description = ("agentjournal StateManager facade (seed API), FilesystemStorage("
                   "durability='none'), checkpoint_frequency=100, retention_count=10")
    durability = "append returns after write, no fsync of the log (like the seed system)"
    FREQUENCY = SNAPSHOT_EVERY
    RETENTION = 10

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.manager: Any = None
        self._large: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        return {"api": "await StateManager.save_checkpoint(AgentState)",
                "storage": "FilesystemStorage(durability='none')",
                "checkpoint_frequency": self.FREQUENCY, "checkpoint_interval": None,
                "retention_count": self.RETENTION,
                "driven_by": "one asyncio event loop; loop.run_until_complete per call"}

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _manager(self, base: Path) -> Any:
        from agentjournal import FilesystemStorage, StateManager
        return StateManager(FilesystemStorage(str(base), durability="none"),
                            checkpoint_frequency=self.FREQUENCY, checkpoint_interval=None,
                            retention_count=self.RETENTION)

    @staticmethod
    def _agent_state(agent_id: str, state: dict[str, Any]) -> Any:
        from agentjournal import AgentState
        return AgentState(agent_id=agent_id, step_number=state["counter"],
                          conversation_history=state["messages"],
                          budget_spent_usd=state["budget"])

    @staticmethod
    def _canonical(st: Any) -> dict[str, Any]:
        return {"messages": st.conversation_history, "counter": st.step_number,
                "budget": st.budget_spent_usd}

    def setup(self, workdir: Path, wl: W.Workload) -> None:
        super().setup(workdir, wl)
        self.manager = self._manager(workdir / "store")

    def step(self, i: int, delta: dict[str, Any], state: dict[str, Any]) -> None:
        self._run(self.manager.save_checkpoint(self._agent_state(AGENT_ID, state)))

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    def reopen(self) -> None:
        self.close()
        assert self.workdir is not None
        self.manager = self._manager(self.workdir / "store")

    def resume_latest(self) -> dict[str, Any]:
        # A manager opens (and locks) the agent's journal on first use: release it first so
        # that every timed resume opens it again, like a restarted process would.
        self.manager.release(AGENT_ID)
        return self._canonical(self._run(self.manager.resume_from_latest(AGENT_ID)))

    def load_at(self, k: int) -> dict[str, Any]:
        from agentjournal import format_checkpoint_id
        cid = format_checkpoint_id(AGENT_ID, k)
        return self._canonical(self._run(self.manager.load_checkpoint(cid)))

    def list_history(self) -> int:
        return len(self._run(self.manager.list_checkpoints(AGENT_ID)))

    # workload 3: a manager per key, like the seed adapter (save = first checkpoint of an agent).
    def prepare_key(self, key: str) -> None:
        assert self.workdir is not None
        self._large[key] = (self._manager(self.workdir / "store"), None)

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        mgr, _ = self._large[key]
        cid = self._run(mgr.save_checkpoint(self._agent_state(key, state)))
        self._large[key] = (mgr, cid)

    def load_state(self, key: str) -> dict[str, Any]:
        mgr, cid = self._large[key]
        return self._canonical(self._run(mgr.load_checkpoint(cid)))

    def close_large(self) -> None:
        for mgr, _ in self._large.values():
            mgr.close()
        self._large.clear()
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class AgentJournalManagerSyncAdapter(AgentJournalManagerAdapter):
    """The facade with every default: ``StateManager(FilesystemStorage(dir))`` (``sync``)."""

    name = "agentjournal-manager-sync"
    description = ("agentjournal StateManager facade (seed API) with its defaults: "
                   "FilesystemStorage() (durability='sync'), checkpoint_frequency=10, "
                   "checkpoint_interval=60, retention_count=100")
    durability = _DURABILITY_WORDS["sync"]

    def config(self) -> dict[str, Any]:
        return {"api": "await StateManager.save_checkpoint(AgentState)",
                "storage": "FilesystemStorage() (durability='sync')",
                "checkpoint_frequency": 10, "checkpoint_interval": 60.0,
                "retention_count": 100,
                "driven_by": "one asyncio event loop; loop.run_until_complete per call"}

    def _manager(self, base: Path) -> Any:
        from agentjournal import FilesystemStorage, StateManager
        return StateManager(FilesystemStorage(str(base)))


ADAPTERS = {
    "agentjournal-sync": lambda: AgentJournalAdapter("sync"),
    "agentjournal-group": lambda: AgentJournalAdapter("group"),
    "agentjournal-none": lambda: AgentJournalAdapter("none"),
    "agentjournal-manager": AgentJournalManagerAdapter,
    "agentjournal-manager-sync": AgentJournalManagerSyncAdapter,
}

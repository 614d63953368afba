"""Adapters that drive each measured checkpointer through the same workloads.

An adapter owns one system configured one way (e.g. "kaizen, FilesystemStorage, gzip") and
speaks the canonical state shape of ``_workload``:
``{"messages": [...], "counter": int, "budget": float}``.
The harness in ``peers.py`` does all timing; adapters only do the work.

Adapter interface (what an ``agentjournal`` adapter must implement; see :class:`Adapter`):

Workload 1, growing conversation
    ``setup(workdir, wl)``     create a store under ``workdir`` (an empty directory); untimed.
    ``step(i, delta, state)``  record step ``i`` (1-based). ``delta`` is what changed
                               (``{"message", "counter", "cost"}``), ``state`` the whole canonical
                               state after the step (the harness maintains it; do not mutate it).
                               Must return only when the step is recorded as durably as the
                               system's configuration promises. Timed, once per step.
    ``iter_steps(wl)``         optional override for systems that drive the loop themselves
                               (LangGraph runs the steps inside its own graph): a generator that
                               yields ``i`` after each step. The default calls ``step``.
    ``close()``                release files and handles; untimed.
    ``reopen()``               build a fresh object on the same storage (the "fresh object" for
                               resume); untimed.
    ``open_existing(workdir, wl)``  in a new process, open the store left by a run; untimed.
    ``resume_latest()``        -> canonical state of the latest step. Timed.
    ``retained(k)``            -> whether the state after step ``k`` can still be loaded.
    ``load_at(k)``             -> canonical state after step ``k``. Timed.
    ``list_history()``         -> number of entries in the full history listing. Timed.
    ``bytes_on_disk()``        -> (apparent bytes, allocated bytes) of the store; default walks
                               ``workdir``.

Workload 3, large states
    ``setup_large(workdir)``, ``prepare_key(key)`` (untimed), ``save_state(key, state)`` (timed),
    ``load_state(key)`` -> canonical state (timed), ``close_large()``.

Register an adapter class in :data:`REGISTRY` (or, for agentjournal, in the module named by
:data:`AGENTJOURNAL_ADAPTER_MODULE`, see the marked block at the end of this file).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import operator
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # imported as ``benchmarks._peers``
    from . import _workload as W
except ImportError:  # run as a script from benchmarks/
    import _workload as W  # type: ignore[no-redef]


def dir_bytes(path: Path) -> tuple[int, int]:
    """(apparent size, allocated size) of every regular file under ``path``.

    Apparent = sum of ``st_size``; allocated = sum of ``st_blocks * 512`` (what the filesystem
    really holds, including block rounding; sparse files count less).
    """
    apparent = allocated = 0
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        apparent += st.st_size
                        allocated += st.st_blocks * 512
                except FileNotFoundError:  # a temp file renamed away under us
                    continue
    return apparent, allocated


class Adapter:
    """Base class: see the module docstring for the contract."""

    name = "base"
    family = ""
    description = ""
    durability = ""  # what "recorded" means for a step, in words
    persistent = True  # False: the state lives in this process only (resume = same object)
    supports_reads = True  # resume / load_at / list_history (False for the zero line)
    supports_save_load = True  # workload 3
    requires: tuple[str, ...] = ()  # importable modules needed; missing -> system skipped

    def __init__(self) -> None:
        self.workdir: Path | None = None
        self.wl: W.Workload | None = None

    # -- description -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """How the system is configured, for the JSON document."""
        return {}

    def available(self) -> tuple[bool, str]:
        for mod in self.requires:
            try:
                found = importlib.util.find_spec(mod) is not None
            except ModuleNotFoundError:  # a parent package is missing
                found = False
            if not found:
                return False, f"module {mod!r} not installed"
        return True, ""

    # -- workload 1 --------------------------------------------------------------------------
    def setup(self, workdir: Path, wl: W.Workload) -> None:
        self.workdir, self.wl = workdir, wl

    def step(self, i: int, delta: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def iter_steps(self, wl: W.Workload) -> Iterator[int]:
        state = W.new_state()
        for i in range(1, wl.steps + 1):
            W.apply_step(state, wl, i)
            self.step(i, wl.delta(i), state)
            yield i

    def after_run(self) -> None:
        """Untimed bookkeeping after the last step (e.g. map step numbers to checkpoint ids)."""

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        raise NotImplementedError

    def open_existing(self, workdir: Path, wl: W.Workload) -> None:
        self.workdir, self.wl = workdir, wl
        self.reopen()

    def resume_latest(self) -> dict[str, Any]:
        raise NotImplementedError

    def retained(self, k: int) -> bool:
        return True

    def load_at(self, k: int) -> dict[str, Any]:
        raise NotImplementedError

    def list_history(self) -> int:
        raise NotImplementedError

    def bytes_on_disk(self) -> tuple[int, int]:
        assert self.workdir is not None
        return dir_bytes(self.workdir)

    # -- workload 3 --------------------------------------------------------------------------
    def setup_large(self, workdir: Path) -> None:
        self.workdir = workdir

    def prepare_key(self, key: str) -> None:
        pass

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def load_state(self, key: str) -> dict[str, Any]:
        raise NotImplementedError

    def close_large(self) -> None:
        pass


# =============================================================================================
# Seed system: kailash-kaizen's StateManager + FilesystemStorage
# =============================================================================================
#
# API (kailash-kaizen 2.x, kaizen/core/autonomy/state/):
#   FilesystemStorage(base_dir=".kaizen/checkpoints", compress=False, encrypt=False,
#                     encryption_key=None)             - mkdirs base_dir in the constructor
#   StateManager(storage=None, checkpoint_frequency=10, checkpoint_interval=60.0,
#                retention_count=100, hook_manager=None)
#   StateManager.should_checkpoint(agent_id, current_step, current_time) -> bool   (sync)
#   await StateManager.save_checkpoint(state: AgentState, force=False) -> checkpoint_id
#       writes <checkpoint_id>.jsonl[.gz] (whole state as one JSON line) via a temp file + rename,
#       no fsync; then cleanup_old_checkpoints(), which lists -- i.e. reads and parses -- every
#       checkpoint file in the directory, and deletes those beyond retention_count.
#   await StateManager.load_checkpoint(checkpoint_id) -> AgentState
#   await StateManager.resume_from_latest(agent_id) -> AgentState | None   (lists = parses all)
#   await StateManager.list_checkpoints(agent_id=None) -> list[CheckpointMetadata] newest first
#   AgentState(agent_id=..., step_number=..., conversation_history=[...],
#              budget_spent_usd=..., ...)  - a dataclass; checkpoint_id and timestamp default to
#       a fresh uuid / now(), so the documented pattern is one new AgentState per checkpoint.
# All storage methods are ``async`` (but do blocking file I/O inside).


class KaizenAdapter(Adapter):
    family = "kaizen"
    requires = ("kaizen.core.autonomy.state",)
    durability = "temp file + rename per checkpoint, no fsync (page cache only)"
    AGENT_ID = "bench-agent"
    RETENTION = 10
    FREQUENCY = 1

    def __init__(self, compress: bool) -> None:
        super().__init__()
        self.compress = compress
        self.name = "kaizen-fs-gzip" if compress else "kaizen-fs"
        self.description = ("kailash-kaizen StateManager + FilesystemStorage"
                            + (" (compress=True, gzip)" if compress else " (plain JSONL)"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.manager: Any = None
        self.ids: dict[int, str] = {}
        self._large: dict[str, tuple[Any, str | None]] = {}

    def config(self) -> dict[str, Any]:
        return {"storage": "FilesystemStorage", "compress": self.compress, "encrypt": False,
                "checkpoint_frequency": self.FREQUENCY, "retention_count": self.RETENTION,
                "async_api": True,
                "driven_by": "one asyncio event loop; loop.run_until_complete per call"}

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _manager(self, base_dir: Path) -> Any:
        from kaizen.core.autonomy.state import FilesystemStorage, StateManager
        storage = FilesystemStorage(base_dir=str(base_dir), compress=self.compress)
        return StateManager(storage=storage, checkpoint_frequency=self.FREQUENCY,
                            retention_count=self.RETENTION)

    @staticmethod
    def _agent_state(agent_id: str, state: dict[str, Any]) -> Any:
        from kaizen.core.autonomy.state import AgentState
        return AgentState(agent_id=agent_id, step_number=state["counter"],
                          conversation_history=state["messages"],
                          budget_spent_usd=state["budget"])

    @staticmethod
    def _canonical(st: Any) -> dict[str, Any]:
        return {"messages": st.conversation_history, "counter": st.step_number,
                "budget": st.budget_spent_usd}

    def setup(self, workdir: Path, wl: W.Workload) -> None:
        super().setup(workdir, wl)
        self.manager = self._manager(workdir / "checkpoints")

    def step(self, i: int, delta: dict[str, Any], state: dict[str, Any]) -> None:
        if self.manager.should_checkpoint(self.AGENT_ID, i, time.time()):
            st = self._agent_state(self.AGENT_ID, state)
            self.ids[i] = self._run(self.manager.save_checkpoint(st))

    def reopen(self) -> None:
        assert self.workdir is not None
        self.manager = self._manager(self.workdir / "checkpoints")

    def resume_latest(self) -> dict[str, Any]:
        st = self._run(self.manager.resume_from_latest(self.AGENT_ID))
        return self._canonical(st)

    def retained(self, k: int) -> bool:
        cid = self.ids.get(k)
        return cid is not None and self._run(self.manager.storage.exists(cid))

    def load_at(self, k: int) -> dict[str, Any]:
        return self._canonical(self._run(self.manager.load_checkpoint(self.ids[k])))

    def list_history(self) -> int:
        return len(self._run(self.manager.list_checkpoints(self.AGENT_ID)))

    def close(self) -> None:
        self.manager = None

    # workload 3: every save goes into a fresh directory (so the retention sweep that follows a
    # save parses one file: the lower bound of what a save costs; workload 1 shows the steady
    # state with 10 retained checkpoints).
    def prepare_key(self, key: str) -> None:
        assert self.workdir is not None
        self._large[key] = (self._manager(self.workdir / key), None)

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        mgr, _ = self._large[key]
        cid = self._run(mgr.save_checkpoint(self._agent_state(key, state)))
        self._large[key] = (mgr, cid)

    def load_state(self, key: str) -> dict[str, Any]:
        mgr, cid = self._large[key]
        return self._canonical(self._run(mgr.load_checkpoint(cid)))

    def close_large(self) -> None:
        self._large.clear()
        if self._loop is not None:
            self._loop.close()
            self._loop = None


# =============================================================================================
# LangGraph: a real StateGraph; SqliteSaver on a file, InMemorySaver, or no checkpointer
# =============================================================================================
#
# API (langgraph 1.x, langgraph-checkpoint-sqlite 3.x):
#   StateGraph(State); add_node; add_edge(START, ...); add_conditional_edges; compile(checkpointer)
#   State is a TypedDict with ``messages: Annotated[list, operator.add]`` (a reducer channel:
#   BinaryOperatorAggregate, whose whole value is serialised into every checkpoint).
#   SqliteSaver(sqlite3.connect(path, check_same_thread=False))  - synchronous saver; its setup()
#       sets journal_mode=WAL; Python's sqlite3 leaves synchronous=FULL, so each commit is synced.
#       (SqliteSaver.from_conn_string(path) is the same thing wrapped in a context manager.)
#   InMemorySaver()  - dicts of serialised blobs in this process.
#   graph.stream(input, config, stream_mode="updates", durability="sync")  - durability "sync"
#       waits for each superstep's checkpoint before starting the next one (the default, "async",
#       writes it in a background thread while the next step runs). One superstep = one step.
#   graph.get_state(config) -> StateSnapshot (.values); with config["configurable"]
#       ["checkpoint_id"] it loads that checkpoint; graph.get_state_history(config) -> iterator
#       of StateSnapshot newest first (each one deserialised); metadata["step"] == number of
#       node runs == our step number (step -1 is the input checkpoint, step 0 the empty state).
#   graph.update_state(config, values) writes one checkpoint holding ``values`` (workload 3).
#   Optional, beta: ``Annotated[list, DeltaChannel(reducer)]`` (langgraph.channels) stores only
#   the writes per step and a full snapshot every ``snapshot_frequency`` (default 100) updates.

THREAD_ID = "bench-thread"


def _concat_batches(state: list, writes: list) -> list:
    """DeltaChannel reducer: append every write (each a list of messages), batch-invariant."""
    out = list(state)
    for w in writes:
        out.extend(w)
    return out


def _build_graph_builder(wl: W.Workload | None, delta_channel: bool) -> Any:
    from typing import Annotated, TypedDict

    from langgraph.graph import END, START, StateGraph

    if delta_channel:
        from langgraph.channels import DeltaChannel
        messages_t = Annotated[list, DeltaChannel(_concat_batches)]
    else:
        messages_t = Annotated[list, operator.add]

    # Functional syntax on purpose: with postponed annotations, class syntax would leave
    # "messages_t" as a string that LangGraph cannot resolve (it is local to this function).
    BenchState = TypedDict("BenchState", {"messages": messages_t,  # noqa: UP013
                                          "counter": int, "budget": float})

    steps = wl.steps if wl is not None else 0
    msgs = wl.messages if wl is not None else []
    costs = wl.costs if wl is not None else []

    def agent_step(state: dict[str, Any]) -> dict[str, Any]:
        i = state["counter"] + 1
        return {"messages": [msgs[i]], "counter": i, "budget": state["budget"] + costs[i]}

    def route(state: dict[str, Any]) -> str:
        return "agent_step" if state["counter"] < steps else END

    b = StateGraph(BenchState)
    b.add_node("agent_step", agent_step)
    b.add_edge(START, "agent_step")
    b.add_conditional_edges("agent_step", route, ["agent_step", END])
    return b


def _bytes_held(obj: Any, _depth: int = 0) -> int:
    """Bytes of serialised payload held by InMemorySaver's dicts (bytes/str leaves)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return len(obj)
    if isinstance(obj, str):
        return len(obj)
    if _depth > 8:
        return 0
    if isinstance(obj, dict):
        return sum(_bytes_held(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_bytes_held(v, _depth + 1) for v in obj)
    return 0


class LangGraphAdapter(Adapter):
    family = "langgraph"
    requires = ("langgraph.graph",)

    def __init__(self, saver: str, delta_channel: bool = False) -> None:
        super().__init__()
        assert saver in ("sqlite", "memory", "none")
        self.saver_kind = saver
        self.delta_channel = delta_channel
        self.name = {"sqlite": "langgraph-sqlite", "memory": "langgraph-memory",
                     "none": "langgraph-none"}[saver] + ("-delta" if delta_channel else "")
        what = {"sqlite": "SqliteSaver on a file (WAL, synchronous=FULL)",
                "memory": "InMemorySaver",
                "none": "no checkpointer (zero line)"}[saver]
        self.description = ("LangGraph StateGraph, " + what
                            + (", messages as DeltaChannel (beta)" if delta_channel else
                               ", messages: Annotated[list, operator.add]"))
        self.durability = {"sqlite": "SQLite commit per step, fsync of the WAL (synchronous=FULL)",
                           "memory": "in process memory only",
                           "none": "nothing recorded"}[saver]
        self.persistent = saver == "sqlite"
        self.supports_save_load = saver != "none"
        self.supports_reads = saver != "none"
        if saver == "sqlite":
            self.requires = ("langgraph.graph", "langgraph.checkpoint.sqlite")
        self.conn: sqlite3.Connection | None = None
        self.saver: Any = None
        self.graph: Any = None
        self.builder: Any = None
        self.step_ids: dict[int, str] = {}
        self._large_graph: Any = None

    def config(self) -> dict[str, Any]:
        return {"saver": self.saver_kind, "delta_channel": self.delta_channel,
                "stream_mode": "updates",
                "durability": "sync" if self.saver_kind != "none" else None,
                "checkpoints_per_step": 1 if self.saver_kind != "none" else 0,
                "thread_id": THREAD_ID}

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if ok and self.delta_channel:
            try:
                importlib.import_module("langgraph.channels").DeltaChannel  # noqa: B018
            except (ImportError, AttributeError):
                return False, "this langgraph has no DeltaChannel"
        return ok, why

    def _db_path(self, name: str = "checkpoints.sqlite") -> Path:
        assert self.workdir is not None
        return self.workdir / name

    def _new_saver(self, db: Path | None) -> Any:
        if self.saver_kind == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver
            assert db is not None
            conn = sqlite3.connect(str(db), check_same_thread=False)
            saver = SqliteSaver(conn)
            # Creates the tables (and sets WAL) now rather than inside the first timed call;
            # the saver would do it itself on first use.
            saver.setup()
            return conn, saver
        if self.saver_kind == "memory":
            from langgraph.checkpoint.memory import InMemorySaver
            return None, InMemorySaver()
        return None, None

    def _cfg(self, thread: str = THREAD_ID, checkpoint_id: str | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {"thread_id": thread}
        if checkpoint_id is not None:
            conf["checkpoint_id"] = checkpoint_id
        return {"configurable": conf}

    def setup(self, workdir: Path, wl: W.Workload) -> None:
        super().setup(workdir, wl)
        self.builder = _build_graph_builder(wl, self.delta_channel)
        self.conn, self.saver = self._new_saver(self._db_path())
        self.graph = self.builder.compile(checkpointer=self.saver)

    def iter_steps(self, wl: W.Workload) -> Iterator[int]:
        cfg = self._cfg()
        cfg["recursion_limit"] = wl.steps + 10
        kwargs: dict[str, Any] = {"stream_mode": "updates"}
        if self.saver is not None:
            kwargs["durability"] = "sync"
        i = 0
        # Each "updates" event is emitted when the step's node has run; the checkpoint of that
        # step is written right after (before the next node runs), so the time between two
        # events holds exactly one node run and one checkpoint write; the last checkpoint lands
        # in the harness's "tail" time after the last event.
        for _ in self.graph.stream(W.new_state(), cfg, **kwargs):
            i += 1
            yield i

    def after_run(self) -> None:
        if self.saver is None:
            return
        for tup in self.saver.list(self._cfg()):
            step = tup.metadata.get("step")
            if isinstance(step, int) and step >= 0:
                self.step_ids.setdefault(step, tup.config["configurable"]["checkpoint_id"])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.saver_kind == "sqlite":
            self.saver = None
        self.graph = None

    def reopen(self) -> None:
        """Fresh saver + freshly compiled graph on the same file; InMemorySaver: same saver."""
        if self.builder is None:
            self.builder = _build_graph_builder(self.wl, self.delta_channel)
        if self.saver_kind == "sqlite":
            self.conn, self.saver = self._new_saver(self._db_path())
        self.graph = self.builder.compile(checkpointer=self.saver)

    @staticmethod
    def _canonical(values: dict[str, Any]) -> dict[str, Any]:
        """State values as canonical dicts. With DeltaChannel, LangGraph turns message-shaped
        dicts into LangChain message objects (HumanMessage/AIMessage with a generated id) on
        write; map them back to ``{"role", "content"}`` (untimed cost is negligible)."""
        msgs = values.get("messages", [])
        if msgs and not isinstance(msgs[0], dict):
            roles = {"human": "user", "ai": "assistant"}
            msgs = [{"role": roles.get(m.type, m.type), "content": m.content} for m in msgs]
        return {"messages": msgs, "counter": values.get("counter"),
                "budget": values.get("budget")}

    def resume_latest(self) -> dict[str, Any]:
        return self._canonical(self.graph.get_state(self._cfg()).values)

    def retained(self, k: int) -> bool:
        return k in self.step_ids

    def load_at(self, k: int) -> dict[str, Any]:
        return self._canonical(
            self.graph.get_state(self._cfg(checkpoint_id=self.step_ids[k])).values)

    def list_history(self) -> int:
        return sum(1 for _ in self.graph.get_state_history(self._cfg()))

    list_history_raw_how = "checkpointer.list(config): CheckpointTuples, no StateSnapshot"

    def list_history_raw(self) -> int:
        return sum(1 for _ in self.saver.list(self._cfg()))

    def bytes_on_disk(self) -> tuple[int, int]:
        if self.saver_kind == "memory" and self.saver is not None:
            # Nothing on disk: report the serialised bytes the saver holds in memory instead.
            n = (_bytes_held(self.saver.storage) + _bytes_held(self.saver.blobs)
                 + _bytes_held(self.saver.writes))
            return n, n
        if self.saver_kind == "none":
            return 0, 0
        return super().bytes_on_disk()

    # workload 3: graph.update_state() on a fresh thread per save; get_state() to load.
    def setup_large(self, workdir: Path) -> None:
        super().setup_large(workdir)
        builder = _build_graph_builder(None, self.delta_channel)
        self.conn, self.saver = self._new_saver(self._db_path("large.sqlite"))
        self._large_graph = builder.compile(checkpointer=self.saver)

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        self._large_graph.update_state(self._cfg(thread=key), state)

    def load_state(self, key: str) -> dict[str, Any]:
        return self._canonical(self._large_graph.get_state(self._cfg(thread=key)).values)

    def close_large(self) -> None:
        self._large_graph = None
        self.close()


# =============================================================================================
# Registry
# =============================================================================================

def _factories() -> dict[str, Any]:
    return {
        "kaizen-fs": lambda: KaizenAdapter(compress=False),
        "kaizen-fs-gzip": lambda: KaizenAdapter(compress=True),
        "langgraph-sqlite": lambda: LangGraphAdapter("sqlite"),
        "langgraph-memory": lambda: LangGraphAdapter("memory"),
        "langgraph-none": lambda: LangGraphAdapter("none"),
        # Not asked for by the issue, measured because LangGraph ships it: the beta
        # DeltaChannel stores per-step writes plus a snapshot every 100 updates.
        "langgraph-sqlite-delta": lambda: LangGraphAdapter("sqlite", delta_channel=True),
    }


REGISTRY: dict[str, Any] = _factories()

# ---------------------------------------------------------------------------------------------
# >>> AGENTJOURNAL ADAPTER SLOT <<<
#
# The agentjournal adapters are added here later. Put them in a module
# ``benchmarks/_agentjournal_adapter.py`` that defines ``ADAPTERS = {"name": factory, ...}``
# (factories return an :class:`Adapter`; e.g. "agentjournal-none" and "agentjournal-sync" for the
# two durability classes compared in DESIGN.md). Until that module exists -- or if it, or the
# agentjournal package, fails to import -- no agentjournal system is registered and the
# benchmark runs the peers only. Nothing imports agentjournal outside that module.
AGENTJOURNAL_ADAPTER_MODULE = "_agentjournal_adapter"
AGENTJOURNAL_IMPORT_ERROR: str | None = None


def _register_agentjournal() -> None:
    global AGENTJOURNAL_IMPORT_ERROR
    here = Path(__file__).resolve().parent
    if not (here / f"{AGENTJOURNAL_ADAPTER_MODULE}.py").exists():
        AGENTJOURNAL_IMPORT_ERROR = "no agentjournal adapter module yet"
        return
    try:
        if __package__:
            mod = importlib.import_module(f"{__package__}.{AGENTJOURNAL_ADAPTER_MODULE}")
        else:
            mod = importlib.import_module(AGENTJOURNAL_ADAPTER_MODULE)
        for name, factory in getattr(mod, "ADAPTERS", {}).items():
            REGISTRY[name] = factory
    except Exception as e:  # the package under construction may not import yet
        AGENTJOURNAL_IMPORT_ERROR = f"{type(e).__name__}: {e}"


_register_agentjournal()
# <<< END AGENTJOURNAL ADAPTER SLOT
# ---------------------------------------------------------------------------------------------


def make(name: str) -> Adapter:
    return REGISTRY[name]()


def availability(name: str) -> tuple[bool, str]:
    return make(name).available()

"""One agent's open journal in this process: the store and the parts built on it.

A :class:`Core` bundles the agent's store, record reader, step index and materializer and, when
opened for writing, the writer and the *shadow* (a private copy of the last recorded state that
the next step is diffed against). Writable cores are shared: every writable
:class:`~agentjournal.Journal` of the same agent on the same store in one process uses the same
core (reference-counted), so two components of one program never fight over the writer lock,
and their records interleave in one chain. Across processes the filesystem lock still admits
one writer.

Every use of a core holds its re-entrant lock, which makes a journal safe to share between
threads: the diff against the shadow, the write and the shadow update are one critical section.
A core opened by one process and inherited by a child through ``os.fork()`` refuses to write
in the child (:class:`~agentjournal.errors.JournalForkedError`) and never touches the parent's
lock or files when the child lets go of it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import delta
from .._exact import Trust
from ..backends.base import AgentStore, Backend
from ..errors import JournalClosedError, JournalForkedError
from ..events import AnyRecord
from ..journal.reader import SegmentReader
from ..journal.writer import JournalWriter
from .materializer import Materializer
from .stepindex import StepIndex

log = logging.getLogger("agentjournal")


class Core:
    """One agent's store and the parts that read and write it (see the module docstring).

    Args:
        backend: where the journal lives.
        agent_id: the agent.
        key: the chain key, or None.
        writable: take the writer lock and recover (else read-only: no lock, no repair).
        create: create the journal if missing (writable cores only).
        valid_prefix: read the valid prefix of a damaged journal instead of raising.
        max_snapshot_bytes: limit of a snapshot file and of its decoded state.
        writer_options: passed to :class:`~agentjournal.journal.writer.JournalWriter`.
    """

    def __init__(self, backend: Backend, agent_id: str, *, key: bytes | None, writable: bool,
                 create: bool, valid_prefix: bool, max_snapshot_bytes: int,
                 writer_options: dict[str, Any]) -> None:
        self.backend = backend
        self.agent_id = agent_id
        self.key = key
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.refs = 0
        self.closed = False
        self.store: AgentStore = backend.agent(agent_id, create=create and writable)
        self.reader = SegmentReader(self.store, key, valid_prefix=valid_prefix)
        self.writer: JournalWriter | None = None
        if writable:
            try:
                self.writer = JournalWriter(self.store, key=key, **writer_options)
            except BaseException:
                self.store.close()
                raise
            self.reader.tail = self.writer.seg_first or None
        else:
            # Read-only: an unfinished last line is a crash's tail only if no writer runs.
            self.reader.writer_alive = lambda: agent_id in backend.lock_holders()
        self.mat = Materializer(self.store, self.reader, agent_id=agent_id, key=key,
                                max_snapshot_bytes=max_snapshot_bytes, tail=self._tail_records)
        self.index = StepIndex(self.store, self.reader, current_segment=self._current_segment,
                               snapshot_step=lambda seq: self.mat.load_snapshot(seq)[0].step)
        self.housekeeping: Any = None
        """The ``RetentionView`` built on this core (``replay/housekeeping.py``, which imports
        this module), kept here so its caches last as long as the core."""
        # The shadow and the snapshot triggers' base (writable cores only).
        self.shadow: Any = None
        self.shadow_seq = -1  # seq the shadow is the state after; -1 = not loaded
        self.trust = Trust()
        """What diffs against the shadow proved of it (see :meth:`adopt`)."""
        self.snap_step = 0
        self.snap_wall = time.time()
        self.snap_clock = time.monotonic()
        """``time.monotonic()`` as of the last snapshot: a wall clock that steps back cannot
        hold snapshots up (restarts carry the elapsed wall time over, never a negative one)."""

    def _tail_records(self) -> list[AnyRecord] | None:
        return self.writer.tail_records if self.writer is not None else None

    def _current_segment(self) -> int:
        return self.writer.seg_first if self.writer is not None else 0

    def check_writable(self) -> JournalWriter:
        """The writer, if this process may append through it."""
        if self.closed:
            raise JournalClosedError(f"journal of {self.agent_id!r} is closed")
        if self.writer is None:
            raise JournalClosedError(f"journal of {self.agent_id!r} was opened read-only",
                                     hint="open it with readonly=False to append")
        if os.getpid() != self.pid:
            raise JournalForkedError(
                f"journal of {self.agent_id!r} was opened by process {self.pid}; this process "
                f"({os.getpid()}) inherited it through fork()",
                hint="open the journal again in the child process (after the parent closed it)")
        return self.writer

    def ensure_shadow(self) -> None:
        """Load the state after the last record into the shadow (once)."""
        w = self.writer
        if w is None or self.shadow_seq == w.last_seq:
            return
        state, seq, _step, doc = self.mat.materialize(w.last_seq, prefer=w.hint.snap)
        self.set_shadow(state, seq)
        if doc is not None:
            self.set_snapshot_base(doc.step, doc.ts)
            return
        first = next(iter(self.reader.records(1, 1)), None)
        # No snapshot yet: count steps from 0, as the process that began the journal did.
        self.set_snapshot_base(0, first.ts if first is not None else time.time())

    def set_snapshot_base(self, step: int, wall_ts: float) -> None:
        """The last snapshot was at ``step``, at wall time ``wall_ts``."""
        self.snap_step = step
        self.snap_wall = wall_ts
        self.snap_clock = time.monotonic() - max(0.0, time.time() - wall_ts)

    def seconds_since_snapshot(self) -> float:
        return time.monotonic() - self.snap_clock

    def set_shadow(self, state: Any, seq: int) -> None:
        """Make ``state`` (private: nobody else holds its containers) the shadow."""
        self.trust.forget()
        self.shadow, self.shadow_seq = state, seq

    def diff(self, state: Any) -> list[delta.Op]:
        """The ops from the shadow to ``state``; pass them to :meth:`adopt` once recorded."""
        return delta.diff(self.shadow, state, trust=self.trust)

    def adopt(self, ops: list[delta.Op], seq: int, *, diffed: bool = False) -> None:
        """Apply recorded ``ops`` to the shadow (copies: it never aliases caller objects).

        ``diffed``: they are the ops :meth:`diff` just returned, so what that diff proved of
        the shadow holds for it once they are applied; any other change forgets it all (no
        ops at all change nothing, and keep what was known).
        """
        try:
            self.shadow = delta.apply_in_place(self.shadow, delta.copy_containers(ops))
        except BaseException:
            self.trust.forget()  # applied in part: nothing is known of the shadow any more
            raise
        self.shadow_seq = seq
        if diffed:
            self.trust.commit()
        elif ops:
            self.trust.forget()
        else:
            self.trust.unchanged()  # a marker record (meta only): the shadow is as it was

    def close(self) -> None:
        """Sync, release the lock and the store. In a forked child: let go, touch nothing."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if os.getpid() != self.pid:
                return  # the parent's lock and files are not ours to release
            try:
                if self.writer is not None:
                    self.writer.close()
            finally:
                self.store.close()


# --- sharing writable cores within the process ------------------------------------------------
# Re-entrant: a finalizer run by the collector between the acquire and the owner mark below
# (before the section has touched anything) may take it again and complete safely.
_registry_lock = threading.RLock()
_shared: dict[tuple[Hashable, str], Core] = {}
# Finalizers may run inside a registry section: see release_core.
_registry_owner: int | None = None  # ident of the thread inside a registry section
_deferred: list[Core] = []
# Writers being closed (their lock still held), by key: an open of the same agent meanwhile
# waits for the close instead of failing on our own lock with JournalLockedError.
_closing: dict[tuple[Hashable, str], threading.Event] = {}


@contextmanager
def _registry() -> Iterator[None]:
    """Hold the registry lock; releases deferred while it was held are done on the way out.

    A section never waits on another lock (cores are closed after it), so a thread waiting
    for the registry lock always gets it.
    """
    global _registry_owner
    me = threading.get_ident()
    try:
        with _registry_lock:
            _registry_owner = me
            try:
                yield
            finally:
                _registry_owner = None
    finally:
        _release_deferred()


def _release_deferred() -> None:
    while True:
        try:
            core = _deferred.pop()  # another thread may take the last one first
        except IndexError:
            return
        try:
            release_core(core)
        except Exception as e:  # noqa: BLE001 - a finalizer's work: report, never raise here
            log.error("closing the dropped journal of %s failed: %s", core.agent_id, e)


def _identity(backend: Backend) -> Hashable:
    ident = getattr(backend, "identity", None)
    return ident() if callable(ident) else ("object", id(backend))


def open_core(backend: Backend, agent_id: str, *, key: bytes | None, writable: bool,
              create: bool, valid_prefix: bool, max_snapshot_bytes: int,
              writer_options: dict[str, Any]) -> Core:
    """A core for the agent: the process's shared writable one, or a new read-only one."""
    if not writable:
        core = Core(backend, agent_id, key=key, writable=False, create=False,
                    valid_prefix=valid_prefix, max_snapshot_bytes=max_snapshot_bytes,
                    writer_options=writer_options)
        core.refs = 1
        return core
    k = (_identity(backend), agent_id)
    while True:
        poisoned: Core | None = None
        closing: threading.Event | None = None
        with _registry():
            found = _shared.get(k)
            if (found is not None and not found.closed and found.pid == os.getpid()
                    and found.writer is not None and found.writer.poisoned):
                # A failed write or sync poisoned the shared writer for good: opening again
                # means recovering. Its other users see the journal closed and must reopen too.
                del _shared[k]
                poisoned = found
            elif found is not None and not found.closed and found.pid == os.getpid():
                if found.key != key:
                    raise ValueError(
                        f"agent {agent_id!r} is already open for writing in this process with "
                        "another key; every writer of a journal must use its key")
                found.refs += 1
                return found
            elif k in _closing:
                closing = _closing[k]
            else:
                core = Core(backend, agent_id, key=key, writable=True, create=create,
                            valid_prefix=valid_prefix, max_snapshot_bytes=max_snapshot_bytes,
                            writer_options=writer_options)
                core.refs = 1
                _shared[k] = core
                return core
        if closing is not None:
            # Another thread is closing this agent's writer: wait (outside the section) until
            # its lock is released, then open anew. Bounded: a close only syncs and unlocks.
            closing.wait(timeout=30)
            continue
        # Closed outside the registry section (it waits on the core's lock); then open anew.
        assert poisoned is not None
        try:
            poisoned.close()
        except OSError as e:
            log.error("closing the poisoned journal of %s failed: %s", agent_id, e)


def release_core(core: Core) -> None:
    """One user of ``core`` is done; the last one closes it.

    Also the finalizer of a :class:`~agentjournal.Journal` never closed, which the cyclic
    garbage collector may run at any allocation: inside a registry section of the same thread
    too. Waiting for the lock there would wait for this thread itself, forever; the release is
    deferred to the end of that section instead.
    """
    if _registry_owner == threading.get_ident():
        _deferred.append(core)
        return
    with _registry():
        core.refs -= 1
        if core.refs > 0:
            return
        keys = [k for k, v in _shared.items() if v is core]
        done = threading.Event()
        for k in keys:
            del _shared[k]
            _closing[k] = done
    try:
        core.close()
    finally:
        if keys:
            with _registry():
                for k in keys:
                    if _closing.get(k) is done:
                        del _closing[k]
        done.set()


def _after_fork_in_child() -> None:
    global _registry_lock, _shared, _registry_owner, _deferred
    # The parent's cores stay referenced by the handles the child inherited (and refuse to
    # write); new opens in the child must not find them. A lock held at fork time by another
    # thread of the parent would never be released here: start with a new one.
    _registry_lock = threading.RLock()
    _shared = {}
    _registry_owner = None
    _deferred = []
    _closing.clear()


def _close_all_at_exit() -> None:
    """Interpreter exit: sync and release every core still open (nothing acknowledged lost)."""
    for core in list(_shared.values()):
        try:
            core.close()
        except Exception as e:  # noqa: BLE001 - at exit, one failure must not stop the rest
            log.error("closing the journal of %s at exit failed: %s", core.agent_id, e)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)

"""A storage backend for kailash-kaizen's own ``StateManager``: every checkpoint a journal delta.

Kaizen's ``StateManager`` (``kaizen.core.autonomy.state``) takes any object with its
``StorageBackend`` protocol. Change one line and Kaizen's manager and autonomous agents record
into agentjournal journals, with time travel, ``verify`` and the CLI on top::

    storage = FilesystemStorage(base_dir=".kaizen/checkpoints")     # before (Kaizen's)
    storage = JournalStorage(base_dir=".kaizen/checkpoints")        # after
    state_manager = StateManager(storage=storage)                   # Kaizen's, unchanged

Kaizen's semantics, mapped onto append-only journals:

* ``save(state)`` appends the state (the JSON Patch from the agent's previous checkpoint) to the
  journal of ``state.agent_id``, with Kaizen's checkpoint id and listing fields in the record's
  ``meta``; it returns ``state.checkpoint_id``, as Kaizen's storage does. Saving an id again
  replaces that checkpoint (a new record; the newest wins), as overwriting a file does.
* A journal's steps never go back, but Kaizen may save an earlier ``step_number`` (its
  ``fork_from_checkpoint`` saves a copy under the same agent): the record is placed at the
  journal's last step and the checkpoint keeps its own ``step_number`` in the state and listing.
* ``list_checkpoints`` comes from an in-memory index of the records' ``meta`` (built from the
  journal once per process, then kept up to date), newest ``timestamp`` first as Kaizen's.
* ``delete`` hides a checkpoint at once from ``load``, ``exists`` and ``list_checkpoints``. The
  journal keeps the record (history stays verifiable and time travel still reaches it); the
  deletion itself is recorded in the ``meta`` of the agent's next save, or as its own record at
  :meth:`JournalStorage.close` (or interpreter exit). A crash before either forgets the deletion
  -- the checkpoint reappears; nothing is ever lost. Space is reclaimed by retention
  (``keep_snapshots`` with ``prune=True``), not by ``delete``.
* Agent ids that are not valid journal ids (Kaizen's default ``""``) are kept in the record
  and stored under ``kaizen-<hash>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

try:
    from kaizen.core.autonomy.state.types import AgentState, CheckpointMetadata
except ImportError as e:  # pragma: no cover - depends on the optional extra
    raise ImportError("agentjournal.integrations.kaizen needs kailash-kaizen: "
                      "pip install 'agentjournal[kaizen]'") from e

from .._ids import validate_agent_id
from .._saves import register_for_exit
from ..backends.base import Backend
from ..backends.filesystem import FilesystemBackend
from ..errors import InvalidAgentIdError, JournalNotFoundError
from ..events import Step
from ..journal.writer import Durability
from ..replay import Journal

__all__ = ["JournalStorage"]

_enc = msgspec.json.Encoder()

log = logging.getLogger("agentjournal.kaizen")

META = "kaizen"  # meta key of a checkpoint: {"id", "agent", "step", "ts", "status", "parent"}
DELETED = "kaizen_deleted"  # meta key: checkpoint ids deleted before this record


@dataclass
class _Entry:
    journal_id: str
    seq: int
    agent_id: str
    step: int
    ts: str
    status: str
    parent: str | None
    size: int


def _journal_id(agent_id: str) -> str:
    try:
        validate_agent_id(agent_id)
    except InvalidAgentIdError:
        return "kaizen-" + hashlib.blake2b(agent_id.encode("utf-8"), digest_size=8).hexdigest()
    return agent_id


def _not_found(checkpoint_id: str) -> FileNotFoundError:
    return FileNotFoundError(f"Checkpoint not found: {checkpoint_id}")


class _Agent:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writer: Journal | None = None
        self.scanned = 0  # records indexed so far
        self.pending_deletes: list[str] = []


class JournalStorage:
    """Kaizen's ``StorageBackend`` over agentjournal journals (see the module docstring).

    Args:
        base_dir: the journal store root (one directory per agent; default Kaizen's
            ``.kaizen/checkpoints``). Created 0700 when missing.
        compress: lz4-compress snapshots.
        durability: ``"sync"`` (default: a save returns after ``fdatasync``), ``"group"`` or
            ``"none"``.
        snapshot_every: a full snapshot every N checkpoints of an agent (loads replay at most
            that many deltas).
        key: a secret for the hash chain (keyed BLAKE2b).
        backend: another storage backend (e.g. ``MemoryBackend()``); ``base_dir`` is ignored.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] = ".kaizen/checkpoints",
        compress: bool = True,
        *,
        durability: Durability | str = Durability.SYNC,
        snapshot_every: int | None = 10,
        key: bytes | str | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.base_dir = Path(os.path.abspath(os.fspath(base_dir)))
        if backend is None:  # created at once, like Kaizen's storage (its tests check it)
            os.makedirs(self.base_dir, mode=0o700, exist_ok=True)
        self.backend: Backend = backend or FilesystemBackend(self.base_dir)
        self.options: dict[str, Any] = {
            "key": key, "durability": Durability(durability), "compress": bool(compress),
            "snapshot_every": snapshot_every, "snapshot_seconds": None}
        self._agents: dict[str, _Agent] = {}
        self._agents_lock = threading.Lock()
        self._index: dict[str, _Entry] = {}
        # load runs in a worker thread and may index what it finds while the loop lists.
        self._index_lock = threading.RLock()
        register_for_exit(self)

    def __repr__(self) -> str:
        return f"JournalStorage(base_dir={str(self.base_dir)!r})"

    # --- journals --------------------------------------------------------------------------
    def _agent(self, journal_id: str) -> _Agent:
        with self._agents_lock:
            ag = self._agents.get(journal_id)
            if ag is None:
                ag = self._agents[journal_id] = _Agent()
            return ag

    def journal(self, agent_id: str) -> Journal:
        """A read-only journal of a Kaizen agent, for time travel, diff and verify (close it)."""
        return Journal(_journal_id(agent_id), backend=self.backend, readonly=True,
                       **self.options)

    def _scan(self, journal_id: str, ag: _Agent, j: Journal) -> None:
        """Index the records after the last one indexed (the caller holds ``ag.lock``)."""
        if j.last_seq <= ag.scanned:
            return
        for r in j.records(ag.scanned + 1):
            ag.scanned = r.seq
            if isinstance(r, Step) and r.meta is not None:
                self._apply_meta(journal_id, r.seq, r.meta, len(_enc.encode(r)) + 1)

    def _apply_meta(self, journal_id: str, seq: int, meta: dict[str, Any], size: int) -> None:
        with self._index_lock:
            self._apply_meta_locked(journal_id, seq, meta, size)

    def _apply_meta_locked(self, journal_id: str, seq: int, meta: dict[str, Any],
                           size: int) -> None:
        for cid in meta.get(DELETED) or ():
            e = self._index.get(cid)
            if e is not None and e.journal_id == journal_id and e.seq < seq:
                del self._index[cid]
        m = meta.get(META)
        if isinstance(m, dict):
            self._index[str(m["id"])] = _Entry(
                journal_id=journal_id, seq=seq, agent_id=str(m.get("agent", "")),
                step=int(m.get("step", 0)), ts=str(m.get("ts", "")),
                status=str(m.get("status", "running")), parent=m.get("parent"), size=size)

    def _refresh(self, journal_id: str) -> None:
        """Bring the index up to date with ``journal_id``'s journal (written elsewhere too)."""
        ag = self._agent(journal_id)
        with ag.lock:
            if ag.writer is not None:
                self._scan(journal_id, ag, ag.writer)
                return
            try:
                with Journal(journal_id, backend=self.backend, readonly=True,
                             **self.options) as j:
                    self._scan(journal_id, ag, j)
            except JournalNotFoundError:
                return

    def _refresh_all(self) -> None:
        for journal_id in self.backend.list_agents():
            self._refresh(journal_id)

    # --- the protocol ----------------------------------------------------------------------
    def _save_sync(self, state: AgentState) -> str:
        cid = state.checkpoint_id
        journal_id = _journal_id(state.agent_id)
        ag = self._agent(journal_id)
        with ag.lock:
            if ag.writer is None:
                ag.writer = Journal(journal_id, backend=self.backend, **self.options)
                self._scan(journal_id, ag, ag.writer)
            j = ag.writer
            ts = state.timestamp
            meta: dict[str, Any] = {META: {
                "id": cid, "agent": state.agent_id, "step": state.step_number,
                "ts": ts.isoformat() if isinstance(ts, datetime) else str(ts),
                "status": state.status, "parent": state.parent_checkpoint_id}}
            if ag.pending_deletes:
                meta[DELETED] = list(ag.pending_deletes)
            appended = j.append(state.to_dict(), step=max(state.step_number, j.last_step),
                                meta=meta)
            ag.pending_deletes.clear()
            ag.scanned = j.last_seq
            # About the record's size: its ops and meta as JSON, plus the fixed fields.
            size = len(_enc.encode(appended.ops)) + len(_enc.encode(meta)) + 160
            self._apply_meta(journal_id, appended.seq, meta, size)
        return str(cid)

    async def save(self, state: AgentState) -> str:
        """Record ``state`` as a checkpoint; returns ``state.checkpoint_id``.

        A small save runs inline (a thread hop costs as much); the first save of an agent in
        this process (which opens and indexes its journal) and one that writes a snapshot run
        in a worker thread, so the event loop never waits on them.

        Raises:
            OSError: the journal could not be written (as Kaizen's ``IOError``).
        """
        ag = self._agent(_journal_id(state.agent_id))
        w = ag.writer
        if w is None or w.snapshot_due(max(state.step_number, w.last_step)):
            return await asyncio.to_thread(self._save_sync, state)
        return self._save_sync(state)

    def _lookup(self, checkpoint_id: str) -> _Entry | None:
        with self._index_lock:
            e = self._index.get(checkpoint_id)
        if e is None:
            self._refresh_all()  # another process (or an earlier run) may have saved it
            with self._index_lock:
                e = self._index.get(checkpoint_id)
        return e

    def _load_sync(self, checkpoint_id: str) -> AgentState:
        e = self._lookup(checkpoint_id)
        if e is None:
            raise _not_found(checkpoint_id)
        ag = self._agent(e.journal_id)
        with ag.lock:
            if ag.writer is not None:
                doc = ag.writer.state_at_seq(e.seq)
            else:
                with Journal(e.journal_id, backend=self.backend, readonly=True,
                             **self.options) as j:
                    doc = j.state_at_seq(e.seq)
        return AgentState.from_dict(doc)

    async def load(self, checkpoint_id: str) -> AgentState:
        """The state of a checkpoint.

        Raises:
            FileNotFoundError: no such checkpoint (or deleted).
        """
        return await asyncio.to_thread(self._load_sync, checkpoint_id)

    def _list_sync(self, agent_id: str | None) -> list[CheckpointMetadata]:
        if not agent_id:  # Kaizen's storage lists everything for None and "" alike
            self._refresh_all()
            with self._index_lock:
                entries = list(self._index.items())
        else:
            journal_id = _journal_id(agent_id)
            ag = self._agent(journal_id)
            if ag.writer is None:
                self._refresh(journal_id)
            with self._index_lock:
                entries = [(cid, e) for cid, e in self._index.items()
                           if e.journal_id == journal_id and e.agent_id == agent_id]
        out = []
        for cid, e in entries:
            try:
                ts = datetime.fromisoformat(e.ts)
            except ValueError:
                continue
            out.append((ts, e.seq, CheckpointMetadata(
                checkpoint_id=cid, agent_id=e.agent_id, timestamp=ts, step_number=e.step,
                status=e.status, size_bytes=e.size, parent_checkpoint_id=e.parent)))
        try:
            out.sort(key=lambda t: (t[0], t[1]), reverse=True)
        except TypeError:  # naive and aware timestamps mixed: order by save
            out.sort(key=lambda t: t[1], reverse=True)
        return [m for _, _, m in out]

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        """Checkpoints of ``agent_id`` (None: every agent), newest timestamp first."""
        return self._list_sync(agent_id)

    async def delete(self, checkpoint_id: str) -> None:
        """Hide a checkpoint (see the module docstring for what the journal keeps).

        Raises:
            FileNotFoundError: no such checkpoint.
        """
        e = self._lookup(checkpoint_id)
        if e is None:
            raise _not_found(checkpoint_id)
        ag = self._agent(e.journal_id)
        with ag.lock, self._index_lock:
            if self._index.get(checkpoint_id) is e:
                del self._index[checkpoint_id]
                ag.pending_deletes.append(checkpoint_id)

    async def exists(self, checkpoint_id: str) -> bool:
        """Whether a checkpoint exists (and is not deleted)."""
        return self._lookup(checkpoint_id) is not None

    def close(self) -> None:
        """Record pending deletions and close the journals (syncing them, releasing locks)."""
        with self._agents_lock:
            agents = list(self._agents.items())
        for journal_id, ag in agents:
            with ag.lock:
                try:
                    if ag.pending_deletes:
                        if ag.writer is None:
                            ag.writer = Journal(journal_id, backend=self.backend,
                                                **self.options)
                        w = ag.writer
                        w.append(ops=[], step=w.last_step, snapshot=False,
                                 meta={DELETED: list(ag.pending_deletes)})
                        ag.pending_deletes.clear()
                finally:
                    if ag.writer is not None:
                        ag.writer.close()
                        ag.writer = None
                        ag.scanned = 0
        with self._agents_lock:
            self._agents.clear()
        with self._index_lock:
            self._index.clear()

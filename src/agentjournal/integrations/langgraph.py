"""A LangGraph checkpointer on agentjournal: per-step deltas, time travel, ``verify``, the CLI.

Swap one line::

    from agentjournal.integrations.langgraph import JournalSaver

    graph = builder.compile(checkpointer=JournalSaver(".agentjournal"))

Each thread is one journal (agent id from :func:`thread_agent_id`), every namespace of the
thread in it; each checkpoint is one journal step whose state change is the JSON Patch of its
channel values, and whose record ``meta`` holds the checkpoint id, parent, metadata and
versions; pending writes are records too. See ``docs/guide.md`` ("LangGraph") for what is
stored, how deleting works on an append-only journal, and how LangGraph's contract was read.

Requires the ``langgraph`` extra: ``pip install 'agentjournal[langgraph]'``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..backends import Backend, FilesystemBackend
from ..backends.filesystem import DEFAULT_ROOT
from ..errors import JournalLockedError
from ..replay import Journal
from ._lg_codec import ListDecoder, decode
from ._lg_thread import Entry, ThreadJournal, WriteRow

__all__ = ["AGENT_PREFIX", "JournalSaver", "thread_agent_id"]

AGENT_PREFIX = "lg-"
"""Every thread's agent id starts with this, so the saver can list its threads in a store."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def thread_agent_id(thread_id: str) -> str:
    """The journal (agent id) of a LangGraph thread: ``lg-<readable part>-<hash>``.

    The readable part is the thread id with characters outside ``[A-Za-z0-9._-]`` replaced by
    ``_``, cut to 64; the hash is 16 hex digits of BLAKE2b of the whole id, so two threads
    never share a journal. The exact thread id is kept in every record's ``meta.thread``.
    """
    readable = _UNSAFE.sub("_", thread_id)[:64]
    digest = hashlib.blake2b(thread_id.encode("utf-8", "surrogatepass"),
                             digest_size=8).hexdigest()
    return f"{AGENT_PREFIX}{readable}-{digest}" if readable else f"{AGENT_PREFIX}{digest}"


def _conf(config: RunnableConfig | None) -> dict[str, Any]:
    return dict((config or {}).get("configurable") or {})


class JournalSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer storing each thread in an agentjournal journal.

    Args:
        root: directory of the store (default ``./.agentjournal``); ignored with ``backend``.
        backend: a storage backend (e.g. ``MemoryBackend()`` for tests).
        key: secret for keyed (HMAC) hash chains; needed again to read.
        durability: the journal's ``sync`` (default: each checkpoint is on disk before
            ``put`` returns), ``group`` or ``none``. LangGraph's own ``durability`` (when the
            graph calls the saver) is independent of it.
        snapshot_every: a full snapshot every N records of a thread, bounding replay.
        serde: the serializer (default LangGraph's ``JsonPlusSerializer``).

    Thread-safe: each thread's journal has its own lock. Async methods run the sync ones in
    a worker thread. Call :meth:`close` (or use ``with``) to release the journals' locks.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *,
                 backend: Backend | None = None, key: bytes | str | None = None,
                 durability: str = "sync", snapshot_every: int | None = 100,
                 serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.backend: Backend = backend or FilesystemBackend(root or DEFAULT_ROOT)
        self.key = key
        self.durability = durability
        self.snapshot_every = snapshot_every
        self._threads: dict[str, ThreadJournal] = {}
        self._lock = threading.Lock()

    @classmethod
    @contextmanager
    def from_conn_string(cls, path: str, **options: Any) -> Iterator[JournalSaver]:
        """``with JournalSaver.from_conn_string("./store") as saver:``, like the SQL savers."""
        saver = cls(path, **options)
        try:
            yield saver
        finally:
            saver.close()

    def __enter__(self) -> JournalSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> JournalSaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every open thread journal (syncing it and releasing its lock)."""
        with self._lock:
            threads, self._threads = self._threads, {}
        for t in threads.values():
            t.close()

    # --- threads ----------------------------------------------------------------------------
    def _thread(self, thread_id: Any, *, create: bool, read: bool = False
                ) -> ThreadJournal | None:
        """The open thread; ``read``: a read-only view when another process writes it
        (``transient``: the caller closes it after the call)."""
        tid = str(thread_id)
        with self._lock:
            t = self._threads.get(tid)
            if t is not None:
                return t
            agent = thread_agent_id(tid)
            if not create and not self.backend.exists(agent):
                return None
            try:
                j = Journal(agent, backend=self.backend, key=self.key,
                            durability=self.durability, snapshot_every=self.snapshot_every)
            except JournalLockedError:
                if not read:
                    raise
                view = ThreadJournal(Journal(agent, backend=self.backend, key=self.key,
                                             readonly=True), tid, self.serde)
                view.transient = True
                return view
            try:
                t = ThreadJournal(j, tid, self.serde)
            except BaseException:
                j.close()
                raise
            self._threads[tid] = t
            return t

    def _forget(self, thread_id: str) -> None:
        with self._lock:
            t = self._threads.pop(thread_id, None)
        if t is not None:
            t.close()

    def _thread_ids(self) -> list[str]:
        """Every thread in the store (opening each journal to read its thread id)."""
        out = []
        for agent in self.backend.list_agents():
            if not agent.startswith(AGENT_PREFIX):
                continue
            with Journal(agent, backend=self.backend, key=self.key, readonly=True) as j:
                for rec in j.records():
                    meta = getattr(rec, "meta", None)
                    if meta and meta.get("lg") == 1 and "thread" in meta:
                        if thread_agent_id(str(meta["thread"])) == agent:
                            out.append(str(meta["thread"]))
                        break
        return out

    # --- reading ----------------------------------------------------------------------------
    def _tuple(self, t: ThreadJournal, ns: str, e: Entry, values: dict[str, Any],
               config: RunnableConfig | None = None, writes: list[WriteRow] | None = None,
               dec: ListDecoder | None = None) -> CheckpointTuple:
        dec = dec or ListDecoder(self.serde, t.arrays)
        cp: dict[str, Any] = decode(self.serde, e.meta["cp"])
        cp["channel_values"] = {ch: dec.decode(v) for ch, v in values.items()}
        parent = e.meta.get("parent")
        return CheckpointTuple(
            config=config or {"configurable": {"thread_id": t.thread_id, "checkpoint_ns": ns,
                                               "checkpoint_id": e.id}},
            checkpoint=cp,  # type: ignore[arg-type]
            metadata=decode(self.serde, e.meta["md"]),
            parent_config=({"configurable": {"thread_id": t.thread_id, "checkpoint_ns": ns,
                                             "checkpoint_id": parent}} if parent else None),
            pending_writes=[(task, ch, decode(self.serde, v)) for task, ch, v, _ in
                            (t.writes_of(ns, e.id) if writes is None else writes)],
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``checkpoint_id`` of the config, or the thread's latest (by id)."""
        c = _conf(config)
        t = self._thread(c["thread_id"], create=False, read=True)
        if t is None:
            return None
        ns = str(c.get("checkpoint_ns", ""))
        cid = get_checkpoint_id(config)
        try:
            with t.lock:
                e = t.entry(ns, cid)
                if e is None:
                    return None
                values = t.values_of([(ns, e)])[e.seq]
                return self._tuple(t, ns, e, values, config if cid else None)
        finally:
            if t.transient:
                t.close()

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest id first (per namespace), filtered like ``InMemorySaver``."""
        c = _conf(config)
        if config is not None:
            thread_ids = [str(c["thread_id"])]
        else:
            thread_ids = self._thread_ids()
        ns = c.get("checkpoint_ns")
        cid = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        for tid in thread_ids:
            if left is not None and left <= 0:
                return
            t = self._thread(tid, create=False, read=True)
            if t is None:
                continue
            try:
                with t.lock:
                    picks = t.select(None if ns is None else str(ns), cid, before_id, filter,
                                     left)
                    values = t.values_of(picks)
                    writes = [t.writes_of(pns, e.id) for pns, e in picks]
            finally:
                if t.transient:
                    t.close()  # what is listed is in memory now
            # Decoded one at a time, outside the lock: the JSON forms are never mutated, and
            # a long history is not held in memory as Python objects all at once.
            if left is not None:
                left -= len(picks)
            dec = ListDecoder(self.serde, t.arrays)
            for (pns, e), w in zip(picks, writes, strict=True):
                yield self._tuple(t, pns, e, values[e.seq], writes=w, dec=dec)

    # --- writing ----------------------------------------------------------------------------
    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Record a checkpoint as one journal step; returns its config."""
        c = _conf(config)
        tid = str(c["thread_id"])
        ns = str(c.get("checkpoint_ns", ""))
        t = self._thread(tid, create=True)
        assert t is not None
        t.put(ns, dict(checkpoint), dict(get_checkpoint_metadata(config, metadata)),
              dict(new_versions), c.get("checkpoint_id"))
        return {"configurable": {"thread_id": tid, "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        """Record a task's pending writes for the checkpoint of ``config``."""
        c = _conf(config)
        t = self._thread(c["thread_id"], create=True)
        assert t is not None
        t.put_writes(str(c.get("checkpoint_ns", "")), str(c["checkpoint_id"]), writes,
                     task_id, task_path)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<32-digit counter>.<random>``, as LangGraph's reference savers make them."""
        if current is None:
            n = 0
        elif isinstance(current, int):
            n = current
        else:
            n = int(str(current).split(".")[0])
        return f"{n + 1:032}.{random.random():016}"

    # --- deleting and copying ---------------------------------------------------------------
    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's journal (every namespace), files and all, now."""
        tid = str(thread_id)
        self._forget(tid)
        agent = thread_agent_id(tid)
        if not self.backend.exists(agent):
            return
        remove = getattr(self.backend, "delete_agent", None)
        if remove is not None:
            remove(agent)
            return
        t = self._thread(tid, create=False)  # a backend without delete_agent: empty it
        if t is not None:
            t.rewrite([])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete every checkpoint (and its writes) whose metadata ``run_id`` is listed.

        Each thread concerned is rewritten: its other checkpoints are recorded again and the
        old records are removed by compaction (see ``ThreadJournal.rewrite``).
        """
        runs = set(run_ids)
        if not runs:
            return
        for tid in self._thread_ids():
            with self._lock:
                opened = tid in self._threads
            if not opened and not self._mentions_runs(tid, runs):
                continue  # not opened for writing: another process may be running it
            t = self._thread(tid, create=False)
            if t is None:
                continue
            with t.lock:
                every = t.all_entries()
                keep = [(ns, e) for ns, e in every
                        if e.metadata(self.serde).get("run_id") not in runs]
                if len(keep) < len(every):
                    t.rewrite(keep)

    def _mentions_runs(self, thread_id: str, runs: set[str]) -> bool:
        """Whether any checkpoint of a thread (read without its lock) has one of ``runs``."""
        with Journal(thread_agent_id(thread_id), backend=self.backend, key=self.key,
                     readonly=True) as j:
            for rec in j.records():
                meta = getattr(rec, "meta", None)
                if meta and meta.get("lg") == 1 and meta.get("op") == "put":
                    md = decode(self.serde, meta["md"])
                    if isinstance(md, dict) and md.get("run_id") in runs:
                        return True
        return False

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Record every checkpoint and write of the source again in the target, ids kept."""
        src = self._thread(source_thread_id, create=False)
        if src is None or str(source_thread_id) == str(target_thread_id):
            return
        with src.lock:
            picks = src.all_entries()
            if not picks:
                return
            values = src.values_of(picks)
            writes = {(ns, e.id): dict(src.idx.writes.get((ns, e.id), {})) for ns, e in picks}
        dst = self._thread(target_thread_id, create=True)
        assert dst is not None
        with dst.lock:
            ThreadJournal.replay_into(dst, picks, values, writes)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: only the newest checkpoint of each namespace; ``delete``: all."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for tid in thread_ids:
            if strategy == "delete":
                self.delete_thread(tid)
                continue
            t = self._thread(tid, create=False)
            if t is None:
                continue
            with t.lock:
                every = t.all_entries()
                keep = []
                for ns in t.namespaces():
                    e = t.entry(ns, None)
                    if e is not None:
                        keep.append((ns, e))
                if len(keep) < len(every):
                    t.rewrite(keep)

    # --- async twins: the sync methods in a worker thread -----------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *,
                    filter: dict[str, Any] | None = None, before: RunnableConfig | None = None,
                    limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions
                   ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

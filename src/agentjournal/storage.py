"""``FilesystemStorage``: where and how a :class:`~agentjournal.StateManager` keeps journals.

The seed system's ``FilesystemStorage(base_dir=..., compress=...)`` wrote one full-state file per
checkpoint. Here the same two parameters configure a journal store: ``base_dir`` is the store
root (one directory per agent, see ``docs/format.md``) and ``compress`` lz4-compresses snapshots.
The rest are the storage engine's options.

It also speaks the seed's storage protocol (:class:`StorageBackend`: async ``save``, ``load``,
``list_checkpoints``, ``delete``, ``exists``), so code that used the seed's storage directly keeps
working; every ``save`` is one delta record in its agent's journal (see
:mod:`agentjournal._saves`). ``delete`` hides a checkpoint from this protocol and from listings;
the journal, append-only, keeps the record (``verify`` and time travel still see it).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .backends.base import Backend
from .backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from .journal.writer import Durability
from .replay.journal import Journal

if TYPE_CHECKING:
    from .state import AgentState, CheckpointMetadata

__all__ = ["OLD_SEGMENT_POLICIES", "FilesystemStorage", "OldSegments", "PostgresStorage",
           "StorageBackend"]


@runtime_checkable
class StorageBackend(Protocol):
    """The seed's storage protocol: what :class:`~agentjournal.StateManager` accepts besides
    :class:`FilesystemStorage` (a backend written for the seed keeps working, with the seed's
    full-state semantics: no deltas, no time travel)."""

    async def save(self, state: AgentState) -> str:
        """Store ``state``; return its checkpoint id."""
        ...

    async def load(self, checkpoint_id: str) -> AgentState:
        """The state of a checkpoint; ``FileNotFoundError`` when there is none."""
        ...

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        """Checkpoints of ``agent_id`` (None: all), newest first."""
        ...

    async def delete(self, checkpoint_id: str) -> None:
        """Remove a checkpoint; ``FileNotFoundError`` when there is none."""
        ...

    async def exists(self, checkpoint_id: str) -> bool:
        """Whether a checkpoint exists."""
        ...

OldSegments = Literal["keep", "compress", "prune"]
OLD_SEGMENT_POLICIES: tuple[str, ...] = ("keep", "compress", "prune")


class FilesystemStorage:
    """A journal store on the local filesystem (the embedded default).

    Args:
        base_dir: the store root; default ``./.agentjournal``. Created 0700 when missing.
        compress: lz4-compress snapshots (the seed used gzip for its files; the journal's step
            records are small and stay plain JSON lines).
        durability: when a recorded step is acknowledged: ``"sync"`` (default; after
            ``fdatasync``, survives power loss), ``"group"`` (synced every few records or ms)
            or ``"none"`` (after ``write``; survives a process crash, not power loss).
        segment_max_bytes: start a new journal segment past this size.
        key: a secret for the hash chain (keyed BLAKE2b): without it nobody can rewrite
            history and recompute the chain. The same key is needed to read the journal.
        old_segments: what retention does with journal segments older than the oldest kept
            snapshot: ``"keep"`` them (default: the full history stays auditable),
            ``"compress"`` them with lz4 once sealed, or ``"prune"`` them (an ``anchor``
            record keeps the chain of what remains verifiable; steps before it are gone).
        backend: a storage backend to use instead of the filesystem (e.g.
            :class:`~agentjournal.MemoryBackend` in tests); ``base_dir`` is then ignored.
        allow_insecure_root: accept a group/world-writable root (refused by default).
        group_records, group_ms: the ``"group"`` durability window.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] = DEFAULT_ROOT,
        compress: bool = True,
        *,
        durability: Durability | str = Durability.SYNC,
        segment_max_bytes: int = 64 << 20,
        key: bytes | str | None = None,
        old_segments: OldSegments = "keep",
        backend: Backend | None = None,
        allow_insecure_root: bool = False,
        group_records: int = 64,
        group_ms: float = 50.0,
    ) -> None:
        if old_segments not in OLD_SEGMENT_POLICIES:
            raise ValueError(f"old_segments must be one of {OLD_SEGMENT_POLICIES}, "
                             f"not {old_segments!r}")
        if segment_max_bytes < 4096:
            raise ValueError("segment_max_bytes must be at least 4096")
        self.base_dir = Path(os.path.abspath(os.fspath(base_dir)))
        self.compress = bool(compress)
        self.durability = Durability(durability)
        self.segment_max_bytes = segment_max_bytes
        self.key = key
        self.old_segments: OldSegments = old_segments
        self.group_records = group_records
        self.group_ms = group_ms
        self.backend: Backend = backend or FilesystemBackend(
            self.base_dir, allow_insecure_root=allow_insecure_root)
        # Writers opened by the protocol methods (save/delete), one per agent, each used under
        # its lock (the protocol's calls may come from several threads).
        self._writers: dict[str, tuple[Journal, threading.Lock]] = {}
        self._writers_lock = threading.Lock()
        from ._saves import register_for_exit

        register_for_exit(self)

    def __repr__(self) -> str:
        return (f"FilesystemStorage(base_dir={str(self.base_dir)!r}, compress={self.compress}, "
                f"durability={self.durability.value!r}, old_segments={self.old_segments!r})")

    @property
    def prune(self) -> bool:
        """Whether retention deletes old segments."""
        return self.old_segments == "prune"

    @property
    def compress_segments(self) -> bool:
        """Whether retention lz4-compresses sealed old segments."""
        return self.old_segments == "compress"

    def open_journal(self, agent_id: str, *, readonly: bool = False,
                     create: bool = True, **options: Any) -> Journal:
        """Open ``agent_id``'s journal with this storage's options.

        Snapshot triggers and retention are left to the caller (the ``StateManager`` passes
        them in ``options``, which override :meth:`journal_options`).

        Raises:
            InvalidAgentIdError: ``agent_id`` is not a valid agent id.
            JournalNotFoundError: ``create=False`` (or ``readonly``) and there is no journal.
            JournalLockedError: another writer holds the agent (writable journals only).
        """
        if create and not readonly and isinstance(self.backend, FilesystemBackend):
            # Like the seed's mkdir(parents=True): a nested base_dir needs its parents; the
            # root itself is created (0700, checked) by the backend.
            os.makedirs(os.path.dirname(self.backend.root), mode=0o700, exist_ok=True)
        return Journal(agent_id, backend=self.backend,
                       **{**self.journal_options(), **options}, readonly=readonly, create=create)

    def journal_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~agentjournal.Journal` matching this storage."""
        return {
            "key": self.key,
            "durability": self.durability,
            "compress": self.compress,
            "segment_max_bytes": self.segment_max_bytes,
            "group_records": self.group_records,
            "group_ms": self.group_ms,
            "snapshot_every": None,
            "snapshot_seconds": None,
            "keep_snapshots": None,
        }

    def has_journal(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has a journal here."""
        return self.backend.exists(agent_id)

    def list_agents(self) -> list[str]:
        """Every agent with a journal here, sorted."""
        return self.backend.list_agents()

    def close(self) -> None:
        """Close the journals the protocol methods opened (syncing them, releasing locks)."""
        with self._writers_lock:
            writers, self._writers = self._writers, {}
        for j, lock in writers.values():
            with lock:
                j.close()

    # --- the seed's storage protocol -------------------------------------------------------
    def _writer(self, agent_id: str) -> tuple[Journal, threading.Lock]:
        with self._writers_lock:
            got = self._writers.get(agent_id)
            if got is None:
                # The protocol has no snapshot triggers: the engine's default cadence.
                j = self.open_journal(agent_id, create=True, snapshot_every=100)
                got = self._writers[agent_id] = (j, threading.Lock())
            return got

    def _read(self, agent_id: str, fn: Any) -> Any:
        with self._writers_lock:
            got = self._writers.get(agent_id)
        if got is not None:
            with got[1]:
                return fn(got[0])
        with self.open_journal(agent_id, readonly=True, create=False) as j:
            return fn(j)

    async def save(self, state: AgentState) -> str:
        """Record ``state`` in its agent's journal (the delta from the previous save); returns
        the checkpoint id (also set on ``state.checkpoint_id``).

        Raises:
            InvalidAgentIdError: ``state.agent_id`` is not a valid agent id.
            NotJSONEncodableError: a value JSON cannot represent.
        """
        from ._saves import check_state, record_state

        agent_id = check_state(state)
        j, lock = await asyncio.to_thread(self._writer, agent_id)

        def run() -> str:
            with lock:
                return record_state(j, state, None)[0]

        return await asyncio.to_thread(run)

    async def load(self, checkpoint_id: str) -> AgentState:
        """The state of a checkpoint (not one hidden by :meth:`delete`).

        Raises:
            CheckpointNotFoundError: no such checkpoint (a ``FileNotFoundError``, as the seed's).
        """
        from ._saves import load_save

        state = await asyncio.to_thread(load_save, self._read, checkpoint_id, True)
        assert state is not None
        return state

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        """Every save of ``agent_id`` (None: of every agent), newest first."""
        from ._saves import list_saves

        def run() -> list[CheckpointMetadata]:
            agents = [agent_id] if agent_id is not None else self.list_agents()
            out: list[CheckpointMetadata] = []
            for a in agents:
                if self.has_journal(a):
                    out.extend(self._read(a, list_saves))
            out.sort(key=lambda c: (c.timestamp, c.seq), reverse=True)
            return out

        return await asyncio.to_thread(run)

    async def delete(self, checkpoint_id: str) -> None:
        """Hide a checkpoint from this protocol and from listings. The journal is append-only:
        a ``deleted`` note is recorded and the save itself stays (for ``verify`` and time
        travel); retention (``old_segments="prune"``) is what reclaims space.

        Raises:
            CheckpointNotFoundError: no such checkpoint (or already deleted).
        """
        from ._saves import delete_save, load_save

        await asyncio.to_thread(load_save, self._read, checkpoint_id, True, False)
        from .state import parse_checkpoint_ref

        agent_id = parse_checkpoint_ref(checkpoint_id)[0]
        j, lock = await asyncio.to_thread(self._writer, agent_id)

        def run() -> None:
            with lock:
                delete_save(j, checkpoint_id)

        await asyncio.to_thread(run)

    async def exists(self, checkpoint_id: str) -> bool:
        """Whether a checkpoint exists (and is not deleted)."""
        from ._saves import load_save
        from .errors import CheckpointNotFoundError

        try:
            await asyncio.to_thread(load_save, self._read, checkpoint_id, True, False)
        except CheckpointNotFoundError:
            return False
        return True


class PostgresStorage(FilesystemStorage):
    """A journal store in PostgreSQL: :class:`FilesystemStorage`'s counterpart for a fleet.

    ``StateManager(storage=PostgresStorage(dsn))`` works like the filesystem store in every
    method (save, resume, fork, list, history, time travel, retention, the seed's storage
    protocol); the journals are the same records, kept in the database by
    :class:`~agentjournal.backends.postgres.PostgresBackend` (needs
    ``pip install 'agentjournal[postgres]'``). Agents on several hosts can share the store;
    each agent still has one writer at a time (a second one gets ``JournalLockedError``).

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL (a ``?schema=NAME`` parameter
            in a URL is taken as ``schema``).
        compress: lz4-compress snapshots.
        schema: the PostgreSQL schema holding the tables (created on first use).
        durability: ``"sync"`` (default): a step is acknowledged once its commit returned
            with ``synchronous_commit=on``; ``"group"`` and ``"none"`` as documented in
            ``docs/postgres.md``.
        key, old_segments, segment_max_bytes, group_records, group_ms: as for
            :class:`FilesystemStorage`.
        backend: an open :class:`PostgresBackend` to share (``dsn`` and ``schema`` are then
            only shown).

    ``base_dir`` is not used (it stays the filesystem default, for code that only prints it).
    """

    def __init__(
        self,
        dsn: str,
        compress: bool = True,
        *,
        schema: str | None = None,
        durability: Durability | str = Durability.SYNC,
        segment_max_bytes: int = 64 << 20,
        key: bytes | str | None = None,
        old_segments: OldSegments = "keep",
        group_records: int = 64,
        group_ms: float = 50.0,
        backend: Backend | None = None,
    ) -> None:
        from .backends import describe_store, open_backend, store_kind

        self._owns_backend = backend is None
        if backend is None:
            if store_kind(dsn) == "postgres":
                url = dsn if schema is None else _with_schema(dsn, schema)
                backend = open_backend(url)
            else:  # a key/value DSN ("host=... dbname=..."): no URL to carry the schema
                from .backends.postgres import PostgresBackend

                backend = (PostgresBackend(dsn) if schema is None
                           else PostgresBackend(dsn, schema=schema))
        self.dsn = describe_store(dsn) if store_kind(dsn) == "postgres" else _redact_kv(dsn)
        """The DSN without its password (for messages)."""
        self.schema = schema
        super().__init__(compress=compress, durability=durability,
                         segment_max_bytes=segment_max_bytes, key=key,
                         old_segments=old_segments, backend=backend,
                         group_records=group_records, group_ms=group_ms)

    def __repr__(self) -> str:
        return (f"PostgresStorage(dsn={self.dsn!r}, schema={self.schema!r}, "
                f"compress={self.compress}, durability={self.durability.value!r}, "
                f"old_segments={self.old_segments!r})")

    def close(self) -> None:
        """Close the journals the protocol methods opened, then the backend's connections
        (unless the backend was given: its owner closes it)."""
        try:
            super().close()
        finally:
            close = getattr(self.backend, "close", None)
            if self._owns_backend and close is not None:
                close()


def _with_schema(url: str, schema: str) -> str:
    """``url`` with ``?schema=`` set (the form :func:`open_backend` reads)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def _redact_kv(dsn: str) -> str:
    """A key/value DSN without its ``password=`` (quoted values included)."""
    import re

    return re.sub(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", dsn)

"""``FilesystemStorage``: where and how a :class:`~agentjournal.StateManager` keeps journals.

The seed system's ``FilesystemStorage(base_dir=..., compress=...)`` wrote one full-state file per
checkpoint. Here the same two parameters configure a journal store: ``base_dir`` is the store
root (one directory per agent, see ``docs/format.md``) and ``compress`` lz4-compresses snapshots.
The rest are the storage engine's options.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from .backends.base import Backend
from .backends.filesystem import DEFAULT_ROOT, FilesystemBackend
from .journal.writer import Durability
from .replay.journal import Journal

__all__ = ["OLD_SEGMENT_POLICIES", "FilesystemStorage", "OldSegments"]

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
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self.compress = bool(compress)
        self.durability = Durability(durability)
        self.segment_max_bytes = segment_max_bytes
        self.key = key
        self.old_segments: OldSegments = old_segments
        self.group_records = group_records
        self.group_ms = group_ms
        self.backend: Backend = backend or FilesystemBackend(
            self.base_dir, allow_insecure_root=allow_insecure_root)

    def __repr__(self) -> str:
        return (f"FilesystemStorage(base_dir={self.base_dir!r}, compress={self.compress}, "
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
                     create: bool = True) -> Journal:
        """Open ``agent_id``'s journal with this storage's options.

        Snapshot triggers and retention are left to the caller (the ``StateManager``).

        Raises:
            InvalidAgentIdError: ``agent_id`` is not a valid agent id.
            JournalNotFoundError: ``create=False`` (or ``readonly``) and there is no journal.
            JournalLockedError: another writer holds the agent (writable journals only).
        """
        if create and not readonly and isinstance(self.backend, FilesystemBackend):
            # Like the seed's mkdir(parents=True): a nested base_dir needs its parents; the
            # root itself is created (0700, checked) by the backend.
            os.makedirs(os.path.dirname(self.backend.root), mode=0o700, exist_ok=True)
        return Journal(agent_id, backend=self.backend, **self.journal_options(),
                       readonly=readonly, create=create)

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

    def exists(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has a journal here."""
        return self.backend.exists(agent_id)

    def list_agents(self) -> list[str]:
        """Every agent with a journal here, sorted."""
        return self.backend.list_agents()

"""The storage backend protocols: everything the engine needs from where bytes live.

Two shapes, one engine:

* :class:`RecordStore`, **the core**: one agent's journal as whole records keyed by seq. An
  append is atomic and conditional on the expected next seq (a compare-and-append, which is
  also the fence against a stale writer); a snapshot can ride in the same append. Reads go by
  seq; retention deletes a prefix; the writer holds a lease. A transactional store (PostgreSQL)
  implements it with rows and transactions and nothing that looks like a file: no byte
  offsets, no torn tails, no truncation. The engine sees such a store through
  :class:`~agentjournal.backends.segmentview.SegmentView`, written once for every record
  store.
* :class:`AgentStore`, **the segment capability**: byte-exact segment files with torn-tail
  recovery, quarantine, sealing and hints. The filesystem backend (and the memory backend,
  which models it for fault tests) implement it directly, so the on-disk format stays
  byte-exact and every reliability property holds.

A :class:`Backend` hands out one :class:`AgentStore` per agent (a record backend's is a
:class:`~agentjournal.backends.segmentview.SegmentView` over its :class:`RecordStore`). The
contract suites of :mod:`agentjournal.testing` run against every backend of either shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec

SEGMENT_SUFFIX = ".jsonl"
SEALED_SUFFIX = ".jsonl.lz4"
SNAPSHOT_SUFFIX = ".json"
SNAPSHOT_LZ4_SUFFIX = ".json.lz4"


def seq_name(seq: int) -> str:
    """Zero-padded so that names sort in replay order."""
    return f"{seq:020d}"


def parse_seq_name(name: str, suffixes: tuple[str, ...]) -> int | None:
    """The seq of a file named ``<20 digits><suffix>``, or None for any other name."""
    for suffix in suffixes:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if len(stem) == 20 and stem.isdigit():
                return int(stem)
    return None


class Hint(msgspec.Struct, kw_only=True):
    """Where the writer was, so that opening needs no directory listing.

    Never trusted: every use is verified (the segment must exist and have no successor, the
    snapshot must pass its checks), and a wrong or missing hint only costs a listing.
    """

    seg: int = 0
    """First seq of the newest segment."""
    snap: int = 0
    """Seq of the newest snapshot."""
    clean: bool = False
    """The writer closed cleanly (no temp files can have been left behind)."""


class Appender(Protocol):
    """An open, append-only segment."""

    def write(self, data: bytes) -> None:
        """Append ``data`` with one write; raise ``OSError`` on any failure or short write."""

    def sync(self) -> None:
        """Make everything written so far durable (``fdatasync``)."""

    def close(self) -> None:
        """Release the handle (no sync)."""


@runtime_checkable
class AgentStore(Protocol):
    """One agent's files."""

    agent_id: str

    def location(self, kind: str, seq: int | None = None) -> str:
        """Human-readable location of a file (for messages): kind is segment|snapshot|dir."""

    # --- locking -------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the single-writer lock or raise ``JournalLockedError`` at once."""

    def unlock(self) -> None:
        """Release the writer lock."""

    def read_hint(self) -> Hint | None:
        """The last hint written for this agent, or None."""

    def write_hint(self, hint: Hint) -> None:
        """Store a hint (lock holder only; not synced, since it is only a hint)."""

    # --- segments ------------------------------------------------------------------------
    def segment_exists(self, first_seq: int) -> bool:
        """Whether an unsealed or sealed segment starts at ``first_seq``."""

    def list_segments(self) -> list[tuple[int, bool]]:
        """``(first_seq, sealed)`` of every segment, ascending."""

    def read_segment(self, first_seq: int, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a segment from ``offset`` to its end, or ``length`` bytes of it (sealed
        segments are decompressed)."""

    def segment_size(self, first_seq: int) -> int:
        """Current size in bytes of an open (unsealed) segment."""

    def segment_bytes(self, first_seq: int) -> int:
        """Stored size in bytes of a segment (plain or sealed)."""

    def snapshot_bytes(self, seq: int) -> int:
        """Stored size in bytes of a snapshot."""

    def name(self, kind: str, seq: int) -> str:
        """A file's name relative to the agent (kind segment|snapshot), with no host path."""

    def create_segment(self, first_seq: int, header: bytes, durable: bool) -> Appender:
        """Create a segment holding ``header``; ``durable``: its entry survives power loss."""

    def open_segment(self, first_seq: int) -> Appender:
        """Open an existing unsealed segment for appending."""

    def truncate_segment(self, first_seq: int, size: int) -> None:
        """Cut an unsealed segment to ``size`` bytes, durably."""

    def delete_segment(self, first_seq: int) -> None:
        """Remove a segment (plain or sealed)."""

    def seal_segment(self, first_seq: int, data: bytes) -> None:
        """Durably replace a plain segment by its compressed form ``data``."""

    def list_quarantine(self) -> list[str]:
        """Where the bytes cut by recovery so far were kept (empty: nothing was ever cut)."""

    def quarantine(self, first_seq: int, offset: int, data: bytes) -> str:
        """Keep bytes cut from a segment for inspection; returns where they went."""

    # --- snapshots -----------------------------------------------------------------------
    def list_snapshots(self) -> list[int]:
        """Seqs of the snapshots, ascending."""

    def write_snapshot(self, seq: int, data: bytes, compressed: bool) -> None:
        """Atomically and durably store a snapshot (replacing one at the same seq)."""

    def read_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        """``(bytes, compressed)`` of a snapshot, refusing files larger than ``limit``."""

    def delete_snapshot(self, seq: int) -> None:
        """Remove a snapshot."""

    # --- housekeeping --------------------------------------------------------------------
    def remove_temps(self) -> list[str]:
        """Remove temp files left by a crash; returns their names."""

    def disk_usage(self) -> int:
        """Bytes used by this agent's files."""

    def sync_dirs(self) -> None:
        """Make directory entries created so far durable."""

    def close(self) -> None:
        """Release file descriptors (and the lock, if held)."""


class ChangeWaiter(Protocol):
    """Optional capability of an :class:`AgentStore`: wake-ups for followers.

    Not part of :class:`AgentStore` (a store without it is polled); followers look it up
    with ``getattr(store, "wait_for_change", None)`` (:meth:`journal.follow.Tail.wait`).
    """

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a writer probably committed to this agent (True) or ``timeout``
        seconds passed (False). Only a hint: the caller reads the journal after every
        return, so a lost or spurious wake-up costs at most one timeout. Never raises for a
        lost notification channel: it waits out the timeout instead (polling)."""


class Directory(Protocol):
    """What every backend of either shape says about the store as a whole."""

    def exists(self, agent_id: str) -> bool:
        """Whether the agent has a journal here."""

    def list_agents(self) -> list[str]:
        """Agent ids with a journal, sorted."""

    def describe(self) -> str:
        """Where this backend stores things (for messages)."""

    def lock_holders(self) -> dict[str, int]:
        """``{agent_id: pid}`` of the agents whose writer lease is held now (one look-up)."""

    def identity(self) -> object:
        """Hashable; equal for two backend objects on the same store (writers share)."""


@runtime_checkable
class Backend(Directory, Protocol):
    """Where journals live, as the engine sees them (agent stores with segments)."""

    def agent(self, agent_id: str, *, create: bool) -> AgentStore:
        """Open one agent's store; without ``create`` a missing one is JournalNotFoundError."""


# --- the record-level core ----------------------------------------------------------------


class SnapshotData(NamedTuple):
    """A snapshot as a store keeps it: the full state as of record ``seq``."""

    seq: int
    data: bytes
    """The document bytes (lz4 frame when ``compressed``)."""
    compressed: bool


@runtime_checkable
class RecordStore(Protocol):
    """One agent's journal as records: the core every backend can implement.

    A record is one whole line (UTF-8 JSON ending in ``\n``, exactly the bytes that were
    hashed), keyed by its ``seq``; seqs are gap-free from the first kept one. The store never
    parses a record and never holds a part of one. A segment header (a line that opens a
    segment of the journal, see ``docs/format.md``) is kept beside the record it precedes,
    so that the journal's segment view (export, verify) is byte-exact on any store.
    """

    agent_id: str

    def describe(self) -> str:
        """Where this agent's journal is, for messages (no password)."""

    # --- the writer's lease ------------------------------------------------------------
    def acquire(self) -> None:
        """Take the writer lease or raise ``JournalLockedError`` at once. Only the holder
        may change anything; losing it (a lost connection, a takeover) makes every later
        change of this store fail with ``JournalFencedError``."""

    def release(self) -> None:
        """Give the lease up (no-op when not held)."""

    # --- records -----------------------------------------------------------------------
    def append(self, start: int, lines: Sequence[bytes], *, header: bytes | None = None,
               snapshot: SnapshotData | None = None) -> None:
        """Add records ``start``, ``start + 1``, … atomically, all or none.

        Conditional: refused with ``JournalFencedError`` unless this store holds the lease
        and ``start`` is the store's next seq (one past the newest record, or any seq when
        the store holds no record). ``header``: the line of a segment that starts at
        ``start``. ``snapshot``: stored in the same atomic step (its mark record is among
        ``lines``). The records are visible to readers when this returns and durable after
        the next :meth:`sync` (a store may make them durable sooner).
        """

    def sync(self) -> None:
        """Make every record appended so far durable."""

    def read(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(seq, line)`` of the records with ``start <= seq < stop``, ascending."""

    def span(self) -> tuple[int, int] | None:
        """``(first, last)`` seq stored, or None when the store holds no record."""

    def headers(self) -> list[tuple[int, bytes]]:
        """``(seq, header line)`` of every segment header kept, ascending."""

    def delete_below(self, seq: int) -> None:
        """Delete the records (and headers) before ``seq``: retention's prefix cut."""

    def delete_from(self, seq: int) -> None:
        """Delete the records (and headers) from ``seq`` on: a suffix cut by ``repair`` of
        damaged records, or the undo of an import that failed. Lease holder only."""

    # --- snapshots ---------------------------------------------------------------------
    def put_snapshot(self, snapshot: SnapshotData) -> None:
        """Store (or replace) a snapshot on its own, durably (imports, repairs)."""

    def get_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        """``(data, compressed)``; ``FileNotFoundError`` when there is none,
        ``LimitExceededError`` when it is larger than ``limit`` bytes."""

    def list_snapshots(self) -> list[tuple[int, int]]:
        """``(seq, stored bytes)`` of every snapshot, ascending."""

    def delete_snapshot(self, seq: int) -> None:
        """Remove a snapshot (no error when there is none)."""

    def close(self) -> None:
        """Release connections and the lease, if held."""


@runtime_checkable
class RecordBackend(Directory, Protocol):
    """Where record stores live: the backend-level half of the core."""

    def records(self, agent_id: str, *, create: bool) -> RecordStore:
        """One agent's :class:`RecordStore`; without ``create`` a missing one is
        ``JournalNotFoundError``."""


class Quarantine(Protocol):
    """Optional capability of a :class:`RecordStore`: keep bytes that ``repair`` cut.

    A record store without it keeps no copy; the ``cut`` record in the chain still names
    the cut bytes by their digest and size.
    """

    def quarantine(self, name: str, data: bytes) -> None:
        """Keep ``data`` under ``name``."""

    def list_quarantine(self) -> list[str]:
        """Names of everything kept, oldest first."""


class Usage(Protocol):
    """Optional capability of a :class:`RecordStore`: how many bytes the journal holds."""

    def usage(self) -> int:
        """Bytes of records, headers and snapshots (not the store's own overhead)."""

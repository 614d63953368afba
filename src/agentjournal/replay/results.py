"""What the :class:`~agentjournal.Journal` hands back, and the warning it gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import delta


class SnapshotSkippedWarning(UserWarning):
    """A snapshot failed its checks and an older one (or genesis) was used instead."""


@dataclass(frozen=True)
class Resumed:
    """Where an agent stands: the state after its last record."""

    state: Any
    """The state after the last record; ``{}`` for an empty journal (one with no record yet:
    a journal that cannot be read raises instead, never looks empty)."""
    step: int
    """The agent step of the last record (0 for an empty journal)."""
    seq: int
    """The seq of the last record (0 for an empty journal)."""

    @property
    def next_step(self) -> int:
        return self.step + 1


@dataclass(frozen=True)
class Appended:
    """What :meth:`Journal.append` recorded."""

    seq: int
    step: int
    ops: list[delta.Op]
    snapshot_seq: int | None
    """Seq of the snapshot written after this step, if a trigger fired."""
    hash: str = ""
    """The step record's chain hash: with ``seq``, the journal's head right after it (keep it
    off the store to detect truncation and rollback later; see :class:`Head`)."""


@dataclass(frozen=True)
class Head:
    """The tip of a journal's chain: its last record's seq and hash.

    A head kept *off* the store (a witness file elsewhere, a database, a log service) detects
    what no chain inside the store can: records cut off the end, or the whole store put back
    to an older copy. Check it with ``Journal(..., expect_head=head)`` or
    ``verify(against=head)``.
    """

    agent_id: str
    seq: int
    hash: str



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



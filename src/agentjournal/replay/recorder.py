"""Recording a step and writing a snapshot: the engine's one trigger and snapshot writer.

:class:`~agentjournal.Journal` checks its arguments with :func:`check_append_args`, asks
:class:`Triggers` whether a snapshot is due, and calls :func:`write_snapshot`; the facade and
the agent loop configure these triggers (``snapshot_every``/``snapshot_seconds``) instead of
re-implementing them. Retention after a snapshot is housekeeping: it never fails the step
that triggered it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from .. import delta
from ..errors import CorruptRecordError, CorruptSnapshotError
from ..events import FORMAT_VERSION
from ..retention import compact
from ..snapshot.store import SnapshotDoc, encode_snapshot
from .core import Core
from .housekeeping import RetentionView

__all__ = ["Retention", "Triggers", "check_append_args", "retention_view", "write_snapshot"]

log = logging.getLogger("agentjournal")


def check_append_args(state: Any, ops: list[delta.Op] | None, step: int | None,
                      snapshot: bool | None, meta: dict[str, Any] | None) -> None:
    """Validate every argument of ``Journal.append`` before anything is written."""
    if state is None and ops is None:
        raise ValueError("append() needs the new state (a JSON document; None cannot be "
                         "recorded as a state) or ops=[...] (RFC 6902 operations)")
    if state is not None and ops is not None:
        raise ValueError("pass either the new state or ops=, not both")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"step must be an int, not {type(step).__name__} ({step!r})")
    if step is not None and not 0 <= step < 2**63:
        raise ValueError(f"step {step} is outside 0..2**63-1")
    if snapshot is not None and not isinstance(snapshot, bool):
        raise TypeError(f"snapshot must be True, False or None, not {snapshot!r}")
    if meta is not None:
        if not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict of JSON values, not {type(meta).__name__}")
        delta.check_json(meta, "meta")


@dataclass(frozen=True)
class Triggers:
    """When a snapshot follows a step: every ``every`` steps or ``seconds`` seconds since
    the last one (a monotonic clock), whichever first; None disables that trigger."""

    every: int | None
    seconds: float | None

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise ValueError("snapshot_every must be >= 1 or None")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("snapshot_seconds must be > 0 or None")

    def due(self, core: Core, step: int) -> bool:
        """For a writable core: would a record at ``step`` be followed by a snapshot."""
        if self.every is not None and step - core.snap_step >= self.every:
            return True
        return self.seconds is not None and core.seconds_since_snapshot() >= self.seconds

    def due_from(self, base_step: int, base_ts: float, step: int, now: float) -> bool:
        """The same question from a snapshot base read off the store (wall clock)."""
        if self.every is not None and step - base_step >= self.every:
            return True
        return self.seconds is not None and now - base_ts >= self.seconds


@dataclass(frozen=True)
class Retention:
    """Retention run after every snapshot (see :func:`agentjournal.retention.compact`)."""

    keep_snapshots: int
    prune: bool
    compress_segments: bool
    sparse_gap: int | None = None


def retention_view(core: Core) -> RetentionView:
    """The core's retention view (built once, kept on the core)."""
    if core.housekeeping is None:
        core.housekeeping = RetentionView(core)
    return cast(RetentionView, core.housekeeping)


def write_snapshot(core: Core, *, compress: bool, retention: Retention | None) -> int | None:
    """Snapshot the core's current state (synced first, so it never refers to records that
    could be lost), record its mark and run retention; returns its seq (None: empty)."""
    w = core.check_writable()
    core.ensure_shadow()
    if w.last_seq == 0:
        return None
    w.sync()
    seq, step = w.last_seq, w.last_step
    doc = SnapshotDoc(format=FORMAT_VERSION, agent_id=core.agent_id, seq=seq, step=step,
                      chain_hash=w.last_hash, ts=time.time(), state=core.shadow)
    data, digest = encode_snapshot(doc, compress)
    try:
        core.store.write_snapshot(seq, data, compress)
        w.append_mark(at=seq, digest=digest, step=step)
    except BaseException:
        # The file may be in place (unsynced, or with no mark record after it): retention
        # must list the snapshots again rather than trust what it knows.
        retention_view(core).listing_unknown()
        raise
    w.set_hint(snap=seq)
    core.reader.tail = w.seg_first
    core.shadow_seq = w.last_seq
    core.set_snapshot_base(step, doc.ts)
    view = retention_view(core)
    view.wrote_snapshot(seq)
    core.mat.snapshot_written(seq)
    if retention is not None:
        try:
            rep = compact(view, keep_snapshots=retention.keep_snapshots, prune=retention.prune,
                          compress_segments=retention.compress_segments,
                          sparse_gap=retention.sparse_gap)
            if rep.errors:
                w.left_temps = True  # a failed seal may have left its temp file
        except (OSError, CorruptRecordError, CorruptSnapshotError) as e:
            # Retention is housekeeping: it must never fail the step that triggered it.
            w.left_temps = True
            log.error("retention for %s failed (the snapshot is safe): %s", core.agent_id, e)
    return seq

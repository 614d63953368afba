"""Saves as journal records: what a checkpoint id names and how a save is found again.

One save of an :class:`~agentjournal.AgentState` is one ``step`` record (the delta from the
previous save). Its checkpoint id is ``<agent_id>@<step:010d>.<seq:010d>``: two saves at the same
step are two checkpoints, and one agent's ids sort in save order. The step-only form of earlier
versions (``<agent_id>@<step:010d>``) still names the last save of that step.

A *deleted* save (the seed protocol's ``delete``) stays in the journal, which is append-only; a
record with no ops and ``meta={"deleted": <checkpoint id>}`` hides it from listings and from the
protocol's ``load``/``exists``.

Used by :class:`~agentjournal.StateManager` and by
:class:`~agentjournal.FilesystemStorage`'s protocol methods.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Callable, Container
from typing import Any, Protocol

import msgspec

from ._ids import validate_agent_id
from ._time import utc_datetime
from .errors import (
    CheckpointNotFoundError,
    InvalidAgentIdError,
    JournalError,
    JournalNotFoundError,
    StepNotFoundError,
    StepPrunedError,
)
from .events import Anchor, AnyRecord, Cut, Fork, SnapshotMark, Step
from .replay import Appended, Journal
from .state import (
    STATUSES,
    AgentState,
    CheckpointMetadata,
    HistoryEntry,
    format_checkpoint_id,
    parse_checkpoint_ref,
)

__all__ = ["DELETED", "check_state", "delete_save", "fork_origins", "history_entry", "lineage",
           "list_saves", "load_save", "record_state", "register_for_exit"]

log = logging.getLogger("agentjournal")

DELETED = "deleted"
"""The ``meta`` key of a record that hides a deleted save."""

Reader = Callable[[str, Callable[[Journal], Any]], Any]
"""``read(agent_id, fn)``: run ``fn`` on a journal of ``agent_id`` (writer or read-only)."""

_rec_encoder = msgspec.json.Encoder()


class _Closable(Protocol):
    def close(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()


def register_for_exit(obj: _Closable) -> None:
    """Close ``obj`` at interpreter exit if it is still alive then (the seed's API has no
    ``close``): pending ``group``/``none`` records are synced and locks released."""
    _live.add(obj)


@atexit.register
def _close_live() -> None:
    for obj in list(_live):
        try:
            obj.close()
        except Exception as e:  # noqa: BLE001 - exiting: report, keep closing the others
            log.error("closing %r at exit failed: %s", obj, e)


def check_state(state: Any, known: Container[str] = ()) -> str:
    """Validate a state about to be saved; returns its agent id (not checked again when in
    ``known``, ids already validated).

    Raises:
        TypeError: not an :class:`AgentState`.
        InvalidAgentIdError: an empty or invalid ``agent_id``.
        ValueError: a bad ``status`` or ``step_number``.
    """
    if not isinstance(state, AgentState):
        raise TypeError(f"a checkpoint is an AgentState, not {type(state).__name__}")
    agent_id = state.agent_id
    if isinstance(agent_id, str) and agent_id in known:
        pass
    elif not agent_id:
        raise InvalidAgentIdError(
            "AgentState.agent_id is empty",
            hint="give each agent or task its own stable id, e.g. "
                 "AgentState(agent_id='research-42'); a shared default would let one "
                 "task resume another's state")
    else:
        validate_agent_id(agent_id)
    if state.status not in STATUSES:
        raise ValueError(f"status must be one of {sorted(STATUSES)}, not {state.status!r}")
    step = state.step_number
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step_number must be an int >= 0, not {step!r}")
    return agent_id


def record_state(j: Journal, state: AgentState, snapshot: bool | None,
                 prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 sync: bool = True) -> tuple[str, Appended]:
    """Append ``state`` as one save; ``state.checkpoint_id`` is set to its id (restored if the
    append fails). The caller holds the journal exclusively. With ``sync=False`` the save is
    written but not synced (see ``Journal.append``): the caller syncs before acknowledging.

    Raises:
        ValueError: ``step_number`` is lower than the journal's last step.
    """
    step = state.step_number
    if step < j.last_step:
        raise ValueError(f"step_number {step} is lower than the last recorded step "
                         f"{j.last_step} of {j.agent_id!r}")
    # The record about to be written is the next seq: the id can be part of the state it saves.
    cid = format_checkpoint_id(j.agent_id, step, j.last_seq + 1)
    old, state.checkpoint_id = state.checkpoint_id, cid
    try:
        doc = state.to_dict()
        if prepare is not None:
            doc = prepare(doc)
        appended = j.append(doc, step=step, snapshot=snapshot, sync=sync)
    except BaseException:
        state.checkpoint_id = old
        raise
    return cid, appended


def delete_save(j: Journal, checkpoint_id: str) -> None:
    """Record that ``checkpoint_id`` is deleted (a no-op record carrying the note)."""
    j.append(ops=[], step=j.last_step, snapshot=False, meta={DELETED: checkpoint_id})


def _deleted_after(j: Journal, seq: int, cid: str) -> bool:
    for r in j.records(seq + 1):
        if isinstance(r, Step) and r.meta is not None and r.meta.get(DELETED) == cid:
            return True
    return False


def load_save(read: Reader, checkpoint_id: str, hide_deleted: bool = False,
              want_state: bool = True) -> AgentState | None:
    """The state of a save, by checkpoint id (``None`` with ``want_state=False``, once found).

    Raises:
        CheckpointNotFoundError: malformed id, unknown agent, no such save (or deleted, with
            ``hide_deleted``).
        StepPrunedError: the save was removed by pruning retention.
    """
    agent_id, step, seq = parse_checkpoint_ref(checkpoint_id)

    def get(j: Journal) -> Any:
        if seq is None:
            doc = j.state_at(step)
            if not isinstance(doc, dict) or doc.get("step_number") != step:
                raise StepNotFoundError(f"agent {agent_id!r} recorded no step {step}")
            return doc
        rec = next(iter(j.records(seq, seq)), None)
        if rec is None:
            segs = j.segment_seqs()
            if segs and seq < segs[0]:
                raise StepPrunedError(f"the save at seq {seq} was pruned", seq=seq)
            raise StepNotFoundError(f"agent {agent_id!r} has no record {seq}", seq=seq)
        if (not isinstance(rec, (Step, Fork)) or rec.step != step
                or (isinstance(rec, Step) and rec.meta is not None and DELETED in rec.meta)):
            raise StepNotFoundError(f"record {seq} of {agent_id!r} is not a save at step {step}",
                                    seq=seq)
        if hide_deleted and _deleted_after(j, seq, checkpoint_id):
            raise StepNotFoundError(f"checkpoint {checkpoint_id!r} was deleted", seq=seq)
        return j.state_at_seq(seq) if want_state else None

    try:
        doc = read(agent_id, get)
    except StepPrunedError:
        raise
    except (JournalNotFoundError, StepNotFoundError) as e:
        raise CheckpointNotFoundError(f"no checkpoint {checkpoint_id!r}: {e.message}",
                                      hint=e.hint) from None
    return AgentState.from_dict(doc) if want_state else None


def list_saves(j: Journal, hide_deleted: bool = True) -> list[CheckpointMetadata]:
    """One entry per save (``step`` or ``fork`` record), newest first, with the status and fork
    origin tracked through the ops; deleted saves left out unless ``hide_deleted`` is false."""
    snaps = set(j.snapshot_seqs())
    agent_id = j.agent_id
    status = "running"
    parent: str | None = None
    out: list[CheckpointMetadata] = []
    deleted: set[str] = set()
    segs = j.segment_seqs()
    if segs and segs[0] > 1 and segs[0] - 1 in snaps:
        # Pruned: the history starts at a snapshot whose own record is gone.
        doc = j.load_snapshot(segs[0] - 1)
        if isinstance(doc.state, dict):
            status = str(doc.state.get("status", status))
            parent = doc.state.get("parent_checkpoint_id")
        out.append(CheckpointMetadata(
            checkpoint_id=format_checkpoint_id(agent_id, doc.step, doc.seq), agent_id=agent_id,
            timestamp=utc_datetime(doc.ts), step_number=doc.step,
            status=status, size_bytes=0, parent_checkpoint_id=parent, seq=doc.seq,
            snapshot=True))
    for r in j.records():
        if not isinstance(r, (Step, Fork)):
            continue
        if isinstance(r, Step) and r.meta is not None and DELETED in r.meta:
            deleted.add(str(r.meta[DELETED]))
            continue
        for op in r.ops:
            path = op.get("path")
            if path == "/status" and op.get("op") != "remove":
                status = str(op.get("value"))
            elif path == "/parent_checkpoint_id":
                parent = op.get("value") if op.get("op") != "remove" else None
            elif path == "":
                value = op.get("value")
                if isinstance(value, dict):
                    status = str(value.get("status", status))
                    parent = value.get("parent_checkpoint_id")
        if isinstance(r, Fork):
            parent = format_checkpoint_id(r.parent, r.parent_step, r.parent_seq)
        out.append(CheckpointMetadata(
            checkpoint_id=format_checkpoint_id(agent_id, r.step, r.seq), agent_id=agent_id,
            timestamp=utc_datetime(r.ts), step_number=r.step,
            status=status, size_bytes=len(_rec_encoder.encode(r)) + 1,
            parent_checkpoint_id=parent, seq=r.seq, snapshot=r.seq in snaps))
    if hide_deleted and deleted:
        out = [m for m in out if m.checkpoint_id not in deleted]
    out.reverse()
    return out


def history_entry(agent_id: str, r: AnyRecord) -> HistoryEntry:
    """One record as a :class:`HistoryEntry` (a save's id names its seq; a snapshot mark's, the
    save it snapshots)."""
    kind = {Step: "step", SnapshotMark: "snapshot", Fork: "fork", Anchor: "anchor",
            Cut: "cut"}[type(r)]
    ops = r.ops if isinstance(r, (Step, Fork)) else []
    at = r.at if isinstance(r, SnapshotMark) else r.seq if isinstance(r, (Step, Fork)) else None
    return HistoryEntry(seq=r.seq, step=r.step,
                        timestamp=utc_datetime(r.ts), kind=kind,
                        ops=ops, checkpoint_id=format_checkpoint_id(agent_id, r.step, at))


def fork_origins(storage: Any) -> dict[str, tuple[str, str, str]]:
    """fork agent id -> (parent agent, parent checkpoint id, the fork's first checkpoint id)
    for every fork in ``storage`` (a :class:`~agentjournal.FilesystemStorage`).

    The parent id is the one the fork was made from (the ``parent_checkpoint_id`` its first save
    records; the ``fork`` record's own parent otherwise), the child id that first save's, which
    :meth:`StateManager.fork_from_checkpoint` returned. Journals whose first records were pruned
    are not found.
    """
    origins: dict[str, tuple[str, str, str]] = {}
    for other in storage.list_agents():
        try:
            with storage.open_journal(other, readonly=True, create=False) as j:
                segs = j.segment_seqs()
                if not segs or segs[0] != 1:
                    continue
                head = list(j.records(1, 4))
        except JournalError:
            continue
        if not head or not isinstance(head[0], Fork):
            continue
        f = head[0]
        parent = format_checkpoint_id(f.parent, f.parent_step, f.parent_seq)
        child = format_checkpoint_id(other, f.step, f.seq)
        for r in head[1:]:
            if isinstance(r, Step):
                child = format_checkpoint_id(other, r.step, r.seq)
                for op in r.ops:
                    if op.get("path") == "/parent_checkpoint_id" and isinstance(
                            op.get("value"), str):
                        parent = op["value"]
                break
        origins[other] = (f.parent, parent, child)
    return origins


def lineage(origins: dict[str, tuple[str, str, str]], agent_id: str) -> dict[str, list[str]]:
    """Parent checkpoint id -> child checkpoint ids around ``agent_id``: its own origin and every
    fork descending from it (forks of forks included), children sorted."""
    tree: dict[str, list[str]] = {}
    if agent_id in origins:
        _, parent, child = origins[agent_id]
        tree.setdefault(parent, []).append(child)
    seen, frontier = {agent_id}, [agent_id]
    while frontier:
        here = frontier.pop()
        for other, (parent_agent, parent, child) in sorted(origins.items()):
            if parent_agent == here and other not in seen:
                tree.setdefault(parent, []).append(child)
                seen.add(other)
                frontier.append(other)
    for children in tree.values():
        children.sort()
    return tree

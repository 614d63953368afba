"""The agent state of the seed system, field for field, as a mutable dataclass.

Code written against the seed's ``AgentState`` keeps working: the same field names and
defaults, mutated in place (``state.step_number += 1``,
``state.conversation_history.append(...)``) and then saved. What changes:

* :meth:`AgentState.to_dict` is cheap. It builds one new top-level dict whose values are the
  state's own lists and dicts (no copy); only the two datetime fields become ISO strings. The
  journal finds what changed by comparing against its private copy of the last recorded state,
  so saving a state that gained one message costs that message, not the state.
* :meth:`AgentState.from_dict` accepts fields it does not know (a state written by a newer
  version): they are kept in :attr:`AgentState.unknown_fields` and written back unchanged.
* A value that JSON cannot represent is refused when the state is saved, with the JSON Pointer
  of the value (``/memory_contents/client``), before anything is written.

Also here: checkpoint ids (``<agent_id>@<step:010d>.<seq:010d>``, one per save, see
:func:`format_checkpoint_id`), the entries :class:`CheckpointMetadata` and :class:`HistoryEntry`
that list an agent's saves, and :class:`StateSnapshot`.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from . import delta
from .errors import CheckpointNotFoundError

__all__ = [
    "STATUSES",
    "AgentState",
    "CheckpointMetadata",
    "HistoryEntry",
    "StateSnapshot",
    "Status",
    "format_checkpoint_id",
    "parse_checkpoint_id",
    "parse_checkpoint_ref",
]

Status = Literal["running", "completed", "failed", "interrupted"]
STATUSES: frozenset[str] = frozenset({"running", "completed", "failed", "interrupted"})
"""The values of :attr:`AgentState.status`."""

_DATETIME_FIELDS = ("timestamp", "updated_at")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_checkpoint_id() -> str:
    return f"ckpt_{uuid.uuid4().hex[:12]}"


@dataclass
class AgentState:
    """Everything needed to resume an agent, with the seed system's field names.

    Every field except the two datetimes must hold JSON values only (``dict`` with ``str``
    keys, ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``).

    Attributes:
        checkpoint_id: set by :meth:`StateManager.save_checkpoint` to the id of the save just
            recorded (``<agent_id>@<step:010d>.<seq:010d>``).
        agent_id: the agent's journal; required (an empty id is refused when saving).
        model: name of the model in use (informational).
        timestamp: when the state was created (a ``datetime``; stored as ISO 8601).
        updated_at: when the state was last updated, if the caller tracks it.
        step_number: the agent step this state is the result of.
        conversation_history: message dicts, oldest first.
        memory_contents: the agent's memory.
        pending_actions: the plan still to do.
        completed_actions: the plan done so far.
        budget_spent_usd: cost so far.
        approval_history: permission decisions.
        tool_usage_counts: calls per tool.
        tool_results_cache: cached tool results.
        active_specialists: specialists in use.
        specialist_invocations: specialist calls.
        workflow_run_id: the workflow run this agent belongs to.
        workflow_state: workflow engine state.
        control_protocol_state: control protocol state.
        registered_hooks: hook registrations to restore.
        hook_event_history: hook events seen.
        parent_checkpoint_id: the checkpoint this state was forked from.
        status: ``running``, ``completed``, ``failed`` or ``interrupted``.
        metadata: anything else.
        unknown_fields: fields this version does not know (from a newer writer); written back
            as top-level fields so nothing is lost.
    """

    checkpoint_id: str = field(default_factory=_new_checkpoint_id)
    agent_id: str = ""
    model: str = ""
    timestamp: datetime = field(default_factory=_now)
    updated_at: datetime | None = None
    step_number: int = 0

    conversation_history: list[dict[str, Any]] = field(default_factory=list)
    memory_contents: dict[str, Any] = field(default_factory=dict)

    pending_actions: list[dict[str, Any]] = field(default_factory=list)
    completed_actions: list[dict[str, Any]] = field(default_factory=list)

    budget_spent_usd: float = 0.0
    approval_history: list[dict[str, Any]] = field(default_factory=list)

    tool_usage_counts: dict[str, int] = field(default_factory=dict)
    tool_results_cache: dict[str, Any] = field(default_factory=dict)

    active_specialists: list[str] = field(default_factory=list)
    specialist_invocations: list[dict[str, Any]] = field(default_factory=list)

    workflow_run_id: str | None = None
    workflow_state: dict[str, Any] = field(default_factory=dict)

    control_protocol_state: dict[str, Any] = field(default_factory=dict)

    registered_hooks: list[dict[str, Any]] = field(default_factory=list)
    hook_event_history: list[dict[str, Any]] = field(default_factory=list)

    parent_checkpoint_id: str | None = None
    status: Status = "running"
    metadata: dict[str, Any] = field(default_factory=dict)

    unknown_fields: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The state as a JSON document, sharing this state's lists and dicts (no copy).

        Datetimes become ISO 8601 strings; :attr:`unknown_fields` are merged back in at the top
        level. Mutating the result's containers mutates the state.
        """
        d = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        ts = self.timestamp
        d["timestamp"] = ts.isoformat() if isinstance(ts, datetime) else ts
        up = self.updated_at
        d["updated_at"] = up.isoformat() if isinstance(up, datetime) else up
        if self.unknown_fields:
            for k, v in self.unknown_fields.items():
                d.setdefault(k, v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentState:
        """Build a state from a document written by :meth:`to_dict` (or by the seed system).

        Missing fields take their defaults; unknown ones go to :attr:`unknown_fields`. ISO
        strings in ``timestamp``/``updated_at`` become datetimes. ``data``'s containers are
        used as they are (not copied).

        Raises:
            TypeError: ``data`` is not a dict.
            ValueError: a datetime field holds a string that is not ISO 8601.
        """
        if not isinstance(data, dict):
            raise TypeError(f"an agent state is a dict, not {type(data).__name__}")
        known: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for k, v in data.items():
            if k in _FIELD_SET:
                known[k] = v
            else:
                unknown[k] = v
        for name in _DATETIME_FIELDS:
            v = known.get(name)
            if isinstance(v, str):
                try:
                    known[name] = datetime.fromisoformat(v)
                except ValueError:
                    raise ValueError(f"{name} {v!r} is not an ISO 8601 datetime") from None
        extra = known.pop("unknown_fields", None)
        if isinstance(extra, dict):
            unknown = {**extra, **unknown}
        if known.get("timestamp") is None:
            known.pop("timestamp", None)
        state = cls(**known)
        state.unknown_fields = unknown
        return state

    def summary(self) -> dict[str, Any]:
        """A short human-readable description (the seed's ``StateSnapshot.get_summary``)."""
        return {
            "checkpoint_id": self.checkpoint_id,
            "agent_id": self.agent_id,
            "step_number": self.step_number,
            "status": self.status,
            "conversation_turns": len(self.conversation_history),
            "pending_actions": len(self.pending_actions),
            "completed_actions": len(self.completed_actions),
            "budget_spent_usd": self.budget_spent_usd,
        }


_FIELD_SET: frozenset[str] = frozenset(f.name for f in dataclasses.fields(AgentState))
_PLAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(AgentState)
    if f.name not in _DATETIME_FIELDS and f.name != "unknown_fields"
)


@dataclass
class CheckpointMetadata:
    """One entry of :meth:`StateManager.list_checkpoints`: a recorded step, without its state.

    Attributes:
        checkpoint_id: ``<agent_id>@<step:010d>.<seq:010d>``; pass it to ``load_checkpoint``.
        agent_id: the agent.
        timestamp: when the step was recorded.
        step_number: the agent step.
        status: the agent's status after that step.
        size_bytes: bytes the step's record takes in the journal.
        parent_checkpoint_id: for the first step of a fork, the checkpoint it came from.
        seq: the journal record number of the save.
        snapshot: whether a full snapshot of this save is stored (it restores fastest).
    """

    checkpoint_id: str
    agent_id: str
    timestamp: datetime
    step_number: int
    status: str
    size_bytes: int
    parent_checkpoint_id: str | None = None
    seq: int = 0
    snapshot: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The metadata as JSON values (timestamp as ISO 8601)."""
        d = dataclasses.asdict(self)
        d["timestamp"] = self.timestamp.isoformat()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMetadata:
        """Build metadata from :meth:`to_dict`'s output (or the seed's); an ISO ``timestamp``
        becomes a datetime. ``data`` is not modified.

        Raises:
            TypeError: ``data`` is not a dict, or lacks a required field / has an unknown one.
            ValueError: ``timestamp`` is a string that is not ISO 8601.
        """
        if not isinstance(data, dict):
            raise TypeError(f"checkpoint metadata is a dict, not {type(data).__name__}")
        d = dict(data)
        ts = d.get("timestamp")
        if isinstance(ts, str):
            try:
                d["timestamp"] = datetime.fromisoformat(ts)
            except ValueError:
                raise ValueError(f"timestamp {ts!r} is not an ISO 8601 datetime") from None
        return cls(**d)


_CID = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,127})@([0-9]{1,18})(?:\.([0-9]{1,18}))?")


def format_checkpoint_id(agent_id: str, step: int, seq: int | None = None) -> str:
    """The checkpoint id of one save: ``<agent_id>@<step:010d>.<seq:010d>``.

    ``seq`` is the journal record of the save, so two saves at the same step have two ids, and
    one agent's ids sort in the order they were saved. Without ``seq`` the id names the step
    (``<agent_id>@<step:010d>``, the form of earlier versions): the last save at that step.
    """
    if seq is None:
        return f"{agent_id}@{step:010d}"
    return f"{agent_id}@{step:010d}.{seq:010d}"


def parse_checkpoint_id(checkpoint_id: str) -> tuple[str, int]:
    """Split a checkpoint id into agent id and step (see :func:`parse_checkpoint_ref`).

    Raises:
        CheckpointNotFoundError: not of the form ``<agent_id>@<step>[.<seq>]``.
    """
    agent_id, step, _seq = parse_checkpoint_ref(checkpoint_id)
    return agent_id, step


def parse_checkpoint_ref(checkpoint_id: str) -> tuple[str, int, int | None]:
    """Split a checkpoint id into agent id, step and journal seq (None for a step-only id).

    Raises:
        CheckpointNotFoundError: not of the form ``<agent_id>@<step>[.<seq>]``.
    """
    m = _CID.fullmatch(checkpoint_id) if isinstance(checkpoint_id, str) else None
    if m is None:
        raise CheckpointNotFoundError(
            f"no checkpoint {checkpoint_id!r}: ids look like 'agent-1@0000000042.0000000107'",
            hint="list them with StateManager.list_checkpoints(agent_id); seed-system ids "
                 "(ckpt_...) are reported by agentjournal.migrate on import")
    seq = m.group(3)
    return m.group(1), int(m.group(2)), (int(seq) if seq is not None else None)


@dataclass
class StateSnapshot:
    """An in-memory copy of a state, for inspection (the seed's ``StateSnapshot``).

    Made by :meth:`StateManager.create_snapshot`; nothing is written.

    Attributes:
        state: a deep copy of the state (changing the live state does not change it).
        created_at: when the copy was made.
        snapshot_reason: why (for audit logs).
    """

    state: AgentState
    created_at: datetime = field(default_factory=_now)
    snapshot_reason: str = "manual"

    def get_summary(self) -> dict[str, Any]:
        """The state's :meth:`AgentState.summary` plus the reason and creation time."""
        out = self.state.summary()
        out["snapshot_reason"] = self.snapshot_reason
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class HistoryEntry:
    """One record of an agent's history.

    Attributes:
        seq: record number in the journal.
        step: the agent step it belongs to.
        timestamp: when it was recorded.
        kind: ``step``, ``snapshot``, ``fork`` or ``anchor``.
        ops: for ``step`` and ``fork``, the JSON Patch ops it applied.
        checkpoint_id: the checkpoint id of its step.
    """

    seq: int
    step: int
    timestamp: datetime
    kind: str
    ops: list[delta.Op]
    checkpoint_id: str

    def describe(self, width: int = 72) -> str:
        """One line saying what the record changed, e.g. ``+1 message (assistant), budget
        0.12→0.15`` (a snapshot or anchor says so), cut to ``width`` characters."""
        from .summary import summarize_ops

        if self.kind in ("snapshot", "anchor", "cut"):
            return f"({self.kind})"
        text = summarize_ops(self.ops) if self.ops else "(no change)"
        return text if len(text) <= width else text[: width - 3] + "..."



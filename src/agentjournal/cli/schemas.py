"""The ``--json`` output of every command, as typed dictionaries: one stable schema each.

These types are what the commands build (so ``mypy`` checks the shapes) and the source of
the JSON Schemas that ``agentjournal schema COMMAND`` prints and ``docs/cli.md`` describes.
Fields are only ever added; none is renamed, retyped or removed within a major version.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

from .. import status

SCHEMA_VERSION = 1
"""Bumped only for an incompatible change (never within a major version)."""

Health = status.Health
Kind = status.Kind


class ProblemOut(TypedDict):
    """One problem found by ``verify`` (``path`` and ``offset`` locate it)."""

    kind: str
    message: str
    path: str | None
    offset: int | None
    seq: int | None


class LsAgent(TypedDict):
    """One agent in ``ls --json``."""

    agent_id: str
    steps: int
    """The last recorded agent step (0 when empty)."""
    records: int
    """Seq of the last record (records are numbered 1, 2, 3 ...)."""
    last_ts: float | None
    last_time: str | None
    status: str | None
    """The state's ``status`` field when it is a string (``running``, ``completed`` ...)."""
    writer_pid: int | None
    """Process id holding the writer lock right now, if any (Linux only)."""
    snapshots: int
    segments: int
    bytes: int
    health: Health
    problem: str | None
    quarantined: int
    """Files of bytes that recovery cut off and kept in the agent's ``quarantine/``."""


class LsOut(TypedDict):
    """``ls --json``."""

    root: str
    agents: list[LsAgent]


class LogEntry(TypedDict):
    """One line of ``log --json`` (JSON Lines: one object per record)."""

    agent_id: str
    seq: int
    step: int
    ts: float
    time: str
    kind: Kind
    summary: str
    ops: list[dict[str, Any]] | None
    """The record's RFC 6902 ops (``step`` and ``fork`` records), else null."""
    details: dict[str, Any]
    """Fields of the other kinds: ``at``/``digest`` (snapshot), ``parent``/``parent_seq``/
    ``parent_step``/``parent_hash`` (fork), ``first_seq``/``first_prev``/``removed`` (anchor),
    ``meta`` (a step carrying caller metadata, format 2)."""
    prev: str
    h: str


class ShowOut(TypedDict):
    """``show --json``."""

    agent_id: str
    step: int
    seq: int
    path: str
    value: Any


class PatchOp(TypedDict):
    """One RFC 6902 op in ``diff --json`` (the output is a JSON array of these)."""

    op: Literal["add", "remove", "replace"]
    path: str
    value: NotRequired[Any]


class CutOut(TypedDict):
    """A ``cut`` record in ``verify --json``: recovery cut bytes off the journal on open."""

    seq: int
    time: str
    reason: Literal["torn_tail", "damage"]
    segment: int
    """First seq of the segment the bytes were cut from."""
    offset: int
    size: int
    digest: str
    """BLAKE2b-256 (hex) of the cut bytes."""
    quarantine: str
    """The file in the agent's ``quarantine/`` holding them."""
    kept: bool
    """That file is still there."""


class VerifyAgent(TypedDict):
    """One agent in ``verify --json``."""

    agent_id: str
    ok: bool
    records: int
    segments: int
    snapshots: int
    first_seq: int
    last_seq: int
    last_step: int
    last_hash: str
    """The last record's hash: with ``last_seq``, the head to keep off the store."""
    quarantined: list[str]
    """Files of bytes recovery cut off this journal (kept for inspection)."""
    cuts: list[CutOut]
    """The cuts recovery recorded in the chain (``cut`` records), oldest first."""
    chain_ok: bool
    snapshots_ok: bool
    problems: list[ProblemOut]


class VerifyOut(TypedDict):
    """``verify --json``."""

    ok: bool
    agents: list[VerifyAgent]


class ForkOut(TypedDict):
    """``fork --json``."""

    parent: str
    parent_step: int
    parent_seq: int
    agent_id: str
    step: int
    seq: int


class CompactOut(TypedDict):
    """``compact --json``."""

    agent_id: str
    dry_run: bool
    keep_snapshots: int
    prune: bool
    compress_segments: bool
    snapshots_deleted: list[int]
    segments_deleted: list[int]
    segments_compressed: list[int]
    bytes_before: int
    bytes_saved: int
    anchor_seq: int | None
    errors: list[str]


class ExpireAgent(TypedDict):
    """One agent in ``expire --json``."""

    agent_id: str
    action: str
    """``pruned``, ``dropped``, ``skipped`` (a live writer elsewhere) or ``error``."""
    detail: str
    segments_deleted: int
    snapshots_deleted: int
    bytes_saved: int
    anchor_seq: int | None
    last_active: float | None
    """Unix time of the agent's newest step (null: not looked at)."""


class ExpirePartition(TypedDict):
    """One time partition in ``expire --json`` (a store partitioned by time)."""

    name: str
    start: str
    """ISO 8601 UTC: the first moment the partition covers."""
    end: str
    bytes: int
    dropped: bool
    """Dropped (with ``--dry-run``: would be)."""
    pinned_by: list[str]
    """Some agents that still see rows in it (why it was not dropped)."""


class ExpireOut(TypedDict):
    """``expire --json``."""

    dry_run: bool
    cutoff: float
    cutoff_time: str
    drop_cutoff: float | None
    agents_seen: int
    unchanged: int
    segments_deleted: int
    snapshots_deleted: int
    bytes_saved: int
    pruned: list[ExpireAgent]
    dropped: list[ExpireAgent]
    skipped: list[ExpireAgent]
    errors: list[ExpireAgent]
    partitions: list[ExpirePartition]
    """Time partitions looked at (empty unless the store is partitioned by time)."""


class SkippedSnapshot(TypedDict):
    """A snapshot ``export`` left out because the journal would not use it."""

    seq: int
    reason: str


class ExportRange(TypedDict):
    """What the export of a step range holds (``export --from/--to``)."""

    from_step: int
    to_step: int
    first_step: int
    """The first step whose state the file rebuilds (the range starts at a snapshot)."""
    base_seq: int
    """The snapshot the history starts from (0: it starts at seq 1)."""
    end_seq: int
    """The journal's last record in the file."""
    anchor_seq: int
    """The anchor record the export wrote after it (0: none was needed)."""


class ExportOut(TypedDict):
    """``export --json``."""

    agent_id: str
    path: str
    records: int
    segments: int
    snapshots: int
    bytes: int
    first_seq: int
    last_seq: int
    last_step: int
    last_hash: str
    keyed: bool
    range: ExportRange | None
    """The step range held, or null for the whole journal."""
    skipped: NotRequired[list[SkippedSnapshot]]
    """Snapshots left out (damaged, or not matching the chain); absent on ``import``."""


class ImportOut(ExportOut):
    """``import --json``: the export's fields, plus where it went."""

    root: str
    written: bool
    """False with ``--dry-run`` (the file was only verified)."""


class CopyAgent(TypedDict):
    """One journal in ``copy --json``."""

    agent_id: str
    records: int
    segments: int
    snapshots: int
    bytes: int
    """Size of the export the copy went through."""
    first_seq: int
    last_seq: int
    last_step: int
    last_hash: str
    keyed: bool
    verified: bool
    """The copy verified and matches its source (always true: a failed check is an error)."""


class CopyOut(TypedDict):
    """``copy --json``."""

    source: str
    """SRC (a URL without its password, a root's absolute path)."""
    target: str
    agents: list[CopyAgent]


class RepairCut(TypedDict):
    """What ``repair`` cut (with ``--dry-run``: would cut) off the end of one segment."""

    kind: Literal["torn_tail", "damage"]
    """``torn_tail``: a write cut short, nothing after it; ``damage``: an invalid line followed
    by intact records (an out-of-order power loss in ``group``/``none`` mode)."""
    segment: str
    """The segment file."""
    offset: int
    """Byte offset of the cut: everything from it to the end of the segment goes."""
    bytes: int
    seq: int
    """The first seq cut off (the damaged or torn record); the journal ends just before it."""
    records_after: int
    """Intact records after the damaged line, cut with it (0 for a torn tail)."""
    message: str
    """What is wrong at ``offset``."""
    quarantine: str | None
    """Where the cut bytes were kept (null with ``--dry-run``)."""


class RepairOut(TypedDict):
    """``repair --json``."""

    agent_id: str
    dry_run: bool
    repaired: bool
    """Bytes were cut (always false with ``--dry-run``)."""
    cuts: list[RepairCut]
    cannot_fix: list[ProblemOut]
    """Problems a repair does not fix: after a repair, what ``verify`` still finds; with
    ``--dry-run``, what it finds beyond the cuts."""
    removed_temps: list[str]
    """Temp files left by a crash, removed on opening (empty with ``--dry-run``)."""
    last_seq: int
    """Where the journal ends after the repair (with ``--dry-run``: would end)."""
    last_step: int
    ok: bool
    """The journal verifies after the repair; with ``--dry-run``: there is nothing to do."""
    verify: VerifyAgent
    """The full verification after the repair (with ``--dry-run``: of the journal as it is)."""


class ResumeCost(TypedDict):
    """What resuming the agent costs now."""

    snapshot_seq: int | None
    """The newest snapshot (null: replay from the first record)."""
    snapshot_bytes: int
    replay_records: int
    """Records after that snapshot, replayed on resume."""
    measured_ms: float
    """How long one resume took just now."""


class StatsOut(TypedDict):
    """``stats --json``."""

    agent_id: str
    bytes: int
    segment_bytes: int
    snapshot_bytes: int
    segments: int
    sealed_segments: int
    snapshots: int
    records: int
    records_by_kind: dict[str, int]
    steps: int
    """Number of ``step`` records."""
    first_step: int
    last_step: int
    first_ts: float | None
    last_ts: float | None
    snapshot_interval: float | None
    """Mean number of agent steps between consecutive snapshots (null with fewer than 2)."""
    bytes_per_step: float | None
    state_bytes: int
    """Size of the latest state as compact JSON."""
    resume: ResumeCost


# --- history queries (blame, grep, bisect) -------------------------------------------------


class WriteOut(TypedDict):
    """One write found by ``blame``: an op that changed the value at the pointer."""

    agent_id: str
    """The journal holding the record (a parent agent once a fork was followed)."""
    seq: int
    step: int
    ts: float
    time: str
    kind: Literal["step", "fork"]
    op_index: int
    """Position of the op in the record's ops."""
    op: Literal["add", "remove", "replace"]
    path: str
    """The op's path as recorded (an append's index is ``-``)."""
    relation: Literal["self", "parent", "child", "shift"]
    value: Any
    """What the write left there (null when ``has_value`` is false: a removal)."""
    has_value: bool
    previous: Any
    """What was there before (null when ``had_previous`` is false)."""
    had_previous: bool


class HistoryStartOut(TypedDict):
    """Where a pruned journal's retained history starts."""

    agent_id: str
    seq: int
    step: int


class BlameChild(TypedDict):
    """The blame of one member of a container, one level down."""

    pointer: str
    last: WriteOut | None
    history_starts_at: HistoryStartOut | None


class BlameOut(TypedDict):
    """``blame --json``."""

    agent_id: str
    pointer: str
    exists: bool
    value: Any
    """The value in the latest state (null when ``exists`` is false)."""
    last: WriteOut | None
    earlier: list[WriteOut]
    """With ``--all``: every earlier write, newest first (else empty)."""
    children: list[BlameChild]
    history_starts_at: HistoryStartOut | None
    """Set when the search reached the start of a pruned history."""
    forks: list[str]
    """Parent agents whose history was followed, nearest first."""


class GrepMatch(TypedDict):
    """One line of ``grep --json`` (JSON Lines: one object per matching record)."""

    agent_id: str
    seq: int
    step: int
    ts: float
    time: str
    kind: Kind
    pointers: list[str]
    """Where the pattern was found: the op's path, then the path inside its value."""
    ops: list[dict[str, Any]]
    """The record's ops that matched."""


class BisectOut(TypedDict):
    """``bisect --json``."""

    agent_id: str
    where: str
    found: bool
    step: int | None
    seq: int | None
    ts: float | None
    time: str | None
    mode: Literal["monotone", "linear"]
    materializations: int
    """States rebuilt from a snapshot (``state_at`` calls) to answer."""
    evaluations: int
    first_step: int
    last_step: int


class AnchorOut(TypedDict):
    """``anchor --json``: the journal's head now, and where it was written."""

    agent_id: str
    seq: int
    hash: str
    witness: str | None
    mac: bool
    """The witness line carries a MAC (written with a key)."""


SCHEMAS: dict[str, Any] = {
    "anchor": AnchorOut,
    "ls": LsOut,
    "log": LogEntry,
    "show": ShowOut,
    "diff": list[PatchOp],
    "verify": VerifyOut,
    "fork": ForkOut,
    "compact": CompactOut,
    "expire": ExpireOut,
    "export": ExportOut,
    "import": ImportOut,
    "copy": CopyOut,
    "stats": StatsOut,
    "repair": RepairOut,
    "blame": BlameOut,
    "grep": GrepMatch,
    "bisect": BisectOut,
}
"""The type of each command's ``--json`` output (``log`` prints one ``LogEntry`` per line)."""


_STRICT = {"extra": "forbid", "strict": True}
_TYPED_DICTS = (ProblemOut, LsAgent, LsOut, LogEntry, ShowOut, PatchOp, CutOut, VerifyAgent,
                VerifyOut, ForkOut, CompactOut, ExportRange, ExportOut, ImportOut, ResumeCost,
                StatsOut, RepairCut, RepairOut, WriteOut, HistoryStartOut, BlameChild, BlameOut,
                GrepMatch, BisectOut, AnchorOut, CopyAgent, CopyOut, ExpireAgent, ExpireOut)


def _adapter(command: str) -> Any:
    # pydantic is imported only here: the commands themselves never pay for it.
    from pydantic import TypeAdapter

    for cls in _TYPED_DICTS:
        # pydantic reads a TypedDict's config from this attribute: no extra field, no coercion.
        setattr(cls, "__pydantic_config__", _STRICT)  # noqa: B010
    return TypeAdapter(SCHEMAS[command])


def json_schema(command: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``command``'s ``--json`` output.

    Raises:
        KeyError: ``command`` has no ``--json`` output.
    """
    schema: dict[str, Any] = _adapter(command).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["x-agentjournal-schema-version"] = SCHEMA_VERSION
    return schema


def validate(command: str, doc: Any) -> None:
    """Check ``doc`` (decoded JSON) against ``command``'s schema: no missing, extra or
    mistyped field.

    Raises:
        ValueError: ``doc`` does not conform (pydantic's ``ValidationError``).
    """
    _adapter(command).validate_python(doc)

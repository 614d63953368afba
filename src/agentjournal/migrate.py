"""Import checkpoint files written by the seed system into journals.

The seed system wrote one JSON object (an ``AgentState``) per ``<checkpoint_id>.jsonl`` or
``.jsonl.gz`` file, all agents in one flat directory. :func:`import_seed_checkpoints` reads them
(bounded: size checked, decompression capped, never pickle), groups them by ``agent_id`` and
records each agent's checkpoints oldest first as steps of its journal, then writes a snapshot.
Nothing is ever fatal for a single file: a truncated, undecodable or id-less file, or one whose
step goes back, is skipped and reported with the reason. Fields this version does not know are
kept (see :attr:`AgentState.unknown_fields`) and reported.

Importing again is safe: checkpoints at or before a journal's last step are skipped as already
there.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._ids import validate_agent_id
from .errors import InvalidAgentIdError, JournalError
from .manager import format_checkpoint_id
from .state import STATUSES, AgentState
from .storage import FilesystemStorage

__all__ = [
    "ImportedCheckpoint",
    "MigrationReport",
    "SkippedFile",
    "import_seed_checkpoints",
    "read_seed_file",
]

log = logging.getLogger("agentjournal.migrate")

DEFAULT_MAX_FILE_BYTES = 256 << 20
_SUFFIXES = (".jsonl.gz", ".jsonl")


@dataclass
class ImportedCheckpoint:
    """A seed checkpoint recorded as a journal step (or that would be, in a dry run)."""

    file: str
    agent_id: str
    step: int
    seed_checkpoint_id: str | None
    checkpoint_id: str
    unknown_fields: list[str] = field(default_factory=list)


@dataclass
class SkippedFile:
    """A file that was not imported, and why."""

    file: str
    reason: str


@dataclass
class MigrationReport:
    """What :func:`import_seed_checkpoints` did."""

    source: str
    dry_run: bool
    imported: list[ImportedCheckpoint] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    agents: dict[str, int] = field(default_factory=dict)
    """Checkpoints imported per agent."""

    @property
    def ok(self) -> bool:
        """Whether every checkpoint file was imported."""
        return not self.skipped

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        """A human-readable report, one line per agent and per skipped file."""
        verb = "would import" if self.dry_run else "imported"
        lines = [f"{verb} {len(self.imported)} checkpoints of {len(self.agents)} agents "
                 f"from {self.source}; skipped {len(self.skipped)} files"]
        for agent, n in sorted(self.agents.items()):
            steps = [c.step for c in self.imported if c.agent_id == agent]
            lines.append(f"  {agent}: {n} checkpoints, steps {min(steps)}..{max(steps)}")
        for c in self.imported:
            if c.unknown_fields:
                lines.append(f"  note: {c.file}: unknown fields kept: "
                             f"{', '.join(c.unknown_fields)}")
        for s in self.skipped:
            lines.append(f"  skipped {s.file}: {s.reason}")
        return "\n".join(lines)


def read_seed_file(path: str | os.PathLike[str],
                   max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> dict[str, Any]:
    """Read one seed checkpoint file (``.jsonl`` or gzip ``.jsonl.gz``) into a dict.

    Raises:
        ValueError: too large, truncated, not gzip, not JSON, or not one JSON object.
        OSError: the file cannot be read.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"file of {size} bytes is over the limit of {max_bytes}")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if path.endswith(".gz"):
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(data, max_bytes + 1)
        except zlib.error as e:
            raise ValueError(f"not a valid gzip file ({e})") from None
        if len(out) > max_bytes:
            raise ValueError(f"decompresses to more than {max_bytes} bytes")
        if not d.eof:
            raise ValueError("truncated gzip file")
        data = out
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty file")
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ValueError(f"truncated or invalid JSON ({e.msg} at char {e.pos})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError(f"holds a JSON {type(obj).__name__}, not an object")
    return obj


def _sort_key(state: AgentState, name: str) -> tuple[float, int, str]:
    ts = state.timestamp
    if isinstance(ts, datetime):
        t = (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()
    else:
        t = 0.0
    return t, state.step_number, name


def import_seed_checkpoints(
    source_dir: str | os.PathLike[str],
    storage: FilesystemStorage | str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    default_agent_id: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> MigrationReport:
    """Import the seed system's checkpoint files from ``source_dir`` into journals.

    Args:
        source_dir: the seed's flat checkpoint directory (e.g. ``.kaizen/checkpoints``).
        storage: where to import to: a :class:`FilesystemStorage` or a store root
            (default ``./.agentjournal``).
        dry_run: only report what would be imported.
        default_agent_id: agent for files whose ``agent_id`` is empty (the seed's default);
            without it such files are skipped.
        max_file_bytes: files (or their decompressed content) larger than this are skipped.

    Returns:
        A :class:`MigrationReport`; new checkpoint ids are ``<agent_id>@<step:010d>``.

    Raises:
        NotADirectoryError: ``source_dir`` is not a directory.
    """
    src = os.path.abspath(os.fspath(source_dir))
    if not os.path.isdir(src):
        raise NotADirectoryError(f"no seed checkpoint directory at {src}")
    if not isinstance(storage, FilesystemStorage):
        storage = FilesystemStorage(storage if storage is not None else ".agentjournal")
    rep = MigrationReport(source=src, dry_run=dry_run)
    by_agent: dict[str, list[tuple[tuple[float, int, str], str, AgentState]]] = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not name.endswith(_SUFFIXES) or not os.path.isfile(path):
            continue
        if ".enc." in name:
            rep.skipped.append(SkippedFile(name, "encrypted checkpoints are not supported: "
                                                 "decrypt them with the seed system first"))
            continue
        try:
            data = read_seed_file(path, max_file_bytes)
            state = AgentState.from_dict(data)
        except (ValueError, TypeError, OSError) as e:
            rep.skipped.append(SkippedFile(name, str(e)))
            continue
        agent_id = state.agent_id or default_agent_id
        if not agent_id:
            rep.skipped.append(SkippedFile(name, "no agent_id (pass default_agent_id= to "
                                                 "import it)"))
            continue
        try:
            validate_agent_id(agent_id)
        except InvalidAgentIdError as e:
            rep.skipped.append(SkippedFile(name, str(e)))
            continue
        problem = _check_fields(state)
        if problem:
            rep.skipped.append(SkippedFile(name, problem))
            continue
        state.agent_id = agent_id
        by_agent.setdefault(agent_id, []).append((_sort_key(state, name), name, state))
    for agent_id, items in sorted(by_agent.items()):
        items.sort(key=lambda t: t[0])
        _import_agent(storage, agent_id, [(n, s) for _, n, s in items], rep, dry_run)
    log.info("%s", rep.summary().splitlines()[0])
    return rep


def _check_fields(state: AgentState) -> str | None:
    if isinstance(state.step_number, bool) or not isinstance(state.step_number, int) \
            or state.step_number < 0:
        return f"step_number {state.step_number!r} is not an int >= 0"
    if state.status not in STATUSES:
        return f"status {state.status!r} is not one of {sorted(STATUSES)}"
    return None


def _import_agent(storage: FilesystemStorage, agent_id: str,
                  items: list[tuple[str, AgentState]], rep: MigrationReport,
                  dry_run: bool) -> None:
    j = None
    last_step = -1
    try:
        if storage.has_journal(agent_id):
            with storage.open_journal(agent_id, readonly=True, create=False) as r:
                if r.last_seq > 0:
                    last_step = r.last_step
        if not dry_run:
            j = storage.open_journal(agent_id)
    except JournalError as e:
        for name, _ in items:
            rep.skipped.append(SkippedFile(name, f"journal of {agent_id!r} unavailable: {e}"))
        return
    existing = last_step
    try:
        for name, state in items:
            step = state.step_number
            if existing >= 0 and step <= existing:
                rep.skipped.append(SkippedFile(
                    name, f"already in the journal (step {step} <= its last step {existing})"))
                continue
            if step < last_step:
                rep.skipped.append(SkippedFile(
                    name, f"step {step} goes back from step {last_step} already imported "
                          "(a fork in the seed store?); import it under another agent_id"))
                continue
            seed_id = state.checkpoint_id
            cid = format_checkpoint_id(agent_id, step, j.last_seq + 1 if j is not None else None)
            state.checkpoint_id = cid
            if j is not None:
                try:
                    j.append(state.to_dict(), step=step, snapshot=False)
                except (JournalError, ValueError, TypeError) as e:
                    rep.skipped.append(SkippedFile(name, str(e)))
                    continue
            last_step = step
            rep.imported.append(ImportedCheckpoint(
                file=name, agent_id=agent_id, step=step, seed_checkpoint_id=seed_id,
                checkpoint_id=cid, unknown_fields=sorted(state.unknown_fields)))
            rep.agents[agent_id] = rep.agents.get(agent_id, 0) + 1
        if j is not None and rep.agents.get(agent_id):
            j.snapshot()
    finally:
        if j is not None:
            j.close()

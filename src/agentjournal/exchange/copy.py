"""Copy journals from one store to another (a filesystem root to PostgreSQL and back).

A copy is an export followed by an import, through a temporary file, with nothing of its own
to trust: :func:`~agentjournal.exchange.export_journal` verifies the source as it writes the
file, :func:`~agentjournal.exchange.import_journal` verifies all of the file before writing,
writes through the target backend, verifies what it wrote and removes it on failure. After
that, the copy is checked once more against the source: the same last seq and chain hash, and
the state resumed from the target equal to the source's state at that seq.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from ..backends.base import Backend
from ..errors import CorruptRecordError, JournalExistsError
from ..replay.journal import Journal
from .exporter import export_journal
from .fileformat import Progress, check_key
from .importer import import_journal

__all__ = ["CopyReport", "check_targets", "copy_journal"]

SPOOL_BYTES = 32 << 20
"""Exports up to this size stay in memory; larger ones spill to a temporary file."""
_SCALE = 3000
"""The ``total`` a copy's progress reports (thirds: export, verifying pass, writing pass)."""


@dataclass
class CopyReport:
    """What :func:`copy_journal` copied (and checked)."""

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
    """The target verified, ends at the source's last seq and hash, and resumes to the
    source's state there (always true in a returned report: a failed check raises)."""


def check_targets(dst: Backend, agents: list[str]) -> None:
    """Refuse before copying anything when one of ``agents`` already has a journal in ``dst``.

    Raises:
        JournalExistsError: naming every agent that exists there.
    """
    there = [a for a in agents if dst.exists(a)]
    if there:
        raise JournalExistsError(
            f"{', '.join(repr(a) for a in there)} already "
            f"{'has a journal' if len(there) == 1 else 'have journals'} in {dst.describe()}",
            hint="copy the others only, or remove those journals from the target first")


def copy_journal(src: Backend, dst: Backend, agent_id: str, *, key: bytes | str | None = None,
                 snapshots: bool = True, progress: Progress | None = None) -> CopyReport:
    """Copy ``agent_id``'s journal from ``src`` to ``dst``, verified.

    The source may be live (an agent appending): what is copied is a consistent prefix, up to
    its last complete record when the copy started. The target must not have the agent.

    Args:
        src: the store to read (only read: no lock is taken).
        dst: the store to write.
        agent_id: the agent to copy.
        key: the journal's key, when it is keyed (the copy keeps the same chain and key).
        snapshots: copy every usable snapshot (without: only the one a pruned journal needs).
        progress: called with ``(done, total)``: the export is the first third, the import
            (its verifying pass and its writing pass) the rest.

    Raises:
        JournalNotFoundError: no such agent in ``src``.
        JournalExistsError: the agent already has a journal in ``dst``.
        CorruptRecordError: the source does not verify, or the copy does not match it (what
            was written is then removed again, where the target backend can remove a
            journal).
    """
    k = check_key(key)
    with Journal(agent_id, backend=src, key=k, readonly=True, create=False,
                 snapshot_every=None) as source, \
            tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as tmp:
        exp = export_journal(source, tmp, snapshots=snapshots, progress=_part(progress, 0, 1))
        tmp.seek(0)
        imp = import_journal(tmp, backend=dst, key=k, where=f"copy of {agent_id}",
                             progress=_part(progress, 1, 2))
        expected = source.state_at_seq(exp.last_seq) if exp.last_seq else None
    with Journal(agent_id, backend=dst, key=k, readonly=True, create=False,
                 snapshot_every=None) as target:
        got = target.resume()
        head = (target.last_seq, imp.last_hash)
    if (head[0], head[1], imp.records) != (exp.last_seq, exp.last_hash, exp.records) or (
            exp.last_seq and got.state != expected):
        _remove(dst, agent_id)
        raise CorruptRecordError(
            f"the copy of {agent_id!r} in {dst.describe()} does not match its source "
            f"(last seq {head[0]}, source {exp.last_seq})",
            hint="the target store may be failing; run 'agentjournal verify' on it")
    if progress is not None:
        progress(_SCALE, _SCALE)
    return CopyReport(agent_id=agent_id, records=imp.records, segments=imp.segments,
                      snapshots=imp.snapshots, bytes=exp.bytes, first_seq=imp.first_seq,
                      last_seq=imp.last_seq, last_step=imp.last_step, last_hash=imp.last_hash,
                      keyed=imp.keyed, verified=True)


def _remove(dst: Backend, agent_id: str) -> None:
    """Remove a copy that failed its check (backends with ``delete_agent``; best effort)."""
    delete = getattr(dst, "delete_agent", None)
    if delete is not None:
        with contextlib.suppress(Exception):
            delete(agent_id)


def _part(progress: Progress | None, start: int, width: int
          ) -> Callable[[int, int], None] | None:
    """``progress`` for one part of a copy: thirds ``start`` to ``start + width``."""
    if progress is None:
        return None
    cb = progress

    def update(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        cb(int((start + width * min(frac, 1.0)) * _SCALE / 3), _SCALE)

    return update

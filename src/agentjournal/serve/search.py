"""Search and filters of the step list, and blame of a path, over :mod:`agentjournal.query`.

The filters are the CLI's history queries: the JSON path an op touched (``log --touching``),
text in the ops' values (``grep``), the record kind, and a time range (``--since/--until``).
Matches are read newest first, so the last page of a long history costs only the segments it
comes from; memory is bounded by a segment and the page size, not by the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import query
from ..errors import BadRequestError, InvalidTimeError
from ..events import AnyRecord
from ..replay.journal import Journal
from .rows import MAX_PAGE, row_of

KINDS = ("step", "snapshot", "fork", "anchor", "cut")


@dataclass(frozen=True)
class Filters:
    """What the step list is filtered by (every field optional; all must hold)."""

    touching: str | None = None
    """A JSON Pointer: records with an op at it, under it, or on an ancestor of it."""
    text: str | None = None
    """Text (or, with ``regex``, a pattern) in an op's values (under ``touching`` if given)."""
    regex: bool = False
    kinds: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.touching is not None or self.text or self.kinds
                    or self.since is not None or self.until is not None)


def parse_time(text: str | None, name: str) -> float | None:
    """Unix seconds of ``text`` (ISO 8601 or seconds; without a zone, local time, as in the
    CLI), None for none."""
    if not text:
        return None
    try:
        return query.parse_time(text)
    except InvalidTimeError as e:
        raise BadRequestError(f"{name}: {e.message}", hint=e.hint) from None


def _newest_first(j: Journal, f: Filters) -> Iterator[AnyRecord]:
    bad = sorted(set(f.kinds) - set(KINDS))
    if bad:
        raise BadRequestError(f"unknown kind {bad[0]!r}", hint=f"kinds are {', '.join(KINDS)}")
    window: dict[str, Any] = {"since": f.since, "until": f.until, "reverse": True}
    matches: Iterator[query.Match] | None = None
    if f.text:
        matches = query.grep(j, f.text, regex=f.regex, ignore_case=True, under=f.touching,
                             **window)
    elif f.touching is not None:
        matches = query.touching(j, f.touching, **window)
    if matches is None:
        yield from query.records_in_range(j, **window)
        return
    for m in matches:
        if m.record is not None:
            yield m.record


def search(j: Journal, f: Filters, *, before: int | None = None, limit: int = 200
           ) -> dict[str, Any]:
    """The last ``limit`` records matching ``f`` with seq < ``before``, oldest first.

    ``next_before`` is the ``before`` of the previous (older) page, or None at the start.
    """
    limit = max(1, min(limit, MAX_PAGE))
    page: list[dict[str, Any]] = []
    older = False
    for rec in _newest_first(j, f):
        if before is not None and rec.seq >= before:
            continue
        if f.kinds and rec.kind not in f.kinds:
            continue
        if len(page) == limit:
            older = True
            break
        page.append(row_of(rec, None))
    page.reverse()
    return {"agent_id": j.agent_id, "rows": page,
            "next_before": page[0]["seq"] if older and page else None}


def _write(w: query.Write) -> dict[str, Any]:
    return {"seq": w.seq, "step": w.step, "ts": w.ts, "kind": w.kind, "op": w.op,
            "path": w.path, "relation": w.relation}


def blame(j: Journal, path: str, *, all_changes: bool = False) -> dict[str, Any]:
    """The write that set the value at ``path`` last (and, ``all_changes``, every earlier one,
    newest first, at most :data:`MAX_PAGE`)."""
    b = query.blame(j, path, all=all_changes, children=False)
    writes = ([b.last] if b.last else []) + (b.earlier if all_changes else [])
    start = b.history_starts_at
    return {"agent_id": j.agent_id, "path": path, "exists": b.exists,
            "last": _write(b.last) if b.last else None,
            "changes": [_write(w) for w in writes[:MAX_PAGE]],
            "history_starts_at": None if start is None else {"seq": start.seq,
                                                             "step": start.step}}

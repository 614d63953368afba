"""Search and filters of the step list, and blame of a path.

The filters are those of the CLI's history queries: the JSON path an op touched
(``log --touching``), text in the ops' values (``grep``), the record kind, and a time range
(``--since/--until``). Results stream over :meth:`Journal.records`: memory is bounded by the
page size, not by the history.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from .. import delta
from ..errors import BadRequestError
from ..events import AnyRecord, Fork, Step
from ..replay.journal import Journal
from .model import MAX_PAGE, row_of

KINDS = ("step", "snapshot", "fork", "anchor")


@dataclass(frozen=True)
class Filters:
    """What the step list is filtered by (every field optional; all must hold)."""

    touching: str | None = None
    """A JSON Pointer: records with an op at it, under it, or replacing a parent of it."""
    text: str | None = None
    """Text (or, with ``regex``, a pattern) in an op's path or JSON-encoded value."""
    regex: bool = False
    kinds: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.touching is not None or self.text or self.kinds
                    or self.since is not None or self.until is not None)


def _touches(op_path: str, prefix: list[str]) -> bool:
    tokens = delta.parse_pointer(op_path)
    n = min(len(tokens), len(prefix))
    return tokens[:n] == prefix[:n]


def _matcher(f: Filters) -> Any:
    """A predicate on records for ``f`` (checked once, so a bad pattern fails fast)."""
    prefix = delta.parse_pointer(f.touching) if f.touching is not None else None
    bad = sorted(set(f.kinds) - set(KINDS))
    if bad:
        raise BadRequestError(f"unknown kind {bad[0]!r}", hint=f"kinds are {', '.join(KINDS)}")
    pattern: re.Pattern[str] | None = None
    if f.text:
        try:
            pattern = re.compile(f.text if f.regex else re.escape(f.text), re.IGNORECASE)
        except re.error as e:
            raise BadRequestError(f"bad regular expression: {e}",
                                  hint="escape special characters or untick 'regex'") from None

    def ok(rec: AnyRecord) -> bool:
        if f.kinds and rec.kind not in f.kinds:
            return False
        if f.since is not None and rec.ts < f.since:
            return False
        if f.until is not None and rec.ts > f.until:
            return False
        if prefix is None and pattern is None:
            return True
        if not isinstance(rec, (Step, Fork)):
            return False
        for op in rec.ops:
            path = op.get("path", "")
            if prefix is not None and not _touches(path, prefix):
                continue
            if pattern is None:
                return True
            text = path + " " + msgspec.json.encode(op.get("value")).decode()
            if pattern.search(text):
                return True
        return False

    return ok


def search(j: Journal, f: Filters, *, before: int | None = None, limit: int = 200
           ) -> dict[str, Any]:
    """The last ``limit`` records matching ``f`` with seq < ``before``, oldest first.

    ``next_before`` is the ``before`` of the previous (older) page, or None at the start.
    """
    limit = max(1, min(limit, MAX_PAGE))
    ok = _matcher(f)
    page: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
    older = False
    prev_ts: float | None = None
    for rec in j.records(1, None if before is None else before - 1):
        if ok(rec):
            if len(page) == limit:
                older = True
            page.append(row_of(rec, prev_ts))
        prev_ts = rec.ts
    rows = list(page)
    return {"agent_id": j.agent_id, "rows": rows,
            "next_before": rows[0]["seq"] if older and rows else None}


def blame(j: Journal, path: str, *, all_changes: bool = False) -> dict[str, Any]:
    """The record that last set the value at ``path`` (or, ``all_changes``, every one)."""
    prefix = delta.parse_pointer(path)
    hits: collections.deque[dict[str, Any]] = collections.deque(
        maxlen=MAX_PAGE if all_changes else 1)
    for rec in _state_records(j):
        ops = [op for op in rec.ops if _touches(op.get("path", ""), prefix)]
        if ops:
            hits.append({"seq": rec.seq, "step": rec.step, "ts": rec.ts, "kind": rec.kind,
                         "ops": ops[:20]})
    return {"agent_id": j.agent_id, "path": path, "changes": list(hits),
            "last": hits[-1] if hits else None}


def _state_records(j: Journal) -> Iterator[Step | Fork]:
    for rec in j.records():
        if isinstance(rec, (Step, Fork)):
            yield rec

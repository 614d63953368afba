"""Search the history without replaying it: records ``touching`` a path, and ``grep``.

Both stream records from the journal (newest segment first with ``reverse``) and look only at
each record's ops, so they cost one decode of the records in range and memory bounded by one
segment, whatever the history's length. The ops are matched as written: an append is
``/list/-``, so ``/list`` matches it but ``/list/41`` does not (``blame`` resolves indexes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .. import delta
from ..errors import InvalidExpressionError
from ..events import AnyRecord, Fork, Step
from . import pointers, timetravel

if TYPE_CHECKING:
    from ..replay.journal import Journal

__all__ = ["Match", "grep", "records_in_range", "touching"]


@dataclass(slots=True)
class Match:
    """One record found by :func:`touching` or :func:`grep`.

    Attributes:
        seq, step, ts, kind: the record's.
        ops: its ops that matched (as recorded: RFC 6902 ``op``/``path``/``value``).
        pointers: where the match is: for ``touching`` the matching ops' paths; for ``grep``
            the pointer of each matching string, key or scalar (the op's path followed by the
            path inside its value; an append's index stays ``-``).
        record: the whole record.
    """

    seq: int
    step: int
    ts: float
    kind: str
    ops: list[dict[str, Any]]
    pointers: list[str] = field(default_factory=list)
    record: AnyRecord | None = field(default=None, repr=False, compare=False)


def _check_range(start: int | None, end: int | None, limit: int | None) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"end step {end} is before start step {start}")
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1 or None")


def _start_seq(journal: Journal, start: int | None, since: float | None,
               segs: list[int]) -> int:
    """A seq at or before the first record in range (so a forward scan may begin there)."""
    first = segs[0] if segs else 1
    if start is not None:
        for seg in segs:
            if journal.first_step_of_segment(seg) >= start:
                break
            first = seg
    if since is not None:
        first = max(first, timetravel.first_seq_from(journal, since))
    return first


def records_in_range(journal: Journal, *, start: int | None = None, end: int | None = None,
                     since: timetravel.When | None = None, until: timetravel.When | None = None,
                     reverse: bool = False) -> Iterator[AnyRecord]:
    """Records whose step is within ``start..end`` and time within ``since..until``
    (all inclusive, None: unbounded), oldest first or (``reverse``) newest first.

    Forward, one segment is decoded at a time; reversed, each segment is read whole and given
    back newest first, so memory stays bounded by a segment either way.
    """
    lo_t = None if since is None else timetravel.to_epoch(since)
    hi_t = None if until is None else timetravel.to_epoch(until)
    segs = journal.segment_seqs()
    if not segs:
        return

    def wanted(rec: AnyRecord) -> bool:
        return ((start is None or rec.step >= start) and (end is None or rec.step <= end)
                and (lo_t is None or rec.ts >= lo_t) and (hi_t is None or rec.ts <= hi_t))

    if not reverse:
        if start is None and end is None and lo_t is None and hi_t is None:
            yield from journal.records(segs[0])
            return
        for rec in journal.records(_start_seq(journal, start, lo_t, segs)):
            if (end is not None and rec.step > end) or (hi_t is not None and rec.ts > hi_t):
                return  # steps and times only grow along the journal
            if wanted(rec):
                yield rec
        return
    for k in range(len(segs) - 1, -1, -1):
        if end is not None and k > 0 and journal.first_step_of_segment(segs[k]) > end:
            continue
        chunk = list(journal.records(segs[k], segs[k + 1] - 1 if k + 1 < len(segs) else None))
        for rec in reversed(chunk):
            if (start is not None and rec.step < start) or (lo_t is not None
                                                            and rec.ts < lo_t):
                return
            if wanted(rec):
                yield rec


def _ops(rec: AnyRecord) -> list[dict[str, Any]]:
    return rec.ops if isinstance(rec, (Step, Fork)) else []


def _limited(matches: Iterator[Match], limit: int | None) -> Iterator[Match]:
    n = 0
    for m in matches:
        yield m
        n += 1
        if limit is not None and n >= limit:
            return


def _touches(op: dict[str, Any], prefix: str, under: str, tokens: list[str]) -> bool:
    path = op.get("path", "")
    if not isinstance(path, str):
        return False
    if path == prefix or path.startswith(under):
        return True  # the prefix itself or inside it: the common case, kept cheap
    if not (prefix.startswith(path) and prefix[len(path)] == "/"):
        return False
    if "value" not in op:
        return True  # an ancestor removed
    # An ancestor added or replaced: only if the new value reaches down to the prefix.
    depth = len(pointers.parse(path))
    return pointers.lookup(op["value"], tokens[depth:]) is not pointers.MISSING


def touching(journal: Journal, prefix: str, *, start: int | None = None,
             end: int | None = None, since: timetravel.When | None = None,
             until: timetravel.When | None = None, limit: int | None = None,
             reverse: bool = False) -> Iterator[Match]:
    """Records with an op at or under ``prefix``, or on an ancestor of it: a removal, or an
    add/replace whose new value holds the prefix.

    ``/conversation_history`` matches ``/conversation_history/-`` (appends) and
    ``/conversation_history/3/content``, not ``/conversation_historyX``; ``""`` matches every
    op. ``limit`` stops after that many matches, in the order given (``reverse``: newest first).

    Raises:
        InvalidPointerError: ``prefix`` is not a JSON Pointer.
    """
    tokens = pointers.parse(prefix, "path")
    under = prefix + "/"
    _check_range(start, end, limit)

    def gen() -> Iterator[Match]:
        for rec in records_in_range(journal, start=start, end=end, since=since, until=until,
                                    reverse=reverse):
            if not isinstance(rec, (Step, Fork)):
                continue
            hits = [op for op in rec.ops if _touches(op, prefix, under, tokens)]
            if hits:
                yield Match(rec.seq, rec.step, rec.ts, rec.kind, hits,
                            [str(op.get("path", "")) for op in hits], rec)

    return _limited(gen(), limit)


def _matcher(pattern: str, regex: bool, ignore_case: bool) -> Callable[[str], object]:
    if regex:
        try:
            rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as e:
            raise InvalidExpressionError(f"bad regular expression {pattern!r}: {e}",
                                         expression=pattern, position=e.pos,
                                         hint="it is a Python regular expression; drop "
                                              "--regex to search for the text as it is"
                                         ) from None
        return rx.search  # a match object is true, None false
    if ignore_case:
        folded = pattern.casefold()
        return lambda s: folded in s.casefold()
    return lambda s: pattern in s


def _prefilter(pattern: str, regex: bool, ignore_case: bool) -> Callable[[AnyRecord], bool]:
    """A cheap test on a record's encoded ops that never rejects a record that matches.

    A plain pattern without characters JSON escapes appears verbatim in the encoding of any
    string, key or number that contains it (``/`` and ``~`` are excluded too: in an op's path
    a key is pointer-escaped); anything else is checked value by value.
    """
    if regex or ignore_case or not pattern or any(c in pattern for c in '"\\/~') or any(
            ord(c) < 0x20 for c in pattern):
        return lambda rec: True
    needle = pattern.encode()
    return lambda rec: needle in msgspec.json.encode(_ops(rec))


def _scalar_text(value: Any) -> str | None:
    """The JSON text of a number, boolean or null (as the journal encodes it); None else."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return msgspec.json.encode(value).decode()
    return None


def _find(value: Any, at: str, test: Callable[[str], object], out: list[str]) -> None:
    """Append to ``out`` the pointer of every string, key or scalar in ``value`` that matches.

    Pointers are built only for containers and matches: most leaves are tested and left.
    """
    if isinstance(value, dict):
        for k, child in value.items():
            if test(k):
                out.append(at + "/" + delta.escape(k))
            if isinstance(child, str):
                if test(child):
                    out.append(at + "/" + delta.escape(k))
            elif isinstance(child, (dict, list)):
                _find(child, at + "/" + delta.escape(k), test, out)
            else:
                text = _scalar_text(child)
                if text is not None and test(text):
                    out.append(at + "/" + delta.escape(k))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            if isinstance(child, str):
                if test(child):
                    out.append(f"{at}/{i}")
            elif isinstance(child, (dict, list)):
                _find(child, f"{at}/{i}", test, out)
            else:
                text = _scalar_text(child)
                if text is not None and test(text):
                    out.append(f"{at}/{i}")
    else:
        text = _scalar_text(value)
        if text is not None and test(text):
            out.append(at)


def _grep_op(op: dict[str, Any], under: str | None, under_tokens: list[str],
             test: Callable[[str], object]) -> list[str]:
    value = op.get("value", _NONE)
    if value is _NONE:
        return []  # a removal: nothing written
    path = op.get("path", "")
    if not isinstance(path, str):
        return []
    found: list[str] = []
    if under is not None:
        rel = pointers.path_relation(path, under)
        if rel is None:
            return []
        if rel == "parent":
            value = pointers.lookup(value, under_tokens[len(pointers.parse(path)):])
            if value is pointers.MISSING:
                return []
            path = under
        elif op.get("op") == "add":
            _added_key(path, test, found)
    elif op.get("op") == "add":
        _added_key(path, test, found)
    if isinstance(value, str):
        if test(value):
            found.append(path)
    else:
        _find(value, path, test, found)
    return list(dict.fromkeys(found)) if len(found) > 1 else found


_NONE: Any = object()


def _added_key(path: str, test: Callable[[str], object], found: list[str]) -> None:
    """The key an ``add`` op creates in an object is searched too."""
    i = path.rfind("/")
    if i < 0:
        return
    key = path[i + 1:]
    if key != "-" and not key.isdigit():
        if "~" in key:
            key = delta.unescape(key)
        if test(key):
            found.append(path)


def grep(journal: Journal, pattern: str, *, regex: bool = False, ignore_case: bool = False,
         under: str | None = None, start: int | None = None, end: int | None = None,
         since: timetravel.When | None = None, until: timetravel.When | None = None,
         limit: int | None = None, reverse: bool = False) -> Iterator[Match]:
    """Records whose op values hold ``pattern``: in a string, an object key (including the key
    an ``add`` op creates), or the JSON text of a number, boolean or null (``regex``: a Python
    regular expression, searched).

    ``under`` keeps only values at or under that path (including the part of an ancestor's
    value that lies there). Filters as :func:`touching`.

    Raises:
        InvalidExpressionError: ``regex`` and ``pattern`` does not compile.
        InvalidPointerError: ``under`` is not a JSON Pointer.
    """
    under_tokens = pointers.parse(under, "path") if under is not None else []
    _check_range(start, end, limit)
    test = _matcher(pattern, regex, ignore_case)
    quick = _prefilter(pattern, regex, ignore_case)

    def gen() -> Iterator[Match]:
        for rec in records_in_range(journal, start=start, end=end, since=since, until=until,
                                    reverse=reverse):
            if not isinstance(rec, (Step, Fork)) or not quick(rec):
                continue
            hits: list[dict[str, Any]] = []
            where: list[str] = []
            for op in rec.ops:
                found = _grep_op(op, under, under_tokens, test)
                if found:
                    hits.append(op)
                    where.extend(found)
            if hits:
                yield Match(rec.seq, rec.step, rec.ts, rec.kind, hits, where, rec)

    return _limited(gen(), limit)

"""Time travel by wall clock: the state as of a timestamp, and seq bounds for ``since/until``.

Every record carries ``ts``, the writer's ``time.time()`` when it was appended. Records are
found by time with a binary search over the segments (by the time of each segment's first
record), then a scan of one segment, so the cost is a few segment reads, not the history.
That search assumes the writer's clock did not go backwards; if it did, the answer is a record
near the jump, never an error.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._time import format_ts
from ..errors import InvalidTimeError, StepPrunedError, TimeNotFoundError
from ..events import AnyRecord, Fork, Step

if TYPE_CHECKING:
    from ..replay.journal import Journal

__all__ = ["When", "first_seq_from", "format_local", "format_utc", "parse_time",
           "record_at_time", "state_at_time", "to_epoch"]

When = datetime | float | int | str
"""A point in time: an aware or naive (local) ``datetime``, Unix seconds, or ISO 8601 text."""

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?")


def parse_time(text: str) -> float:
    """Unix seconds of an ISO 8601 time (``2026-11-26T10:00Z``, ``2026-11-26 10:00:05+01:00``,
    ``2026-11-26``) or of a number of seconds (``1764150000.5``).

    Without a zone the time is local. Written by hand because Python 3.10's
    ``datetime.fromisoformat`` rejects ``Z`` and short forms.

    Raises:
        InvalidTimeError: anything else.
    """
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    m = _ISO.fullmatch(s)
    if m is None:
        raise InvalidTimeError(f"not a time: {text!r}",
                               hint="use ISO 8601, e.g. 2026-11-26T10:00Z or "
                                    "2026-11-26T10:00:00+01:00, or Unix seconds")
    y, mo, d, hh, mm, ss, frac, zone = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0),
                      int((frac or "0").ljust(6, "0")[:6]))
    except ValueError as e:
        raise InvalidTimeError(f"not a time: {text!r} ({e})",
                               hint="check the month, day, hour and minute") from None
    if zone:
        if zone in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            off = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = timezone(sign * off)
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def to_epoch(when: When) -> float:
    """Unix seconds of ``when`` (see :data:`When`)."""
    if isinstance(when, bool):
        raise InvalidTimeError(f"not a time: {when!r}")
    if isinstance(when, datetime):
        return when.timestamp()
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, str):
        return parse_time(when)
    raise InvalidTimeError(f"not a time: {type(when).__name__}",
                           hint="pass a datetime, Unix seconds or an ISO 8601 string")


def format_utc(ts: float) -> str:
    """``2026-11-26T10:00:00.000Z``: what ``--json`` output shows."""
    text = format_ts(ts, "%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z" if not text.startswith("ts=") else text


def format_local(ts: float) -> str:
    """``2026-11-26 11:00:00`` in the local time zone: what a terminal shows."""
    return format_ts(ts, "%Y-%m-%d %H:%M:%S", local=True)


def _first_record(journal: Journal, seg: int) -> AnyRecord | None:
    return next(iter(journal.records(seg, seg)), None)


def _segment_at(journal: Journal, t: float) -> tuple[list[int], int]:
    """The segments and the index of the last one whose first record has ``ts <= t`` (-1:
    none)."""
    segs = journal.segment_seqs()
    lo, hi = 0, len(segs)
    while lo < hi:
        mid = (lo + hi) // 2
        rec = _first_record(journal, segs[mid])
        if rec is not None and rec.ts <= t:
            lo = mid + 1
        else:
            hi = mid
    return segs, lo - 1


def first_seq_from(journal: Journal, since: float) -> int:
    """A seq at or before the first record with ``ts >= since`` (where a scan may start)."""
    segs, i = _segment_at(journal, since)
    if not segs:
        return 1
    return segs[max(i, 0)]


def record_at_time(journal: Journal, when: When) -> AnyRecord:
    """The last record that changes the state (``step`` or ``fork``) with ``ts <= when``.

    Raises:
        TimeNotFoundError: ``when`` is before the first step (or the journal is empty).
        StepPrunedError: ``when`` is before the retained history (pruned).
        InvalidTimeError: ``when`` is not a time.
    """
    t = to_epoch(when)
    segs, i = _segment_at(journal, t)
    if not segs:
        raise TimeNotFoundError(f"agent {journal.agent_id!r} has no steps yet")
    found: AnyRecord | None = None
    # Step records in the segments before may be needed when segment i opens with marks only.
    for k in range(max(i, 0), -1, -1):
        for rec in journal.records(segs[k], segs[k + 1] - 1 if k + 1 < len(segs) else None):
            if rec.ts > t:
                break
            if isinstance(rec, (Step, Fork)):
                found = rec
        if found is not None or i < 0:
            break
    if found is None:
        first = _first_record(journal, segs[0])
        start = "" if first is None else (f"; history starts at {format_utc(first.ts)} "
                                          f"(step {first.step})")
        if segs[0] > 1:
            raise StepPrunedError(f"no retained step at or before {format_utc(t)}{start}",
                                  hint="earlier steps were pruned; ask for a later time")
        raise TimeNotFoundError(f"no step at or before {format_utc(t)}{start}",
                                hint="ask for a later time")
    return found


def state_at_time(journal: Journal, when: When) -> tuple[int, Any]:
    """``(step, state)`` as of ``when``: after the last step recorded at or before it.

    Raises:
        TimeNotFoundError: ``when`` is before the first step (or the journal is empty).
        StepPrunedError: ``when`` is before the retained history.
        InvalidTimeError: ``when`` is not a time.
    """
    rec = record_at_time(journal, when)
    return rec.step, journal.state_at_seq(rec.seq)

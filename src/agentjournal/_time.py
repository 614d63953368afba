"""Record timestamps as dates, for any value a record may carry.

A record's ``ts`` is a float of seconds. Another writer of the documented format may put
milliseconds there, or anything a float holds: such a value is still a valid record, so it
must never crash a listing. Outside :mod:`datetime`'s range, dates are clamped
(:func:`utc_datetime`) and texts show the raw number (:func:`format_ts`).
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_datetime(ts: float) -> datetime:
    """``ts`` as an aware UTC datetime, clamped to the range :mod:`datetime` can hold."""
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        edge = datetime.max if ts > 0 else datetime.min
        return edge.replace(tzinfo=timezone.utc)


def format_ts(ts: float, fmt: str | None = None, *, local: bool = False,
              timespec: str = "milliseconds") -> str:
    """``ts`` as text: ISO 8601 UTC by default, ``fmt`` (strftime) if given, in local time
    with ``local``; a value no date can hold is shown as the number itself."""
    try:
        dt = datetime.fromtimestamp(ts) if local else datetime.fromtimestamp(ts, tz=timezone.utc)
        return dt.strftime(fmt) if fmt is not None else dt.isoformat(timespec=timespec)
    except (OverflowError, OSError, ValueError):
        return f"ts={ts!r} (not a date)"

"""Records as the viewer sends them: one row of the step list, and the JSON encoder."""

from __future__ import annotations

from typing import Any

import msgspec

from ..events import AnyRecord, Cut, Fork, Step
from ..summary import summarize

MAX_PAGE = 1000
"""Most records one page of the step list returns."""

_encoder = msgspec.json.Encoder()


def encode(doc: Any) -> bytes:
    """Compact JSON of ``doc``."""
    return _encoder.encode(doc)


def kind_of(rec: AnyRecord) -> str:
    """``step``, ``snapshot``, ``fork``, ``anchor`` or ``cut``."""
    return rec.kind


def row_of(rec: AnyRecord, prev_ts: float | None) -> dict[str, Any]:
    """One line of the step list."""
    ops = rec.ops if isinstance(rec, (Step, Fork)) else []
    row: dict[str, Any] = {
        "seq": rec.seq, "step": rec.step, "ts": rec.ts, "kind": rec.kind,
        "dt": None if prev_ts is None else round(rec.ts - prev_ts, 6),
        "summary": summarize(rec), "nops": len(ops),
    }
    if isinstance(rec, Step) and rec.meta:
        row["meta"] = rec.meta
    if isinstance(rec, Fork):
        row["parent"] = {"agent_id": rec.parent, "seq": rec.parent_seq, "step": rec.parent_step}
    if isinstance(rec, Cut):
        row["cut"] = {"reason": rec.reason, "segment": rec.segment, "offset": rec.offset,
                      "size": rec.size, "digest": rec.digest, "quarantine": rec.quarantine}
    return row

"""The recovery planner: what opening a journal for writing must cut off its end, and why.

One function reads the end of the journal and decides; the writer's recovery carries the plan
out, and ``agentjournal repair --dry-run`` prints it without touching anything, so the two can
never disagree.

The last segment is cut at its first invalid line when nothing valid follows it (a torn tail:
a write cut short by a crash). Damage followed by intact-looking records is what an
out-of-order power loss can leave in ``group``/``none`` mode: it is cut only with ``repair``,
and never when no record after it verifies with the key (that is a wrong key, not damage).
A segment left with no record (a crash while rolling) goes, and the one before it is looked at
in turn. Sealed (compressed) segments are never cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .. import _codec
from ..backends.base import AgentStore
from ..errors import CorruptRecordError
from .reader import Scan, scan

CutKind = Literal["torn_tail", "damage", "empty_segment"]


@dataclass
class Cut:
    """Bytes recovery removes from the end of one segment (or the whole empty segment)."""

    kind: CutKind
    first: int
    """First seq of the segment (its name)."""
    where: str
    offset: int
    """Where the cut starts; everything before it is kept."""
    data: bytes
    message: str
    seq: int
    """The seq the first cut record would have had."""
    records_after: int = 0
    """Complete lines after the damaged one whose hash verifies with the key."""


@dataclass
class Plan:
    """What recovery of one journal does."""

    cuts: list[Cut] = field(default_factory=list)
    tail: Scan | None = None
    """The scan of the segment the journal ends in after the cuts (None: empty journal)."""
    tail_first: int = 0
    tail_sealed: bool = False
    refused: CorruptRecordError | None = None
    """Damage that may not be cut (raised by the writer; reported by ``repair``)."""


def verified_lines_after(data: bytes, key: bytes | None) -> int:
    """Complete lines after the first line of ``data`` whose hash verifies with ``key``."""
    n = 0
    for line in data.split(b"\n")[1:-1]:  # the last piece is b"" or an incomplete line
        parts = _codec.split_line(line)
        if parts is not None and _codec.chain_hash(parts[0], key) == parts[1]:
            n += 1
    return n


def plan_recovery(store: AgentStore, key: bytes | None, *, repair: bool,
                  segments: list[tuple[int, bool]] | None = None) -> Plan:
    """Read the end of the journal and decide what recovery cuts (reads only).

    Args:
        store: the agent's store.
        key: the chain key.
        repair: cut damage followed by intact records (see the module docstring).
        segments: the listing to start from (default: list the store).
    """
    plan = Plan()
    segs = list(store.list_segments() if segments is None else segments)
    while segs:
        first, sealed = segs[-1]
        where = store.location("segment", first)
        data = store.read_segment(first)
        sc = scan(data, first_seq=first, agent_id=store.agent_id, key=key, where=where)
        if sealed:
            if sc.error is not None:
                plan.refused = sc.error  # never cut: verify reports it
            plan.tail, plan.tail_first, plan.tail_sealed = sc, first, True
            return plan
        if sc.valid_end < len(data):
            cut = data[sc.valid_end:]
            damage = sc.error is not None and not sc.tail
            after = verified_lines_after(cut, key) if damage else 0
            if damage:
                assert sc.error is not None
                if not repair:
                    plan.refused = sc.error
                    return plan
                if after == 0:
                    # Nothing after the damage verifies: not a power loss but a wrong key (or
                    # wholesale damage); cutting would throw the journal away.
                    sc.error.hint = ("no record after the damage verifies with this key; "
                                     "check the key before repairing")
                    plan.refused = sc.error
                    return plan
            message = (sc.error.message if sc.error is not None
                       else f"incomplete last line of {len(cut)} bytes")
            plan.cuts.append(Cut(
                kind="damage" if damage else "torn_tail", first=first, where=where,
                offset=sc.valid_end, data=cut, message=message,
                seq=sc.records[-1].seq + 1 if sc.records else first, records_after=after))
        if sc.header is None or not sc.records:
            # Nothing but (part of) a header: the crash came while rolling. It goes.
            plan.cuts.append(Cut(kind="empty_segment", first=first, where=where, offset=0,
                                 data=b"", message="segment holds no record", seq=first))
            segs.pop()
            continue
        plan.tail, plan.tail_first = sc, first
        return plan
    return plan

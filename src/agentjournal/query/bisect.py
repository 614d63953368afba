"""``bisect``: the first step at which a predicate over the state holds.

Two modes. ``monotone`` (the default for counter comparisons such as ``len(/messages) >= 100``)
assumes that once the predicate holds it keeps holding, and binary-searches the steps: each
probe is one ``state_at`` (a materialization: nearest snapshot + replay), ``2 + log2(steps)`` of
them at most — 19 for 100k steps. ``linear`` materializes once, at the start of the history,
then replays every record forward, testing the predicate after each step: it finds the first
step for any predicate, at the cost of a full replay.

A monotone search over a predicate that is not monotone still returns a step where the
predicate is false just before and true at it, only not necessarily the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .. import delta
from ..events import Fork, Step
from .predicate import Predicate, compile_predicate

if TYPE_CHECKING:
    from ..replay.journal import Journal

__all__ = ["BisectResult", "bisect"]

Mode = Literal["monotone", "linear"]


@dataclass(frozen=True)
class BisectResult:
    """What :func:`bisect` found.

    Attributes:
        expression: the predicate as given.
        mode: ``monotone`` (binary search) or ``linear`` (scan).
        step, seq, ts: the first step at which the predicate holds, the seq of its last
            record and that record's time; all None when it never holds.
        materializations: states rebuilt from a snapshot (``state_at`` calls).
        evaluations: times the predicate was tested.
        first_step, last_step: the range of steps searched.
    """

    agent_id: str
    expression: str
    mode: Mode
    step: int | None
    seq: int | None
    ts: float | None
    materializations: int
    evaluations: int
    first_step: int
    last_step: int

    @property
    def found(self) -> bool:
        """Whether some step satisfies the predicate."""
        return self.step is not None


def _first_step(journal: Journal) -> int | None:
    segs = journal.segment_seqs()
    if not segs:
        return None
    return journal.first_step_of_segment(segs[0])


def _record_of(journal: Journal, step: int) -> tuple[int, float]:
    """Seq and time of the last record of ``step`` that changed the state (else its last)."""
    seq = journal.seq_of_step(step)
    found = None
    for rec in journal.history(step, step):
        if isinstance(rec, (Step, Fork)) or found is None:
            found = rec
    if found is None:  # the step's records were pruned; its snapshot holds the state
        return seq, 0.0
    return found.seq, found.ts


def bisect(journal: Journal, expr: str | Predicate, *, monotone: bool | None = None,
           progress: Callable[[int, int], None] | None = None) -> BisectResult:
    """The first step of ``journal`` at which ``expr`` holds for the state after it.

    Args:
        expr: a predicate (see :mod:`agentjournal.query.predicate`), as text or compiled.
        monotone: binary search (True), linear scan (False), or decide from the expression
            (None: monotone for counter comparisons).
        progress: ``progress(done, total)`` in records, called during a linear scan.

    Raises:
        InvalidExpressionError: ``expr`` does not parse.
    """
    pred = expr if isinstance(expr, Predicate) else compile_predicate(expr)
    mono = pred.monotone_hint if monotone is None else monotone
    mode: Mode = "monotone" if mono else "linear"
    lo = _first_step(journal)
    hi = journal.last_step
    if lo is None or journal.last_seq == 0:
        return BisectResult(journal.agent_id, pred.expression, mode, None, None, None, 0, 0,
                            0, 0)
    if mono:
        return _binary(journal, pred, lo, hi)
    return _linear(journal, pred, lo, hi, progress)


def _binary(journal: Journal, pred: Predicate, lo: int, hi: int) -> BisectResult:
    count = {"mat": 0}

    def holds(step: int) -> bool:
        count["mat"] += 1
        return pred(journal.state_at(step))

    first = lo
    found: int | None
    if holds(lo):
        found = lo
    elif lo == hi or not holds(hi):
        found = None
    else:
        # Invariant: false at lo, true at hi.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if holds(mid):
                hi = mid
            else:
                lo = mid
        found = hi
    seq, ts = _record_of(journal, found) if found is not None else (None, None)
    return BisectResult(journal.agent_id, pred.expression, "monotone", found, seq, ts,
                        count["mat"], count["mat"], first, journal.last_step)


def _linear(journal: Journal, pred: Predicate, lo: int, hi: int,
            progress: Callable[[int, int], None] | None) -> BisectResult:
    segs = journal.segment_seqs()
    start = segs[0]
    state: Any = journal.state_at_seq(start - 1) if start > 1 else {}
    total = journal.last_seq
    evaluations = 0
    pending: tuple[int, int, float] | None = None  # (step, seq, ts) of the untested state

    def result(hit: tuple[int, int, float] | None) -> BisectResult:
        return BisectResult(journal.agent_id, pred.expression, "linear",
                            hit[0] if hit else None, hit[1] if hit else None,
                            hit[2] if hit else None, 1, evaluations, lo, hi)

    if start > 1:
        # A pruned history starts from a snapshot's state: it may already satisfy the predicate.
        evaluations += 1
        if pred(state):
            seq, ts = _record_of(journal, lo)
            return result((lo, seq, ts))
    for n, rec in enumerate(journal.records(start), 1):
        if progress is not None and n % 1024 == 0:
            progress(rec.seq, total)
        if pending is not None and rec.step != pending[0]:
            evaluations += 1
            if pred(state):
                return result(pending)
            pending = None
        if isinstance(rec, (Step, Fork)):
            # Copies: the record's values must not become (mutable) parts of the state.
            state = delta.apply_in_place(state, delta.copy_containers(rec.ops))
            pending = (rec.step, rec.seq, rec.ts)
    if progress is not None:
        progress(total, total)
    if pending is not None:
        evaluations += 1
        if pred(state):
            return result(pending)
    return result(None)

"""Moving through the steps of one agent: the state at a step, each step's changes.

The server keeps, per recently viewed agent, a *cursor* (the state after one record) and the
annotated changes of the steps it walked, plus a few sealed segments' decoded records. Moving
right applies one step's ops to the cursor; moving left past what was kept rebuilds
:data:`BACK_WALK` steps at once from one replay. All of it is bounded: :data:`CURSORS` states,
:data:`SEGMENTS` segments, :data:`STASH_STEPS` / :data:`STASH_BYTES` of changes per cursor.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

from .. import delta
from ..errors import PathNotFoundError
from ..events import AnyRecord, Fork, Step
from ..replay.journal import Journal
from .rows import encode, row_of

SEGMENTS = 8
"""Sealed segments whose decoded records are kept (bounded by the segment size limit)."""

CURSORS = 4
"""Agents whose last viewed state is kept for the slider (each holds one full state)."""

BACK_WALK = 32
"""Steps rebuilt at once when the slider moves left past what was kept (one replay each)."""

STASH_STEPS, STASH_BYTES = 256, 4 << 20
"""Annotated changes kept per agent with a cursor: at most this many steps and bytes."""


def lookup(state: Any, tokens: list[str]) -> tuple[bool, Any]:
    """``(found, value)`` at the pointer ``tokens`` of ``state``."""
    node = state
    for t in tokens:
        if isinstance(node, dict):
            if t not in node:
                return False, None
            node = node[t]
        elif isinstance(node, list):
            if not t.isdigit() or int(t) >= len(node) or (len(t) > 1 and t[0] == "0"):
                return False, None
            node = node[int(t)]
        else:
            return False, None
    return True, node


def apply_tracking(state: Any, ops: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """Apply ``ops`` to ``state`` in place, returning the new root and each op annotated.

    Each annotated op has ``at`` (its path with ``-`` resolved to the index it landed at) and,
    when the op replaced or removed a value, ``old``: what the viewer strikes through, and what
    lets the browser step backwards by undoing the ops instead of downloading a state.
    """
    out: list[dict[str, Any]] = []
    for op in ops:
        name, path = op.get("op"), op.get("path", "")
        tokens = delta.parse_pointer(path)
        item: dict[str, Any] = {"op": name, "path": path, "at": path}
        if "value" in op:
            item["value"] = op["value"]
        if tokens:
            found_parent, parent = lookup(state, tokens[:-1])
            last = tokens[-1]
            if found_parent and isinstance(parent, list) and name == "add" and last == "-":
                item["at"] = delta.pointer([*tokens[:-1], str(len(parent))])
            elif found_parent and not (isinstance(parent, list) and name == "add"):
                found, old = lookup(parent, [last])
                if found:
                    item["old"] = old
        elif name in ("replace", "remove"):
            item["old"] = state
        out.append(item)
        # A copy of the value goes into the state: the op may be a cached record's, and
        # later ops change the state in place.
        if "value" in op:
            op = {**op, "value": delta.copy_containers(op["value"])}
        state = delta.apply_in_place(state, [op])
    return state, out


@dataclass
class _Cursor:
    seq: int
    state: Any
    step: int = -1
    """The agent step the cursor is at the end of (-1: not known)."""


class Travel:
    """The cursors and caches of :mod:`travel <agentjournal.serve.travel>`.

    Every method takes an open journal and is called with that agent's lock held (the
    :class:`~agentjournal.serve.model.Viewer` does both), because the cursor's state is
    changed in place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursors: collections.OrderedDict[str, _Cursor] = collections.OrderedDict()
        self._segments: collections.OrderedDict[tuple[str, int, int], list[AnyRecord]] = (
            collections.OrderedDict())
        self._stash: dict[str, collections.OrderedDict[int, bytes]] = {}
        """Per agent with a cursor, the encoded changes of recently walked steps."""
        self._last_doc: dict[str, tuple[int, bytes]] = {}

    def clear(self) -> None:
        """Forget every cursor and cache."""
        with self._lock:
            self._cursors.clear()
            self._segments.clear()
            self._stash.clear()
            self._last_doc.clear()

    def forget(self, agent_id: str) -> None:
        """Forget the cursor and caches of one agent (its journal was replaced)."""
        with self._lock:
            self._cursors.pop(agent_id, None)
            self._stash.pop(agent_id, None)
            self._last_doc.pop(agent_id, None)
            for key in [k for k in self._segments if k[0] == agent_id]:
                del self._segments[key]

    def cursor_state(self, j: Journal, seq: int) -> Any:
        """The state after record ``seq``: from the agent's cursor when it is there (or just
        before), else snapshot + replay. The caller holds the agent's lock and owns the cursor
        afterwards (it may advance it in place)."""
        cur = self._cursors.get(j.agent_id)
        if cur is not None and cur.seq <= seq and seq - cur.seq <= 200:
            state = cur.state
            if seq > cur.seq:
                for rec in j.records(cur.seq + 1, seq):
                    if isinstance(rec, (Step, Fork)):
                        state = delta.apply_in_place(state, rec.ops)
                cur.seq, cur.state, cur.step = seq, state, -1
        else:
            state = j.state_at_seq(seq) if seq > 0 else {}
            cur = _Cursor(seq, state)
        self._set_cursor(j.agent_id, cur)
        return cur.state

    def _set_cursor(self, agent_id: str, cur: _Cursor) -> None:
        with self._lock:
            self._cursors[agent_id] = cur
            self._cursors.move_to_end(agent_id)
            while len(self._cursors) > CURSORS:
                gone, _ = self._cursors.popitem(last=False)
                self._stash.pop(gone, None)
                self._last_doc.pop(gone, None)

    def state(self, j: Journal, step: int, path: str = "") -> bytes:
        """The state (or the value at ``path`` in it) at agent step ``step``, as JSON.

        Encoded here, under the agent's lock, because it is the cursor's own state, which
        the next request on this agent advances in place. The cursor gets there through the
        state before the step, so that the ``changes`` request the page sends with it is
        already answered.
        """
        tokens = delta.parse_pointer(path)
        cur = self._cursors.get(j.agent_id)
        if cur is None or cur.step != step:
            self._walk(j, step, step)
        cur = self._cursors.get(j.agent_id)
        if cur is not None and cur.step == step:
            seq, state = cur.seq, cur.state
        else:  # the step recorded nothing: the state of the last step before it
            seq = j.seq_of_step(step)
            state = self.cursor_state(j, seq)
        found, value = lookup(state, tokens)
        if not found:
            raise PathNotFoundError(f"no value at {path!r} at step {step}",
                                    hint="pick a path from the state tree")
        return encode({"agent_id": j.agent_id, "step": step, "seq": seq, "path": path,
                        "state": value})

    def _segment_records(self, j: Journal, segs: list[int], k: int) -> list[AnyRecord]:
        """Every record of segment ``k``; kept (a few segments in all) once it is sealed.

        Reading one record means scanning its whole segment, so the slider, which asks for
        neighbouring steps one by one, reads each sealed segment once instead of per step.
        """
        first = segs[k]
        if k == len(segs) - 1:
            return list(j.records(first))  # the segment being written: always read afresh
        key = (j.agent_id, first, segs[k + 1])
        with self._lock:
            hit = self._segments.get(key)
            if hit is not None:
                self._segments.move_to_end(key)
                return hit
        recs = list(j.records(first, segs[k + 1] - 1))
        with self._lock:
            self._segments[key] = recs
            while len(self._segments) > SEGMENTS:
                self._segments.popitem(last=False)
        return recs

    def _range_records(self, j: Journal, lo: int, hi: int) -> tuple[list[AnyRecord], int]:
        """The records of agent steps ``lo..hi`` in order, and the first seq of the segment
        being written (records from it may still be joined by more of their step)."""
        segs = j.segment_seqs()
        if not segs:
            return [], 1
        a, b = 0, len(segs)
        while a < b:
            mid = (a + b) // 2
            if j.first_step_of_segment(segs[mid]) <= lo:
                a = mid + 1
            else:
                b = mid
        k = max(a - 1, 0)
        # A step's records may begin in earlier segments (its snapshot mark starts a new one).
        while k > 0 and j.first_step_of_segment(segs[k]) >= lo:
            k -= 1
        out: list[AnyRecord] = []
        for i in range(k, len(segs)):
            if i > k and j.first_step_of_segment(segs[i]) > hi:
                break
            out.extend(r for r in self._segment_records(j, segs, i) if lo <= r.step <= hi)
        return out, segs[-1]

    def _walk(self, j: Journal, lo: int, hi: int) -> None:
        """Bring the cursor to the end of step ``hi`` from the state before step ``lo``,
        annotating the ops of every step on the way and keeping them (:meth:`changes`).

        Walking a stretch instead of one step is what makes moving *left* cheap: the state
        before a step can only be rebuilt by replay from a snapshot, so one replay serves the
        next :data:`BACK_WALK` steps to the left.
        """
        recs, live = self._range_records(j, lo, hi)
        if not recs:
            return
        before = recs[0].seq - 1
        state = self.cursor_state(j, before) if before >= 1 else {}
        stash = self._stash.setdefault(j.agent_id, collections.OrderedDict())
        k = 0
        while k < len(recs):
            step = recs[k].step
            out_recs, all_ops = [], []
            while k < len(recs) and recs[k].step == step:
                rec = recs[k]
                ops: list[dict[str, Any]] = []
                if isinstance(rec, (Step, Fork)):
                    state, ops = apply_tracking(state, rec.ops)
                    all_ops.extend(ops)
                out_recs.append({**row_of(rec, None), "ops": ops})
                k += 1
            doc = encode({"agent_id": j.agent_id, "step": step, "seq": recs[k - 1].seq,
                           "records": out_recs, "ops": all_ops})
            if recs[k - 1].seq < live or step < hi:
                # Complete: a later step exists. (The last step of a live journal may still
                # get its snapshot record, so it is not kept.)
                stash[step] = doc
                stash.move_to_end(step)
            else:
                stash.pop(step, None)
                self._last_doc[j.agent_id] = (step, doc)
        while len(stash) > STASH_STEPS or sum(map(len, stash.values())) > STASH_BYTES:
            stash.popitem(last=False)
        self._set_cursor(j.agent_id, _Cursor(recs[-1].seq, state, recs[-1].step))

    def _kept(self, agent_id: str, step: int) -> bytes | None:
        stash = self._stash.get(agent_id)
        return None if stash is None else stash.get(step)

    def changes(self, j: Journal, step: int) -> bytes:
        """The records of ``step`` with their ops annotated (``at``, ``old``), as JSON
        (encoded under the lock: the op values now live in the cursor's state)."""
        kept = self._kept(j.agent_id, step)
        if kept is not None:
            return kept
        cur = self._cursors.get(j.agent_id)
        last = self._last_doc.get(j.agent_id)
        if last is not None and last[0] == step and cur is not None and cur.step == step:
            return last[1]
        lo = step
        if cur is not None and cur.step > step:  # moving left: walk a stretch at once
            lo = max(step - BACK_WALK + 1, j.first_step_of_segment(j.segment_seqs()[0]))
        self._walk(j, lo, step)
        kept = self._kept(j.agent_id, step)
        if kept is not None:
            return kept
        last = self._last_doc.get(j.agent_id)
        if last is not None and last[0] == step:
            return last[1]
        j.seq_of_step(step)  # raises for a step out of range
        return encode({"agent_id": j.agent_id, "step": step, "records": [], "ops": []})

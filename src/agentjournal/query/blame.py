"""``blame``: which step last wrote a JSON Pointer, what it wrote over, and the writes before.

A write to P is an op that changes the value at P: an op on P itself, on an ancestor of P
(replacing, adding or removing it), inside P, or an insert or removal in a list before P's index
(which moves another element to P). Appends (``/list/-``) and shifts are resolved against the
state, so the history is replayed — one segment at a time, newest first: the state at a
segment's start is a snapshot load (segments begin after a snapshot), then the segment's
records are applied at the cost of their changes. A segment none of whose ops can reach the
pointer (a string test on the ops' paths) is skipped without rebuilding anything. A path written
recently is found in the last segments; an old one costs one read of the older records (the
string test) plus the replay of the segments that may hold a write, at most one replay of the
history.

Forks are followed: a value that came in with a journal's ``fork`` record is blamed in the
parent journal at the fork's seq (opened read-only on the same backend, with the same key).
In a pruned history, a value older than the first retained record is reported with
``history_starts_at``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import delta
from ..errors import JournalNotFoundError, PathNotFoundError
from ..events import Fork, Step
from . import pointers
from .pointers import MISSING, Relation

if TYPE_CHECKING:
    from ..replay.journal import Journal

__all__ = ["BACKWARD_SEGMENTS", "Blame", "HistoryStart", "Write", "blame"]

BACKWARD_SEGMENTS = 8
"""Newest segments searched one by one before a single forward pass over the rest."""


@dataclass(frozen=True)
class Write:
    """One op that changed the value at the blamed pointer.

    Attributes:
        agent_id: the journal holding the record (a parent, once a fork was followed).
        seq, step, ts, kind: the record's (``kind`` is ``step`` or ``fork``).
        op_index: position of the op within the record's ops.
        op: ``add``, ``remove`` or ``replace``.
        path: the op's path as recorded (an append's index is ``-``).
        relation: how the op relates to the pointer (see :data:`pointers.Relation`).
        value: what the write left there (at the pointer for ``self``/``parent``/``shift``,
            the op's value for ``child``); :data:`MISSING` for a removal.
        previous: what was there before (same place as ``value``); :data:`MISSING` if nothing.
    """

    agent_id: str
    seq: int
    step: int
    ts: float
    kind: str
    op_index: int
    op: str
    path: str
    relation: Relation
    value: Any = field(repr=False)
    previous: Any = field(repr=False)


@dataclass(frozen=True)
class HistoryStart:
    """Where a pruned journal's retained history starts: older writes are gone."""

    agent_id: str
    seq: int
    step: int


@dataclass(frozen=True)
class Blame:
    """The answer of :func:`blame` for one pointer.

    Attributes:
        agent_id, pointer: what was asked.
        exists: whether the pointer is in the latest state; ``value`` is its value there
            (:data:`MISSING` if not; children carry no value).
        last: the last write (None: not written in the retained history).
        earlier: with ``all=True``, every earlier write, newest first.
        children: for an object or array, the blame of each member one level down.
        history_starts_at: set when the search reached the start of a pruned history.
        forks: the parent agents whose history was followed, nearest first.
    """

    agent_id: str
    pointer: str
    exists: bool
    value: Any = field(repr=False)
    last: Write | None
    earlier: list[Write] = field(default_factory=list)
    children: list[Blame] = field(default_factory=list)
    history_starts_at: HistoryStart | None = None
    forks: list[str] = field(default_factory=list)


def _order(w: Write) -> tuple[int, int]:
    return w.seq, w.op_index


@dataclass
class _Pass:
    """What one forward replay of a seq range found."""

    writes: list[Write] = field(default_factory=list)
    """Writes to P in order (only the last one unless every write is wanted)."""
    whole: Write | None = None
    """Last write of P as a whole (self/parent/shift): it writes every child too."""
    child: dict[str, Write] = field(default_factory=dict)
    shifts: list[tuple[int, Write]] = field(default_factory=list)
    end_value: Any = MISSING

    def child_write(self, key: str) -> Write | None:
        best = self.whole
        for cand in (self.child.get(key),
                     *(w for i, w in self.shifts if key.isdigit() and i <= int(key))):
            if cand is not None and (best is None or _order(cand) > _order(best)):
                best = cand
        return best


def _candidate(path: str, pointer: str, inside: str) -> bool:
    """Whether an op at ``path`` may write ``pointer`` (``inside`` is ``pointer + "/"``); a
    string test, the exact one is :func:`pointers.state_relation`."""
    if path == pointer or path.startswith(inside):
        return True  # the pointer itself, or inside it
    i = path.rfind("/")
    if i < 0:
        return True  # the root: it replaces everything
    parent = path[:i]
    if not (pointer == parent or pointer.startswith(parent + "/")):
        return False
    if pointer.startswith(path + "/"):
        return True  # an ancestor of the pointer
    # A sibling of an ancestor: it matters only as an insert/remove/append in a list, which
    # may move another item to the pointer.
    last = path[i + 1:]
    return last == "-" or last.isdigit()


def _head(pointer: str) -> str:
    """The pointer's first token with its slash (``/a`` of ``/a/b/c``; ``""`` for the root):
    every op that may write the pointer starts with it, or is the root or a top-level index."""
    i = pointer.find("/", 1)
    return pointer if i < 0 else pointer[:i]


def _may_write(rec: Any, pointer: str, inside: str, head: str) -> bool:
    if not isinstance(rec, (Step, Fork)):
        return False
    for op in rec.ops:
        path = op.get("path", "")
        if not isinstance(path, str):
            continue
        # Cheap first: most ops are elsewhere in the state.
        if (path.startswith(head) or path == "" or path[1:] == "-" or path[1:].isdigit()) and \
                _candidate(path, pointer, inside):
            return True
    return False


def _touched(journal: Journal, first: int, last: int, pointer: str, inside: str) -> bool:
    """Whether any op of records ``first..last`` may write ``pointer`` (no state needed)."""
    head = _head(pointer)
    return any(_may_write(rec, pointer, inside, head) for rec in journal.records(first, last))


def _touched_ranges(journal: Journal, ranges: list[tuple[int, int]], pointer: str,
                    inside: str) -> list[int]:
    """Indexes of the ``ranges`` holding an op that may write ``pointer``, in one read."""
    hits: list[int] = []
    k = 0
    head = _head(pointer)
    for rec in journal.records(ranges[0][0], ranges[-1][1]):
        while rec.seq > ranges[k][1]:
            k += 1
        if (not hits or hits[-1] != k) and _may_write(rec, pointer, inside, head):
            hits.append(k)
    return hits


def _replay(journal: Journal, first: int, last: int, p: list[str], pointer: str,
            every: bool) -> _Pass:
    out = _Pass()
    inside = pointer + "/"
    head = _head(pointer)
    state: Any = journal.state_at_seq(first - 1) if first > 1 else {}
    for rec in journal.records(first, last):
        if not isinstance(rec, (Step, Fork)):
            continue
        ops = rec.ops
        if not _may_write(rec, pointer, inside, head):
            state = delta.apply_in_place(state, delta.copy_containers(ops))
            continue
        for k, op in enumerate(ops):
            path = str(op.get("path", ""))
            if _candidate(path, pointer, inside):
                _inspect(journal, rec, k, op, path, p, state, out, every)
            # One op at a time: the next op is judged against the state it applies to.
            state = delta.apply_in_place(state, delta.copy_containers([op]))
    out.end_value = pointers.lookup(state, p)
    return out


def _inspect(journal: Journal, rec: Step | Fork, k: int, op: dict[str, Any], path: str,
             p: list[str], state: Any, out: _Pass, every: bool) -> None:
    q = delta.parse_pointer(path)
    rel = pointers.state_relation(op, q, p, state)
    if rel is None:
        return
    relation, previous = rel
    name = str(op.get("op"))
    if relation == "child":
        value = op.get("value", MISSING)
    elif relation == "shift":
        # The item that moves to P: from the index before it (an insert) or after it (a removal).
        i = len(q) - 1
        moved = int(p[i]) + (-1 if name == "add" else 1)
        value = delta.copy_containers(pointers.lookup(state, [*p[:i], str(moved), *p[i + 1:]]))
    else:
        value = (pointers.lookup(op.get("value"), p[len(q):]) if name != "remove" else MISSING)
    w = Write(journal.agent_id, rec.seq, rec.step, rec.ts, rec.kind, k, name, path, relation,
              value, delta.copy_containers(previous))
    if every or not out.writes:
        out.writes.append(w)
    else:
        out.writes[-1] = w
    if relation != "child":
        out.whole, out.child, out.shifts = w, {}, []  # supersedes what came before
        return
    tok = pointers.child_token(q, p, pointers.lookup(state, p))
    if tok is None:
        return
    key, moves = tok
    if moves and name in ("add", "remove"):
        out.shifts.append((int(key), w))
    else:
        out.child[key] = w


def _ranges(journal: Journal, upto: int) -> list[tuple[int, int]]:
    segs = [s for s in journal.segment_seqs() if s <= upto]
    return [(s, (segs[i + 1] - 1) if i + 1 < len(segs) else upto) for i, s in enumerate(segs)]


def _child_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return [str(i) for i in range(len(value))]
    return []


def _passes(journal: Journal, ranges: list[tuple[int, int]], every: bool, pointer: str
            ) -> Iterator[tuple[int, int]]:
    """Seq ranges to replay, newest first (the caller stops once it has its answer).

    The newest segment always (it gives the current value); then each older segment with an
    op that may write the pointer, checked one by one for the newest few; then one read of the
    rest finds the segments that may hold a write (the others cannot: they are never replayed);
    the newest :data:`BACKWARD_SEGMENTS` of those are replayed one by one, and the older ones in
    one forward pass from the oldest of them.
    """
    if every:
        yield ranges[0][0], ranges[-1][1]
        return
    yield ranges[-1]
    inside = pointer + "/"
    replayed = 1
    k = len(ranges) - 2
    checked = 0
    while k >= 0 and checked < BACKWARD_SEGMENTS and replayed < BACKWARD_SEGMENTS:
        checked += 1
        if _touched(journal, *ranges[k], pointer, inside):
            replayed += 1
            yield ranges[k]
        k -= 1
    if k < 0:
        return
    hits = _touched_ranges(journal, ranges[:k + 1], pointer, inside)
    while hits and replayed < BACKWARD_SEGMENTS:
        replayed += 1
        yield ranges[hits.pop()]
    if hits:
        yield ranges[hits[0]][0], ranges[hits[-1]][1]


def blame(journal: Journal, pointer: str, *, all: bool = False, children: bool = True,
          upto: int | None = None) -> Blame:
    """Who wrote ``pointer``: the last write, (``all``) every earlier one, and for an object
    or array the last write of each child.

    Args:
        pointer: an RFC 6901 JSON Pointer (``/plan/steps/3``; ``""`` is the whole state).
        all: also list every earlier write, newest first (one replay of the whole history).
        children: blame each child of a container one level down.
        upto: blame as of this seq (default: the last record).

    Raises:
        InvalidPointerError: ``pointer`` is not a JSON Pointer.
        PathNotFoundError: the pointer is not in the state and no retained record wrote it.
    """
    p = pointers.parse(pointer)
    result = _blame(journal, pointer, p, every=all, children=children,
                    upto=journal.last_seq if upto is None else upto)
    if result.last is None and not result.exists and result.history_starts_at is None:
        raise PathNotFoundError(f"{pointer or 'the root'} is not in the state of "
                                f"{journal.agent_id!r} and no step wrote it",
                                hint="'agentjournal show AGENT' lists what the state holds")
    return result


def _blame(journal: Journal, pointer: str, p: list[str], *, every: bool, children: bool,
           upto: int) -> Blame:
    ranges = _ranges(journal, upto)
    if not ranges:
        return Blame(journal.agent_id, pointer, False, MISSING, None)
    writes: list[Write] = []  # newest first
    value: Any = MISSING
    keys: list[str] | None = None
    settled: dict[str, Write] = {}
    pending: list[str] = []
    reached_start = False
    for first, last in _passes(journal, ranges, every, pointer):
        res = _replay(journal, first, last, p, pointer, every)
        if keys is None:
            value = res.end_value
            keys = _child_keys(value) if children else []
            pending = list(keys)
        if every or not writes:
            writes.extend(reversed(res.writes))
        still = []
        for key in pending:
            w = res.child_write(key)
            if w is None:
                still.append(key)
            else:
                settled[key] = w
        pending = still
        if writes and not pending and not every:
            break
    else:
        reached_start = True  # every segment was replayed or had nothing for the pointer
    start = None
    if reached_start and ranges[0][0] > 1 and (every or not writes or pending):
        start = HistoryStart(journal.agent_id, ranges[0][0],
                             journal.first_step_of_segment(ranges[0][0]))
    kids = [Blame(journal.agent_id, delta.pointer([*p, k]), True, MISSING, settled.get(k),
                  history_starts_at=start if k not in settled else None)
            for k in keys or []]
    out = Blame(journal.agent_id, pointer, value is not MISSING, value,
                writes[0] if writes else None, writes[1:], kids, start)
    return _follow_fork(journal, out, p, every=every)


def _follow_fork(journal: Journal, out: Blame, p: list[str], *, every: bool) -> Blame:
    """Replace the writes made by this journal's ``fork`` record with the parent's blame."""
    from_fork = [w for w in [out.last, *out.earlier, *(c.last for c in out.children)]
                 if w is not None and w.kind == "fork"]
    if not from_fork:
        return out
    rec = next(iter(journal.records(from_fork[0].seq, from_fork[0].seq)), None)
    if not isinstance(rec, Fork):
        return out
    try:
        # The journal's own class: this package needs no import of the replay layer, only
        # the public methods of the journal it is given.
        parent = type(journal)(rec.parent, backend=journal.backend, key=journal.key,
                               readonly=True, create=False)
    except JournalNotFoundError:
        return out  # the parent is gone: the fork record is where the value came from
    with parent:
        up = _blame(parent, out.pointer, p, every=every, children=bool(out.children),
                    upto=rec.parent_seq)
    own = [w for w in [out.last, *out.earlier] if w is not None and w.kind != "fork"]
    chain = own + ([up.last] if up.last is not None else []) + up.earlier
    if not every:
        chain = chain[:1]
    by_key = {c.pointer: c for c in up.children}
    kids = [by_key.get(c.pointer, c) if c.last is not None and c.last.kind == "fork" else c
            for c in out.children]
    return replace(out, last=chain[0] if chain else None, earlier=chain[1:], children=kids,
                   history_starts_at=up.history_starts_at if out.last is None or
                   out.last.kind == "fork" else out.history_starts_at,
                   forks=[rec.parent, *up.forks])

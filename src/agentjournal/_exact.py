"""Exact equality of JSON values at C speed where it can be proved, for :mod:`agentjournal.delta`.

Python's ``==`` says ``1 == 1.0 == True`` and ``0.0 == -0.0``, also inside containers, so two
containers that compare equal can still differ as JSON text. ``==`` is exact for strings and
None; everything here starts from a C-speed ``==`` and then proves (or disproves) that no
number hides a difference: by a walk, by a witness (for number-free list items), or by
comparing MessagePack encodings (for runs of items with numbers).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import msgspec

from ._jsondoc import _TooDeep, copy_containers

_DIFF, _EXACT, _PURE = 0, 1, 2
"""Results of the exactness checks: differs; exactly equal; exactly equal and number-free."""


def _same_leaf(a: Any, b: Any) -> bool:
    """Equal and of the same type; for floats also the same sign of zero."""
    if type(a) is not type(b) or a != b:
        return False
    return type(a) is not float or a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)


def _exact(a: Any, b: Any, room: int) -> int:
    """Given ``a == b``, both dicts or both lists: whether they are equal as JSON (key order
    aside), and whether number-free (``_PURE``); ``room`` counts ``a``'s own level."""
    if room <= 0:
        raise _TooDeep
    if type(a) is list:
        return _run_exact(a, b, 0, len(a), 0, room - 1)
    result = _PURE
    room -= 1
    for k, v in a.items():
        w = b[k]
        if v is w:  # the usual case: the shadow shares its leaves with the caller's state
            if result == _PURE and type(v) is not str and v is not None:
                result = _EXACT  # a shared container is not walked to prove it pure
            continue
        t = type(v)
        if t is not type(w):
            return _DIFF
        if t is str or v is None:
            continue  # == is exact for these
        if t is dict or t is list:
            r = _exact(v, w, room)
            if r == _DIFF:
                return _DIFF
            if r == _EXACT:
                result = _EXACT
        elif t is float and v == 0.0 and math.copysign(1.0, v) != math.copysign(1.0, w):
            return _DIFF
        else:
            result = _EXACT
    return result


def _same_dict(a: dict[str, Any], b: dict[str, Any], room: int) -> bool:
    """:func:`_exact` without the purity bookkeeping, for runs that can no longer be pure."""
    if room <= 0:
        raise _TooDeep
    room -= 1
    for k, v in a.items():
        w = b[k]
        if v is w:
            continue
        t = type(v)
        if t is not type(w):
            return False
        if t is dict:
            if not _same_dict(v, w, room):
                return False
        elif t is float:
            if v == 0.0 and math.copysign(1.0, v) != math.copysign(1.0, w):
                return False
        elif t is list and _exact(v, w, room) == _DIFF:
            return False
    return True


_BULK_MIN = 16
"""Fewest items worth encoding to compare them (:func:`_same_bytes`) instead of walking them."""
_BUFFER_KEEP = 8 << 20
"""Largest encoding buffers kept for the next comparison (per thread)."""
_local = threading.local()


def _same_bytes(a: list[Any], b: list[Any]) -> bool:
    """Whether two runs of items encode to the same MessagePack bytes, at C speed.

    The encoding keeps each value's type (``1``, ``1.0`` and ``true`` differ, and the sign of
    ``-0.0``) and key order, so equal bytes mean exactly equal items, whatever objects hold
    them. False (walk instead) also when keys are in another order, or for what it cannot
    encode (ints beyond 64 bits, subclasses). The encodings go into buffers reused by the
    thread: fresh large ``bytes`` would cost page faults that dwarf the encoding itself.
    """
    state = getattr(_local, "state", None)
    if state is None:
        state = _local.state = (msgspec.msgpack.Encoder(), bytearray(), bytearray())
    packer, x, y = state
    try:
        packer.encode_into(a, x)
        packer.encode_into(b, y)
        same = x == y
    except (TypeError, ValueError, OverflowError):
        same = False
    if len(x) > _BUFFER_KEEP or len(y) > _BUFFER_KEEP:
        del _local.state
    return same


def _item_exact(a: Any, b: Any, room: int) -> int:
    """:func:`_exact` for two list items known to compare equal (any JSON values)."""
    if a is b:
        return _PURE if type(a) is str or a is None else _EXACT
    t = type(a)
    if t is not type(b):
        return _DIFF
    if t is dict or t is list:
        return _exact(a, b, room)
    if t is str or a is None:
        return _PURE
    return _EXACT if _same_leaf(a, b) else _DIFF


def _eq(a: Any, b: Any, room: int) -> bool:
    """Equal as JSON values (key order aside), for two list items."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is dict or t is list:
        return bool(a == b) and _exact(a, b, room) != _DIFF
    return _same_leaf(a, b)


# A witness is a private, number-free copy of a run of items at the front of a list ``old``
# (keyed by ``id(old)``). ``old[:n] == witness[:n]`` then proves at C speed that those items are
# exactly equal to the witness (``==`` is exact on number-free values), and so is anything
# ``==`` to them. Nothing is trusted without that comparison, so a stale witness (a list
# mutated behind it, an id reused) only costs the walk it would have saved. Witnesses are kept
# for the most recently used lists only: each costs a copy of its items' containers, and keeps
# their strings alive until it is evicted.
_WITNESS_MIN = 8
"""Shortest list worth a witness (walking 8 small dicts already costs more than one)."""
_WITNESS_SLOTS = 256
"""How many lists keep a witness (most recently used). One process serving a fleet diffs one
conversation per agent in turn: with fewer slots than agents saving, every witness is evicted
before its list comes round again and every step walks the whole conversation (measured: 64
agents at 16 slots spent half their CPU re-walking and re-copying). 256 covers a manager's
default 128 open journals twice over; a 1000-message conversation's witness is ~230 KB."""
_witnesses: dict[int, list[Any]] = {}


def _witness_prefix(old: list[Any], limit: int) -> int:
    """How many leading items of ``old`` (at most ``limit``) a valid witness covers."""
    w = _witnesses.get(id(old))
    if w is None:
        return 0
    n = min(len(w), limit)
    return n if n and old[:n] == w[:n] else 0


def _keep_witness(old: list[Any], witness: list[Any]) -> None:
    key = id(old)
    _witnesses.pop(key, None)
    _witnesses[key] = witness
    while len(_witnesses) > _WITNESS_SLOTS:
        try:
            del _witnesses[next(iter(_witnesses))]
        except (KeyError, RuntimeError, StopIteration):  # another thread evicted it first
            break


class Trust:
    """Number-free list prefixes of one private document, proven by earlier diffs of it.

    A :class:`~agentjournal.Journal`'s shadow is such a document: nothing mutates it but the
    journal applying the ops of its own last diff. A diff given the trust
    (``delta.diff(old, new, trust=...)``) takes a known prefix as proven instead of comparing it
    with a witness. Each list it visits notes what will be known of it once that diff's ops are
    applied, and :meth:`commit` (called after applying them) makes that the knowledge. Any other
    change to the document must :meth:`forget`. The lists themselves are held, so an id is
    never reused while known.
    """

    __slots__ = ("known", "pending")

    def __init__(self) -> None:
        self.known: dict[int, tuple[list[Any], int]] = {}
        self.pending: dict[int, tuple[list[Any], int]] | None = None

    def prefix(self, lst: list[Any]) -> int:
        """How many leading items of ``lst`` are known to be number-free."""
        got = self.known.get(id(lst))
        return got[1] if got is not None and got[0] is lst else 0

    def begin(self) -> None:
        """A diff of the document starts: nothing noted yet."""
        self.pending = {}

    def unchanged(self) -> None:
        """The document was left as it was (no ops applied): what is known stays known."""
        self.pending = None

    def note(self, lst: list[Any], n: int) -> None:
        """After the running diff's ops are applied, ``lst[:n]`` is number-free."""
        if self.pending is not None:
            self.pending[id(lst)] = (lst, n)

    def commit(self) -> None:
        """The ops of the last diff were applied to the document, and nothing else was."""
        self.known = self.pending if self.pending is not None else {}
        self.pending = None

    def forget(self) -> None:
        """The document changed in some other way (or was replaced): nothing is known."""
        self.known = {}
        self.pending = None


_active = threading.local()


def active_trust() -> Trust | None:
    """The trust of the diff running in this thread (None: an ordinary diff)."""
    return getattr(_active, "trust", None)


def set_trust(trust: Trust | None) -> Trust | None:
    """Make ``trust`` the running diff's (None: none); returns the previous one."""
    prev = getattr(_active, "trust", None)
    _active.trust = trust
    return prev


def _run_exact(old: list[Any], new: list[Any], start: int, end: int, shift: int,
               room: int) -> int:
    """Given ``old[start:end] == new[start - shift:end - shift]``, whether the run is exactly
    equal item by item; ``room`` counts each item's own level.

    Refreshes the witness of ``old`` for the list it becomes once the ``start`` items before
    the run are removed (the front-removal case; 0 otherwise) and the diff is applied; under a
    :class:`Trust`, notes its number-free prefix instead (no witness is compared or copied).
    """
    trust = getattr(_active, "trust", None)
    big = end - start >= _WITNESS_MIN
    done = start
    w = None
    if trust is not None:
        known = trust.prefix(old)
        if known > start:
            done = min(known, end)
    elif big:
        w = _witnesses.get(id(old))
        if w is not None:
            top = min(len(w), end)
            if top > start and old[start:top] == (w if start == 0 and top == len(w) else
                                                  w[start:top]):
                done = top
            else:
                w = None
    result = _PURE
    grow = done  # the number-free prefix can grow over the pure items that follow it
    bulk = end - _BULK_MIN  # past the first item with numbers, try one bulk comparison
    for i in range(done, end):
        a = old[i]
        b = new[i - shift]
        if result == _EXACT:
            if i <= bulk and _same_bytes(old[i:end], new[i - shift:end - shift]):
                if trust is not None:
                    trust.note(old, grow - start)
                return _EXACT
            bulk = -1  # once is enough: the items differ (or reorder keys) somewhere
            if type(a) is dict and type(b) is dict:
                if not _same_dict(a, b, room):  # purity no longer matters: the cheaper walk
                    return _DIFF
                continue
        r = _item_exact(a, b, room)
        if r == _DIFF:
            return _DIFF
        if r == _EXACT:
            result = _EXACT
        elif grow == i:
            grow = i + 1
    if trust is not None:
        trust.note(old, grow - start)
    elif big and grow > start:
        extra = [copy_containers(old[i]) for i in range(done, grow)]
        if w is not None and start == 0 and done == len(w):
            w.extend(extra)  # pure private items only: a concurrent reader stays sound
        else:
            _keep_witness(old, (w[start:done] if w is not None else []) + extra)
    return result

"""JSON Pointer matching for history queries: which ops touch a path, and how.

Two levels of precision, chosen by the query:

* :func:`path_relation` compares an op's path with a pointer as strings, without any state. An
  escaped pointer's ``/`` separates tokens exactly, so string prefixes at a ``/`` boundary are
  token prefixes. ``touching`` and ``grep`` use it: they never replay states.
* :func:`state_relation` resolves list indexes against the state the op applies to: ``-``
  (an append) becomes the list's length, and an insert or removal before an index shifts the
  element at it. ``blame`` uses it, during its replay.

Parsing is :func:`agentjournal.delta.parse_pointer`; its error becomes
:class:`~agentjournal.errors.InvalidPointerError` (a usage error of the query).
"""

from __future__ import annotations

from typing import Any, Literal

from .. import delta
from ..errors import InvalidPatchError, InvalidPointerError

__all__ = [
    "MISSING",
    "Relation",
    "child_token",
    "lookup",
    "parse",
    "path_relation",
    "state_relation",
]


class _Missing:
    """The value at a pointer that does not exist (distinct from JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""What :func:`lookup` returns for a path that is not in the document."""

Relation = Literal["self", "parent", "child", "shift"]
"""How an op relates to a pointer P: it writes P itself (``self``), an ancestor of P
(``parent``: P is replaced, added or removed with it), something inside P (``child``), or it
inserts or removes a list element before P's index, moving another element to P (``shift``)."""


def parse(pointer: str, what: str = "pointer") -> list[str]:
    """Tokens of ``pointer``, or :class:`InvalidPointerError` with a hint."""
    try:
        return delta.parse_pointer(pointer)
    except InvalidPatchError as e:
        raise InvalidPointerError(f"bad {what} {pointer!r}: {e.message}",
                                  hint=e.hint or "a JSON Pointer looks like /key/0/name"
                                  ) from None


def _index(token: str) -> int | None:
    """A list index token as RFC 6901 writes it (``0``, ``12``; not ``01``, ``-1``)."""
    if token.isdigit() and token.isascii() and (token == "0" or token[0] != "0"):
        return int(token)
    return None


def lookup(doc: Any, tokens: list[str]) -> Any:
    """The value at ``tokens`` in ``doc``, or :data:`MISSING`."""
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                return MISSING
            cur = cur[t]
        elif isinstance(cur, list):
            i = _index(t)
            if i is None or i >= len(cur):
                return MISSING
            cur = cur[i]
        else:
            return MISSING
    return cur


def path_relation(op_path: str, pointer: str) -> Literal["self", "parent", "child"] | None:
    """How ``op_path`` relates to ``pointer`` as written (no index resolution), or None.

    ``/conversation_history/-`` is a ``child`` of ``/conversation_history``; ``/conversation``
    is unrelated to ``/conversation_history`` (tokens, not characters, are compared).
    """
    if op_path == pointer:
        return "self"
    if op_path.startswith(pointer) and op_path[len(pointer)] == "/":
        return "child"
    if pointer.startswith(op_path) and pointer[len(op_path)] == "/":
        return "parent"
    return None


def state_relation(op: dict[str, Any], q: list[str], p: list[str], state: Any
                   ) -> tuple[Relation, Any] | None:
    """How the op at tokens ``q`` relates to pointer tokens ``p`` in ``state`` (before the op).

    Returns ``(relation, previous)``: ``previous`` is the value the op overwrites as seen from
    P — the value at P for ``self``/``parent``/``shift``, the value at the op's own (resolved)
    path for ``child`` — or :data:`MISSING`. None when the op leaves P's value as it was.
    """
    name = op.get("op")
    cur = state
    n = min(len(p), len(q))
    for i in range(n):
        qt, pt = q[i], p[i]
        if isinstance(cur, list):
            qi = len(cur) if qt == "-" else _index(qt)
            pi = _index(pt)
            if qi is None or pi is None:
                return None
            if i == len(q) - 1 and name in ("add", "remove"):
                if name == "add" and not qi <= pi <= len(cur):
                    return None
                if name == "remove" and not qi <= pi < len(cur):
                    return None
                before = lookup(cur, p[i:])
                if qi < pi:
                    return "shift", before
                if len(q) == len(p):
                    return "self", before
                after = lookup(op.get("value"), p[i + 1:]) if name == "add" else MISSING
                return ("parent", before) if (before is not MISSING
                                              or after is not MISSING) else None
            if qi != pi:
                return None
            cur = cur[qi] if qi < len(cur) else MISSING
        elif qt != pt:
            return None
        elif isinstance(cur, dict):
            cur = cur.get(qt, MISSING)
        else:
            cur = MISSING
    if len(q) > len(p):
        return "child", lookup(cur, q[len(p):])
    before = lookup(cur, p[len(q):])
    if len(q) == len(p):
        return "self", before
    after = lookup(op.get("value"), p[len(q):]) if name != "remove" else MISSING
    if before is MISSING and after is MISSING:
        return None  # replaced an ancestor, and P was in neither the old nor the new value
    return "parent", before


def child_token(q: list[str], p: list[str], at_p: Any) -> tuple[str, bool] | None:
    """For an op at ``q`` inside pointer ``p``: the child of P it falls in, resolved against
    ``at_p`` (the value at P before the op), and whether it inserts into or removes from a
    list P (moving every later child)."""
    if len(q) <= len(p):
        return None
    t = q[len(p)]
    if isinstance(at_p, list):
        i = len(at_p) if t == "-" else _index(t)
        if i is None:
            return None
        return str(i), len(q) == len(p) + 1
    return t, False

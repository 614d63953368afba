"""JSON Patch deltas between agent states: the change a step made, and applying it back.

A step is recorded as the RFC 6902 ops that turn the previous state into the next one. Only
``add``, ``remove`` and ``replace`` are produced or accepted; paths are RFC 6901 JSON Pointers,
with ``""`` for the whole document.

:func:`diff` is exact and built to cost the change, not the state. Exact: every change of the
JSON document is recorded, including the ones Python's ``==`` hides (``1 == 1.0 == True``,
``0.0 == -0.0``), at any depth and inside any container. Cost: it skips every subtree that is
the same object, or that compares equal with C-level ``==`` and holds no number that ``==``
could have equated (strings and None compare exactly; numbers are checked by type, and a float
zero by sign), and treats a list that only grew at its end, or dropped its oldest items, as
appends (and removes at the front). For long lists a private number-free copy of their leading
items (a witness) proves them unchanged with one more C-level ``==``, so a conversation of
string messages costs two ``==`` per step, not a walk. Numbers must be looked at every step,
because the caller can change any of them in place: a long run of items with numbers is
compared by its MessagePack encoding (which keeps types and the sign of zero) at C speed, and
walked only if the encodings differ. Lists that change in the middle are compared index
by index (common prefix and suffix, then position by position); no LCS is attempted, so deleting
an early element shows up as replaces of every later position plus one remove. That is correct,
only not minimal.

Key order is not part of a document (JSON objects are unordered, RFC 8259, and JSON Patch has
no op to reorder keys). Reordering keys records nothing; a key keeps the place where it was
first added, and keys added by one step come after the others, in the order of the new state.
Replay and snapshots follow the same rule, so every read of a step gives the same order;
compare states on a canonical encoding with sorted keys (``msgspec.json.encode(state,
order="sorted")``).

Documents are JSON values only (see :func:`check_json`), nested at most :data:`MAX_DEPTH`
levels. :func:`diff` applies both rules to every value it puts in an op and to every subtree it
walks, so validation costs the change; nothing here raises ``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._exact import _DIFF, Trust, _eq, _exact, _run_exact, _same_leaf, _witness_prefix
from ._exact import active_trust as _active_trust
from ._exact import set_trust as _set_trust
from ._jsondoc import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    _deep_path,
    _limit_error,
    _TooDeep,
    check_depth,
    check_json,
    copy_containers,
    escape,
    parse_pointer,
    pointer,
    unescape,
)
from .errors import InvalidPatchError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "Op",
    "apply",
    "apply_in_place",
    "check_depth",
    "check_json",
    "copy_containers",
    "diff",
    "escape",
    "parse_pointer",
    "pointer",
    "unescape",
]

Op = dict[str, Any]
"""One RFC 6902 op: ``{"op": "add" | "remove" | "replace", "path": "/a/b", "value": ...}``."""

_OPS = frozenset({"add", "remove", "replace"})


# --------------------------------------------------------------------------- diff


def diff(old: Any, new: Any, *, trust: Trust | None = None) -> list[Op]:
    """Return the ops that turn ``old`` into ``new``: ``apply(old, diff(old, new)) == new``.

    Exact: every change of the JSON document is recorded, including the ones ``==`` hides
    (``1`` to ``True`` or ``1.0``, ``0.0`` to ``-0.0``), at any depth. Key order is not part
    of the document (see the module docstring). Values in the returned ops are objects of
    ``new`` (not copies); copy them before mutating either. Every added or replaced value is
    validated with :func:`check_json`; the rest of ``new`` is not looked at when it is exactly
    equal to ``old``.

    Raises:
        NotJSONEncodableError: a changed part of ``new`` is not JSON; ``path`` points at it.
        LimitExceededError: ``new`` (or ``old``) nests deeper than :data:`MAX_DEPTH`.

    ``trust`` (the engine's, for its private shadow as ``old``): what earlier diffs of ``old``
    proved, see :class:`agentjournal._exact.Trust`; the caller commits it once it applied the
    ops to ``old``.
    """
    ops: list[Op] = []
    if trust is not None:
        trust.begin()
    prev = _set_trust(trust)
    try:
        _diff(old, new, "", ops, MAX_DEPTH)
    except (_TooDeep, RecursionError):
        # Depth is counted in the walk; a RecursionError can still come from C-level ``==``
        # on two values both nested beyond the limit, or from a caller that is itself deep.
        for side, what in ((new, "new value"), (old, "old value")):
            tokens = _deep_path(side, MAX_DEPTH)
            if tokens is not None:
                raise _limit_error(pointer(tokens), what) from None
        raise
    finally:
        _set_trust(prev)
    return ops


def _replace(path: str, new: Any, ops: list[Op]) -> None:
    check_json(new, path)
    ops.append({"op": "replace", "path": path, "value": new})


def _diff(old: Any, new: Any, path: str, ops: list[Op], room: int) -> None:
    """Diff two values at ``path``; ``room`` counts their own level."""
    if old is new:
        return
    t = type(old)
    if t is not type(new):
        _replace(path, new, ops)
    elif t is dict:
        if room <= 0:
            raise _TooDeep
        if old == new and _exact(old, new, room) != _DIFF:
            return
        _diff_dict(old, new, path, ops, room - 1)
    elif t is list:
        if room <= 0:
            raise _TooDeep
        _diff_list(old, new, path, ops, room - 1)
    elif not _same_leaf(old, new):
        _replace(path, new, ops)


def _diff_dict(old: dict[Any, Any], new: dict[Any, Any], path: str, ops: list[Op],
               room: int) -> None:
    for k, ov in old.items():
        if k in new:
            nv = new[k]
            if ov is nv:
                continue
            t = type(ov)
            if t is type(nv) and ((t is str and ov == nv)
                                  or ((t is list or t is dict) and not ov and not nv)):
                # Exactly equal without a walk (== is exact on strings; two empty
                # containers): most fields of an agent's state, every step.
                continue
            if type(k) is not str:
                check_json(new, path)  # raises, naming this dict
            _diff(ov, nv, path + "/" + escape(k), ops, room)
        else:
            if type(k) is not str:
                check_json(old, path)  # only a str key can be named in a remove op
            ops.append({"op": "remove", "path": path + "/" + escape(k)})
    for k, nv in new.items():
        if k not in old:
            if type(k) is not str:
                check_json(new, path)
            child = path + "/" + escape(k)
            check_json(nv, child)
            ops.append({"op": "add", "path": child, "value": nv})


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[Op], room: int) -> None:
    """Diff two lists; ``room`` counts each item's own level."""
    n_old = len(old)
    n_new = len(new)
    # Fast path: unchanged, or grown at its end only (a conversation gaining messages).
    if (n_new >= n_old and old == (new if n_new == n_old else new[:n_old])
            and _run_exact(old, new, 0, n_old, 0, room) != _DIFF):
        _append(new, n_old, path, ops)
        return
    # A window that dropped its oldest items (and maybe grew at the end): remove at the front.
    for k in range(1, min(n_old - 1, _MAX_FRONT) + 1):
        keep = n_old - k
        if (keep <= n_new and _eq(old[k], new[0], room) and old[k:] == new[:keep]
                and _run_exact(old, new, k, n_old, k, room) != _DIFF):
            for _ in range(k):
                ops.append({"op": "remove", "path": f"{path}/0"})
            _append(new, keep, path, ops)
            return
    # Otherwise: skip the common prefix and suffix, compare the middles position by position.
    # Where a witness proves old's items number-free, == is exact on them: the common parts
    # are found with C-level slice comparisons (an edit of one old message costs ~2 ==).
    lim = min(n_old, n_new)
    trust = _active_trust()
    pure = _witness_prefix(old, n_old) if trust is None else min(trust.prefix(old), n_old)
    p = _equal_prefix(old, new, min(pure, lim))
    while p < lim and _eq(old[p], new[p], room):
        p += 1
    q = _equal_suffix(old, new, lim - p) if pure == n_old else 0
    while q < lim - p and _eq(old[n_old - 1 - q], new[n_new - 1 - q], room):
        q += 1
    m_old, m_new = n_old - p - q, n_new - p - q
    if trust is not None:
        # The items before p stay as they are; what is known of them stays known.
        trust.note(old, min(pure, p))
    for i in range(p, p + min(m_old, m_new)):
        _diff(old[i], new[i], f"{path}/{i}", ops, room)
    if m_old > m_new:
        # Highest index first, so each remove leaves the remaining indices valid.
        for i in range(p + m_old - 1, p + m_new - 1, -1):
            ops.append({"op": "remove", "path": f"{path}/{i}"})
    elif m_new > m_old:
        if q == 0:
            _append(new, p + m_old, path, ops)
        else:
            for i in range(p + m_old, p + m_new):
                item = new[i]
                check_json(item, f"{path}/{i}")
                ops.append({"op": "add", "path": f"{path}/{i}", "value": item})


_MAX_FRONT = 16
"""How many dropped leading items :func:`diff` looks for (a sliding window of messages)."""


def _equal_prefix(old: list[Any], new: list[Any], n: int) -> int:
    """The longest ``p <= n`` with ``old[:p] == new[:p]``, by halving (about ``n`` item
    comparisons in all, at C speed)."""
    if old[:n] == new[:n]:
        return n
    lo, hi = 0, n  # old[:lo] == new[:lo]; the first difference is before hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if old[lo:mid] == new[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _equal_suffix(old: list[Any], new: list[Any], n: int) -> int:
    """The longest ``q <= n`` with equal last ``q`` items (``==``), like :func:`_equal_prefix`."""
    n_old, n_new = len(old), len(new)
    if n == 0 or old[n_old - n:] == new[n_new - n:]:
        return n
    lo, hi = 0, n  # the last lo items are equal; a difference is among the last hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if old[n_old - mid:n_old - lo] == new[n_new - mid:n_new - lo]:
            lo = mid
        else:
            hi = mid
    return lo


def _append(new: list[Any], start: int, path: str, ops: list[Op]) -> None:
    if start >= len(new):
        return
    end = path + "/-"
    for i in range(start, len(new)):
        item = new[i]
        check_json(item, f"{path}/{i}")
        ops.append({"op": "add", "path": end, "value": item})


# --------------------------------------------------------------------------- apply


_TOKENS: dict[str, tuple[str, ...]] = {}
"""Parsed paths of valid ops, by path: a replay applies the same few paths ("/messages/-",
"/counter") over and over. Bounded: emptied when full (paths with list indexes are many)."""
_TOKENS_MAX = 4096


def _parse_op(op: Any, n: int) -> tuple[str, str, tuple[str, ...], Any]:
    """Validate op number ``n``; return its name, path, tokens and value (``None`` if absent)."""
    if isinstance(op, dict):  # the common case, checked in one go; errors are named below
        name = op.get("op")
        path = op.get("path")
        if (type(name) is str and name in _OPS and type(path) is str
                and (name == "remove" or "value" in op)):
            tokens = _TOKENS.get(path)
            if tokens is not None:
                return name, path, tokens, op.get("value")
    return _parse_op_checked(op, n)


def _parse_op_checked(op: Any, n: int) -> tuple[str, str, tuple[str, ...], Any]:
    """:func:`_parse_op` with every check, naming what is wrong; caches the path."""
    if not isinstance(op, dict):
        raise InvalidPatchError(
            f"op {n} is a {type(op).__name__}, not an object", hint="an op is a dict"
        )
    name = op.get("op")
    path = op.get("path")
    if not isinstance(name, str) or name not in _OPS:  # a list or dict is not hashable
        raise InvalidPatchError(
            f"op {n} has unsupported op {name!r}",
            path=path if isinstance(path, str) else None,
            hint="only 'add', 'remove' and 'replace' are used (no move, copy or test)",
        )
    if path is None:
        raise InvalidPatchError(f"op {n} ({name}) has no 'path'")
    if not isinstance(path, str):
        raise InvalidPatchError(f"op {n} ({name}) has a non-string path {path!r}")
    if name != "remove" and "value" not in op:
        raise InvalidPatchError(f"op {n} ({name} {path!r}) has no 'value'", path=path)
    try:
        tokens = tuple(parse_pointer(path))
    except InvalidPatchError as e:
        raise InvalidPatchError(f"op {n}: {e.message}", path=path, hint=e.hint) from None
    if len(tokens) > MAX_DEPTH:  # no document within the limit has such a path
        raise _limit_error(path, f"op {n} ({name}) path")
    if len(_TOKENS) >= _TOKENS_MAX:
        _TOKENS.clear()
    _TOKENS[path] = tokens
    return name, path, tokens, op.get("value")


def _fail(n: int, name: str, path: str, why: str) -> InvalidPatchError:
    return InvalidPatchError(
        f"op {n} ({name} {path!r}) does not apply: {why}",
        path=path,
        hint="the patch was made against a different document; replay from the matching state",
    )


def _index(token: str, size: int, n: int, name: str, path: str, *, allow_end: bool) -> int:
    """Parse a list index token; ``allow_end`` admits ``len`` (insert at the end)."""
    if not (token.isascii() and token.isdigit()) or (token[0] == "0" and token != "0"):
        raise _fail(n, name, path, f"{token!r} is not a list index")
    i = int(token)
    if i > size or (i == size and not allow_end):
        raise _fail(n, name, path, f"index {i} is out of range for a list of {size}")
    return i


def _child(container: Any, token: str, n: int, name: str, path: str) -> Any:
    """Return the child of an intermediate container along ``path``."""
    if isinstance(container, dict):
        if token not in container:
            raise _fail(n, name, path, f"no key {token!r}")
        return container[token]
    if isinstance(container, list):
        if token == "-":
            raise _fail(n, name, path, "'-' only names the end of a list as the last token")
        return container[_index(token, len(container), n, name, path, allow_end=False)]
    raise _fail(n, name, path, f"cannot descend into a {type(container).__name__} value")


def _set(parent: Any, token: str, name: str, value: Any, n: int, path: str) -> None:
    """Apply op ``name`` to ``parent[token]``, mutating ``parent``."""
    if isinstance(parent, dict):
        if name == "add":
            parent[token] = value
        elif token not in parent:
            raise _fail(n, name, path, f"no key {token!r}")
        elif name == "remove":
            del parent[token]
        else:
            parent[token] = value
    elif isinstance(parent, list):
        if name == "add":
            if token == "-":
                parent.append(value)
            else:
                parent.insert(_index(token, len(parent), n, name, path, allow_end=True), value)
        elif token == "-":
            raise _fail(n, name, path, "'-' names no existing element")
        else:
            i = _index(token, len(parent), n, name, path, allow_end=False)
            if name == "remove":
                del parent[i]
            else:
                parent[i] = value
    else:
        raise _fail(n, name, path, f"cannot {name} inside a {type(parent).__name__} value")


def _root_op(name: str, value: Any, n: int, path: str) -> Any:
    if name == "remove":
        raise _fail(n, name, path, "the whole document cannot be removed")
    return value


def apply_in_place(state: Any, ops: Iterable[Op]) -> Any:
    """Apply ``ops`` by mutating the containers of ``state``; return the new root.

    The root changes only through an op on ``""``. Values from the ops are inserted as they
    are, not copied, so later ops (and later callers) mutate them too: pass ops whose values
    nobody else holds, such as freshly decoded ones.

    Raises:
        InvalidPatchError: a malformed or unsupported op, or one that does not fit the document
            (missing key, index out of range). Ops before it have already been applied.
    """
    root = state
    for n, op in enumerate(ops):
        name, path, tokens, value = _parse_op(op, n)
        if not tokens:
            root = _root_op(name, value, n, path)
            continue
        parent = root
        for token in tokens[:-1]:
            parent = _child(parent, token, n, name, path)
        _set(parent, tokens[-1], name, value, n, path)
    return root


def apply(state: Any, ops: Iterable[Op]) -> Any:
    """Return ``state`` with ``ops`` applied, leaving ``state`` and the op values untouched.

    Each container along a touched path is shallow-copied once (path copying), so the cost
    follows the ops, not the document; untouched subtrees and op values are shared between
    ``state``, the ops and the result.

    Raises:
        InvalidPatchError: as :func:`apply_in_place`.
    """
    # Containers copied by this call, keyed by id; holding them keeps their ids unique.
    fresh: dict[int, Any] = {}

    def own(container: Any) -> Any:
        if id(container) in fresh or not isinstance(container, (dict, list)):
            return container
        copied = container.copy()
        fresh[id(copied)] = copied
        return copied

    root = state
    for n, op in enumerate(ops):
        name, path, tokens, value = _parse_op(op, n)
        if not tokens:
            root = _root_op(name, value, n, path)
            continue
        root = parent = own(root)
        for token in tokens[:-1]:
            child = _child(parent, token, n, name, path)
            owned = own(child)
            if owned is not child:
                if isinstance(parent, dict):
                    parent[token] = owned
                else:
                    parent[int(token)] = owned
            parent = owned
        _set(parent, tokens[-1], name, value, n, path)
    return root

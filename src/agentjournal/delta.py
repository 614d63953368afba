"""JSON Patch deltas between agent states: the change a step made, and applying it back.

A step is recorded as the RFC 6902 ops that turn the previous state into the next one. Only
``add``, ``remove`` and ``replace`` are produced or accepted; paths are RFC 6901 JSON Pointers,
with ``""`` for the whole document.

:func:`diff` is built to cost the change, not the state. It skips every subtree that is the same
object or compares equal with C-level ``==``, and treats a list that only grew at its end as a
run of ``/-`` appends. Lists that shrink or change in the middle are compared index by index
(common prefix recursively, then trailing removes or appends); no LCS is attempted, so deleting
an early element shows up as replaces of every later position plus one remove. That is correct,
only not minimal.

Documents are JSON values only: ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` (any size),
finite ``float``, ``bool`` and ``None``, by exact type (a subclass such as an ``IntEnum`` would
come back as its base type after a round trip, so it is refused). :func:`check_json` enforces
this, and :func:`diff` applies it to every value it puts in an op, so validation costs the change.

Limitation: Python's ``==`` says ``1 == 1.0 == True`` and ``0.0 == -0.0``. Where :func:`diff`
compares two leaves it also requires the same type (and the same sign of zero), so ``1`` becoming
``True`` or ``1.0`` is a ``replace``. But a container that compares equal as a whole is skipped
without looking inside, so ``[1]`` becoming ``[True]`` (or ``{"a": 1}`` becoming ``{"a": 1.0}``)
is not detected; nor is ``[1]`` becoming ``[True, 2]``, whose old part is compared as one slice.
Values that only differ that way are equal to Python, not in their JSON text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import InvalidPatchError, NotJSONEncodableError

__all__ = [
    "Op",
    "apply",
    "apply_in_place",
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
_JSON_HINT = "convert it to a JSON type (str, int, float, bool, None, list, dict) before saving"


# --------------------------------------------------------------------------- JSON Pointer


def escape(token: str) -> str:
    """Escape one reference token for a JSON Pointer (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """Undo :func:`escape` on one reference token.

    Raises:
        InvalidPatchError: ``~`` not followed by ``0`` or ``1``.
    """
    if "~" not in token:
        return token
    if token.count("~") != token.count("~0") + token.count("~1"):
        raise InvalidPatchError(
            f"bad escape in JSON Pointer token {token!r}",
            hint="write '~' as '~0' and '/' as '~1' in pointer tokens",
        )
    # "~1" first: "~01" must become "~1", not "/".
    return token.replace("~1", "/").replace("~0", "~")


def pointer(tokens: Iterable[str | int]) -> str:
    """Build a JSON Pointer from reference tokens; no tokens gives ``""`` (the root)."""
    return "".join("/" + (escape(t) if isinstance(t, str) else str(t)) for t in tokens)


def parse_pointer(path: str) -> list[str]:
    """Split a JSON Pointer into unescaped reference tokens (``""`` gives ``[]``).

    Raises:
        InvalidPatchError: ``path`` is not a string, not empty and does not start with ``/``,
            or holds a bad ``~`` escape.
    """
    if not isinstance(path, str):
        raise InvalidPatchError(
            f"JSON Pointer must be a string, not {type(path).__name__}", path=repr(path)
        )
    if path == "":
        return []
    if path[0] != "/":
        raise InvalidPatchError(
            f"JSON Pointer {path!r} must be empty or start with '/'",
            path=path,
            hint="use '' for the whole document and '/key/0' for nested values",
        )
    return [unescape(t) for t in path[1:].split("/")]


# --------------------------------------------------------------------------- validation


class _Bad(Exception):
    """A non-JSON value found deep inside a value; ``tokens`` grow, innermost first, as it
    propagates out, so the happy path never builds a pointer."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.tokens: list[str | int] = []


def _check_str(s: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad(
                "string with a lone surrogate cannot be encoded as UTF-8 JSON",
                "decode text with errors='replace' or remove unpaired surrogates",
            ) from None


def _check(value: Any) -> None:
    t = type(value)
    if t is str:
        _check_str(value)
    elif t is int or t is bool or value is None:
        return
    elif t is float:
        if not math.isfinite(value):
            raise _Bad(
                f"float {value!r} is not valid JSON",
                "JSON has no NaN or Infinity; store None or a string instead",
            )
    elif t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise _Bad(
                    f"dict key {k!r} of type {type(k).__name__} is not a str",
                    "JSON object keys are strings; convert the keys with str() before saving",
                )
            _check_str(k)  # a bad key is reported at its dict's pointer
            try:
                _check(v)
            except _Bad as bad:
                bad.tokens.append(k)
                raise
    elif t is list:
        for i, v in enumerate(value):
            try:
                _check(v)
            except _Bad as bad:
                bad.tokens.append(i)
                raise
    else:
        raise _Bad(f"value of type {t.__name__} is not JSON-encodable", _JSON_HINT)


def check_json(value: Any, path: str = "") -> None:
    """Check that ``value`` is a JSON document that round-trips unchanged.

    Args:
        value: the value to check, recursively.
        path: the JSON Pointer of ``value`` itself, prefixed to the reported location.

    Raises:
        NotJSONEncodableError: naming in ``path`` the JSON Pointer of the first offending value
            (depth first, in dict and list order). For a non-string key it is the dict's pointer.
    """
    try:
        _check(value)
    except _Bad as bad:
        where = path + pointer(reversed(bad.tokens))
        raise NotJSONEncodableError(
            f"{bad.message} at JSON Pointer {where!r}",
            path=where,
            hint=bad.hint,
        ) from None


# --------------------------------------------------------------------------- diff


def _same_leaf(a: Any, b: Any) -> bool:
    """Equal and of the same type; for floats also the same sign of zero."""
    if type(a) is not type(b) or a != b:
        return False
    return type(a) is not float or a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)


def diff(old: Any, new: Any) -> list[Op]:
    """Return the ops that turn ``old`` into ``new``: ``apply(old, diff(old, new)) == new``.

    Values in the returned ops are objects of ``new`` (not copies); copy them before mutating
    either. Every added or replaced value is validated with :func:`check_json`; the rest of
    ``new`` is not looked at when it compares equal to ``old``.

    Raises:
        NotJSONEncodableError: a changed part of ``new`` is not JSON; ``path`` points at it.
    """
    ops: list[Op] = []
    _diff(old, new, "", ops)
    return ops


def _replace(path: str, new: Any, ops: list[Op]) -> None:
    check_json(new, path)
    ops.append({"op": "replace", "path": path, "value": new})


def _diff(old: Any, new: Any, path: str, ops: list[Op]) -> None:
    if old is new:
        return
    t = type(old)
    if t is not type(new):
        _replace(path, new, ops)
    elif t is dict:
        if old == new:
            return
        _diff_dict(old, new, path, ops)
    elif t is list:
        if old == new:
            return
        _diff_list(old, new, path, ops)
    elif not _same_leaf(old, new):
        _replace(path, new, ops)


def _diff_dict(old: dict[Any, Any], new: dict[Any, Any], path: str, ops: list[Op]) -> None:
    for k, ov in old.items():
        if k in new:
            nv = new[k]
            if ov is nv:
                continue
            if type(k) is not str:
                check_json(new, path)  # raises, naming this dict
            _diff(ov, nv, path + "/" + escape(k), ops)
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


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[Op]) -> None:
    n_old = len(old)
    n_new = len(new)
    # Fast path: the list only grew at its end (a conversation gaining messages).
    if n_new > n_old and old == new[:n_old]:
        _append(new, n_old, path, ops)
        return
    # A window that dropped its oldest items (and maybe grew at the end): remove at the front.
    for k in range(1, min(n_old - 1, _MAX_FRONT) + 1):
        keep = n_old - k
        if keep <= n_new and _eq(old[k], new[0]) and old[k:] == new[:keep]:
            for _ in range(k):
                ops.append({"op": "remove", "path": f"{path}/0"})
            _append(new, keep, path, ops)
            return
    # Otherwise: skip the common prefix and suffix, compare the middles position by position.
    p = 0
    lim = min(n_old, n_new)
    while p < lim and _eq(old[p], new[p]):
        p += 1
    q = 0
    while q < lim - p and _eq(old[n_old - 1 - q], new[n_new - 1 - q]):
        q += 1
    m_old, m_new = n_old - p - q, n_new - p - q
    for i in range(p, p + min(m_old, m_new)):
        _diff(old[i], new[i], f"{path}/{i}", ops)
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


def _eq(a: Any, b: Any) -> bool:
    """Equal as JSON values: identical, or equal containers, or same-typed equal leaves."""
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is dict or ta is list:
        return bool(a == b)
    return _same_leaf(a, b)


def copy_containers(value: Any) -> Any:
    """Copy every dict and list of a JSON value, sharing the (immutable) leaves.

    This is how op values enter a private shadow: no container is shared with the caller, who
    may mutate it later, while strings stay the same objects, so the next :func:`diff` compares
    them by identity instead of by content.
    """
    t = type(value)
    if t is dict:
        return {k: copy_containers(v) for k, v in value.items()}
    if t is list:
        return [copy_containers(v) for v in value]
    return value


def _append(new: list[Any], start: int, path: str, ops: list[Op]) -> None:
    end = path + "/-"
    for i in range(start, len(new)):
        item = new[i]
        check_json(item, f"{path}/{i}")
        ops.append({"op": "add", "path": end, "value": item})


# --------------------------------------------------------------------------- apply


def _parse_op(op: Any, n: int) -> tuple[str, str, list[str], Any]:
    """Validate op number ``n``; return its name, path, tokens and value (``None`` if absent)."""
    if not isinstance(op, dict):
        raise InvalidPatchError(
            f"op {n} is a {type(op).__name__}, not an object", hint="an op is a dict"
        )
    name = op.get("op")
    path = op.get("path")
    if name not in _OPS:
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
        tokens = parse_pointer(path)
    except InvalidPatchError as e:
        raise InvalidPatchError(f"op {n}: {e.message}", path=path, hint=e.hint) from None
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

"""What a JSON document is to agentjournal: pointers, limits, validation and copying.

Documents are JSON values only: ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` (up to
:data:`MAX_INT_DIGITS` digits), finite ``float``, ``bool`` and ``None``, by exact type (a
subclass such as an ``IntEnum`` would come back as its base type after a round trip, so it is
refused), nested at most :data:`MAX_DEPTH` levels. Public names are re-exported by
:mod:`agentjournal.delta`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import InvalidPatchError, LimitExceededError, NotJSONEncodableError

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


# --------------------------------------------------------------------------- limits

MAX_DEPTH = 256
"""Deepest nesting of containers a document may have: ``[]`` is 1 level, ``{"a": [1]}`` is 2.

The decoder (msgspec) follows Python's recursion limit, about 1000 levels minus the caller's
stack, and a record wraps its op values in 3 more levels; 256 leaves room for both, so every
document that is accepted is also read back, and no walk here goes near a ``RecursionError``.
Agent states are rarely 20 levels deep.
"""

MAX_INT_DIGITS = 4299
"""Most decimal digits an int may have. Python's default limit for int/str conversion is 4300
characters, sign included, and the decoder (msgspec) applies it when reading: a longer int
could be written but never read back."""

_INT_BITS = 14_000  # every int of at most this many bits has fewer than MAX_INT_DIGITS digits
_INT_BOUND = 10**MAX_INT_DIGITS
_COPY_ROOM = MAX_DEPTH + 8
"""Levels :func:`copy_containers` accepts: a document plus the list and op object of a patch."""


def _depth_of(path: str) -> int:
    """Containers above the value at JSON Pointer ``path`` (its number of tokens)."""
    return path.count("/") if path.startswith("/") else 0


def _limit_error(where: str, what: str = "value") -> LimitExceededError:
    shown = where if len(where) <= 80 else where[:80] + "..."  # the whole pointer is in .path
    return LimitExceededError(
        f"{what} is nested deeper than {MAX_DEPTH} levels at JSON Pointer {shown!r}",
        path=where,
        hint=f"flatten the state: at most {MAX_DEPTH} nested lists/dicts are recorded",
    )


def _children(container: Any) -> Iterator[tuple[str | int, Any]]:
    return iter(container.items()) if type(container) is dict else enumerate(container)


def _deep_path(value: Any, room: int) -> list[str | int] | None:
    """Tokens of the first container (depth first) beyond ``room`` levels, or None if all fit.

    Iterative, so it works at any depth; :func:`check_json` folds the same rule into its walk.
    """
    if type(value) is not dict and type(value) is not list:
        return None
    if room <= 0:
        return []
    stack = [_children(value)]
    tokens: list[str | int] = []
    while stack:
        for token, child in stack[-1]:
            if type(child) is dict or type(child) is list:
                if len(stack) >= room:
                    return [*tokens, token]
                tokens.append(token)
                stack.append(_children(child))
                break
        else:
            stack.pop()
            if tokens:
                tokens.pop()
    return None


def check_depth(value: Any, path: str = "") -> None:
    """Check that ``value``, placed at JSON Pointer ``path``, is within :data:`MAX_DEPTH`.

    Costs one walk of ``value``, at any depth (no recursion). :func:`check_json` and
    :func:`diff` apply the same limit as part of their own walks; this is for values that need
    only the depth checked.

    Raises:
        LimitExceededError: naming the JSON Pointer of the first container too deep.
    """
    tokens = _deep_path(value, MAX_DEPTH - _depth_of(path))
    if tokens is not None:
        raise _limit_error(path + pointer(tokens))


# --------------------------------------------------------------------------- validation


class _Bad(Exception):
    """A non-JSON value found deep inside a value; ``tokens`` grow, innermost first, as it
    propagates out, so the happy path never builds a pointer."""

    def __init__(self, message: str, hint: str, *, too_deep: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.too_deep = too_deep
        self.tokens: list[str | int] = []


class _TooDeep(Exception):
    """Raised inside the walks of :func:`diff`; :func:`diff` finds the pointer afterwards."""


def _check_str(s: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad(
                "string with a lone surrogate cannot be encoded as UTF-8 JSON",
                "decode text with errors='replace' or remove unpaired surrogates",
            ) from None


def _check(value: Any, room: int) -> None:
    t = type(value)
    if t is str:
        _check_str(value)
    elif t is int:
        if value.bit_length() > _INT_BITS and abs(value) >= _INT_BOUND:
            raise _Bad(
                f"int of more than {MAX_INT_DIGITS} digits cannot be read back from JSON",
                "store very large numbers as strings",
            )
    elif t is bool or value is None:
        return
    elif t is float:
        if not math.isfinite(value):
            raise _Bad(
                f"float {value!r} is not valid JSON",
                "JSON has no NaN or Infinity; store None or a string instead",
            )
    elif t is dict or t is list:
        if room <= 0:
            raise _Bad("", "", too_deep=True)
        room -= 1
        if t is list:
            for i, v in enumerate(value):
                try:
                    _check(v, room)
                except _Bad as bad:
                    bad.tokens.append(i)
                    raise
            return
        for k, v in value.items():
            if type(k) is not str:
                raise _Bad(
                    f"dict key {k!r} of type {type(k).__name__} is not a str",
                    "JSON object keys are strings; convert the keys with str() before saving",
                )
            _check_str(k)  # a bad key is reported at its dict's pointer
            try:
                _check(v, room)
            except _Bad as bad:
                bad.tokens.append(k)
                raise
    else:
        raise _Bad(f"value of type {t.__name__} is not JSON-encodable", _JSON_HINT)


def check_json(value: Any, path: str = "") -> None:
    """Check that ``value`` is a JSON document that round-trips unchanged.

    Args:
        value: the value to check, recursively.
        path: the JSON Pointer of ``value`` itself, prefixed to the reported location. Its
            number of tokens counts towards :data:`MAX_DEPTH` (a label without a leading
            ``/``, such as ``"meta"``, counts as none).

    Raises:
        NotJSONEncodableError: naming in ``path`` the JSON Pointer of the first offending value
            (depth first, in dict and list order). For a non-string key it is the dict's pointer.
        LimitExceededError: a container nested deeper than :data:`MAX_DEPTH` (its pointer in
            ``path``).
    """
    try:
        _check(value, MAX_DEPTH - _depth_of(path))
    except _Bad as bad:
        where = path + pointer(reversed(bad.tokens))
        if bad.too_deep:
            raise _limit_error(where) from None
        raise NotJSONEncodableError(
            f"{bad.message} at JSON Pointer {where!r}",
            path=where,
            hint=bad.hint,
        ) from None


def copy_containers(value: Any) -> Any:
    """Copy every dict and list of a JSON value, sharing the (immutable) leaves.

    This is how op values enter a private shadow: no container is shared with the caller, who
    may mutate it later, while strings stay the same objects, so the next :func:`diff` compares
    them by identity instead of by content.

    Raises:
        LimitExceededError: more than :data:`MAX_DEPTH` levels (plus the few of an op list).
    """
    try:
        return _copy(value, _COPY_ROOM)
    except _TooDeep:
        raise _limit_error(pointer(_deep_path(value, _COPY_ROOM) or [])) from None


def _copy(value: Any, room: int) -> Any:
    t = type(value)
    if t is dict:
        if room <= 0:
            raise _TooDeep
        room -= 1
        return {k: _copy(v, room) for k, v in value.items()}
    if t is list:
        if room <= 0:
            raise _TooDeep
        room -= 1
        return [_copy(v, room) for v in value]
    return value

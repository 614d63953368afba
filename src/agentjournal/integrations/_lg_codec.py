"""LangGraph values to journal JSON and back, through the saver's own serializer.

A value is first given to the saver's ``serde`` (``dumps_typed``), exactly as LangGraph's own
savers do, so a value comes back as the same type it would from ``InMemorySaver``. The
``(type, bytes)`` pair is then stored as JSON the journal can diff:

- ``msgpack`` (what ``JsonPlusSerializer`` produces for almost everything, LangChain messages
  included) is decoded into JSON: maps, arrays, strings and numbers stay themselves, so
  appending a message to a conversation is one ``add`` op. What JSON cannot say is written as
  a one-key object whose key starts with ``$lg:``:

  ============================== =====================================================
  ``{"$lg:ext": [code, inner]}``  a msgpack extension (an object: a message, a ``Send``,
                                  a pydantic model, ...); ``inner`` is its payload as JSON
  ``{"$lg:bin": "<base64>"}``     msgpack binary
  ``{"$lg:map": [[k, v], ...]}``  a map with a non-string key, or a key starting ``$lg:``
  ``{"$lg:float": "nan"}``        ``nan``, ``inf`` or ``-inf``
  ============================== =====================================================

- ``null`` is JSON ``null``; ``bytes`` and ``bytearray`` are ``{"$lg:bytes": "<base64>"}`` and
  ``{"$lg:bytearray": ...}``; any other type (an encrypting serializer, a custom one) is an
  opaque blob ``{"$lg:typed": [type, "<base64>"]}``, stored again only when the value changed.

Nothing here pickles; a serializer configured to pickle is the caller's choice and its output
is kept as an opaque blob.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import msgspec
import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol

__all__ = ["Encoded", "ListDecoder", "decode", "encode", "encode_channel"]

_MARK = b'"$lg:'
_OPT = ormsgpack.OPT_NON_STR_KEYS
_json_enc = msgspec.json.Encoder()
_json_dec = msgspec.json.Decoder()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(serde: SerializerProtocol, value: Any) -> Any:
    """The JSON form of ``value`` (see the module docstring)."""
    type_, data = serde.dumps_typed(value)
    if type_ == "null":
        return None
    if type_ == "msgpack":
        try:
            return _from_msgpack(bytes(data))
        except (TypeError, ValueError, ormsgpack.MsgpackDecodeError, RecursionError):
            pass  # something JSON cannot mirror: keep the serializer's bytes as they are
    elif type_ in ("bytes", "bytearray"):
        return {"$lg:" + type_: _b64(bytes(data))}
    return {"$lg:typed": [type_, _b64(bytes(data))]}


class Encoded:
    """A channel value's JSON form with the serializer bytes it was made from.

    The next checkpoint's value is serialized again (as every LangGraph saver does); when its
    bytes are the same, the JSON is reused, and when it is a list whose items so far serialize
    to the same bytes (a conversation that grew), only the new items are converted: appending
    a message costs one conversion, and the old items are shared, so they compare equal by
    identity.
    """

    __slots__ = ("body", "count", "doc", "part")

    def __init__(self, part: tuple[str, bytes], doc: Any, body: bytes | None = None,
                 count: int = 0) -> None:
        self.part = part
        self.doc = doc
        self.body = body  # a msgpack array: its items' bytes (after the header)
        self.count = count


def _array_header(data: bytes) -> tuple[int, int] | None:
    """``(items, header length)`` when ``data`` is a msgpack array, else None."""
    if not data:
        return None
    b0 = data[0]
    if 0x90 <= b0 <= 0x9F:
        return b0 & 0x0F, 1
    if b0 == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if b0 == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    return None


def encode_channel(serde: SerializerProtocol, value: Any, prev: Encoded | None,
                   arrays: bool) -> Encoded:
    """:func:`encode`, reusing ``prev`` for what serializes to the same bytes.

    ``arrays`` (for ``JsonPlusSerializer``, whose msgpack array is its items' encodings one
    after the other) enables the grown-list path.
    """
    part = serde.dumps_typed(value)
    if prev is not None and prev.part == part:
        return prev
    type_, data = part[0], bytes(part[1])
    if type_ != "msgpack":
        return Encoded(part, encode(serde, value))
    head = _array_header(data) if arrays and type(value) is list else None
    if head is None:
        return Encoded(part, _top(part))
    count, hlen = head
    body = data[hlen:]
    if (prev is not None and prev.body is not None and count >= prev.count
            and type(prev.doc) is list and body.startswith(prev.body)):
        tail = body[len(prev.body):]
        try:
            new = _from_msgpack(b"\xdd" + (count - prev.count).to_bytes(4, "big") + tail)
        except (TypeError, ValueError, ormsgpack.MsgpackDecodeError, RecursionError):
            return Encoded(part, _top(part))
        return Encoded(part, [*prev.doc, *new], body, count)
    doc = _top(part)
    return Encoded(part, doc, body if type(doc) is list else None, count)


def _top(part: tuple[str, bytes]) -> Any:
    try:
        return _from_msgpack(bytes(part[1]))
    except (TypeError, ValueError, ormsgpack.MsgpackDecodeError, RecursionError):
        return {"$lg:typed": [part[0], _b64(bytes(part[1]))]}


def decode(serde: SerializerProtocol, doc: Any) -> Any:
    """The value whose JSON form is ``doc`` (the inverse of :func:`encode`)."""
    if doc is None:
        return None
    if type(doc) is dict and len(doc) == 1:
        (key, arg), = doc.items()
        if key == "$lg:typed":
            return serde.loads_typed((str(arg[0]), base64.b64decode(arg[1])))
        if key in ("$lg:bytes", "$lg:bytearray"):
            return serde.loads_typed((key[4:], base64.b64decode(arg)))
    return serde.loads_typed(("msgpack", _to_msgpack(doc)))


def _header(n: int) -> bytes:
    if n <= 15:
        return bytes([0x90 | n])
    if n <= 0xFFFF:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class ListDecoder:
    """:func:`decode` for many values that share items (a history of a growing list).

    The checkpoints of one listing share their list items (the journal's replay shares
    unchanged parts), so each item is turned back into msgpack once, by identity, and each
    checkpoint's list costs one call of the serializer, as in the SQL savers. Keep it for one
    listing only: it holds the items it has seen.
    """

    def __init__(self, serde: SerializerProtocol, arrays: bool) -> None:
        self.serde = serde
        self.arrays = arrays
        self._memo: dict[int, tuple[Any, bytes]] = {}
        self._marked = False

    def decode(self, doc: Any) -> Any:
        if not self.arrays or type(doc) is not list:
            return decode(self.serde, doc)
        if not self._marked:
            # Plain JSON lists (no objects in them) go through C in one piece; once a list
            # with markers is seen, the item by item path is taken directly.
            try:
                enc = _json_enc.encode(doc)
            except (TypeError, ValueError, OverflowError):
                enc = _MARK
            if _MARK not in enc:
                return self.serde.loads_typed(("msgpack", ormsgpack.packb(doc, option=_OPT)))
            self._marked = True
        parts = [_header(len(doc))]
        memo = self._memo
        for item in doc:
            hit = memo.get(id(item))
            if hit is None or hit[0] is not item:
                hit = (item, _to_msgpack(item))
                memo[id(item)] = hit
            parts.append(hit[1])
        return self.serde.loads_typed(("msgpack", b"".join(parts)))


# --------------------------------------------------------------------------- msgpack -> JSON


def _from_msgpack(data: bytes) -> Any:
    marks: dict[int, dict[str, Any]] = {}  # the marker dicts made here, by id (kept alive)

    def hook(code: int, payload: bytes) -> Any:
        m = {"$lg:ext": [code, ormsgpack.unpackb(payload, ext_hook=hook, option=_OPT)]}
        marks[id(m)] = m
        return m

    tree = ormsgpack.unpackb(data, ext_hook=hook, option=_OPT)
    # Fast path, all in C: when the tree is plain JSON (no bytes, non-string keys, nan, and
    # no "$lg:" text except our own markers), a JSON round trip gives it back unchanged.
    try:
        enc = _json_enc.encode(tree)
    except (TypeError, ValueError, OverflowError):
        enc = b""
    if enc and enc.count(_MARK) == len(marks) and _json_dec.decode(enc) == tree:
        return tree
    return _walk(tree, marks)


def _walk(x: Any, marks: dict[int, dict[str, Any]]) -> Any:
    t = type(x)
    if t is str or t is int or t is bool or x is None:
        return x
    if t is float:
        if math.isfinite(x):
            return x
        return {"$lg:float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
    if t is list:
        return [_walk(v, marks) for v in x]
    if t is dict:
        if id(x) in marks:
            code, inner = x["$lg:ext"]
            return {"$lg:ext": [code, _walk(inner, marks)]}
        if all(type(k) is str and not k.startswith("$lg:") for k in x):
            return {k: _walk(v, marks) for k, v in x.items()}
        return {"$lg:map": [[_walk(k, marks), _walk(v, marks)] for k, v in x.items()]}
    if t is bytes:
        return {"$lg:bin": _b64(x)}
    raise TypeError(f"msgpack decoded to {t.__name__}")


# --------------------------------------------------------------------------- JSON -> msgpack


def _to_msgpack(doc: Any) -> bytes:
    try:
        enc = _json_enc.encode(doc)
    except (TypeError, ValueError, OverflowError):
        enc = _MARK  # take the careful path
    obj = doc if _MARK not in enc else _unwalk(doc)
    return ormsgpack.packb(obj, option=_OPT)


def _unwalk(x: Any) -> Any:
    t = type(x)
    if t is list:
        return [_unwalk(v) for v in x]
    if t is not dict:
        return x
    if len(x) == 1:
        (key, arg), = x.items()
        if key == "$lg:ext":
            return ormsgpack.Ext(int(arg[0]), _to_msgpack(arg[1]))
        if key == "$lg:bin":
            return base64.b64decode(arg)
        if key == "$lg:map":
            return {_hashable(_unwalk(k)): _unwalk(v) for k, v in arg}
        if key == "$lg:float":
            return float(arg)
    return {k: _unwalk(v) for k, v in x.items()}


def _hashable(k: Any) -> Any:
    # msgpack map keys that are arrays come back as lists; a tuple is the closest hashable.
    return tuple(_hashable(v) for v in k) if type(k) is list else k

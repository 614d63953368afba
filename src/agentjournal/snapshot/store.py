"""Encoding and decoding snapshot files.

A snapshot file holds two lines of JSON (then lz4-frame compressed with a content checksum,
unless ``compress=False``)::

    {"format":1,"agent_id":...,"seq":S,"step":K,"chain_hash":...,"ts":...,"state":{...}}
    {"blake2b":"<BLAKE2b-256 of the first line>"}

``chain_hash`` is the hash of journal record ``S``: a snapshot is used only when it matches the
journal, so a stale, foreign or forged snapshot is skipped for an older one. The digest is also
recorded in the journal's ``snapshot`` record. Reading is bounded: the file size is checked
before reading and decompression stops at the configured limit.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .. import _codec
from ..errors import CorruptSnapshotError, LimitExceededError
from ..events import FORMAT_VERSION

DEFAULT_MAX_SNAPSHOT_BYTES = 1 << 30


class SnapshotDoc(msgspec.Struct, kw_only=True):
    """The decoded first line of a snapshot file."""

    format: int
    agent_id: str
    seq: int
    step: int
    chain_hash: str
    ts: float
    state: Any


class _Trailer(msgspec.Struct):
    blake2b: str


_doc_decoder = msgspec.json.Decoder(SnapshotDoc)
_trailer_decoder = msgspec.json.Decoder(_Trailer)
_encoder = msgspec.json.Encoder()


PARALLEL_DIGEST_BYTES = 256 << 10
"""A compressed snapshot at least this large is hashed while it is compressed (in a helper
thread, see :func:`agentjournal._codec.compress_with_digest`); below, a thread costs more than
it saves."""


def _trailer(digest: str) -> bytes:
    return b'\n{"blake2b":"' + digest.encode() + b'"}\n'


def encode_snapshot(doc: SnapshotDoc, compress: bool) -> tuple[bytes, str]:
    """The bytes of a snapshot file for ``doc`` and the digest of its document line."""
    try:
        body = _encoder.encode(doc)
    except (TypeError, OverflowError) as e:
        from ..errors import NotJSONEncodableError

        raise NotJSONEncodableError(f"state is not JSON-encodable: {e}") from None
    if compress and len(body) >= PARALLEL_DIGEST_BYTES:
        return _codec.compress_with_digest(body, _trailer)
    digest = _codec.content_digest(body)
    data = body + _trailer(digest)
    return (_codec.compress(data) if compress else data), digest


def decode_snapshot(data: bytes, compressed: bool, *, where: str,
                    limit: int = DEFAULT_MAX_SNAPSHOT_BYTES,
                    need_digest: bool = True) -> tuple[SnapshotDoc, str]:
    """Check and decode a snapshot file; returns the document and its digest.

    A compressed snapshot's integrity is already checked by the lz4 content checksum; with
    ``need_digest=False`` its BLAKE2b digest (a third of the load time of a large state) is
    not recomputed and the stored one is returned. Compare it with the journal's ``snapshot``
    record to detect a forged snapshot.

    Raises:
        CorruptSnapshotError: bad frame or checksum, bad digest, undecodable or too deep.
        LimitExceededError: the content is larger than ``limit``.
    """
    if compressed:
        try:
            data = _codec.decompress(data, limit, what=where)
        except LimitExceededError as e:
            e.path = where
            raise
        except ValueError as e:
            raise CorruptSnapshotError(str(e), path=where,
                                       hint="the snapshot is skipped for an older one") from None
    elif len(data) > limit:
        raise LimitExceededError(f"snapshot of {len(data)} bytes over the limit {limit}",
                                 path=where)
    nl = data.find(b"\n")
    if nl < 0 or not data.endswith(b"\n"):
        raise CorruptSnapshotError("snapshot is truncated", path=where)
    body, trailer = data[:nl], data[nl + 1 : -1]
    try:
        digest = _trailer_decoder.decode(trailer).blake2b
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # msgspec raises all 3
        raise CorruptSnapshotError("snapshot checksum line is damaged", path=where) from None
    if (need_digest or not compressed) and _codec.content_digest(body) != digest:
        raise CorruptSnapshotError("snapshot content does not match its checksum", path=where,
                                   offset=0)
    try:
        doc = _doc_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # bad UTF-8 is the latter
        raise CorruptSnapshotError(f"undecodable snapshot: {e}", path=where) from None
    except RecursionError:
        raise LimitExceededError("snapshot state nested too deeply", path=where) from None
    if doc.format > FORMAT_VERSION:
        raise CorruptSnapshotError(f"snapshot format {doc.format} is newer than this "
                                   f"agentjournal ({FORMAT_VERSION})", path=where,
                                   hint="upgrade agentjournal")
    return doc, digest


def state_copy(state: Any) -> Any:
    """An independent deep copy of a JSON state (msgspec round trip: faster than deepcopy)."""
    return msgspec.json.decode(_encoder.encode(state))

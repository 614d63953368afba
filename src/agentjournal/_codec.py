"""Encoding, hashing and bounded decompression shared by the journal and snapshots.

Everything read from disk is untrusted: sizes are checked before reading, decompression is
capped, and JSON nesting beyond msgspec's recursion limit becomes a typed error.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import lz4.frame
import msgspec

from .errors import LimitExceededError

HASH_HEX_LEN = 64  # BLAKE2b with a 32-byte digest, hex encoded
_HASH_OPEN = b',"h":"'
HASH_SUFFIX_LEN = len(_HASH_OPEN) + HASH_HEX_LEN + 2  # ,"h":"<64 hex>"}

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()

LZ4_MAGIC = b"\x04\x22\x4d\x18"
DECOMPRESS_CHUNK = 1 << 20
"""Largest piece lz4 is asked for at once (it allocates the whole piece up front)."""


def encode(obj: Any) -> bytes:
    """Encode ``obj`` as compact JSON."""
    return _encoder.encode(obj)


def decode_any(data: bytes, *, what: str = "document") -> Any:
    """Decode untrusted JSON into plain Python values (nesting bounded)."""
    try:
        return _any_decoder.decode(data)
    except RecursionError:
        raise LimitExceededError(f"{what} is nested too deeply to decode") from None


def chain_hash(body: bytes, key: bytes | None) -> str:
    """The hex BLAKE2b-256 of ``body``, keyed (a MAC) when ``key`` is given."""
    if key:
        return hashlib.blake2b(body, digest_size=32, key=key).hexdigest()
    return hashlib.blake2b(body, digest_size=32).hexdigest()


def content_digest(data: bytes) -> str:
    """Unkeyed BLAKE2b-256 of a snapshot's JSON bytes, recorded in its journal marker."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def seal_line(body: bytes, key: bytes | None) -> tuple[bytes, str]:
    """Turn an encoded record ``{...}`` into its journal line ``{...,"h":"<hash>"}\\n``."""
    h = chain_hash(body, key)
    return b"".join((body[:-1], _HASH_OPEN, h.encode(), b'"}\n')), h


def split_line(line: bytes) -> tuple[bytes, str] | None:
    """Split a journal line (without its newline) into the hashed body and the stored hash.

    Returns None when the line does not end with a well-formed hash member.
    """
    if (
        len(line) < HASH_SUFFIX_LEN + 2
        or line[-2:] != b'"}'
        or line[-HASH_SUFFIX_LEN : -HASH_SUFFIX_LEN + len(_HASH_OPEN)] != _HASH_OPEN
    ):
        return None
    stored = line[-HASH_HEX_LEN - 2 : -2]
    try:
        text = stored.decode("ascii")
    except UnicodeDecodeError:
        return None
    return line[:-HASH_SUFFIX_LEN] + b"}", text


def compress(data: bytes) -> bytes:
    """lz4-frame compress with a content checksum and the content size in the header."""
    out: bytes = lz4.frame.compress(
        data, content_checksum=True, store_size=True, compression_level=0
    )
    return out


def compress_with_digest(body: bytes, tail: Callable[[str], bytes]) -> tuple[bytes, str]:
    """lz4-frame compress ``body + tail(content_digest(body))`` (as :func:`compress` would) and
    return it with the digest, hashing ``body`` in a helper thread while it is compressed.

    hashlib and lz4 both release the GIL on large buffers: on a second core the digest of a
    large snapshot costs no time at all (measured on 500 KB: 2.15 ms in turn, 1.66 ms so).
    """
    digest: list[str] = []
    hasher = threading.Thread(target=lambda: digest.append(content_digest(body)), daemon=True,
                              name="agentjournal-digest")
    hasher.start()
    c = lz4.frame.LZ4FrameCompressor(content_checksum=True, compression_level=0,
                                     block_linked=False)
    try:
        head = c.begin(len(body) + len(tail("0" * HASH_HEX_LEN)))
        middle = c.compress(body)
    finally:
        hasher.join()
    if not digest:  # the thread could not hash (out of memory): do it here
        digest.append(content_digest(body))
    end = c.compress(tail(digest[0]))
    return b"".join((head, middle, end, c.flush())), digest[0]


def decompress(data: bytes, limit: int, *, what: str = "file") -> bytes:
    """Decompress an lz4 frame, never producing more than ``limit`` bytes.

    Output is produced in pieces of at most :data:`DECOMPRESS_CHUNK` bytes (or the size the frame
    declares, when that is within ``limit``): lz4 allocates the whole ``max_length`` it is
    given up front, so asking for ``limit`` at once would reserve e.g. 1 GiB for every small
    snapshot, and fail outright where memory is not overcommitted.

    Raises:
        LimitExceededError: the content is larger than ``limit`` (e.g. an lz4 bomb).
        ValueError: the frame is malformed or its checksum fails (lz4's RuntimeError mapped).
    """
    if not data.startswith(LZ4_MAGIC):
        raise ValueError(f"{what} is not an lz4 frame")
    d = lz4.frame.LZ4FrameDecompressor()
    try:
        declared = lz4.frame.get_frame_info(data).get("content_size", 0)
        first = declared + 1 if 0 < declared <= limit else DECOMPRESS_CHUNK
        pieces = [d.decompress(data, max_length=min(limit + 1, first))]
        total = len(pieces[0])
        while total <= limit and not d.eof and not d.needs_input:
            piece = d.decompress(b"", max_length=min(limit + 1 - total, DECOMPRESS_CHUNK))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    except RuntimeError as e:
        raise ValueError(f"{what} failed lz4 decompression: {e}") from None
    if total > limit:
        raise LimitExceededError(
            f"{what} decompresses to more than {limit} bytes",
            hint="raise the size limit only if you trust this file",
        )
    if not d.eof:
        raise ValueError(f"{what} is a truncated lz4 frame")
    if d.unused_data:
        raise ValueError(f"{what} has trailing bytes after its lz4 frame")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def decompress_prefix(data: bytes, n: int, *, what: str = "file") -> bytes:
    """The first ``n`` bytes of an lz4 frame's content (all of it when shorter), decompressing
    no more than that: what reading a sealed segment's header costs is then bounded by the
    header, never by what the frame inflates to (an attacker's 1 MB file may declare 1 GiB).

    A peek: the frame's content checksum, which needs the whole content, is not checked here
    (every full read checks it; what a peek returns is checked as a line like any other).

    Raises:
        ValueError: the frame is malformed (lz4's RuntimeError mapped).
    """
    if not data.startswith(LZ4_MAGIC):
        raise ValueError(f"{what} is not an lz4 frame")
    d = lz4.frame.LZ4FrameDecompressor()
    try:
        pieces = [d.decompress(data, max_length=n)]
        total = len(pieces[0])
        while total < n and not d.eof and not d.needs_input:
            piece = d.decompress(b"", max_length=n - total)
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    except RuntimeError as e:
        raise ValueError(f"{what} failed lz4 decompression: {e}") from None
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)

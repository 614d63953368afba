"""Witness files: journal heads kept off the store, to catch truncation and rollback.

A hash chain kept inside the store proves that what is there was not edited; it cannot prove
that nothing is missing at the end, nor that the whole store was not put back to an older
copy (every byte of which is genuine). A *head* — the last record's seq and hash — written
somewhere the store's attacker cannot rewrite (another disk, another host, an append-only log
service) can: ``Journal(..., expect_head=...)`` and ``verify(against=...)`` check that the
journal still reaches it and holds that very record there.

A witness file is JSON Lines, one head per line, appended (``O_APPEND``) and fsynced::

    {"agent_id":"a","seq":42,"hash":"<64 hex>","ts":1764583200.5,"mac":"<64 hex or empty>"}

With a key, ``mac`` is the keyed BLAKE2b of the other fields, so someone who can write the
witness but has no key cannot forge a head either. The newest line of an agent is its head.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import msgspec

from .errors import JournalNotFoundError, LimitExceededError, TamperedError
from .replay.results import Head

MAX_WITNESS_BYTES = 64 << 20
"""Largest witness file read."""


class WitnessEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a witness file."""

    agent_id: str
    seq: int
    hash: str
    ts: float
    mac: str = ""


_decoder = msgspec.json.Decoder(WitnessEntry)


def entry_mac(e: WitnessEntry, key: bytes | None) -> str:
    """The MAC of an entry under ``key`` ("" without a key)."""
    if not key:
        return ""
    msg = "\x1f".join((e.agent_id, str(e.seq), e.hash, repr(e.ts))).encode()
    return hashlib.blake2b(msg, digest_size=32, key=key[:64],
                           person=b"aj-witness").hexdigest()


def append_head(path: str | os.PathLike[str], head: Head, key: bytes | None = None
                ) -> WitnessEntry:
    """Append ``head`` to the witness file at ``path`` (created 0600), durably."""
    e = WitnessEntry(agent_id=head.agent_id, seq=head.seq, hash=head.hash, ts=time.time())
    e = msgspec.structs.replace(e, mac=entry_mac(e, key))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        line = msgspec.json.encode(e) + b"\n"
        if os.write(fd, line) != len(line):
            raise OSError(f"short write to {os.fspath(path)}")
        os.fsync(fd)
    finally:
        os.close(fd)
    return e


def latest_head(path: str | os.PathLike[str], agent_id: str, key: bytes | None = None) -> Head:
    """The newest head of ``agent_id`` in the witness file.

    Raises:
        JournalNotFoundError: no such file, or no head of that agent in it.
        TamperedError: a line of that agent whose MAC does not verify with ``key`` (or has
            none while a key is given), or a line that is not a witness entry.
        LimitExceededError: the file is larger than :data:`MAX_WITNESS_BYTES`.
    """
    where = os.fspath(path)
    try:
        size = os.stat(where).st_size
        if size > MAX_WITNESS_BYTES:
            raise LimitExceededError(f"witness file of {size} bytes", path=where)
        with open(where, "rb") as f:
            data = f.read(MAX_WITNESS_BYTES + 1)
    except FileNotFoundError:
        raise JournalNotFoundError(f"no witness file {where}", path=where,
                                   hint="write one with 'agentjournal anchor AGENT "
                                   "--witness FILE'") from None
    found: WitnessEntry | None = None
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = _decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise TamperedError(f"line {n} of the witness file is not a witness entry",
                                path=where) from None
        if e.agent_id != agent_id:
            continue
        if key and not hmac.compare_digest(e.mac, entry_mac(e, key)):
            raise TamperedError(f"line {n} of the witness file fails its MAC", path=where,
                                hint="the witness was edited, or another key wrote it")
        found = e
    if found is None:
        raise JournalNotFoundError(f"no head of agent {agent_id!r} in {where}", path=where,
                                   hint=f"anchor it first: agentjournal anchor {agent_id} "
                                   f"--witness {where}")
    return Head(found.agent_id, found.seq, found.hash)

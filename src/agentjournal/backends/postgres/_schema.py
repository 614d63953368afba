"""The PostgreSQL schema of the store, and its migrations.

Every migration runs in one transaction that first takes ``pg_advisory_xact_lock`` on a key of
the schema name, so two hosts starting at once apply it once: the second waits, then finds the
version already there. No ``CREATE INDEX CONCURRENTLY`` (it cannot run in a transaction); the
tables are created empty, so a plain ``CREATE INDEX`` locks nothing anyone uses.

Version 1 (see docs/postgres.md, "Schema"):

- ``agents``: one row per agent with a journal.
- ``segments``: one row per segment: its header line (the exact bytes) and the ``sealed`` flag.
- ``records``: one row per record, keyed by ``(agent, seq)``: the exact line bytes that were
  hashed, the segment it belongs to (``seg``, the segment's first seq) and its byte offset in
  the segment (``off``). Hash-partitioned by agent.
- ``fragments``: bytes of a segment that are not a whole record line (a torn write, a test's
  raw bytes), keyed by ``(agent, seg, off)``. Empty in normal operation.
- ``snapshots``, ``hints``, ``quarantine``: as in the filesystem layout.
- ``leases``: one row per agent that ever had a writer: ``epoch`` (bumped at every
  acquisition: the fence), the holder's host and pid, the advisory lock key, and the expiry
  of a row lease (NULL for an advisory one).
- ``followers``: who follows an agent now (``until``: an expiry the follower renews), so
  writers send ``NOTIFY`` only while someone listens.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
RECORD_PARTITIONS = 8
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """The schema name, if it is a plain lower-case identifier (it is spliced into SQL)."""
    if not _NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower-case letters, digits and "
                         "'_' (at most 63, not starting with a digit)")
    return schema


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (BLAKE2b of the parts)."""
    digest = hashlib.blake2b("\0".join(("agentjournal", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _v1(s: str) -> list[str]:
    parts = [
        f"CREATE TABLE {s}.agents (agent text PRIMARY KEY, "
        "created timestamptz NOT NULL DEFAULT now())",
        f"CREATE TABLE {s}.segments (agent text NOT NULL, first_seq bigint NOT NULL, "
        "header bytea NOT NULL, sealed boolean NOT NULL DEFAULT false, sealed_bytes bigint, "
        "created timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, first_seq))",
        f"CREATE TABLE {s}.records (agent text NOT NULL, seq bigint NOT NULL, "
        "seg bigint NOT NULL, off bigint NOT NULL, line bytea NOT NULL, "
        "PRIMARY KEY (agent, seq)) PARTITION BY HASH (agent)",
        f"CREATE TABLE {s}.fragments (agent text NOT NULL, seg bigint NOT NULL, "
        "off bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (agent, seg, off))",
        f"CREATE TABLE {s}.snapshots (agent text NOT NULL, seq bigint NOT NULL, "
        "data bytea NOT NULL, compressed boolean NOT NULL, "
        "written timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, seq))",
        # Snapshots are lz4 already: keep PostgreSQL from compressing them again.
        f"ALTER TABLE {s}.snapshots ALTER COLUMN data SET STORAGE EXTERNAL",
        f"CREATE TABLE {s}.hints (agent text PRIMARY KEY, seg bigint NOT NULL, "
        "snap bigint NOT NULL, clean boolean NOT NULL)",
        f"CREATE TABLE {s}.quarantine (agent text NOT NULL, id bigint GENERATED ALWAYS AS "
        "IDENTITY, name text NOT NULL, data bytea NOT NULL, "
        "cut timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, id))",
        f"CREATE TABLE {s}.leases (agent text PRIMARY KEY, epoch bigint NOT NULL, "
        "lock_key bigint NOT NULL, host text, pid integer, since timestamptz, "
        "renewed timestamptz, expires timestamptz)",
        f"CREATE TABLE {s}.followers (agent text NOT NULL, id text NOT NULL, "
        "until timestamptz NOT NULL, PRIMARY KEY (agent, id))",
    ]
    for i in range(RECORD_PARTITIONS):
        parts.append(f"CREATE TABLE {s}.records_p{i} PARTITION OF {s}.records "
                     f"FOR VALUES WITH (MODULUS {RECORD_PARTITIONS}, REMAINDER {i})")
    return parts


MIGRATIONS = {1: _v1}
"""``version: statements(schema)``: applied in order, each version in one transaction."""


class SchemaTooNewError(RuntimeError):
    """The database holds a newer schema than this version of agentjournal knows."""


def migrate(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    """Create or upgrade ``schema`` to :data:`SCHEMA_VERSION`; returns the version found.

    Safe to run from many processes at once: the whole check-and-apply is serialized by a
    transaction-level advisory lock on the schema's name.
    """
    s = check_schema_name(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("migrate", s),))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer "
                     "PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())")
        row = conn.execute(f"SELECT max(version) FROM {s}.schema_version").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"schema {s!r} is at version {found}, newer than {SCHEMA_VERSION} which this "
                "agentjournal knows; upgrade agentjournal on this host")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS[version](s):
                conn.execute(stmt)
            conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (version,))
    return found

"""The PostgreSQL schema of the store, and its migrations.

Every migration runs in one transaction that first takes ``pg_advisory_xact_lock`` on a key of
the schema name, so two hosts starting at once apply it once: the second waits, then finds the
version already there. No ``CREATE INDEX CONCURRENTLY`` (it cannot run in a transaction).

Version 2, the record-level store (see docs/postgres.md, "Schema"):

- ``settings``: the layout chosen when the schema was created (``partition``: ``hash`` or
  ``time``; ``partition_interval``: seconds per time partition).
- ``agents``: one row per agent with a journal; ``horizon``: the first seq kept, and
  ``low_bucket``: the lowest bucket a kept row is in (time layout: a prefix cut moves them,
  and the rows below wait for their partition to be dropped).
- ``records``: one row per record, keyed by ``(agent, seq)``: the exact line bytes that were
  hashed, and ``header``, the line of the segment that starts at this record (NULL for every
  record but a segment's first). Hash-partitioned by agent; or (time layout) range-partitioned
  by ``bucket`` (the time its segment started, in intervals since the epoch), each bucket
  hash-partitioned by agent (:mod:`._partitions`). A partial index on the records that carry
  a header finds an agent's segments without reading its records.
- ``snapshots``: lz4 (or plain) ``bytea``, written in the same transaction as their mark.
- ``quarantine``: bytes ``repair`` cut, kept for inspection.
- ``leases``: one row per agent that ever had a writer: ``epoch`` (bumped at every
  acquisition: the fence), the holder's host and pid, the advisory lock key, and the expiry
  of a row lease (NULL for an advisory one).
- ``followers``: who follows an agent now (``until``: an expiry the follower renews), so
  writers send ``NOTIFY`` only while someone listens.

Version 1 (segment-shaped: ``segments``, ``fragments``, ``hints`` tables and byte offsets in
``records``) is migrated to version 2 by :func:`_v1_to_v2`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 2
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


def _common(s: str) -> list[str]:
    """The tables every version has had, as version 1 created them."""
    return [
        f"CREATE TABLE {s}.agents (agent text PRIMARY KEY, "
        "created timestamptz NOT NULL DEFAULT now())",
        f"CREATE TABLE {s}.snapshots (agent text NOT NULL, seq bigint NOT NULL, "
        "data bytea NOT NULL, compressed boolean NOT NULL, "
        "written timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, seq))",
        # Snapshots are lz4 already: keep PostgreSQL from compressing them again.
        f"ALTER TABLE {s}.snapshots ALTER COLUMN data SET STORAGE EXTERNAL",
        f"CREATE TABLE {s}.quarantine (agent text NOT NULL, id bigint GENERATED ALWAYS AS "
        "IDENTITY, name text NOT NULL, data bytea NOT NULL, "
        "cut timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, id))",
        f"CREATE TABLE {s}.leases (agent text PRIMARY KEY, epoch bigint NOT NULL, "
        "lock_key bigint NOT NULL, host text, pid integer, since timestamptz, "
        "renewed timestamptz, expires timestamptz)",
        f"CREATE TABLE {s}.followers (agent text NOT NULL, id text NOT NULL, "
        "until timestamptz NOT NULL, PRIMARY KEY (agent, id))",
    ]


def _partitions(s: str) -> list[str]:
    return [f"CREATE TABLE {s}.records_p{i} PARTITION OF {s}.records "
            f"FOR VALUES WITH (MODULUS {RECORD_PARTITIONS}, REMAINDER {i})"
            for i in range(RECORD_PARTITIONS)]


def _header_index(s: str) -> str:
    # Only segment heads are in it: a journal's segments (headers()) are found without
    # reading its records, and an ordinary append (header NULL) does not touch it.
    return (f"CREATE INDEX records_headers ON {s}.records (agent, seq) "
            "WHERE header IS NOT NULL")


def _v2_tables(s: str, partition: str, interval: int) -> list[str]:
    """What version 2 adds to every layout: the settings and the agents' horizon."""
    return [
        f"CREATE TABLE {s}.settings (name text PRIMARY KEY, value text NOT NULL)",
        f"INSERT INTO {s}.settings (name, value) VALUES ('partition', '{partition}'), "
        f"('partition_interval', '{int(interval)}')",
        f"ALTER TABLE {s}.agents ADD COLUMN horizon bigint NOT NULL DEFAULT 0, "
        "ADD COLUMN low_bucket integer",
    ]


def create_v2(s: str, partition: str = "hash", interval: int = 0) -> list[str]:
    """A new schema at version 2 (the statements docs/postgres.md shows). ``partition``:
    ``hash`` (records hash-partitioned by agent) or ``time`` (by ``bucket``, each bucket by
    hash of agent; the buckets are made as they are needed, ``interval`` seconds each)."""
    if partition == "time":
        records = [
            f"CREATE TABLE {s}.records (agent text NOT NULL, seq bigint NOT NULL, "
            "bucket integer NOT NULL, line bytea NOT NULL, header bytea, "
            "PRIMARY KEY (agent, seq, bucket)) PARTITION BY RANGE (bucket)"]
    else:
        records = [
            f"CREATE TABLE {s}.records (agent text NOT NULL, seq bigint NOT NULL, "
            "line bytea NOT NULL, header bytea, PRIMARY KEY (agent, seq)) "
            "PARTITION BY HASH (agent)",
            *_partitions(s)]
    return [*_common(s), *_v2_tables(s, partition, interval), *records, _header_index(s)]


def create_v1(s: str) -> list[str]:
    """Version 1 as it was created (kept to build old stores in the migration's tests)."""
    return [
        *_common(s),
        f"CREATE TABLE {s}.segments (agent text NOT NULL, first_seq bigint NOT NULL, "
        "header bytea NOT NULL, sealed boolean NOT NULL DEFAULT false, sealed_bytes bigint, "
        "created timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (agent, first_seq))",
        f"CREATE TABLE {s}.records (agent text NOT NULL, seq bigint NOT NULL, "
        "seg bigint NOT NULL, off bigint NOT NULL, line bytea NOT NULL, "
        "PRIMARY KEY (agent, seq)) PARTITION BY HASH (agent)",
        f"CREATE TABLE {s}.fragments (agent text NOT NULL, seg bigint NOT NULL, "
        "off bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (agent, seg, off))",
        f"CREATE TABLE {s}.hints (agent text PRIMARY KEY, seg bigint NOT NULL, "
        "snap bigint NOT NULL, clean boolean NOT NULL)",
        *_partitions(s),
    ]


def _v1_to_v2(s: str) -> list[str]:
    """Segments become headers on their first record; torn bytes become quarantine rows.

    A segment's header moves to the record whose seq is the segment's first (a segment
    holding no record yet has nothing to keep: the writer opens it again). Fragments (bytes
    that were not a whole record: a torn write) are kept as quarantine rows named after
    their segment and offset, as ``repair`` names what it cuts; they were never part of the
    chain. Sealing flags and hints are dropped: a record store needs neither.
    """
    return [
        f"ALTER TABLE {s}.records ADD COLUMN header bytea",
        f"UPDATE {s}.records r SET header = g.header FROM {s}.segments g "
        "WHERE r.agent = g.agent AND r.seq = g.first_seq AND r.seg = g.first_seq",
        f"INSERT INTO {s}.quarantine (agent, name, data) SELECT agent, "
        "lpad(seg::text, 20, '0') || '.jsonl.' || off::text || '.v1', data "
        f"FROM {s}.fragments ORDER BY agent, seg, off",
        f"ALTER TABLE {s}.records DROP COLUMN seg, DROP COLUMN off",
        f"DROP TABLE {s}.segments, {s}.fragments, {s}.hints",
        *_v2_tables(s, "hash", 86400),
        _header_index(s),
    ]


MIGRATIONS: dict[int, Callable[[str], list[str]]] = {2: _v1_to_v2}
"""``version: statements(schema)`` taking the schema from ``version - 1`` to ``version``."""


def settings(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> tuple[str, int]:
    """``(partition, interval seconds)`` of a schema at version 2."""
    rows = dict(conn.execute(f"SELECT name, value FROM {check_schema_name(schema)}.settings"
                             ).fetchall())
    return str(rows.get("partition", "hash")), int(rows.get("partition_interval", 0))


class SchemaTooNewError(RuntimeError):
    """The database holds a newer schema than this version of agentjournal knows."""


def migrate(conn: psycopg.Connection[tuple[Any, ...]], schema: str,
            partition: str = "hash", interval: int = 0) -> int:
    """Create or upgrade ``schema`` to :data:`SCHEMA_VERSION`; returns the version found.

    Safe to run from many processes at once: the whole check-and-apply is serialized by a
    transaction-level advisory lock on the schema's name. A new schema is created at the
    current version directly, with the ``partition`` layout; an older one is taken through
    each migration in order (it keeps the hash layout it has).
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
        if found == 0:
            steps = [(SCHEMA_VERSION, create_v2(s, partition, interval))]
        else:
            steps = [(v, MIGRATIONS[v](s)) for v in range(found + 1, SCHEMA_VERSION + 1)]
        for version, statements in steps:
            for stmt in statements:
                conn.execute(stmt)
            conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (version,))
    return found

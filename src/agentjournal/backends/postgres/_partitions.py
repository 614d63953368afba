"""Time partitions of ``records`` (``PostgresBackend(partition="time")``), and dropping them.

In the time layout ``records`` is range-partitioned by ``bucket`` (``records_b<bucket>``, one
per ``partition_interval`` seconds since the epoch), each bucket hash-partitioned by agent
like the hash layout's table (``records_b<bucket>_p0`` … ``_p7``), so a writer's inserts and
reads stay in one small table. Three rules make a whole partition droppable without cutting
the middle out of any chain:

- **A segment never straddles two buckets.** A record's bucket is the time its *segment*
  started: a record that opens a segment (it carries the header) goes into the current
  bucket, every other record into its segment's. Buckets never go down along an agent's seqs
  (a writer takes the later of the current bucket and its last record's), so each agent's
  rows in the buckets up to ``b`` are a prefix of its journal, made of whole segments.
- **Retention moves a horizon instead of deleting rows.** ``delete_below(seq)`` sets the
  agent's ``agents.horizon``; reads see only ``seq >= horizon``. The engine moves it only as
  retention does everywhere (``compact(prune=True)``, ``agentjournal expire``): after
  writing the ``anchor`` record, and only below a usable snapshot it keeps, so what is
  visible always verifies.
- **A partition goes only when no agent can see a row of it.** :func:`drop_expired` drops a
  bucket (oldest first, never the current or the previous one) only when every agent with
  rows in it has its horizon past all of them: ``DETACH PARTITION … CONCURRENTLY`` (which
  does not block the writers), a second look at the detached table, ``DROP TABLE``.

An agent whose oldest visible segment is in a bucket pins that bucket (and the later ones)
until its own retention moves past it: an agent that never snapshots, or an idle one
expiry leaves alone, keeps its partitions; :func:`drop_expired` names who pins what.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psycopg

from ._errors import translated
from ._schema import RECORD_PARTITIONS, advisory_key

if TYPE_CHECKING:
    from . import PostgresBackend

_NAME = re.compile(r"^records_b([0-9]+)$")
PINNERS_SHOWN = 5
"""Agents named per pinned partition in a report."""


def bucket_of(t: float, interval: int) -> int:
    """The bucket of unix time ``t``."""
    return int(t // interval)


@dataclass
class PartitionDrop:
    """One time partition looked at by :func:`drop_expired`."""

    name: str
    start: str
    """ISO 8601 UTC: the first moment the bucket covers."""
    end: str
    bytes: int
    """Table and index bytes of the partition (freed when dropped)."""
    dropped: bool
    pinned_by: list[str] = field(default_factory=list)
    """Some agents that still see rows in it (empty when it was, or would be, dropped)."""


class Buckets:
    """The buckets known to exist, per backend; makes missing ones (one DDL per bucket)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._be = backend
        self._known: set[int] = set()
        self._mutex = threading.Lock()

    def ensure(self, bucket: int) -> None:
        """Make ``records_b<bucket>`` (and its hash partitions) unless it exists. Under a
        transaction-level advisory lock, so hosts making the same bucket make it once;
        built detached and then attached (``ATTACH`` needs only a ``SHARE UPDATE
        EXCLUSIVE`` lock on ``records``: writers and readers go on meanwhile)."""
        if bucket in self._known:
            return
        with self._mutex:
            if bucket in self._known:
                return
            s = self._be.schema
            name = f"{s}.records_b{bucket}"
            with self._be.checked(f"creating time partition {name}") as c, c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("partition", s),))
                row = c.execute("SELECT to_regclass(%s)", (name,)).fetchone()
                if row is None or row[0] is None:
                    c.execute(f"CREATE TABLE {name} (LIKE {s}.records) "
                              "PARTITION BY HASH (agent)")
                    for i in range(RECORD_PARTITIONS):
                        c.execute(f"CREATE TABLE {name}_p{i} PARTITION OF {name} FOR VALUES "
                                  f"WITH (MODULUS {RECORD_PARTITIONS}, REMAINDER {i})")
                    c.execute(f"ALTER TABLE {s}.records ATTACH PARTITION {name} "
                              f"FOR VALUES FROM ({bucket}) TO ({bucket + 1})")
            self._known.add(bucket)

    def forget(self, bucket: int) -> None:
        with self._mutex:
            self._known.discard(bucket)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pinners(c: psycopg.Connection[tuple[Any, ...]], s: str, table: str) -> list[str]:
    """Agents that can still see a row of ``table`` (a bucket, attached or detached): each
    agent with rows in it (a loose index scan: one probe per agent, not per row) whose
    horizon is at or below one of them."""
    rows = c.execute(
        f"WITH RECURSIVE g(agent) AS ((SELECT agent FROM {table} ORDER BY agent LIMIT 1) "
        f"UNION ALL SELECT (SELECT r.agent FROM {table} r WHERE r.agent > g.agent "
        "ORDER BY r.agent LIMIT 1) FROM g WHERE g.agent IS NOT NULL) "
        f"SELECT g.agent FROM g JOIN {s}.agents a ON a.agent = g.agent WHERE EXISTS "
        f"(SELECT 1 FROM {table} r WHERE r.agent = g.agent AND r.seq >= a.horizon) "
        f"ORDER BY g.agent COLLATE \"C\" LIMIT {PINNERS_SHOWN + 1}").fetchall()
    return [str(a) for (a,) in rows]


def _size(c: psycopg.Connection[tuple[Any, ...]], table: str) -> int:
    row = c.execute("SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM "
                    "pg_partition_tree(%s::regclass)", (table,)).fetchone()
    return int(row[0]) if row else 0


def drop_expired(backend: PostgresBackend, *, dry_run: bool = False) -> list[PartitionDrop]:
    """Drop every time partition no agent can see a row of (see the module docstring);
    what was (or, ``dry_run``, would be) dropped and what is pinned, oldest first.

    Never the bucket of now or the one before it (hosts' clocks differ by less than one
    interval: a writer may still open a segment there). A partition left detached by an
    interrupted earlier run is finished first. Raises nothing for a pinned partition: it is
    reported, and the next run looks again.
    """
    if backend.partition != "time":
        return []
    s = backend.schema
    interval = backend.partition_interval
    now = bucket_of(time.time(), interval)
    out: list[PartitionDrop] = []
    c = backend.connect("dropping expired time partitions")  # DETACH CONCURRENTLY: autocommit
    try:
        with translated("dropping expired time partitions"):
            rows = c.execute(
                "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON "
                "c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                (f"{s}.records",)).fetchall()
            found = sorted((int(m.group(1)), bool(p)) for n, p in rows
                           if (m := _NAME.match(str(n))))
            for bucket, pending in found:
                if bucket >= now - 1:
                    break
                table = f"{s}.records_b{bucket}"
                drop = PartitionDrop(f"records_b{bucket}", _iso(bucket * interval),
                                     _iso((bucket + 1) * interval), _size(c, table), False)
                out.append(drop)
                if pending:  # an earlier run was interrupted inside DETACH CONCURRENTLY
                    if dry_run:
                        continue
                    c.execute(f"ALTER TABLE {s}.records DETACH PARTITION {table} FINALIZE")
                drop.pinned_by = _pinners(c, s, table)
                if drop.pinned_by:
                    if pending:
                        c.execute(f"ALTER TABLE {s}.records ATTACH PARTITION {table} FOR "
                                  f"VALUES FROM ({bucket}) TO ({bucket + 1})")
                    continue
                if dry_run:
                    drop.dropped = True
                    continue
                if not pending:
                    c.execute(f"ALTER TABLE {s}.records DETACH PARTITION {table} CONCURRENTLY")
                # Detached: nothing can enter it now. Look once more at what it holds (a row
                # can only have come in from a writer whose clock ran far behind), then drop.
                drop.pinned_by = _pinners(c, s, table)
                if drop.pinned_by:
                    c.execute(f"ALTER TABLE {s}.records ATTACH PARTITION {table} FOR VALUES "
                              f"FROM ({bucket}) TO ({bucket + 1})")
                    continue
                c.execute(f"DROP TABLE {table}")
                backend.buckets.forget(bucket)
                drop.dropped = True
    finally:
        c.close()
    return out

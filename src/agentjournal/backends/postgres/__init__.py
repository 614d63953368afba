"""The PostgreSQL backend: many hosts, one store (``pip install 'agentjournal[postgres]'``).

::

    from agentjournal import Journal
    from agentjournal.backends.postgres import PostgresBackend

    with PostgresBackend("postgresql://app@db/agents") as store:
        with Journal("agent-7", backend=store) as j:
            j.append({"messages": ["hi"]})

The backend implements the record-level core (:class:`~agentjournal.backends.base.RecordBackend`,
:mod:`.records`) with rows and transactions: one row per record, an append is one transaction
conditional on the lease's epoch and the expected next seq, a snapshot rides in the append of
its mark. The engine sees it through :class:`~agentjournal.backends.segmentview.SegmentView`
(``backend.agent()``), so the same engine runs on it (hash chain, snapshots, time travel,
verify, retention); the rows hold the exact bytes that were hashed. One writer per agent
across hosts: a session advisory lock (or an expiring lease row) plus the epoch fence on every
write. Durability: appends commit with
``synchronous_commit=off`` and ``sync()`` commits with ``synchronous_commit=on``, so the
journal's ``sync`` mode acknowledges a step only once its commit is flushed to the server's
WAL; ``group`` and ``none`` may lose the WAL writer's window (``wal_writer_delay``, 200 ms by
default) of acknowledged steps if the server crashes, never its consistency. docs/postgres.md
has the schema, the lease and fence, PgBouncer and the fault behaviour.

Importing this module needs psycopg 3 and psycopg_pool; ``import agentjournal`` does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

try:
    import psycopg
    import psycopg_pool
except ImportError as _e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "the PostgreSQL backend needs psycopg 3 and psycopg_pool: "
        "pip install 'agentjournal[postgres]'") from _e

from ..._ids import validate_agent_id
from ...errors import (
    JournalLockedError,
    JournalNotFoundError,
    StoreError,
)
from ..segmentview import SegmentViews
from ._errors import translated
from ._lease import holders_sql
from ._notify import Wakeups
from ._partitions import Buckets, PartitionDrop, drop_expired
from ._schema import (
    SCHEMA_VERSION,
    SchemaTooNewError,
    advisory_key,
    check_schema_name,
    migrate,
    settings,
)
from .records import PostgresRecordStore

__all__ = ["PartitionDrop", "PostgresBackend", "PostgresRecordStore", "SCHEMA_VERSION",
           "Wakeups"]

Conn = psycopg.Connection[tuple[Any, ...]]


def _seconds(value: float | timedelta | None) -> int | None:
    """A partition interval in whole seconds (at least one)."""
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if secs < 1 or secs != int(secs):
        raise ValueError(f"partition_interval={value!r}: use a whole number of seconds >= 1")
    return int(secs)


class PostgresBackend(SegmentViews):
    """Journals in a PostgreSQL schema, shared by every host that connects to it.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        schema: the schema holding the tables; created and migrated on first use.
        pool_size: connections for reads and for creating agents (each writer holds one more).
        statement_timeout: seconds a statement may run (None: the server's setting).
        connect_timeout: seconds to wait for a connection.
        pool_timeout: seconds to wait for a free pooled connection.
        lease: how a writer holds an agent: ``"advisory"`` (a session advisory lock; a dead
            host's lease ends with its session; needs a direct connection or a session-mode
            pooler) or ``"row"`` (an expiring lease row renewed by a heartbeat; takeover
            after ``lease_ttl``; works through a transaction-mode pooler such as PgBouncer,
            where ``statement_timeout`` is left to the server's or role's setting).
        lease_ttl: seconds a row lease lasts without renewal (``lease="row"``).
        lease_keepalive: seconds of silence after which the server probes a writer's
            connection (``tcp_keepalives_*`` of its session, advisory leases over TCP), so a
            vanished host's lease ends in about 2.5 times this; None: the server's setting.
        partition: how ``records`` is partitioned, chosen when the schema is created:
            ``"hash"`` (by agent; the default) or ``"time"`` (by the time each segment
            started, each bucket by agent: fleet expiry drops whole partitions, see
            :mod:`._partitions`). None: whatever the schema has (``"hash"`` for a new one).
        partition_interval: seconds (or a ``timedelta``) per time partition, for a new
            ``"time"`` schema (default one day); None: the schema's.

    Raises:
        StoreUnavailableError: the server cannot be reached (or is full).
        StoreError: the schema is newer than this agentjournal, the DSN is invalid, or the
            schema's partitioning is not the one asked for.
    """

    def __init__(self, dsn: str, *, schema: str = "agentjournal", pool_size: int = 4,
                 statement_timeout: float | None = 30.0, connect_timeout: float = 10.0,
                 pool_timeout: float = 30.0, lease: str = "advisory",
                 lease_ttl: float = 30.0, lease_keepalive: float | None = 10.0,
                 partition: str | None = None,
                 partition_interval: float | timedelta | None = None) -> None:
        if lease not in ("advisory", "row"):
            raise ValueError(f"lease={lease!r}: use 'advisory' or 'row'")
        if partition not in (None, "hash", "time"):
            raise ValueError(f"partition={partition!r}: use 'hash' or 'time'")
        interval = _seconds(partition_interval)
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl={lease_ttl!r}: must be positive")
        self.lease = lease
        self.lease_ttl = float(lease_ttl)
        self.lease_keepalive = lease_keepalive
        self.schema = check_schema_name(schema)
        self._dsn = dsn
        self._kwargs: dict[str, Any] = {"autocommit": True, "application_name": "agentjournal",
                                        "connect_timeout": max(1, round(connect_timeout))}
        if lease == "row":  # a transaction-mode pooler: no prepared statements, no SET
            self._kwargs["prepare_threshold"] = None
            statement_timeout = None
        self._statement_timeout = statement_timeout
        conn = self.connect("opening the store")
        try:
            with translated(f"creating schema {schema!r}"):
                try:
                    migrate(conn, self.schema, partition or "hash", interval or 86400)
                except SchemaTooNewError as e:
                    raise StoreError(str(e), hint="upgrade agentjournal on this host") from None
                self.partition, self.partition_interval = settings(conn, self.schema)
            if partition is not None and partition != self.partition or (
                    interval is not None and self.partition == "time"
                    and interval != self.partition_interval):
                raise StoreError(
                    f"schema {schema!r} is partitioned by {self.partition}"
                    + (f" every {self.partition_interval} s" if self.partition == "time"
                       else "") + f", not as asked (partition={partition!r}, "
                    f"partition_interval={interval!r})",
                    hint="the partitioning is chosen when a schema is created: leave "
                    "partition= unset to use it as it is, or use a new schema")
            info = conn.info
            self._user = info.user
            self._where = (info.host, info.port, info.dbname)
        finally:
            conn.close()
        host, port, db = self._where
        self.url = f"postgresql://{host}:{port}/{db}/{self.schema}"
        self.pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=max(1, pool_size), kwargs=self._kwargs,
            configure=self._configure, timeout=pool_timeout, open=False,
            name=f"agentjournal-{self.schema}")
        self.pool.open(wait=False)
        self.buckets = Buckets(self)
        """The time partitions known to exist (``partition="time"``)."""

    # --- connections --------------------------------------------------------------------------
    def _configure(self, conn: Conn) -> None:
        if self._statement_timeout is not None:
            conn.execute(f"SET statement_timeout = {int(self._statement_timeout * 1000)}")

    def connect(self, what: str) -> Conn:
        """A new autocommit connection of its own (writers keep theirs for the lease)."""
        with translated(what):
            conn: Conn = psycopg.connect(self._dsn, **self._kwargs)
            try:
                self._configure(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def query(self, sql: str, params: Any, what: str) -> list[tuple[Any, ...]]:
        """Run a read on a pooled connection; retried on another connection when the one it
        got turns out dead (e.g. the server restarted since it was pooled), never after an
        error of the statement itself (a timeout is not retried)."""
        with translated(what):
            for attempt in range(self.pool.max_size + 1):
                with self.pool.connection() as c:
                    try:
                        return c.execute(sql, params).fetchall()
                    except psycopg.OperationalError:
                        if not c.broken or attempt == self.pool.max_size:
                            raise
                # a broken connection went back to the pool, which discards it: try another
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def checked(self, what: str) -> Iterator[Conn]:
        """A pooled connection known to be alive, for a change (one more round trip, so a
        change is never sent on a connection the server dropped since it was pooled)."""
        with translated(what):
            for attempt in range(self.pool.max_size + 1):
                with self.pool.connection() as c:
                    try:
                        c.execute("SELECT 1")
                    except psycopg.OperationalError:
                        if attempt == self.pool.max_size:
                            raise
                        continue  # returned broken: the pool discards it
                    yield c
                    return

    # --- the RecordBackend protocol (the engine's agent() is SegmentViews') ---------------------
    def records(self, agent_id: str, *, create: bool) -> PostgresRecordStore:
        validate_agent_id(agent_id)
        if create:
            with self.checked("creating an agent") as c:
                c.execute(f"INSERT INTO {self.schema}.agents (agent) VALUES (%s) "
                          "ON CONFLICT DO NOTHING", (agent_id,))
        elif not self.exists(agent_id):
            raise JournalNotFoundError(f"no journal for agent {agent_id!r} in {self.describe()}",
                                       hint="check the agent id and the schema, or record a "
                                       "step first")
        return PostgresRecordStore(self, agent_id)

    def exists(self, agent_id: str) -> bool:
        validate_agent_id(agent_id)
        return bool(self.query(f"SELECT 1 FROM {self.schema}.agents WHERE agent = %s",
                               (agent_id,), "looking up an agent"))

    def list_agents(self) -> list[str]:
        rows = self.query(f"SELECT agent FROM {self.schema}.agents ORDER BY agent COLLATE \"C\"",
                          (), "listing agents")
        return [a for (a,) in rows]

    def describe(self) -> str:
        """``postgresql://user@host:port/db (schema s)``: never the password."""
        host, port, db = self._where
        return f"postgresql://{self._user}@{host}:{port}/{db} (schema {self.schema})"

    def lock_holders(self) -> dict[str, int]:
        """``{agent: pid}`` of the writers whose lease is live now (one query: the lease rows
        with a granted advisory lock or an unexpired row lease)."""
        rows = self.query(holders_sql(self.schema), (), "listing writers")
        return {a: int(p) for a, p in rows if p is not None}

    def identity(self) -> tuple[str, str, int, str, str]:
        """Equal for every backend object on the same server, database and schema."""
        host, port, db = self._where
        return ("postgresql", host, int(port), db, self.schema)

    # --- follow: wake-ups (LISTEN/NOTIFY) -----------------------------------------------------
    def wakeups(self, agent_id: str) -> Wakeups:
        """Start following ``agent_id``: a :class:`Wakeups` whose ``wait(timeout)`` returns
        when a writer committed to it (a hint: read the journal after every return)."""
        validate_agent_id(agent_id)
        return Wakeups(self, agent_id)

    # --- optional capabilities (as MemoryBackend / FilesystemBackend) -------------------------
    def delete_agent(self, agent_id: str) -> bool:
        """Remove an agent's journal (every row); refused while a writer holds it.

        Raises:
            JournalLockedError: a writer has the journal open.
        """
        validate_agent_id(agent_id)
        busy = JournalLockedError(f"journal of agent {agent_id!r} is open for writing",
                                  hint="close the Journal (or the saver) that writes it first")
        s = self.schema
        with self.checked(f"deleting agent {agent_id!r}") as c, c.transaction():
            # Hold the agent's lock for the transaction, so no writer starts meanwhile.
            got = c.execute("SELECT pg_try_advisory_xact_lock(%s)",
                            (advisory_key(s, agent_id),)).fetchone()
            live = c.execute(f"SELECT 1 FROM {s}.leases WHERE agent = %s AND expires > now() "
                             "FOR UPDATE", (agent_id,)).fetchone()
            if not (got and got[0]) or live is not None:
                raise busy
            for table in ("records", "snapshots", "quarantine", "leases", "followers"):
                c.execute(f"DELETE FROM {s}.{table} WHERE agent = %s", (agent_id,))
            cur = c.execute(f"DELETE FROM {s}.agents WHERE agent = %s", (agent_id,))
            return cur.rowcount == 1

    def discard_empty(self, agent_id: str) -> bool:
        """Forget ``agent_id`` if it holds no record, snapshot or quarantined bytes; whether it
        is gone."""
        validate_agent_id(agent_id)
        s = self.schema
        with self.checked(f"discarding agent {agent_id!r}") as c:
            c.execute(
                f"DELETE FROM {s}.agents a WHERE agent = %(a)s AND NOT EXISTS (SELECT 1 FROM "
                f"{s}.records WHERE agent = %(a)s) AND NOT EXISTS (SELECT 1 FROM "
                f"{s}.snapshots WHERE agent = %(a)s) AND NOT EXISTS (SELECT 1 FROM "
                f"{s}.quarantine WHERE agent = %(a)s)", {"a": agent_id})
        return not self.exists(agent_id)

    def drop_expired_partitions(self, *, dry_run: bool = False) -> list[PartitionDrop]:
        """Drop the time partitions no agent can see a row of any more (``partition="time"``;
        none otherwise): an optional capability that :func:`agentjournal.expiry.expire`
        calls after pruning. See :mod:`._partitions`."""
        return drop_expired(self, dry_run=dry_run)

    # --- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the pool (stores that hold a lease keep their own connection until closed)."""
        with contextlib.suppress(Exception):
            self.pool.close()

    def __enter__(self) -> PostgresBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresBackend({self.describe()})"

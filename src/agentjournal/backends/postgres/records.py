"""One agent's journal in PostgreSQL: the :class:`~agentjournal.backends.base.RecordStore` on rows.

A record is a ``records`` row keyed by ``(agent, seq)`` holding the exact line that was
hashed; a segment header is kept in the ``header`` column of the record it precedes; a
snapshot is a ``snapshots`` row. Nothing here looks like a file: an append is one
transaction, all of its records or none, so there are no torn tails, no byte offsets and
nothing to truncate. The engine sees this store through
:class:`~agentjournal.backends.segmentview.SegmentView`.

The writer's lease (:meth:`PostgresRecordStore.acquire`) is a session advisory lock (or an
expiring row, ``lease="row"``) on a connection this store keeps, plus an ``epoch`` bumped in
the agent's ``leases`` row. Every change the holder makes runs on that connection and is
conditional on the epoch still being ours, under a share lock of the lease row, so a
takeover (which bumps the epoch) waits for a change in flight and every later change of the
old holder is refused: :class:`~agentjournal.errors.JournalFencedError`. An append is also
conditional on its first seq being the store's next one (a compare-and-append): both
conditions are in the ``WHERE`` of its one ``INSERT``. Losing the connection is losing the
lease.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ...errors import JournalFencedError, JournalLockedError, LimitExceededError
from ..base import SnapshotData
from ._errors import translate, translated
from ._lease import Lease, acquire, release
from ._notify import CHECK_EVERY, Wakeups, channel, followed_sql
from ._schema import advisory_key

if TYPE_CHECKING:
    from . import PostgresBackend

_MAX = (1 << 63) - 1
READ_BATCH = 1000
"""Records per query of :meth:`PostgresRecordStore.read` (it pages by seq, holding no
connection between pages, so a long read never pins a pooled connection)."""
Conn = psycopg.Connection[tuple[Any, ...]]


class PostgresRecordStore:
    """One agent's rows. Made by :meth:`PostgresBackend.records`."""

    def __init__(self, backend: PostgresBackend, agent_id: str) -> None:
        self.agent_id = agent_id
        self._be = backend
        self._s = backend.schema
        self._key = advisory_key(backend.schema, agent_id)
        self._lease: Lease | None = None
        self._wakeups: Wakeups | None = None
        self._insert_sql: dict[tuple[bool, bool, bool], str] = {}
        self._time = backend.partition == "time"
        self._last_bucket: int | None = None
        """Time layout: the bucket of the newest record (None: no record)."""
        self._bucket_known = False
        # Time layout: rows below the agent's horizon are cut (they wait for their partition
        # to be dropped); every read sees only the rows from it on, and looks only in the
        # buckets from the agent's lowest on (both passed as values, so that PostgreSQL
        # prunes the other partitions when it plans the query, not row by row).
        self._vis = " AND seq >= %(hz)s AND bucket >= %(lo)s" if self._time else ""

    def describe(self) -> str:
        return f"{self._be.url}/{self.agent_id}"

    def __repr__(self) -> str:
        return f"PostgresRecordStore({self.describe()})"

    # --- plumbing ---------------------------------------------------------------------------
    def _read(self, query: str, params: Any, what: str) -> list[tuple[Any, ...]]:
        return self._be.query(query, params, what)

    @contextmanager
    def _tx(self, what: str, durable: bool = False) -> Iterator[Conn]:
        """A transaction for a change, on the lease connection and fenced by the epoch;
        ``durable``: committed with ``synchronous_commit=on``."""
        lease = self._held(what)
        with lease.mutex:
            try:
                with lease.conn.transaction():
                    if durable or lease.kind == "row":
                        lease.conn.execute("SET LOCAL synchronous_commit = "
                                           + ("on" if durable else "off"))
                    row = lease.conn.execute(
                        f"SELECT 1 FROM {self._s}.leases WHERE agent = %s AND epoch = %s "
                        "FOR SHARE", (self.agent_id, lease.epoch)).fetchone()
                    if row is None:
                        raise self._fenced()
                    yield lease.conn
                if not durable and not lease.session_sync:
                    lease.dirty = True
            except psycopg.Error as e:
                raise self._lost(e, what) from e

    def _held(self, what: str) -> Lease:
        lease = self._lease
        if lease is None:
            raise self._fenced(f"it does not hold the lease (never taken or given back) "
                               f"while {what}")
        return lease

    def _fenced(self, why: str = "its lease was taken over by another writer"
                ) -> JournalFencedError:
        return JournalFencedError(
            f"the writer of agent {self.agent_id!r} was fenced: {why}; the store refused "
            "the write, nothing was forked", path=self.describe(),
            hint="stop this writer and reopen the journal (it resumes after the last record "
            "in the store)")

    def _lost(self, e: psycopg.Error, what: str) -> Exception:
        """The error for a failure on the lease connection: a broken one is a lost lease."""
        if isinstance(e, psycopg.errors.UniqueViolation):
            return self._fenced("a record with this seq is already in the store (another "
                                "writer appended it)")
        conn = self._lease.conn if self._lease is not None else None
        if conn is None or conn.closed or conn.broken:
            return self._fenced(f"the connection holding its lease was lost while {what} "
                                f"({str(e).strip().splitlines()[0] if str(e).strip() else e})")
        return translate(e, what)

    # --- the lease --------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the writer lease or raise ``JournalLockedError`` at once, naming the holder
        (``lease="advisory"``: a session advisory lock; ``"row"``: an expiring lease row)."""
        if self._lease is not None:
            return
        what = f"locking agent {self.agent_id!r}"
        conn = self._be.connect(what)
        try:
            with translated(what):
                epoch = acquire(conn, self._s, self.agent_id, self._key, self._be.lease,
                                self._be.lease_ttl, self._be.lease_keepalive)
                if epoch is None:
                    raise self._locked(conn)
        except BaseException:
            conn.close()
            raise
        self._lease = Lease(conn, epoch, self._be.lease, self._be.lease_ttl)
        self._lease.start_heartbeat(self._s, self.agent_id)
        self._bucket_known = False  # another writer may have written since

    def _locked(self, conn: Conn) -> JournalLockedError:
        row = conn.execute(f"SELECT host, pid, since FROM {self._s}.leases WHERE agent = %s",
                           (self.agent_id,)).fetchone()
        host, pid, since = row if row else (None, None, None)
        who = f"pid {pid} on {host}, since {since:%Y-%m-%d %H:%M:%S %Z}" if row else "unknown"
        return JournalLockedError(
            f"journal of agent {self.agent_id!r} is locked by another writer ({who})",
            pid=pid, path=self.describe(),
            hint="only one writer per agent: stop the other one, or wait for its session to "
            "end (a dead host's lease ends with its PostgreSQL session)")

    def release(self) -> None:
        """Give the lease up (closing its connection; a lost connection is fine)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            release(lease, self._s, self.agent_id, self._key)

    @property
    def lease_epoch(self) -> int | None:
        """The epoch of the lease this store holds (None: not the writer)."""
        return None if self._lease is None else self._lease.epoch

    def lease_backend_pid(self) -> int | None:
        """The PostgreSQL backend pid of the lease's session (for tests and operators)."""
        return None if self._lease is None else self._lease.conn.info.backend_pid

    # --- appends ------------------------------------------------------------------------------
    def _append_sql(self, many: bool, snapshot: bool, notify: bool) -> str:
        """The one statement of an append: insert the records only while the epoch is ours
        and the first seq is the next one; the snapshot only if the records went in; a
        wake-up for followers with the commit. Inserts all of the records or none; with a
        snapshot or a wake-up, a data-modifying CTE whose one row is that number."""
        key = (many, snapshot, notify)
        got = self._insert_sql.get(key)
        if got is not None:
            return got
        s = self._s
        # The next-seq condition. Hash layout: the record before ``start`` is there (or the
        # agent has none), and the primary key refuses a seq that is (one probe each, ~9 us
        # less than looking for the newest). Time layout: the key includes the bucket, so
        # look for the newest seq, from the bucket of the newest record on (buckets never
        # go down along the seqs).
        cols, bucket = "agent, seq, line, header", ""
        nxt = (f"(EXISTS (SELECT 1 FROM {s}.records WHERE agent = %(a)s AND seq = "
               f"%(start)s::bigint - 1) OR NOT EXISTS (SELECT 1 FROM {s}.records WHERE "
               "agent = %(a)s))")
        if self._time:
            cols, bucket = "agent, seq, bucket, line, header", "%(b)s::integer, "
            nxt = (f"coalesce((SELECT max(seq) FROM {s}.records WHERE agent = %(a)s AND "
                   "bucket >= __LB__), %(start)s::bigint - 1) = %(start)s::bigint - 1")
        if many:
            rows = (f"SELECT %(a)s, %(start)s::bigint + t.o - 1, {bucket}t.l, CASE WHEN "
                    "t.o = 1 THEN %(h)s::bytea END FROM unnest(%(lines)s::bytea[]) WITH "
                    "ORDINALITY AS t(l, o)")
        else:
            rows = f"SELECT %(a)s, %(start)s::bigint, {bucket}%(line)s::bytea, %(h)s::bytea"
        insert = (f"INSERT INTO {s}.records ({cols}) {rows} WHERE EXISTS (SELECT 1 FROM "
                  f"{s}.leases WHERE agent = %(a)s AND epoch = %(e)s::bigint FOR SHARE) "
                  f"AND {nxt}")
        if not snapshot and not notify:  # the common case: a plain INSERT (its row count)
            self._insert_sql[key] = insert
            return insert
        query = f"WITH ins AS ({insert} RETURNING 1)"
        if snapshot:
            query += (f", snap AS (INSERT INTO {s}.snapshots AS x (agent, seq, data, "
                      "compressed) SELECT %(a)s, %(ss)s::bigint, %(sd)s::bytea, "
                      "%(sc)s::boolean WHERE EXISTS (SELECT 1 FROM ins) ON CONFLICT "
                      "(agent, seq) DO UPDATE SET data = excluded.data, "
                      "compressed = excluded.compressed, written = now())")
        query += " SELECT (SELECT count(*) FROM ins)"
        if notify:
            query += (", (SELECT count(*) FROM (SELECT pg_notify(%(ch)s, %(a)s) FROM ins "
                      "LIMIT 1) w)")
        self._insert_sql[key] = query
        return query

    def append(self, start: int, lines: Sequence[bytes], *, header: bytes | None = None,
               snapshot: SnapshotData | None = None) -> None:
        """Insert records ``start``, ``start + 1``, … (and ``snapshot``) in one statement,
        one transaction, one round trip: refused (``JournalFencedError``) unless the epoch
        is ours and ``start`` is the store's next seq.

        Committed with ``synchronous_commit=off`` (visible at once, durable at the next
        :meth:`sync`), or with ``on`` once the writer is seen to sync after every append.
        """
        what = f"appending record {start} of agent {self.agent_id!r}"
        lease = self._held(what)
        if not lines:
            if snapshot is not None:
                self.put_snapshot(snapshot)
            return
        params: dict[str, Any] = {"a": self.agent_id, "start": start, "e": lease.epoch,
                                  "h": None if header is None else bytes(header)}
        many = len(lines) > 1
        if many:
            params["lines"] = [bytes(x) for x in lines]
        else:
            params["line"] = bytes(lines[0])
        if snapshot is not None:
            params.update(ss=snapshot.seq, sd=bytes(snapshot.data), sc=snapshot.compressed)
        if self._time:
            params["b"] = self._bucket(header is not None)
        with lease.mutex:
            self._check_followed(lease, what)
            if lease.followed:
                params["ch"] = channel(self._s)
            query = self._append_sql(many, snapshot is not None, lease.followed)
            if self._time:  # a literal: the plan prunes to the newest buckets (one a day)
                query = query.replace("__LB__", str(int(
                    -(1 << 31) if self._last_bucket is None else self._last_bucket)))
            lease.since_sync += 1
            if lease.since_sync > 1:
                lease.sync_each = False  # appends in a burst: commit asynchronously
            durable = lease.sync_each
            setting = "on" if durable else "off"
            try:
                if lease.kind == "row":  # no session settings through a pooler
                    with lease.conn.pipeline(), lease.conn.transaction():
                        lease.conn.execute(f"SET LOCAL synchronous_commit = {setting}")
                        cur = lease.conn.execute(query, params)
                else:
                    if lease.session_sync != durable:
                        lease.conn.execute(f"SET synchronous_commit = {setting}")
                        lease.session_sync = durable
                    cur = lease.conn.execute(query, params)
                if query.startswith("INSERT"):
                    inserted = cur.rowcount
                else:
                    row = cur.fetchone()
                    inserted = -1 if row is None else int(row[0])
            except psycopg.Error as e:
                lease.dirty = True  # the outcome is unknown: the next sync must commit
                self._bucket_known = False
                raise self._lost(e, what) from e
            if not durable:
                lease.dirty = True
            if inserted != len(lines):
                self._bucket_known = False
                raise self._refused(lease, start)
            if self._time:
                self._last_bucket = params["b"]

    def _bucket(self, opens_segment: bool) -> int:
        """Time layout: the bucket of the next rows (made if missing). A record that opens a
        segment goes into the current bucket, any other into its segment's, so a segment
        never straddles two partitions; never below the newest record's bucket."""
        if not self._bucket_known:
            rows = self._read(f"SELECT bucket FROM {self._s}.records WHERE agent = %s ORDER "
                              "BY seq DESC LIMIT 1", (self.agent_id,), "finding the bucket")
            self._last_bucket = int(rows[0][0]) if rows else None
            self._bucket_known = True
        last = self._last_bucket
        now = int(time.time() // self._be.partition_interval)
        bucket = now if opens_segment or last is None else last
        bucket = bucket if last is None else max(bucket, last)
        self._be.buckets.ensure(bucket)
        if last is None:  # the first rows: readers look from their bucket on
            with self._tx(f"starting agent {self.agent_id!r}") as c:
                c.execute(f"UPDATE {self._s}.agents SET low_bucket = least(coalesce("
                          "low_bucket, %(b)s), %(b)s) WHERE agent = %(a)s",
                          {"a": self.agent_id, "b": bucket})
        return bucket

    def _where(self) -> dict[str, Any]:
        """The parameters of a read: the agent, and (time layout) its horizon and lowest
        bucket, looked up first (one primary-key lookup)."""
        p: dict[str, Any] = {"a": self.agent_id}
        if self._time:
            rows = self._read(f"SELECT horizon, low_bucket FROM {self._s}.agents WHERE "
                              "agent = %s", (self.agent_id,), "reading the agent's horizon")
            hz, lo = rows[0] if rows else (0, None)
            p.update(hz=int(hz), lo=-(1 << 31) if lo is None else int(lo))
        return p

    def _refused(self, lease: Lease, start: int) -> JournalFencedError:
        """Why an append inserted nothing: the epoch moved on, or ``start`` is not next."""
        try:
            row = lease.conn.execute(
                f"SELECT (SELECT epoch FROM {self._s}.leases WHERE agent = %(a)s), "
                f"(SELECT max(seq) FROM {self._s}.records WHERE agent = %(a)s)",
                {"a": self.agent_id}).fetchone()
        except psycopg.Error:
            return self._fenced()
        epoch, last = row if row is not None else (None, None)
        if epoch != lease.epoch:
            return self._fenced()
        if last is not None and int(last) >= start:
            return self._fenced(f"a record with seq {start} is already in the store (another "
                                "writer appended it)")
        return self._fenced(f"the store's next seq is {0 if last is None else int(last) + 1}, "
                            f"not {start}")

    def _check_followed(self, lease: Lease, what: str) -> None:
        """Look (at most every CHECK_EVERY seconds) whether the agent has a live follower."""
        now = time.monotonic()
        if now < lease.check_at:
            return
        try:
            row = lease.conn.execute(followed_sql(self._s), (self.agent_id,)).fetchone()
        except psycopg.Error as e:
            raise self._lost(e, what) from e
        lease.followed = row is not None
        lease.check_at = now + CHECK_EVERY

    def sync(self) -> None:
        """Make every earlier commit of this session durable: one commit with
        ``synchronous_commit=on`` (a heartbeat of the lease row; WAL is flushed in order, so
        it covers every commit before it), skipped when there was none since the last."""
        lease = self._lease
        if lease is None:
            return  # nothing was written by this store: the pool commits synchronously
        with lease.mutex:
            lease.streak = lease.streak + 1 if lease.since_sync == 1 else 0
            lease.since_sync = 0
            if lease.streak >= 2:
                lease.sync_each = True  # the journal syncs every append: commit each durably
            if not lease.dirty:
                return  # every commit since the last synchronous one was synchronous
            try:
                # One round trip; SET LOCAL lasts for this implicit transaction only.
                cur = lease.conn.execute(sql.SQL(
                    "SET LOCAL synchronous_commit = on; UPDATE {}.leases SET " + lease.renew_sql()
                    + " WHERE agent = {} AND epoch = {}").format(
                        sql.Identifier(self._s), sql.Literal(self.agent_id),
                        sql.Literal(lease.epoch)))
                cur.nextset()
            except psycopg.Error as e:
                raise self._lost(e, "syncing") from e
            if cur.rowcount != 1:
                raise self._fenced()
            lease.dirty = False

    # --- reads --------------------------------------------------------------------------------
    def read(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(seq, line)`` for ``start <= seq < stop``, ascending, in pages of
        :data:`READ_BATCH` (each page one query on a pooled connection)."""
        return self._pages(start, _MAX if stop is None else stop)

    def _pages(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        nxt = start
        where = self._where()
        while nxt < stop:
            rows = self._read(
                f"SELECT seq, line FROM {self._s}.records WHERE agent = %(a)s AND "
                f"seq >= %(n)s AND seq < %(e)s{self._vis} ORDER BY seq LIMIT %(k)s",
                {**where, "n": nxt, "e": stop, "k": READ_BATCH},
                f"reading records of agent {self.agent_id!r}")
            for seq, line in rows:
                yield int(seq), bytes(line)
            if len(rows) < READ_BATCH:
                return
            nxt = int(rows[-1][0]) + 1

    def span(self) -> tuple[int, int] | None:
        rows = self._read(f"SELECT min(seq), max(seq) FROM {self._s}.records WHERE "
                          f"agent = %(a)s{self._vis}", self._where(),
                          f"reading the span of agent {self.agent_id!r}")
        lo, hi = rows[0]
        return None if lo is None else (int(lo), int(hi))

    def headers(self) -> list[tuple[int, bytes]]:
        rows = self._read(f"SELECT seq, header FROM {self._s}.records WHERE agent = %(a)s AND "
                          f"header IS NOT NULL{self._vis} ORDER BY seq", self._where(),
                          f"listing the segments of agent {self.agent_id!r}")
        return [(int(s), bytes(h)) for s, h in rows]

    # --- deletes ------------------------------------------------------------------------------
    def delete_below(self, seq: int) -> None:
        """Delete the records before ``seq``: one statement on the primary key's range (time
        layout: the agent's horizon moves to ``seq``, and the rows below wait for their
        partition to be dropped; all of them go at once when none would be left)."""
        s, p = self._s, {"a": self.agent_id, "n": seq}
        with self._tx(f"deleting records of agent {self.agent_id!r} below {seq}") as c:
            if not self._time:
                c.execute(f"DELETE FROM {s}.records WHERE agent = %(a)s AND seq < %(n)s", p)
                return
            row = c.execute(f"SELECT max(seq) FROM {s}.records WHERE agent = %(a)s",
                            p).fetchone()
            if row is None or row[0] is None or int(row[0]) < seq:
                self._clear(c)
            else:
                # The bucket of the first row kept is the lowest any kept row is in (buckets
                # never go down along the seqs); none at that seq: the old bound stays.
                c.execute(f"UPDATE {s}.agents SET horizon = greatest(horizon, %(n)s), "
                          "low_bucket = greatest(low_bucket, (SELECT bucket FROM "
                          f"{s}.records WHERE agent = %(a)s AND seq = %(n)s)) "
                          "WHERE agent = %(a)s", p)

    def delete_from(self, seq: int) -> None:
        s, p = self._s, {"a": self.agent_id, "n": seq}
        with self._tx(f"deleting records of agent {self.agent_id!r} from {seq}") as c:
            self._bucket_known = False
            if self._time:
                row = c.execute(f"SELECT horizon FROM {s}.agents WHERE agent = %(a)s",
                                p).fetchone()
                if row is not None and seq <= int(row[0]):  # nothing visible is left
                    self._clear(c)
                    return
            c.execute(f"DELETE FROM {s}.records WHERE agent = %(a)s AND seq >= %(n)s", p)

    def _clear(self, c: Conn) -> None:
        """Time layout: no visible record is left: delete every row, reset the horizon (so a
        journal may start again at any seq)."""
        p = {"a": self.agent_id}
        c.execute(f"DELETE FROM {self._s}.records WHERE agent = %(a)s", p)
        c.execute(f"UPDATE {self._s}.agents SET horizon = 0, low_bucket = NULL WHERE "
                  "agent = %(a)s", p)
        self._bucket_known = False

    # --- snapshots ----------------------------------------------------------------------------
    def put_snapshot(self, snapshot: SnapshotData) -> None:
        """Insert or replace a snapshot on its own: one transaction, synchronous commit."""
        with self._tx(f"writing snapshot {snapshot.seq} of agent {self.agent_id!r}",
                      durable=True) as c:
            c.execute(f"INSERT INTO {self._s}.snapshots AS x (agent, seq, data, compressed) "
                      "VALUES (%s, %s, %s, %s) ON CONFLICT (agent, seq) DO UPDATE SET "
                      "data = excluded.data, compressed = excluded.compressed, written = now()",
                      (self.agent_id, snapshot.seq, bytes(snapshot.data), snapshot.compressed))

    def get_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        where = f"{self.describe()}/snapshots/{seq}"
        rows = self._read(
            f"SELECT CASE WHEN octet_length(data) <= %s THEN data END, octet_length(data), "
            f"compressed FROM {self._s}.snapshots WHERE agent = %s AND seq = %s",
            (limit, self.agent_id, seq), f"reading snapshot {seq} of agent {self.agent_id!r}")
        if not rows:
            raise FileNotFoundError(where)
        data, size, compressed = rows[0]
        if data is None:
            raise LimitExceededError(f"snapshot {seq} is {size} bytes, over {limit}",
                                     path=where)
        return bytes(data), bool(compressed)

    def list_snapshots(self) -> list[tuple[int, int]]:
        rows = self._read(f"SELECT seq, octet_length(data) FROM {self._s}.snapshots WHERE "
                          "agent = %s ORDER BY seq", (self.agent_id,), "listing snapshots")
        return [(int(s), int(n)) for s, n in rows]

    def delete_snapshot(self, seq: int) -> None:
        with self._tx(f"deleting snapshot {seq} of agent {self.agent_id!r}") as c:
            c.execute(f"DELETE FROM {self._s}.snapshots WHERE agent = %s AND seq = %s",
                      (self.agent_id, seq))

    # --- optional capabilities: Quarantine, Usage ---------------------------------------------
    def quarantine(self, name: str, data: bytes) -> None:
        """Keep bytes ``repair`` cut (a ``quarantine`` row), durably."""
        with self._tx("quarantining cut bytes", durable=True) as c:
            c.execute(f"INSERT INTO {self._s}.quarantine (agent, name, data) VALUES "
                      "(%s, %s, %s)", (self.agent_id, name, bytes(data)))

    def list_quarantine(self) -> list[str]:
        rows = self._read(f"SELECT name FROM {self._s}.quarantine WHERE agent = %s ORDER BY id",
                          (self.agent_id,), "listing the quarantine")
        return [str(n) for (n,) in rows]

    def usage(self) -> int:
        """Bytes of this agent's record lines, headers and snapshots (one query; not
        PostgreSQL's pages, tuple headers and indexes)."""
        s = self._s
        rows = self._read(
            f"SELECT (SELECT coalesce(sum(octet_length(line) + coalesce(octet_length(header), "
            f"0)), 0) FROM {s}.records WHERE agent = %(a)s{self._vis}) + (SELECT "
            f"coalesce(sum(octet_length(data)), 0) FROM {s}.snapshots WHERE agent = %(a)s)",
            self._where(), "measuring disk usage")
        return int(rows[0][0])

    # --- follow: wake-ups (the optional ChangeWaiter capability) -----------------------------
    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a writer's commit to this agent (LISTEN/NOTIFY), at most ``timeout``
        seconds; whether one was notified. The first call starts following (a connection of
        its own, kept until :meth:`close`). A lost connection (a server restart, a
        terminated session) is dropped and the rest of the timeout slept: the caller polls
        as usual, and the next call listens again."""
        deadline = time.monotonic() + timeout
        try:
            if self._wakeups is None:
                self._wakeups = Wakeups(self._be, self.agent_id)
            return self._wakeups.wait(max(deadline - time.monotonic(), 0.0))
        except OSError:  # StoreUnavailableError and the other store errors are OSErrors
            self._stop_following()
            time.sleep(max(deadline - time.monotonic(), 0.0))
            return False

    def _stop_following(self) -> None:
        w, self._wakeups = self._wakeups, None
        if w is not None:
            w.close()

    def close(self) -> None:
        """Give the lease up, if held, and stop following (reads use the backend's pool)."""
        self._stop_following()
        self.release()

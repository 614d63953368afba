"""One agent's journal in PostgreSQL: the :class:`~agentjournal.backends.base.AgentStore` on rows.

A segment is a ``segments`` row (its header line) plus the ``records`` rows whose ``seg`` is
its first seq; reading it concatenates the header and the record lines in offset order, so it
returns exactly the bytes a segment file would hold and the engine's scanner, hash checks and
recovery run unchanged. Bytes that are not a whole record line (a torn write) are kept in
``fragments`` at their offset.

The writer's lease (:meth:`PostgresAgentStore.lock`) is a session advisory lock on a
connection this store keeps, plus an ``epoch`` bumped in the agent's ``leases`` row. Every
change the lease holder makes runs on that connection and is conditional on the epoch still
being ours, under a share lock of the lease row, so a takeover (which bumps the epoch) waits
for a write in flight and every later write of the old holder is refused:
:class:`~agentjournal.errors.JournalFencedError`. Losing the connection is losing the lease.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ...errors import JournalFencedError, JournalLockedError, LimitExceededError, StoreError
from ..base import Hint, seq_name
from ._errors import translate, translated
from ._lease import Lease, acquire, release
from ._notify import CHECK_EVERY, Wakeups, channel, followed_sql
from ._schema import advisory_key

if TYPE_CHECKING:
    from . import PostgresBackend

_SEQ = re.compile(rb'\{"kind":"[a-z]+","seq":([0-9]{1,19}),')
_MAX = (1 << 63) - 1
Conn = psycopg.Connection[tuple[Any, ...]]


def _split(data: bytes, first: int, start: int) -> tuple[list[tuple[int, int, bytes]],
                                                       list[tuple[int, bytes]]]:
    """``data`` written at ``start`` of segment ``first``: (seq, off, line) of each whole
    record line, and (off, bytes) of everything else (a partial or foreign line)."""
    records: list[tuple[int, int, bytes]] = []
    other: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        line = data[pos:end]
        m = _SEQ.match(line) if nl >= 0 else None
        if m is not None and int(m.group(1)) >= first:
            records.append((int(m.group(1)), start + pos, line))
        elif other and other[-1][0] + len(other[-1][1]) == start + pos:
            other[-1] = (other[-1][0], other[-1][1] + line)  # one fragment, not one per line
        else:
            other.append((start + pos, line))
        pos = end
    return records, other


class PostgresAppender:
    """Appends to one unsealed segment: each :meth:`write` is one transaction."""

    def __init__(self, store: PostgresAgentStore, first: int, size: int) -> None:
        self._store = store
        self._first = first
        self._size = size

    def write(self, data: bytes) -> None:
        """Insert the lines of ``data`` (one transaction, fenced when the store holds the
        lease; committed with ``synchronous_commit=off``: visible at once, durable at the
        next :meth:`sync`)."""
        records, other = _split(data, self._first, self._size)
        self._store._insert(self._first, records, other)
        self._size += len(data)

    def sync(self) -> None:
        """Make every earlier commit of this session durable: one commit with
        ``synchronous_commit=on`` (a heartbeat of the lease row; WAL is flushed in order, so
        it covers every write before it)."""
        self._store._sync()

    def close(self) -> None:
        """Nothing to release: the connection belongs to the store."""


class PostgresAgentStore:
    """One agent's rows. Made by :meth:`PostgresBackend.agent`."""

    def __init__(self, backend: PostgresBackend, agent_id: str) -> None:
        self.agent_id = agent_id
        self._be = backend
        self._s = backend.schema
        self._key = advisory_key(backend.schema, agent_id)
        self._lease: Lease | None = None
        self._wakeups: Wakeups | None = None

    # --- plumbing ---------------------------------------------------------------------------
    def location(self, kind: str, seq: int | None = None) -> str:
        base = f"{self._be.url}/{self.agent_id}"
        if kind == "segment" and seq is not None:
            return f"{base}/segments/{seq_name(seq)}.jsonl"
        if kind == "snapshot" and seq is not None:
            return f"{base}/snapshots/{seq_name(seq)}.json"
        return base

    def name(self, kind: str, seq: int) -> str:
        return self.location(kind, seq).removeprefix(f"{self._be.url}/{self.agent_id}/")

    def _read(self, query: str, params: Any, what: str) -> list[tuple[Any, ...]]:
        return self._be.query(query, params, what)

    @contextmanager
    def _tx(self, what: str, durable: bool = False) -> Iterator[Conn]:
        """A transaction for a change: on the lease connection and fenced when this store
        holds the lease, else on a pooled connection."""
        lease = self._lease
        if lease is None:
            with self._be.checked(what) as c, translated(what), c.transaction():
                yield c
            return
        with lease.mutex:
            try:
                with lease.conn.transaction():
                    if durable or lease.kind == "row":
                        lease.conn.execute("SET LOCAL synchronous_commit = "
                                           + ("on" if durable else "off"))
                    self._fence(lease)
                    yield lease.conn
                if not durable:
                    lease.dirty = True
            except psycopg.Error as e:
                raise self._lost(e, what) from e

    def _fence(self, lease: Lease) -> None:
        row = lease.conn.execute(
            f"SELECT 1 FROM {self._s}.leases WHERE agent = %s AND epoch = %s FOR SHARE",
            (self.agent_id, lease.epoch)).fetchone()
        if row is None:
            raise self._fenced()

    def _fenced(self, why: str = "its lease was taken over by another writer"
                ) -> JournalFencedError:
        return JournalFencedError(
            f"the writer of agent {self.agent_id!r} was fenced: {why}; the store refused "
            "the write, nothing was forked", path=self.location("dir"),
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
    def lock(self) -> None:
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

    def _locked(self, conn: Conn) -> JournalLockedError:
        row = conn.execute(f"SELECT host, pid, since FROM {self._s}.leases WHERE agent = %s",
                           (self.agent_id,)).fetchone()
        host, pid, since = row if row else (None, None, None)
        who = f"pid {pid} on {host}, since {since:%Y-%m-%d %H:%M:%S %Z}" if row else "unknown"
        return JournalLockedError(
            f"journal of agent {self.agent_id!r} is locked by another writer ({who})",
            pid=pid, path=self.location("dir"),
            hint="only one writer per agent: stop the other one, or wait for its session to "
            "end (a dead host's lease ends with its PostgreSQL session)")

    def unlock(self) -> None:
        """Release the lease (closing its connection; a lost connection is fine)."""
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
    def _insert(self, first: int, records: list[tuple[int, int, bytes]],
                other: list[tuple[int, bytes]]) -> None:
        lease = self._lease
        what = f"appending to {self.location('segment', first)}"
        if lease is not None and len(records) == 1 and not other:
            seq, off, line = records[0]
            # The common case in one statement: insert only while the epoch is ours.
            query = (f"INSERT INTO {self._s}.records (agent, seq, seg, off, line) "
                     "SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM "
                     f"{self._s}.leases WHERE agent = %s AND epoch = %s FOR SHARE)")
            params: tuple[Any, ...] = (self.agent_id, seq, first, off, line, self.agent_id,
                                       lease.epoch)
            with lease.mutex:
                self._check_followed(lease, what)
                if lease.followed:  # a wake-up for the followers, sent with the commit
                    query = (f"WITH ins AS ({query} RETURNING 1) SELECT pg_notify(%s, %s) "
                             "FROM ins")
                    params += (channel(self._s), self.agent_id)
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
                except psycopg.Error as e:
                    lease.dirty = True  # the outcome is unknown: the next sync must commit
                    raise self._lost(e, what) from e
                if cur.rowcount != 1:
                    raise self._fenced()
                if not durable:
                    lease.dirty = True
            return
        with self._tx(what) as c:
            if records:
                c.execute(
                    f"INSERT INTO {self._s}.records (agent, seq, seg, off, line) "
                    "SELECT %s, s, %s, o, l FROM unnest(%s::bigint[], %s::bigint[], "
                    "%s::bytea[]) AS t(s, o, l)",
                    (self.agent_id, first, [r[0] for r in records], [r[1] for r in records],
                     [r[2] for r in records]))
            for off, data in other:
                c.execute(f"INSERT INTO {self._s}.fragments (agent, seg, off, data) "
                          "VALUES (%s, %s, %s, %s)", (self.agent_id, first, off, data))
            if lease is not None and records:
                self._check_followed(lease, what)
                if lease.followed:
                    c.execute("SELECT pg_notify(%s, %s)", (channel(self._s), self.agent_id))

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

    def _sync(self) -> None:
        lease = self._lease
        if lease is None:
            return  # pooled connections commit with the server's synchronous_commit
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

    # --- hints ------------------------------------------------------------------------------
    def read_hint(self) -> Hint | None:
        rows = self._read(f"SELECT seg, snap, clean FROM {self._s}.hints WHERE agent = %s",
                          (self.agent_id,), "reading the hint")
        if not rows:
            return None
        seg, snap, clean = rows[0]
        return Hint(seg=int(seg), snap=int(snap), clean=bool(clean))

    def write_hint(self, hint: Hint) -> None:
        """Store the hint (lease holder only). Best effort: a hint is never trusted, so a
        failure here (a lost lease, which the next write reports) fails nothing."""
        if self._lease is None:
            return  # only the lease holder's hints count, as with the other backends
        with contextlib.suppress(JournalFencedError, StoreError), \
                self._tx("writing the hint") as c:
            c.execute(f"INSERT INTO {self._s}.hints AS h (agent, seg, snap, clean) "
                      "VALUES (%s, %s, %s, %s) ON CONFLICT (agent) DO UPDATE SET "
                      "seg = excluded.seg, snap = excluded.snap, clean = excluded.clean",
                      (self.agent_id, hint.seg, hint.snap, hint.clean))

    # --- segments ---------------------------------------------------------------------------
    def _next(self) -> str:
        """SQL for the first seq of the segment after %(f)s (the end of its seq range)."""
        return (f"coalesce((SELECT min(first_seq) FROM {self._s}.segments WHERE "
                f"agent = %(a)s AND first_seq > %(f)s), {_MAX})")

    def segment_exists(self, first_seq: int) -> bool:
        return bool(self._read(f"SELECT 1 FROM {self._s}.segments WHERE agent = %s AND "
                               "first_seq = %s", (self.agent_id, first_seq),
                               "looking for a segment"))

    def list_segments(self) -> list[tuple[int, bool]]:
        rows = self._read(f"SELECT first_seq, sealed FROM {self._s}.segments WHERE agent = %s "
                          "ORDER BY first_seq", (self.agent_id,), "listing segments")
        return [(int(f), bool(s)) for f, s in rows]

    def read_segment(self, first_seq: int, offset: int = 0, length: int | None = None) -> bytes:
        """The segment's bytes: header line + record lines (and fragments) in offset order.

        Sealed segments read the same (sealing is a flag; see :meth:`seal_segment`).
        """
        end = _MAX if length is None else offset + length
        p = {"a": self.agent_id, "f": first_seq, "o": offset, "e": end}
        rows = self._read(
                f"WITH s AS (SELECT header, {self._next()} AS nxt FROM {self._s}.segments "
                "WHERE agent = %(a)s AND first_seq = %(f)s) "
                "SELECT 0 AS off, header FROM s UNION ALL "
                f"SELECT r.off, r.line FROM {self._s}.records r, s WHERE r.agent = %(a)s "
                "AND r.seq >= %(f)s AND r.seq < s.nxt AND r.seg = %(f)s "
                "AND r.off + octet_length(r.line) > %(o)s AND r.off < %(e)s UNION ALL "
                f"SELECT g.off, g.data FROM {self._s}.fragments g, s WHERE g.agent = %(a)s "
                "AND g.seg = %(f)s AND g.off + octet_length(g.data) > %(o)s "
                "AND g.off < %(e)s ORDER BY 1", p,
                f"reading {self.location('segment', first_seq)}")
        if not rows:
            raise FileNotFoundError(self.location("segment", first_seq))
        header = rows[0][1]
        pieces = [bytes(b) for o, b in rows[1:]]
        if offset < len(header):
            data = bytes(header) + b"".join(pieces)
            return data[offset:end]
        start = int(rows[1][0]) if len(rows) > 1 else len(header)
        data = b"".join(pieces)
        return data[max(offset - start, 0): end - start]

    def _sizes(self, first_seq: int) -> tuple[int, bool, int | None] | None:
        """``(plain size, sealed, sealed_bytes)`` of a segment, or None if there is none."""
        p = {"a": self.agent_id, "f": first_seq}
        rows = self._read(
                f"WITH s AS (SELECT header, sealed, sealed_bytes, {self._next()} AS nxt "
                f"FROM {self._s}.segments WHERE agent = %(a)s AND first_seq = %(f)s) "
                "SELECT greatest(octet_length(s.header), "
                f"(SELECT r.off + octet_length(r.line) FROM {self._s}.records r "
                "WHERE r.agent = %(a)s AND r.seq >= %(f)s AND r.seq < s.nxt "
                "AND r.seg = %(f)s ORDER BY r.seq DESC LIMIT 1), "
                f"(SELECT max(g.off + octet_length(g.data)) FROM {self._s}.fragments g "
                "WHERE g.agent = %(a)s AND g.seg = %(f)s)), s.sealed, s.sealed_bytes "
                "FROM s", p, f"sizing {self.location('segment', first_seq)}")
        if not rows:
            return None
        row = rows[0]
        return int(row[0]), bool(row[1]), None if row[2] is None else int(row[2])

    def segment_size(self, first_seq: int) -> int:
        """Exact size of an unsealed segment (``FileNotFoundError`` for a sealed one)."""
        sizes = self._sizes(first_seq)
        if sizes is None or sizes[1]:
            raise FileNotFoundError(self.location("segment", first_seq))
        return sizes[0]

    def segment_bytes(self, first_seq: int) -> int:
        """Plain size; for a sealed segment the size of the compressed form it was given."""
        sizes = self._sizes(first_seq)
        if sizes is None:
            raise FileNotFoundError(self.location("segment", first_seq))
        size, sealed, sealed_bytes = sizes
        return sealed_bytes if sealed and sealed_bytes is not None else size

    def create_segment(self, first_seq: int, header: bytes, durable: bool) -> PostgresAppender:
        """Insert the segment's row; ``durable``: committed with ``synchronous_commit=on``."""
        with self._tx(f"creating {self.location('segment', first_seq)}", durable) as c:
            cur = c.execute(f"INSERT INTO {self._s}.segments (agent, first_seq, header) "
                            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            (self.agent_id, first_seq, header))
            if cur.rowcount != 1:
                raise FileExistsError(self.location("segment", first_seq))
        return PostgresAppender(self, first_seq, len(header))

    def open_segment(self, first_seq: int) -> PostgresAppender:
        return PostgresAppender(self, first_seq, self.segment_size(first_seq))

    def truncate_segment(self, first_seq: int, size: int) -> None:
        """Cut an unsealed segment to ``size`` bytes (a record cut in two keeps its head as
        a fragment), in one transaction."""
        p = {"a": self.agent_id, "f": first_seq, "n": size}
        with self._tx(f"truncating {self.location('segment', first_seq)}") as c:
            c.execute(
                f"WITH cut AS (DELETE FROM {self._s}.records WHERE agent = %(a)s AND "
                f"seq >= %(f)s AND seq < {self._next()} AND seg = %(f)s "
                "AND off + octet_length(line) > %(n)s RETURNING off, line) "
                f"INSERT INTO {self._s}.fragments (agent, seg, off, data) "
                "SELECT %(a)s, %(f)s, off, substring(line FROM 1 FOR (%(n)s - off)::int) FROM cut "
                "WHERE off < %(n)s", p)
            c.execute(f"DELETE FROM {self._s}.fragments WHERE agent = %(a)s AND seg = %(f)s "
                      "AND off >= %(n)s", p)
            c.execute(f"UPDATE {self._s}.fragments SET data = substring(data FROM 1 FOR "
                      "(%(n)s - off)::int) WHERE agent = %(a)s AND seg = %(f)s "
                      "AND off + octet_length(data) > %(n)s", p)
            c.execute(f"UPDATE {self._s}.segments SET header = substring(header FROM 1 FOR "
                      "%(n)s::int) WHERE agent = %(a)s AND first_seq = %(f)s "
                      "AND octet_length(header) > %(n)s", p)

    def delete_segment(self, first_seq: int) -> None:
        p = {"a": self.agent_id, "f": first_seq}
        with self._tx(f"deleting {self.location('segment', first_seq)}") as c:
            c.execute(f"DELETE FROM {self._s}.records WHERE agent = %(a)s AND seq >= %(f)s "
                      f"AND seq < {self._next()} AND seg = %(f)s", p)
            c.execute(f"DELETE FROM {self._s}.fragments WHERE agent = %(a)s AND seg = %(f)s",
                      p)
            c.execute(f"DELETE FROM {self._s}.segments WHERE agent = %(a)s AND "
                      "first_seq = %(f)s", p)

    def seal_segment(self, first_seq: int, data: bytes) -> None:
        """Mark a segment sealed: a flag flip in one transaction.

        ``data`` (the compressed form a file store would keep) is not stored: the rows stay
        as they are (PostgreSQL compresses large values itself, TOAST) and reads return the
        same plain bytes. Only its length is kept, as the segment's stored size.
        """
        with self._tx(f"sealing {self.location('segment', first_seq)}", durable=True) as c:
            cur = c.execute(f"UPDATE {self._s}.segments SET sealed = true, sealed_bytes = %s "
                            "WHERE agent = %s AND first_seq = %s",
                            (len(data), self.agent_id, first_seq))
            if cur.rowcount != 1:
                raise FileNotFoundError(self.location("segment", first_seq))

    # --- quarantine ---------------------------------------------------------------------------
    def list_quarantine(self) -> list[str]:
        rows = self._read(f"SELECT name FROM {self._s}.quarantine WHERE agent = %s ORDER BY id",
                          (self.agent_id,), "listing the quarantine")
        return [f"{self.location('dir')}/quarantine/{n}" for (n,) in rows]

    def quarantine(self, first_seq: int, offset: int, data: bytes) -> str:
        with self._tx("quarantining cut bytes", durable=True) as c:
            row = c.execute(
                f"INSERT INTO {self._s}.quarantine (agent, name, data) VALUES (%s, '', %s) "
                "RETURNING id", (self.agent_id, data)).fetchone()
            assert row is not None
            name = f"{seq_name(first_seq)}.jsonl.{offset}.{row[0]}"
            c.execute(f"UPDATE {self._s}.quarantine SET name = %s WHERE agent = %s AND id = %s",
                      (name, self.agent_id, row[0]))
        return f"{self.location('dir')}/quarantine/{name}"

    # --- snapshots ----------------------------------------------------------------------------
    def list_snapshots(self) -> list[int]:
        rows = self._read(f"SELECT seq FROM {self._s}.snapshots WHERE agent = %s ORDER BY seq",
                          (self.agent_id,), "listing snapshots")
        return [int(s) for (s,) in rows]

    def write_snapshot(self, seq: int, data: bytes, compressed: bool) -> None:
        """Insert or replace the snapshot at ``seq``: one transaction, synchronous commit.

        The engine writes the snapshot and then its ``snapshot`` mark record (a separate
        append); a snapshot whose mark never made it is ignored by the engine.
        """
        with self._tx(f"writing {self.location('snapshot', seq)}", durable=True) as c:
            c.execute(f"INSERT INTO {self._s}.snapshots AS s (agent, seq, data, compressed) "
                      "VALUES (%s, %s, %s, %s) ON CONFLICT (agent, seq) DO UPDATE SET "
                      "data = excluded.data, compressed = excluded.compressed, written = now()",
                      (self.agent_id, seq, data, compressed))

    def read_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        rows = self._read(
            f"SELECT CASE WHEN octet_length(data) <= %s THEN data END, octet_length(data), "
            f"compressed FROM {self._s}.snapshots WHERE agent = %s AND seq = %s",
            (limit, self.agent_id, seq), f"reading {self.location('snapshot', seq)}")
        if not rows:
            raise FileNotFoundError(self.location("snapshot", seq))
        data, size, compressed = rows[0]
        if data is None:
            raise LimitExceededError(f"snapshot {seq} is {size} bytes, over {limit}",
                                     path=self.location("snapshot", seq))
        return bytes(data), bool(compressed)

    def snapshot_bytes(self, seq: int) -> int:
        rows = self._read(f"SELECT octet_length(data) FROM {self._s}.snapshots WHERE "
                          "agent = %s AND seq = %s", (self.agent_id, seq), "sizing a snapshot")
        if not rows:
            raise FileNotFoundError(self.location("snapshot", seq))
        return int(rows[0][0])

    def delete_snapshot(self, seq: int) -> None:
        with self._tx(f"deleting {self.location('snapshot', seq)}") as c:
            c.execute(f"DELETE FROM {self._s}.snapshots WHERE agent = %s AND seq = %s",
                      (self.agent_id, seq))

    # --- housekeeping -------------------------------------------------------------------------
    def remove_temps(self) -> list[str]:
        """Nothing to do: a transaction that did not commit leaves nothing behind."""
        return []

    def sync_dirs(self) -> None:
        """Nothing to do: a committed row needs no directory entry to be durable."""

    def disk_usage(self) -> int:
        """Bytes of this agent's journal as a file store would count them: plain segments,
        the stored size of sealed ones, snapshots (not PostgreSQL's pages and indexes)."""
        s = self._s
        rows = self._read(
            f"SELECT (SELECT coalesce(sum(CASE WHEN sealed AND sealed_bytes IS NOT NULL THEN "
            f"sealed_bytes ELSE octet_length(header) END), 0) FROM {s}.segments WHERE "
            "agent = %(a)s) + (SELECT coalesce(sum(octet_length(r.line)), 0) FROM "
            f"{s}.records r JOIN {s}.segments g ON g.agent = r.agent AND g.first_seq = r.seg "
            "WHERE r.agent = %(a)s AND NOT (g.sealed AND g.sealed_bytes IS NOT NULL)) + "
            f"(SELECT coalesce(sum(octet_length(data)), 0) FROM {s}.fragments WHERE "
            f"agent = %(a)s) + (SELECT coalesce(sum(octet_length(data)), 0) FROM {s}.snapshots "
            "WHERE agent = %(a)s)", {"a": self.agent_id},
            "measuring disk usage")
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
        """Release the lease, if held, and stop following (reads use the backend's pool)."""
        self._stop_following()
        self.unlock()

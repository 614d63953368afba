"""The writer's lease on an agent: how it is taken, renewed and given back.

Two kinds, one fence. Either way the lease row's ``epoch`` is bumped at every acquisition and
every change the holder makes is conditional on it (see ``store.py``), which is what makes a
stale writer harmless; the kinds differ only in *when* a new writer may take over:

- ``advisory`` (default): ``pg_try_advisory_lock`` on a connection the store keeps. The lock
  lives as long as that PostgreSQL session, so a dead host's lease ends when its session does
  (at once for a killed process, after the TCP keepalive for a vanished host) and a live one
  is never taken over. Needs a session of its own: a direct connection or a session-mode
  pooler.
- ``row``: a lease row with an expiry (``ttl`` seconds), renewed by a heartbeat thread every
  ``ttl / 3`` and by every ``sync()``; a new writer takes over only after it expired. Keeps no
  session state (no session lock, no ``SET``, no prepared statement), so it works through a
  transaction-mode pooler such as PgBouncer.

The two kinds respect each other on one schema: a row lease is refused while an advisory
lock of the agent is held, and an advisory lease while a row lease has not expired.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import psycopg

Conn = psycopg.Connection[tuple[Any, ...]]

# pg_locks spells a bigint advisory key as two oids (high, low 32 bits).
ADVISORY_HELD = ("EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted "
                 "AND k.objsubid = 1 AND ((k.classid::bigint << 32) | k.objid::bigint) = "
                 "{l}.lock_key AND k.database = (SELECT oid FROM pg_database WHERE "
                 "datname = current_database()))")


class Lease:
    """A lease held by one store: its connection, epoch and (row kind) heartbeat."""

    def __init__(self, conn: Conn, epoch: int, kind: str, ttl: float) -> None:
        self.conn = conn
        self.epoch = epoch
        self.kind = kind
        self.ttl = ttl
        self.mutex = threading.RLock()  # the writer, its group-commit flusher, the heartbeat
        # How appends commit (store._insert, store._sync): asynchronously, made durable by the
        # next sync(); or, once the writer is seen to sync after every single write (the
        # journal's sync mode), synchronously, which makes that sync() free.
        self.dirty = False
        """Some commit since the last synchronous one was asynchronous."""
        self.since_sync = 0
        """Appends since the last sync()."""
        self.streak = 0
        """sync() calls in a row that each followed exactly one append."""
        self.sync_each = False
        """Appends commit with synchronous_commit=on."""
        self.session_sync = False
        """The advisory lease's session setting of synchronous_commit (off after acquire)."""
        self.followed = False
        """Someone follows the agent: appends send a NOTIFY (see _notify.py)."""
        self.check_at = 0.0
        """When (monotonic) to look again whether someone follows."""
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def renew_sql(self) -> str:
        """The SET list of a renewal (the expiry moves only for a row lease)."""
        if self.kind == "row":
            return f"renewed = now(), expires = now() + interval '{float(self.ttl)} seconds'"
        return "renewed = now()"

    def start_heartbeat(self, schema: str, agent: str) -> None:
        if self.kind != "row":
            return

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                with self.mutex:
                    if self._stop.is_set():
                        return
                    try:
                        cur = self.conn.execute(
                            f"UPDATE {schema}.leases SET {self.renew_sql()} WHERE agent = %s "
                            "AND epoch = %s", (agent, self.epoch))
                    except psycopg.Error:
                        return  # the next write finds out (its epoch check)
                    if cur.rowcount != 1:
                        return  # taken over: the next write is fenced

        self._beat = threading.Thread(target=beat, daemon=True,
                                      name=f"agentjournal-lease-{agent}")
        self._beat.start()

    def stop(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=5)


def acquire(conn: Conn, schema: str, agent: str, key: int, kind: str,
            ttl: float, keepalive: float | None = None) -> int | None:
    """Take the lease on ``conn``; its new epoch, or None when another writer holds it.

    ``keepalive`` (advisory kind): seconds of silence after which the *server* probes this
    session's TCP connection (``tcp_keepalives_idle``; 3 probes ``keepalive / 2`` apart), so a
    host that vanished without closing its socket loses its lease in about ``2.5 *
    keepalive`` seconds instead of the operating system's default of two hours and more.
    """
    s = schema
    if kind == "advisory":
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not (got and got[0]):
            return None
        if keepalive is not None:  # session settings of the server side of this socket
            idle, every = max(1, round(keepalive)), max(1, round(keepalive / 2))
            conn.execute(f"SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = "
                         f"{every}; SET tcp_keepalives_count = 3")
        free = "l.expires IS NULL OR l.expires <= now()"
        expires = "NULL"
    else:
        free = f"(l.expires IS NULL OR l.expires <= now()) AND NOT {ADVISORY_HELD.format(l='l')}"
        expires = f"now() + interval '{float(ttl)} seconds'"
    with conn.transaction():
        if kind == "advisory":
            # The new epoch must survive a server crash (the fence): commit it synchronously.
            conn.execute("SET LOCAL synchronous_commit = on")
        row = conn.execute(
            f"INSERT INTO {s}.leases AS l (agent, epoch, lock_key, host, pid, since, renewed, "
            f"expires) VALUES (%s, 1, %s, %s, %s, now(), now(), {expires}) "
            "ON CONFLICT (agent) DO UPDATE SET epoch = l.epoch + 1, lock_key = excluded.lock_key, "
            "host = excluded.host, pid = excluded.pid, since = now(), renewed = now(), "
            f"expires = excluded.expires WHERE {free} RETURNING epoch",
            (agent, key, socket.gethostname(), os.getpid())).fetchone()
    if row is None:
        if kind == "advisory":
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return None
    if kind == "advisory":
        # Writes commit asynchronously; sync() commits synchronously (store._sync). A row
        # lease sets this per transaction instead: a pooler's session is not ours.
        conn.execute("SET synchronous_commit = off")
    return int(row[0])


def release(lease: Lease, schema: str, agent: str, key: int) -> None:
    """Give the lease back (best effort: a lost session has given it back already)."""
    lease.stop()
    with lease.mutex:
        try:
            if lease.conn.broken or lease.conn.closed:
                return
            if lease.kind == "row":
                lease.conn.execute(f"UPDATE {schema}.leases SET expires = now() WHERE "
                                   "agent = %s AND epoch = %s", (agent, lease.epoch))
            else:
                lease.conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except psycopg.Error:
            pass
        finally:
            lease.conn.close()


def holders_sql(schema: str) -> str:
    """``(agent, pid)`` of every live lease: a granted advisory lock or an unexpired row."""
    return (f"SELECT l.agent, l.pid FROM {schema}.leases l WHERE l.expires > now() OR "
            f"{ADVISORY_HELD.format(l='l')}")

"""Wake-ups for followers: ``LISTEN/NOTIFY``, sent only while someone follows the agent.

A notification is only ever a hint to read now: a follower reads the journal (catch-up) after
every wake-up *and* after every timeout, so a lost, late or coalesced notification costs at
most one polling interval, never a record. ``NOTIFY`` serializes the commits that send it (a
server-wide queue lock), so a writer sends it only while its agent has a live follower: a
follower keeps a row in ``followers`` with an expiry it renews, and the writer looks at that
table at most once a second (:data:`CHECK_EVERY`).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

from ._errors import translated

if TYPE_CHECKING:
    from . import PostgresBackend

CHECK_EVERY = 1.0
"""Seconds between a writer's looks at whether its agent is followed."""
FOLLOW_TTL = 30.0
"""Seconds a follower's registration lasts; renewed every third of it while it waits."""


def channel(schema: str) -> str:
    """The schema's notification channel (one per schema; the payload is the agent id)."""
    return "agentjournal_" + hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()


def followed_sql(schema: str) -> str:
    return f"SELECT 1 FROM {schema}.followers WHERE agent = %s AND until > now() LIMIT 1"


class Wakeups:
    """A follower's wake-ups for one agent (:meth:`PostgresBackend.wakeups`).

    Use as a context manager; :meth:`wait` returns True when the agent changed (probably),
    False after ``timeout``. Either way, read the journal next: correctness never depends on
    a notification.
    """

    def __init__(self, backend: PostgresBackend, agent_id: str) -> None:
        self.agent_id = agent_id
        self._s = backend.schema
        self._id = uuid.uuid4().hex
        self._conn: psycopg.Connection[tuple[Any, ...]] = backend.connect("following")
        self._renew_at = 0.0
        self._lock = threading.Lock()
        try:
            with translated(f"following agent {agent_id!r}"):
                self._conn.execute(f"LISTEN {channel(self._s)}")
                self._register()
        except BaseException:
            self._conn.close()
            raise

    def _register(self) -> None:
        self._conn.execute(
            f"INSERT INTO {self._s}.followers AS f (agent, id, until) VALUES (%s, %s, now() + "
            f"interval '{FOLLOW_TTL} seconds') ON CONFLICT (agent, id) DO UPDATE SET "
            "until = excluded.until", (self.agent_id, self._id))
        self._renew_at = time.monotonic() + FOLLOW_TTL / 3

    def wait(self, timeout: float) -> bool:
        """Block until a notification for the agent arrives or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._lock, translated(f"following agent {self.agent_id!r}"):
            while True:
                now = time.monotonic()
                if now >= self._renew_at:
                    self._register()
                left = min(deadline, self._renew_at) - now
                if left <= 0:
                    return False
                for n in self._conn.notifies(timeout=left, stop_after=1):
                    if n.payload == self.agent_id:
                        return True
                if time.monotonic() >= deadline:
                    return False

    def close(self) -> None:
        """Stop following (the registration is removed; a lost one expires by itself)."""
        try:
            if not self._conn.broken:
                self._conn.execute(f"DELETE FROM {self._s}.followers WHERE agent = %s AND "
                                   "id = %s", (self.agent_id, self._id))
        except psycopg.Error:
            pass
        finally:
            self._conn.close()

    def __enter__(self) -> Wakeups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

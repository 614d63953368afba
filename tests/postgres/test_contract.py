"""The record-level contract (``agentjournal.testing.RecordStoreContract``: the core, then the
engine on it) on PostgreSQL, with each lease kind and with time partitions. A takeover is
done as another host would do it: the advisory lease's session is terminated (a reaper, a
partition), the row lease is left to expire; then a new store takes the lease and the old
holder is fenced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from _pgserver import drop_schema, fresh_schema
from agentjournal.backends.base import RecordStore
from agentjournal.errors import JournalLockedError
from agentjournal.testing import RecordStoreContract


class TestPostgresRecords(RecordStoreContract):
    lease = "advisory"
    options: dict[str, Any] = {}

    @pytest.fixture(autouse=True)
    def _server(self, pg_dsn: str) -> Iterator[None]:
        self.dsn = pg_dsn
        self.made: list[tuple[Any, str]] = []
        yield
        for be, schema in self.made:
            be.close()
            drop_schema(pg_dsn, schema)

    def make_backend(self, tmp_path: Path) -> Any:
        from agentjournal.backends.postgres import PostgresBackend

        schema = fresh_schema()
        be = PostgresBackend(self.dsn, schema=schema, lease=self.lease, **self.options)
        self.made.append((be, schema))
        return be

    def take_over(self, backend: Any, agent_id: str) -> RecordStore:
        s = backend.schema
        with psycopg.connect(self.dsn, autocommit=True) as c:
            if self.lease == "row":
                c.execute(f"UPDATE {s}.leases SET expires = now() - interval '1 second' "
                          "WHERE agent = %s", (agent_id,))
            else:
                c.execute(f"SELECT pg_terminate_backend(k.pid) FROM {s}.leases l JOIN "
                          "pg_locks k ON k.locktype = 'advisory' AND k.granted AND "
                          "((k.classid::bigint << 32) | k.objid::bigint) = l.lock_key "
                          "WHERE l.agent = %s", (agent_id,))
        new = backend.records(agent_id, create=False)
        deadline = time.monotonic() + 15
        while True:  # a terminated session's lock goes when the server has ended it
            try:
                new.acquire()
                return new  # type: ignore[no-any-return]
            except JournalLockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


class TestPostgresRecordsRowLease(TestPostgresRecords):
    """The same contract with the lease kind for transaction-mode poolers."""

    lease = "row"


class TestPostgresRecordsTimePartitions(TestPostgresRecords):
    """The same contract on the time layout (1-second partitions: a test's records spread
    over several of them)."""

    options = {"partition": "time", "partition_interval": 1}

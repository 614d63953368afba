"""The row lease (``lease="row"``, for transaction-mode poolers): refused while live, kept
alive by its heartbeat, taken over after expiry (the old holder is then fenced), and
respectful of advisory leases on the same schema.

Two stores of one process stand for two hosts here (a ``Journal`` would share one writer
within a process), so the lease is taken through the stores themselves.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import JournalFencedError, JournalLockedError


def _freeze_renewals(dsn: str, schema: str) -> None:
    """A holder whose renewals no longer land (a paused host): the expiry stays put."""
    with psycopg.connect(dsn) as c:
        c.execute(f"CREATE FUNCTION {schema}.hold_expiry() RETURNS trigger LANGUAGE plpgsql AS $$ "
                  "BEGIN IF NEW.epoch = OLD.epoch THEN NEW.expires := OLD.expires; END IF; "
                  "RETURN NEW; END $$")
        c.execute(f"CREATE TRIGGER hold_expiry BEFORE UPDATE ON {schema}.leases FOR EACH ROW "
                  f"EXECUTE FUNCTION {schema}.hold_expiry()")


def _thaw(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn) as c:
        c.execute(f"DROP TRIGGER hold_expiry ON {schema}.leases")


def test_row_lease_heartbeat_release_expiry_and_fence(pg_dsn: str, pg_schema: str) -> None:
    with PostgresBackend(pg_dsn, schema=pg_schema, lease="row", lease_ttl=0.6) as a, \
            PostgresBackend(pg_dsn, schema=pg_schema, lease="row", lease_ttl=0.6) as b:
        sa, sb = a.agent("r", create=True), b.agent("r", create=True)
        try:
            sa.lock()
            time.sleep(1.5)  # over two ttl: only the heartbeat keeps the lease
            with pytest.raises(JournalLockedError):
                sb.lock()
            assert "r" in b.lock_holders()
            sa.unlock()  # given back: free at once
            sb.lock()
            sb.unlock()
            assert b.lock_holders() == {}
        finally:
            sa.close()
            sb.close()

        old = Journal("r", backend=a)
        old.append({"i": 1})
        _freeze_renewals(pg_dsn, pg_schema)
        time.sleep(1.0)  # the lease expires
        taker = b.agent("r", create=False)
        try:
            taker.lock()  # a takeover: the epoch moves on
            _thaw(pg_dsn, pg_schema)
            with pytest.raises(JournalFencedError, match="taken over"):
                old.append({"i": 99})
            old.close()
        finally:
            taker.close()
        with Journal("r", backend=b) as j:
            j.append({"i": 2})
        with Journal("r", backend=a, readonly=True) as r:
            assert r.verify().ok and r.last_seq == 2 and r.resume().state == {"i": 2}


def test_row_and_advisory_leases_respect_each_other(pg_dsn: str, pg_schema: str) -> None:
    with PostgresBackend(pg_dsn, schema=pg_schema) as adv, \
            PostgresBackend(pg_dsn, schema=pg_schema, lease="row", lease_ttl=30) as row:
        sa, sr = adv.agent("x", create=True), row.agent("x", create=True)
        try:
            sa.lock()
            with pytest.raises(JournalLockedError):
                sr.lock()
            sa.unlock()
            sr.lock()
            with pytest.raises(JournalLockedError):
                sa.lock()
            sr.unlock()
            sa.lock()
        finally:
            sa.close()
            sr.close()
        with Journal("x", backend=row) as j:  # and a journal runs on a row lease
            for i in range(5):
                j.append({"a": i})
            assert j.verify().ok

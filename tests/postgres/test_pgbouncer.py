"""The backend through PgBouncer in transaction mode: ``lease="row"`` works (journal,
refusal, takeover and fence), since it keeps no session state; skipped without pgbouncer."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from _pgserver import PgBouncer, ServerUnavailable
from agentjournal import Journal
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.errors import JournalLockedError


@pytest.fixture(scope="module")
def bouncer(pg_dsn: str) -> Iterator[PgBouncer]:
    u = urlparse(pg_dsn)
    if u.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("the PgBouncer test fronts a local server only")
    try:
        b = PgBouncer(u.hostname or "127.0.0.1", u.port or 5432).start()
    except ServerUnavailable as e:
        pytest.skip(f"PgBouncer test skipped: {e}")
    try:
        yield b
    finally:
        b.stop()


def test_row_lease_through_transaction_pooling(bouncer: PgBouncer, pg_schema: str) -> None:
    with PostgresBackend(bouncer.dsn, schema=pg_schema, lease="row", lease_ttl=5) as be, \
            PostgresBackend(bouncer.dsn, schema=pg_schema, lease="row", lease_ttl=5) as other:
        for mode in ("sync", "group", "none"):
            with Journal(f"b-{mode}", backend=be, durability=mode, snapshot_every=7) as j:
                for i in range(1, 30):
                    j.append({"i": i, "log": list(range(i))})
                assert j.verify().ok
            with Journal(f"b-{mode}", backend=other, readonly=True) as r:
                assert r.resume().state == {"i": 29, "log": list(range(29))}
        held = be.agent("b-sync", create=False)
        rival = other.agent("b-sync", create=False)
        try:
            held.lock()
            with pytest.raises(JournalLockedError):
                rival.lock()
        finally:
            held.close()
            rival.close()

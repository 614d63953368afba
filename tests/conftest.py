"""The PostgreSQL server of the test session (and nothing else: area fixtures live beside
their tests).

``pg_dsn`` is ``AGENTJOURNAL_TEST_PG_DSN`` when set (``.ci/run`` starts a cluster and sets it),
else a throw-away cluster started here for the session (``tests/_pgserver.py``) and removed at
its end. Tests that need it are skipped, with the reason, only when no server can be had.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from _pgserver import ENV_DSN, PgServer, ServerUnavailable, drop_schema, fresh_schema, wait_ready

_server: PgServer | None = None
_unavailable: str | None = None


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A DSN of a PostgreSQL server the tests may create schemas in."""
    global _server, _unavailable
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        wait_ready(dsn)
        yield dsn
        return
    if _unavailable is not None:
        pytest.skip(_unavailable)
    if _server is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _unavailable = ("PostgreSQL tests skipped: psycopg is not installed "
                            "(pip install 'agentjournal[postgres]')")
            pytest.skip(_unavailable)
        try:
            _server = PgServer().start()
        except ServerUnavailable as e:
            _unavailable = f"PostgreSQL tests skipped: no server could be started: {e}"
            pytest.skip(_unavailable)
        wait_ready(_server.dsn)
    try:
        yield _server.dsn
    finally:
        _server.stop()
        _server = None


@pytest.fixture()
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema name no other test uses; dropped (with everything in it) after the test."""
    schema = fresh_schema()
    try:
        yield schema
    finally:
        drop_schema(pg_dsn, schema)


@pytest.fixture()
def pg_backend(pg_dsn: str, pg_schema: str) -> Iterator[Any]:
    """A :class:`PostgresBackend` on a fresh schema, closed and dropped after the test."""
    from agentjournal.backends.postgres import PostgresBackend

    be = PostgresBackend(pg_dsn, schema=pg_schema)
    try:
        yield be
    finally:
        be.close()

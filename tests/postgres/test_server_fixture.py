"""The test server itself: ``pg_dsn`` reaches a working PostgreSQL."""

from __future__ import annotations

import psycopg


def test_pg_dsn_connects(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as c:
        (v,) = c.execute("SHOW server_version_num").fetchone() or (0,)
        assert int(v) >= 120000

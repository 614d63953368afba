"""The backend contract (``agentjournal.testing.BackendContract``) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _pgserver import drop_schema, fresh_schema
from agentjournal.backends.base import Backend
from agentjournal.testing import BackendContract


class TestPostgresBackend(BackendContract):
    lease = "advisory"

    @pytest.fixture(autouse=True)
    def _server(self, pg_dsn: str) -> Iterator[None]:
        self.dsn = pg_dsn
        self.made: list[tuple[object, str]] = []
        yield
        for be, schema in self.made:
            be.close()  # type: ignore[attr-defined]
            drop_schema(pg_dsn, schema)

    def make_backend(self, tmp_path: Path) -> Backend:
        from agentjournal.backends.postgres import PostgresBackend

        schema = fresh_schema()
        be = PostgresBackend(self.dsn, schema=schema, lease=self.lease)
        self.made.append((be, schema))
        return be


class TestPostgresBackendRowLease(TestPostgresBackend):
    """The same contract with the lease kind for transaction-mode poolers."""

    lease = "row"

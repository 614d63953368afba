"""LangGraph's checkpointer conformance suite against JournalSaver on PostgreSQL.

The same runs as ``tests/integrations/test_langgraph_conformance.py`` does on a directory:
``validate()`` for the full report, then every spec function on a fresh saver and on a saver
that closes every journal after each call (so each call reads the thread back from the
database and rebuilds its index from the records).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402
from langgraph.checkpoint.conformance.spec import (  # noqa: E402
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)

from agentjournal.integrations._lg_thread import ThreadJournal  # noqa: E402
from agentjournal.integrations.langgraph import JournalSaver  # noqa: E402

SPECS: list[Callable[[Any], Any]] = [
    *test_put.ALL_PUT_TESTS,
    *test_put_writes.ALL_PUT_WRITES_TESTS,
    *test_get_tuple.ALL_GET_TUPLE_TESTS,
    *test_list.ALL_LIST_TESTS,
    *test_delete_thread.ALL_DELETE_THREAD_TESTS,
    *test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS,
    *test_copy_thread.ALL_COPY_THREAD_TESTS,
    *test_prune.ALL_PRUNE_TESTS,
]


class ReopeningSaver(JournalSaver):
    """Closes every journal before opening one: each call reads the thread from the store."""

    def _thread(self, thread_id: Any, *, create: bool, read: bool = False
                ) -> ThreadJournal | None:
        self.close()
        return super()._thread(thread_id, create=create, read=read)


@pytest.fixture()
def pg_store(pg_dsn: str) -> Iterator[Callable[[], Any]]:
    """A factory of PostgresBackends, each on a schema of its own; all dropped afterwards."""
    import psycopg

    from agentjournal.backends.postgres import PostgresBackend

    made: list[Any] = []

    def factory() -> Any:
        made.append(PostgresBackend(pg_dsn, schema=f"lg_{uuid.uuid4().hex[:16]}"))
        return made[-1]

    yield factory
    for be in made:
        be.close()
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        for be in made:
            c.execute(f'DROP SCHEMA IF EXISTS "{be.schema}" CASCADE')


def test_validate_reports_full_conformance_on_postgres(pg_store: Callable[[], Any]) -> None:
    @checkpointer_test(name="JournalSaver(postgres)")
    async def factory() -> AsyncGenerator[JournalSaver, None]:
        saver = JournalSaver(backend=pg_store())
        yield saver
        saver.close()

    report = asyncio.run(validate(factory))
    results = report.results
    assert {k for k, r in results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    base = ("put", "put_writes", "get_tuple", "list", "delete_thread")
    extended = ("copy_thread", "delete_for_runs", "prune")
    assert sum(results[c].tests_passed for c in base) == 58
    assert sum(results[c].tests_passed for c in extended) == 23
    assert all(results[c].tests_failed == 0 for c in (*base, *extended)), \
        {c: r.failures for c, r in results.items() if r.failures}
    assert report.conformance_level() == "FULL"


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_on_fresh_saver_on_postgres(spec: Callable[[Any], Any],
                                         pg_store: Callable[[], Any]) -> None:
    with JournalSaver(backend=pg_store()) as saver:
        asyncio.run(spec(saver))


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_on_saver_reopened_from_postgres(spec: Callable[[Any], Any],
                                              pg_store: Callable[[], Any]) -> None:
    with ReopeningSaver(backend=pg_store()) as saver:
        asyncio.run(spec(saver))

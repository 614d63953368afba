"""LangGraph's own checkpointer conformance suite against JournalSaver.

``validate()`` runs each capability's tests on one saver instance, which can hide bugs that
depend on what an earlier test left behind; so every spec function also runs on its own, on a
fresh saver, and on a saver that closes every journal after each call (so each call reopens
the thread from disk and rebuilds its index from the records).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")
conformance = pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import (  # noqa: E402
    ALL_CAPABILITIES,
    DetectedCapabilities,
)
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

from agentjournal import MemoryBackend  # noqa: E402
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
    """Closes every journal before opening one: each call reads the thread from disk."""

    def _thread(self, thread_id: Any, *, create: bool, read: bool = False
                ) -> ThreadJournal | None:
        self.close()
        return super()._thread(thread_id, create=create, read=read)


def test_validate_reports_full_conformance(tmp_path: Path) -> None:
    @checkpointer_test(name="JournalSaver")
    async def factory() -> AsyncGenerator[JournalSaver, None]:
        n = len(list(tmp_path.iterdir()))
        saver = JournalSaver(tmp_path / f"store{n}")
        yield saver
        saver.close()

    report = asyncio.run(validate(factory))
    report.print_report()  # shown with -s; the figures are asserted below
    results = report.results
    assert DetectedCapabilities.from_instance(JournalSaver(tmp_path / "x")).detected == \
        ALL_CAPABILITIES
    assert {k for k, r in results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    base = ("put", "put_writes", "get_tuple", "list", "delete_thread")
    extended = ("copy_thread", "delete_for_runs", "prune")
    assert sum(results[c].tests_passed for c in base) == 58
    assert sum(results[c].tests_passed for c in extended) == 23
    assert all(results[c].tests_failed == 0 for c in (*base, *extended)), \
        {c: r.failures for c, r in results.items() if r.failures}
    assert report.conformance_level() == "FULL"


def test_validate_on_memory_backend() -> None:
    @checkpointer_test(name="JournalSaver(memory)")
    async def factory() -> AsyncGenerator[JournalSaver, None]:
        saver = JournalSaver(backend=MemoryBackend())
        yield saver
        saver.close()

    report = asyncio.run(validate(factory))
    assert report.conformance_level() == "FULL", report.to_dict()


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_on_fresh_saver(spec: Callable[[Any], Any], tmp_path: Path) -> None:
    with JournalSaver(tmp_path) as saver:
        asyncio.run(spec(saver))


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_on_saver_reopened_from_disk(spec: Callable[[Any], Any], tmp_path: Path) -> None:
    with ReopeningSaver(tmp_path) as saver:
        asyncio.run(spec(saver))

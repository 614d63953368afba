"""The backend contract (``agentjournal.testing``), run against every backend of ours.

A new backend passes this suite before anything above it (replay, retention, the facade) is
asked to work on it; a third-party backend runs the same suite by subclassing
:class:`agentjournal.testing.BackendContract` the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentjournal.backends import FilesystemBackend, MemoryBackend
from agentjournal.backends.base import Backend, RecordStore
from agentjournal.backends.memrecords import MemoryRecordBackend
from agentjournal.testing import BackendContract, RecordStoreContract


class TestFilesystemBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return FilesystemBackend(tmp_path / "store")


class TestMemoryBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return MemoryBackend()


class TestMemoryRecordBackend(RecordStoreContract):
    def make_backend(self, tmp_path: Path) -> MemoryRecordBackend:
        return MemoryRecordBackend()

    def take_over(self, backend: MemoryRecordBackend, agent_id: str) -> RecordStore:
        return backend.take_over(agent_id)


class _Bare:
    """A record store with the core only: no ``usage()``, no ``quarantine()``."""

    def __init__(self, inner: RecordStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name in ("usage", "quarantine", "list_quarantine"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_optional_capabilities_is_skipped_not_passed_for_a_core_only_store() -> None:
    """A backend offering neither capability is told so (a skip), not given a pass that
    checked nothing."""
    inner = MemoryRecordBackend().records("bare", create=True)
    try:
        with pytest.raises(pytest.skip.Exception, match="offers neither"):
            TestMemoryRecordBackend().test_optional_capabilities(_Bare(inner))  # type: ignore[arg-type]
        # and a store with them is checked, not skipped
        full = MemoryRecordBackend().records("full", create=True)
        TestMemoryRecordBackend().test_optional_capabilities(full)
        full.close()
    finally:
        inner.close()

"""The backend contract (``agentjournal.testing``), run against every backend of ours.

A new backend passes this suite before anything above it (replay, retention, the facade) is
asked to work on it; a third-party backend runs the same suite by subclassing
:class:`agentjournal.testing.BackendContract` the same way.
"""

from __future__ import annotations

from pathlib import Path

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

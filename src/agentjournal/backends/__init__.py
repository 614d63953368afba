"""Storage backends: the local filesystem (default) and memory (tests)."""

from .base import AgentStore, Appender, Backend
from .filesystem import DEFAULT_ROOT, FilesystemBackend
from .memory import MemoryBackend

__all__ = [
    "DEFAULT_ROOT",
    "AgentStore",
    "Appender",
    "Backend",
    "FilesystemBackend",
    "MemoryBackend",
]

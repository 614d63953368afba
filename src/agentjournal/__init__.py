"""agentjournal: an event-sourced checkpoint journal for long-running AI agents."""

from . import delta
from .backends import Backend, FilesystemBackend, MemoryBackend
from .errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    InvalidAgentIdError,
    InvalidPatchError,
    JournalClosedError,
    JournalError,
    JournalExistsError,
    JournalLockedError,
    JournalNotFoundError,
    JournalPoisonedError,
    LimitExceededError,
    NotJSONEncodableError,
    StepNotFoundError,
    StepPrunedError,
    TamperedError,
    UnsafePathError,
)
from .events import FORMAT_VERSION, Anchor, Fork, Header, SnapshotMark, Step
from .journal.writer import Durability, RecoveryWarning
from .replay import Appended, Journal, Resumed, SnapshotSkippedWarning
from .replay.verify import Problem, VerifyReport
from .retention import CompactReport

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "Anchor",
    "Appended",
    "Backend",
    "CompactReport",
    "CorruptRecordError",
    "CorruptSnapshotError",
    "Durability",
    "FilesystemBackend",
    "Fork",
    "Header",
    "InvalidAgentIdError",
    "InvalidPatchError",
    "Journal",
    "JournalClosedError",
    "JournalError",
    "JournalExistsError",
    "JournalLockedError",
    "JournalNotFoundError",
    "JournalPoisonedError",
    "LimitExceededError",
    "MemoryBackend",
    "NotJSONEncodableError",
    "Problem",
    "RecoveryWarning",
    "Resumed",
    "SnapshotMark",
    "SnapshotSkippedWarning",
    "Step",
    "StepNotFoundError",
    "StepPrunedError",
    "TamperedError",
    "UnsafePathError",
    "VerifyReport",
    "__version__",
    "delta",
]

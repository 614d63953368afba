"""agentjournal: an event-sourced checkpoint journal for long-running AI agents."""

from . import delta
from ._version import __version__
from .agent import AutonomousConfig, BaseAutonomousAgent, StepFunction, Strategy
from .backends import Backend, FilesystemBackend, MemoryBackend
from .errors import (
    CheckpointNotFoundError,
    CorruptRecordError,
    CorruptSnapshotError,
    InvalidAgentIdError,
    InvalidPatchError,
    JournalChangedError,
    JournalClosedError,
    JournalError,
    JournalExistsError,
    JournalLockedError,
    JournalNotFoundError,
    JournalPoisonedError,
    LimitExceededError,
    NotJSONEncodableError,
    RedactionError,
    StepNotFoundError,
    StepPrunedError,
    TamperedError,
    UnsafePathError,
    UnsupportedOperationError,
)
from .events import FORMAT_VERSION, Anchor, Cut, Fork, Header, SnapshotMark, Step
from .hooks import BaseHook, HookContext, HookEvent, HookManager, HookPriority, HookResult
from .journal.reader import TornTailWarning
from .journal.writer import Durability, RecoveryWarning
from .manager import HistoryEntry, StateManager, format_checkpoint_id, parse_checkpoint_id
from .migrate import MigrationReport, import_seed_checkpoints
from .replay import Appended, Head, Journal, Resumed, SnapshotSkippedWarning
from .replay.verify import Problem, VerifyReport
from .retention import CompactReport
from .state import AgentState, CheckpointMetadata, StateSnapshot, parse_checkpoint_ref
from .storage import FilesystemStorage, StorageBackend

__all__ = [
    "FORMAT_VERSION",
    "AgentState",
    "Anchor",
    "Cut",
    "Appended",
    "AutonomousConfig",
    "Backend",
    "BaseAutonomousAgent",
    "BaseHook",
    "CheckpointMetadata",
    "CheckpointNotFoundError",
    "CompactReport",
    "CorruptRecordError",
    "CorruptSnapshotError",
    "Durability",
    "FilesystemBackend",
    "FilesystemStorage",
    "Fork",
    "Header",
    "Head",
    "HistoryEntry",
    "HookContext",
    "HookEvent",
    "HookManager",
    "HookPriority",
    "HookResult",
    "InvalidAgentIdError",
    "InvalidPatchError",
    "Journal",
    "JournalChangedError",
    "JournalClosedError",
    "JournalError",
    "JournalExistsError",
    "JournalLockedError",
    "JournalNotFoundError",
    "JournalPoisonedError",
    "LimitExceededError",
    "MemoryBackend",
    "MigrationReport",
    "NotJSONEncodableError",
    "Problem",
    "RecoveryWarning",
    "TornTailWarning",
    "RedactionError",
    "Resumed",
    "SnapshotMark",
    "SnapshotSkippedWarning",
    "StateManager",
    "StateSnapshot",
    "Step",
    "StepFunction",
    "StepNotFoundError",
    "StepPrunedError",
    "StorageBackend",
    "Strategy",
    "TamperedError",
    "UnsafePathError",
    "UnsupportedOperationError",
    "VerifyReport",
    "__version__",
    "delta",
    "format_checkpoint_id",
    "import_seed_checkpoints",
    "parse_checkpoint_id",
    "parse_checkpoint_ref",
]

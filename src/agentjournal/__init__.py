"""agentjournal: an event-sourced checkpoint journal for long-running AI agents.

The names most users need are here, in two groups: the engine (:class:`Journal` and what its
calls return) and the seed system's API (``StateManager``, ``AgentState``,
``FilesystemStorage``, hooks, the agent loop), with the errors a caller typically catches.
Everything else has its home in a sub-namespace:

- ``agentjournal.errors``: every exception (all subclass :class:`JournalError`);
- ``agentjournal.events``: the record types of the on-disk format (``Step``, ``SnapshotMark``,
  ``Fork``, ``Anchor``, ``Header``);
- ``agentjournal.backends``: where journals live (``FilesystemBackend``, ``MemoryBackend``,
  the ``Backend`` protocol); ``agentjournal.testing``: the contract suite for a new backend;
- ``agentjournal.replay.verify``, ``agentjournal.retention``: verification and retention
  reports; ``agentjournal.query``: history queries; ``agentjournal.delta``: JSON diff/patch.

Names of the second tier stay importable from here too (so code written against earlier
releases keeps working), but ``__all__`` and the docs list only the first.
"""

from . import delta
from ._version import __version__
from .agent import AutonomousConfig, BaseAutonomousAgent, StepFunction, Strategy
from .backends import (
    Backend as Backend,
    FilesystemBackend as FilesystemBackend,
    MemoryBackend as MemoryBackend,
)
from .errors import (
    CheckpointNotFoundError,
    CorruptRecordError,
    CorruptSnapshotError as CorruptSnapshotError,
    InvalidAgentIdError,
    InvalidPatchError as InvalidPatchError,
    JournalChangedError as JournalChangedError,
    JournalClosedError as JournalClosedError,
    JournalError,
    JournalExistsError as JournalExistsError,
    JournalLockedError,
    JournalNotFoundError,
    JournalPoisonedError as JournalPoisonedError,
    LimitExceededError as LimitExceededError,
    NotJSONEncodableError,
    RedactionError as RedactionError,
    StepNotFoundError,
    StepPrunedError,
    TamperedError,
    UnsafePathError as UnsafePathError,
    UnsupportedOperationError as UnsupportedOperationError,
)
from .events import (
    FORMAT_VERSION as FORMAT_VERSION,
    Anchor as Anchor,
    Cut as Cut,
    Fork as Fork,
    Header as Header,
    SnapshotMark as SnapshotMark,
    Step as Step,
)
from .hooks import BaseHook, HookContext, HookEvent, HookManager, HookPriority, HookResult
from .journal.reader import TornTailWarning as TornTailWarning
from .journal.writer import Durability, RecoveryWarning as RecoveryWarning
from .manager import HistoryEntry, StateManager, format_checkpoint_id, parse_checkpoint_id
from .migrate import MigrationReport, import_seed_checkpoints
from .replay import (
    Appended,
    Head,
    Journal,
    Resumed,
    SnapshotSkippedWarning as SnapshotSkippedWarning,
)
from .replay.verify import Problem as Problem, VerifyReport as VerifyReport
from .retention import CompactReport as CompactReport
from .state import AgentState, CheckpointMetadata, StateSnapshot, parse_checkpoint_ref
from .storage import FilesystemStorage, StorageBackend

__all__ = [
    "AgentState",
    "Appended",
    "AutonomousConfig",
    "BaseAutonomousAgent",
    "BaseHook",
    "CheckpointMetadata",
    "CheckpointNotFoundError",
    "CorruptRecordError",
    "Durability",
    "FilesystemStorage",
    "Head",
    "HistoryEntry",
    "HookContext",
    "HookEvent",
    "HookManager",
    "HookPriority",
    "HookResult",
    "InvalidAgentIdError",
    "Journal",
    "JournalError",
    "JournalLockedError",
    "JournalNotFoundError",
    "MigrationReport",
    "NotJSONEncodableError",
    "Resumed",
    "StateManager",
    "StateSnapshot",
    "StepFunction",
    "StepNotFoundError",
    "StepPrunedError",
    "StorageBackend",
    "Strategy",
    "TamperedError",
    "delta",
    "format_checkpoint_id",
    "import_seed_checkpoints",
    "parse_checkpoint_id",
    "parse_checkpoint_ref",
    "__version__",
]

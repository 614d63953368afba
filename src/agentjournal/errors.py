"""The exception tree of agentjournal.

Every error raised on purpose derives from :class:`JournalError`. Subclasses also
inherit the matching builtin so callers can catch either (``except ValueError``
still works for a corrupt record). Errors carry where they happened (``path``,
``offset``, ``seq``) and a ``hint`` saying what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointNotFoundError",
    "CloseError",
    "CorruptRecordError",
    "HeaderInProgress",
    "CorruptSnapshotError",
    "ImportRefusedError",
    "InvalidAgentIdError",
    "InvalidExpressionError",
    "InvalidPatchError",
    "InvalidPointerError",
    "InvalidTimeError",
    "JournalClosedError",
    "JournalChangedError",
    "JournalError",
    "JournalExistsError",
    "JournalFencedError",
    "JournalForkedError",
    "JournalLockedError",
    "JournalNotFoundError",
    "JournalPoisonedError",
    "LimitExceededError",
    "MissingExtraError",
    "NotJSONEncodableError",
    "PathNotFoundError",
    "QueryError",
    "RedactionError",
    "StepNotFoundError",
    "StepPrunedError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TamperedError",
    "TimeNotFoundError",
    "UnsafePathError",
    "UnsupportedOperationError",
]


class JournalError(Exception):
    """Base class of every error agentjournal raises on purpose.

    Attributes:
        path: the file concerned, when there is one.
        offset: byte offset in ``path``, when known.
        seq: the record sequence number concerned, when known.
        hint: what the user can do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        seq: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset
        self.seq = seq
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if where:
            parts.append(f"({', '.join(where)})")
        if self.hint:
            parts.append(f"- {self.hint}")
        return " ".join(parts)


class InvalidAgentIdError(JournalError, ValueError):
    """An agent id that is not ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``."""


class UnsafePathError(JournalError, PermissionError):
    """A symlink, a loose permission or a foreign owner where the store needs its own files."""


class JournalNotFoundError(JournalError, FileNotFoundError):
    """No journal exists for the agent under this root."""


class JournalExistsError(JournalError, FileExistsError):
    """A journal already exists where a new one was to be created (e.g. a fork target)."""


class JournalLockedError(JournalError, BlockingIOError):
    """Another process holds the agent's writer lock.

    Attributes:
        pid: the holder's process id as it wrote it into the lock file, if readable.
    """

    def __init__(self, message: str, *, pid: int | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.pid = pid


class JournalForkedError(JournalError, RuntimeError):
    """A journal opened for writing by one process was used by a child made by ``os.fork()``.

    The child shares the parent's file descriptors and lock: if both appended, both would
    write the same seq. The child must open the journal itself (and wait for the lock).
    """


class CloseError(JournalError, OSError):
    """Closing several journals failed for some of them (every one was still closed).

    Attributes:
        errors: ``(agent_id, exception)`` of each journal that failed to close.
    """

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        names = ", ".join(f"{a} ({e})" for a, e in errors)
        super().__init__(f"closing {len(errors)} journal(s) failed: {names}",
                         hint="every other journal was closed and released; records not "
                         "synced by the failing ones are recovered on their next open")
        self.errors = errors


class JournalClosedError(JournalError, ValueError):
    """The journal or writer was used after ``close()``."""


class JournalPoisonedError(JournalError, OSError):
    """A write or fsync failed earlier; this writer refuses further appends.

    Reopen the journal: recovery keeps every acknowledged record.
    """


class JournalFencedError(JournalPoisonedError):
    """This writer lost its lease on the agent (a shared store): another writer may own it now.

    Raised by an append (or sync) of a writer whose lease was taken over or whose connection
    holding the lease was lost (a paused process, a partition, an idle-session reaper). The
    store refused the write, so the chain cannot fork; the writer is poisoned and must stop.
    Reopen the journal to become the writer again (it waits for no one: a live holder makes
    that open raise :class:`JournalLockedError`).
    """


class JournalChangedError(JournalError, RuntimeError):
    """A reader could not get a consistent view: a live writer kept removing or rewriting
    the files it was reading (retention, pruning). Nothing is damaged; try again."""


class CorruptRecordError(JournalError, ValueError):
    """A record that fails to decode or whose hash chain does not verify."""


class ImportRefusedError(CorruptRecordError):
    """An export file that does not verify (damaged, truncated, forged or of another format)."""


class TamperedError(CorruptRecordError):
    """A record whose hash does not match its bytes (edited, reordered or forged)."""


class HeaderInProgress(CorruptRecordError):
    """The newest segment's header is not fully written yet (a writer is rolling): the
    engine's readers retry; it never reaches a caller."""


class CorruptSnapshotError(JournalError, ValueError):
    """A snapshot file that fails its checksum, decoding or chain check."""


class LimitExceededError(JournalError, ValueError):
    """A record, segment, snapshot or decoded document beyond the configured limits."""


class NotJSONEncodableError(JournalError, TypeError):
    """A value in the state that JSON cannot represent; ``path`` is its JSON Pointer."""


class InvalidPatchError(JournalError, ValueError):
    """A JSON Patch op that is malformed or does not apply to the document."""


class StepNotFoundError(JournalError, LookupError):
    """A step beyond the journal's history (or before its first record)."""


class PathNotFoundError(JournalError, LookupError):
    """A JSON Pointer that does not exist in the state."""


class StepPrunedError(StepNotFoundError):
    """A step whose records were removed by pruning compaction."""


class CheckpointNotFoundError(JournalNotFoundError, StepNotFoundError):
    """No checkpoint with this id: an unknown agent, a step it never recorded, or a malformed id.

    Also a ``FileNotFoundError`` (what the seed system raised) and a ``LookupError``.
    """


class RedactionError(JournalError, RuntimeError):
    """A redaction hook failed, so the state was not recorded (nothing unredacted is written)."""


class UnsupportedOperationError(JournalError, NotImplementedError):
    """The storage in use cannot do this (e.g. time travel on a full-state seed backend)."""


# --- shared stores (agentjournal.backends.postgres, issue 15) ----------------------------------


class StoreError(JournalError, OSError):
    """The database holding a shared store failed a request (an I/O error of the store)."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store's database cannot be reached or refuses connections (down, full, bad DSN)."""


class StoreTimeoutError(StoreError, TimeoutError):
    """A request to the store's database ran past its time limit (``statement_timeout``)."""


# --- history queries (agentjournal.query) ------------------------------------------------


class QueryError(JournalError, ValueError):
    """A history query that cannot be run as written (a usage error, not damage)."""


class InvalidPointerError(QueryError):
    """A JSON Pointer argument of a query that is not RFC 6901 syntax."""


class InvalidExpressionError(QueryError):
    """A ``bisect`` predicate that does not parse or cannot be evaluated.

    Attributes:
        expression: the expression as given.
        position: 0-based character offset of the problem, when known.
    """

    def __init__(self, message: str, *, expression: str = "", position: int | None = None,
                 **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.expression = expression
        self.position = position


class InvalidTimeError(QueryError):
    """A timestamp that is not ISO 8601 (``2026-11-26T10:00Z``) or Unix seconds."""


class TimeNotFoundError(StepNotFoundError):
    """No step at or before the requested time (it is before the history starts)."""




# --- the web viewer (agentjournal serve, issue 14) ---------------------------------------------


class BadRequestError(JournalError, ValueError):
    """A viewer request with a missing or malformed parameter."""


class ForbiddenRequestError(JournalError, PermissionError):
    """A viewer request the server refuses: cross-origin, wrong host, or a change the server
    was not started to allow (``--allow-fork``)."""


# --- choosing a store by a string (issue 15: open_backend, --store) ----------------------------


class MissingExtraError(JournalError, ImportError):
    """A store or feature needs an optional extra that is not installed (the hint names the
    ``pip install`` command)."""

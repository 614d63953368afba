"""psycopg's exceptions turned into agentjournal's typed errors, each with a hint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from ...errors import JournalError, StoreError, StoreTimeoutError, StoreUnavailableError

_FULL = ("53300",)  # too_many_connections (also "remaining connection slots are reserved")
_TIMEOUT = ("57014",)  # query_canceled: statement_timeout, lock_timeout, a cancel


def translate(e: BaseException, what: str) -> JournalError:
    """The typed error for ``e`` raised while doing ``what`` (e.g. "reading segment 5")."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    state = getattr(e, "sqlstate", None)
    if state in _FULL or "too many clients" in str(e) or "connection slots" in str(e):
        return StoreUnavailableError(
            f"PostgreSQL refused a connection while {what}: {text}",
            hint="the server's max_connections is reached: close idle clients, raise "
            "max_connections, or put PgBouncer in front (see docs/postgres.md)")
    if state in _TIMEOUT or isinstance(e, psycopg.errors.QueryCanceled):
        return StoreTimeoutError(
            f"PostgreSQL cancelled a statement while {what}: {text}",
            hint="the statement ran past statement_timeout: raise it (PostgresBackend("
            "statement_timeout=...)) or look for a lock or load on the server")
    if isinstance(e, psycopg_pool.PoolTimeout):
        return StoreUnavailableError(
            f"no PostgreSQL connection became free while {what}: {text}",
            hint="the backend's pool is exhausted or the server refuses connections: check "
            "the server log, max_connections, or raise PostgresBackend(pool_size=...)")
    if isinstance(e, psycopg.OperationalError):
        return StoreUnavailableError(
            f"PostgreSQL is unreachable while {what}: {text}",
            hint="check that the server is up and the DSN is right; nothing unacknowledged "
            "was reported as written")
    return StoreError(f"PostgreSQL failed while {what}: {text}",
                      hint="see the server log; reopen the journal if a writer was poisoned")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run the block with psycopg's and the pool's errors raised as typed errors."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
        raise translate(e, what) from e

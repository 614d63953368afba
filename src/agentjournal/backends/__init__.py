"""Storage backends: the local filesystem (default), memory (tests) and, with the
``postgres`` extra, PostgreSQL (a fleet's shared store).

A backend implements the record-level core (:class:`RecordStore`, seen by the engine through
:class:`SegmentView`), as PostgreSQL and :class:`MemoryRecordBackend` do, or the segment
capability (:class:`AgentStore`) directly, as the filesystem and :class:`MemoryBackend` do.

:func:`open_backend` chooses one from a string, the way ``--store`` and
``AGENTJOURNAL_STORE`` do on the command line.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import MissingExtraError
from .base import AgentStore, Appender, Backend, RecordBackend, RecordStore, SnapshotData
from .filesystem import DEFAULT_ROOT, FilesystemBackend
from .memory import MemoryBackend
from .memrecords import MemoryRecordBackend
from .segmentview import SegmentView, SegmentViews

__all__ = [
    "DEFAULT_ROOT",
    "AgentStore",
    "Appender",
    "Backend",
    "FilesystemBackend",
    "MemoryBackend",
    "MemoryRecordBackend",
    "RecordBackend",
    "RecordStore",
    "SegmentView",
    "SegmentViews",
    "SnapshotData",
    "StoreKind",
    "describe_store",
    "open_backend",
    "store_kind",
]

# --- choosing a store by a string (issue 15) ---------------------------------------------

StoreKind = Literal["filesystem", "memory", "postgres"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
MEMORY_SPEC = "memory:"
FILE_PREFIX = "file:"
POSTGRES_EXTRA_HINT = "pip install 'agentjournal[postgres]'"


def store_kind(spec: str | os.PathLike[str]) -> StoreKind:
    """Which backend ``spec`` names: a ``postgresql://`` or ``postgres://`` URL is
    ``"postgres"``, ``memory:`` is ``"memory"``, anything else (a path, or ``file:PATH``) is a
    filesystem root."""
    text = os.fspath(spec)
    if text.startswith(POSTGRES_SCHEMES):
        return "postgres"
    if text == MEMORY_SPEC:
        return "memory"
    return "filesystem"


def filesystem_root(spec: str | os.PathLike[str]) -> str:
    """The directory a filesystem spec names (``file:`` stripped, so that a directory that
    happens to be called ``memory:`` can still be given as ``file:memory:``)."""
    text = os.fspath(spec)
    return text[len(FILE_PREFIX):] if text.startswith(FILE_PREFIX) else text


OUR_PARAMETERS = ("schema", "lease", "partition", "partition_interval")
"""URL parameters read by :func:`open_backend` itself (libpq refuses parameters it does not
know, so they are taken out of the URL it gets)."""


def _split_ours(url: str) -> tuple[str, dict[str, str]]:
    """``(url without our parameters, {name: value} of them)``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OUR_PARAMETERS}
    if not ours:
        return url, {}
    rest = urlencode([(k, v) for k, v in query if k not in OUR_PARAMETERS])
    return urlunsplit(parts._replace(query=rest)), ours


def describe_store(spec: str | os.PathLike[str]) -> str:
    """``spec`` as it may be shown or logged: a URL without its password (in the user part
    or as a ``password=`` parameter); a filesystem root as its absolute path."""
    kind = store_kind(spec)
    text = os.fspath(spec)
    if kind == "memory":
        return MEMORY_SPEC
    if kind == "filesystem":
        return os.path.abspath(filesystem_root(text))
    parts = urlsplit(text)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        netloc = userinfo.partition(":")[0] + "@" + hosts
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def open_backend(spec: str | os.PathLike[str]) -> Backend:
    """The backend a store string names.

    * ``postgresql://…`` or ``postgres://…``: a
      :class:`~agentjournal.backends.postgres.PostgresBackend` on that database (a libpq URL;
      ``?schema=NAME`` picks the schema, default ``agentjournal``; ``?lease=row`` the lease
      that works through a transaction-mode pooler such as PgBouncer; ``?partition=time``
      and ``?partition_interval=SECONDS`` the time partitions of a new schema). Needs the
      ``postgres`` extra.
    * ``memory:``: a new, empty :class:`MemoryBackend` (tests; nothing outlives the process).
    * anything else: a :class:`FilesystemBackend` rooted there (``file:PATH`` works too).

    Examples::

        open_backend(".agentjournal")
        open_backend("postgresql://app@db.internal/agents?schema=fleet")

    Raises:
        MissingExtraError: a PostgreSQL URL without psycopg installed.
        ValueError: a bad ``schema``, ``lease`` or partition parameter.
    """
    kind = store_kind(spec)
    if kind == "memory":
        return MemoryBackend()
    if kind == "filesystem":
        return FilesystemBackend(filesystem_root(spec))
    url, ours = _split_ours(os.fspath(spec))
    try:
        from .postgres import PostgresBackend
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == __name__ + ".postgres":
            raise MissingExtraError("this agentjournal has no PostgreSQL backend",
                                    hint="upgrade agentjournal") from None
        missing = e.name or (e.__cause__.name if isinstance(e.__cause__, ImportError) else "")
        if (missing or "").split(".")[0] in ("psycopg", "psycopg_pool") or "psycopg" in str(e):
            raise MissingExtraError(
                "a PostgreSQL store needs psycopg 3 and psycopg_pool, which are not installed",
                hint=POSTGRES_EXTRA_HINT) from None
        raise
    if ours.get("lease", "advisory") not in ("advisory", "row"):
        raise ValueError(f"lease={ours['lease']!r} in {describe_store(spec)}: use "
                         "lease=advisory or lease=row")
    options: dict[str, Any] = dict(ours)
    if "partition_interval" in options:
        try:
            options["partition_interval"] = float(options["partition_interval"])
        except ValueError:
            raise ValueError(f"partition_interval={ours['partition_interval']!r} in "
                             f"{describe_store(spec)}: use a number of seconds") from None
    return PostgresBackend(url, **options)

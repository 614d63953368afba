"""Witnessed heads for the integrity panel: does each agent's history still match the head
kept off the store?

The heads come from witness files written by ``agentjournal anchor --witness FILE``
(:mod:`agentjournal.witness`), each given to ``agentjournal serve --witness`` as a file or as
a directory holding such files. Each file's newest head of an agent is checked with
:meth:`Journal.check_head`, the check ``verify --against`` and ``Journal(expect_head=)`` make,
and given one of these statuses:

- ``matches``: the journal reaches the head and holds that very record there (records written
  since are fine: a head vouches for the history up to it);
- ``behind``: the journal ends before the head: records were cut off, or the store was put back
  to an older copy;
- ``diverged``: the record at the head's seq is another one (or cannot be read): the history was
  rewritten;
- ``pruned``: the head's record was pruned since, so it cannot be checked (anchor again);
- ``bad_witness``: the witness line fails its MAC (edited, or another key wrote it);
- ``none``: no witness file has a head of this agent.

An agent's status is the worst of its heads' (in the order above, reversed).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from ..errors import CorruptRecordError, JournalNotFoundError, LimitExceededError, TamperedError
from ..replay.journal import Journal
from ..replay.results import Head
from ..witness import latest_head

WORST_FIRST = ("diverged", "behind", "bad_witness", "pruned", "matches", "none")
"""Statuses from the most to the least alarming."""


def witness_files(paths: Iterable[str]) -> list[str]:
    """The witness files named by ``paths``: each file, and the files of each directory
    (not its subdirectories, nor hidden files), sorted by name."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(os.path.join(p, n) for n in os.listdir(p)
                              if not n.startswith(".") and os.path.isfile(os.path.join(p, n))))
        else:
            out.append(p)
    return out


class Witnesses:
    """The witness files the viewer checks agents against.

    Args:
        paths: witness files or directories of them (a directory is listed again each time,
            so that a witness file added later is seen).
        key: the store's key: a witness written for a keyed store carries a MAC made with it
            (as ``anchor`` and ``verify --against`` use it).
    """

    def __init__(self, paths: Iterable[str], key: bytes | None) -> None:
        self.paths = [os.path.abspath(p) for p in paths]
        self.key = key
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[tuple[int, int], Head | None, str | None]] = {}
        """``(file, agent) -> ((mtime_ns, size), head, error)``: a file is read again only
        when it changed."""

    @property
    def configured(self) -> bool:
        return bool(self.paths)

    def heads(self, agent_id: str) -> list[tuple[str, Head | None, str | None]]:
        """``(file, head or None, why the head is not usable or None)`` of each file that has
        a head of ``agent_id`` (or a bad line for it)."""
        out = []
        for path in witness_files(self.paths):
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed since it was listed
            stamp = (st.st_mtime_ns, st.st_size)
            with self._lock:
                hit = self._cache.get((path, agent_id))
            if hit is None or hit[0] != stamp:
                head: Head | None = None
                error: str | None = None
                try:
                    head = latest_head(path, agent_id, self.key)
                except JournalNotFoundError:
                    pass  # no head of this agent in that file
                except (TamperedError, LimitExceededError) as e:
                    error = e.message
                hit = (stamp, head, error)
                with self._lock:
                    self._cache[(path, agent_id)] = hit
            if hit[1] is not None or hit[2] is not None:
                out.append((path, hit[1], hit[2]))
        return out

    def newest(self, agent_id: str) -> Head | None:
        """The usable head of ``agent_id`` with the highest seq (for ``verify(against=)``)."""
        heads = [h for _, h, _ in self.heads(agent_id) if h is not None]
        return max(heads, key=lambda h: h.seq) if heads else None

    def check(self, j: Journal) -> dict[str, Any]:
        """The witness status of ``j``: overall and per witness file."""
        rows: list[dict[str, Any]] = []
        for path, head, error in self.heads(j.agent_id):
            row: dict[str, Any] = {"path": path, "seq": head.seq if head else None,
                                   "hash": head.hash if head else None}
            if head is None:
                row.update(status="bad_witness", message=error)
            else:
                row.update(_status(j, head))
            rows.append(row)
        overall = min((r["status"] for r in rows), key=WORST_FIRST.index, default="none")
        return {"status": overall, "heads": rows}


def _status(j: Journal, head: Head) -> dict[str, Any]:
    """``{"status", "message", "since"}`` of ``j`` against ``head``, by
    :meth:`Journal.check_head`."""
    try:
        why = j.check_head(head)
    except CorruptRecordError as e:
        return {"status": "diverged", "since": None,
                "message": f"the witnessed record cannot be read: {e.message}"}
    last = j.last_seq
    if why is None:
        return {"status": "matches", "message": None, "since": max(0, last - head.seq)}
    segs = j.segment_seqs()
    if last < head.seq:
        status = "behind"
    elif segs and head.seq < segs[0]:
        status = "pruned"
    else:
        status = "diverged"
    return {"status": status, "message": why, "since": None}

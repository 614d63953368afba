"""What the viewer shows, as plain JSON-ready data, over the public :class:`Journal` API.

No web framework here: :mod:`agentjournal.serve.api` turns requests into calls of
:class:`Viewer` and its results into responses, so the data layer is testable on its own.

Memory stays bounded whatever the history length: journals are opened read-only and kept in
a small LRU pool; a page of the step list is at most :data:`MAX_PAGE` records; and the states
and changes kept for the slider are bounded by :mod:`agentjournal.serve.travel`.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .. import delta
from ..backends.base import Backend
from ..errors import (
    CorruptRecordError,
    JournalError,
    StepNotFoundError,
    TamperedError,
)
from ..events import AnyRecord, Fork
from ..replay.journal import Journal
from . import engine
from .rows import MAX_PAGE, row_of
from .travel import Travel, apply_tracking
from .witnesses import Witnesses

POOL_SIZE = 16
"""Read-only journals kept open between requests."""

AUTO_VERIFY_BYTES = 4 << 20
"""Idle journals up to this size are verified in full when the agents are listed."""


def is_key_needed(err: BaseException) -> bool:
    """Whether reading failed only because the journal is keyed and no (right) key was given."""
    return isinstance(err, TamperedError) and "key is needed" in str(err)


class Viewer:
    """Read-only access to every journal of a backend, shaped for the web viewer.

    Args:
        backend: the store (any backend).
        key: the chain key of keyed journals (one for the whole store, like the CLI's).
        witnesses: witness files (or directories of them) holding heads kept off the store
            (``agentjournal anchor --witness``): each agent is checked against its heads.
    """

    def __init__(self, backend: Backend, key: bytes | str | None = None,
                 witnesses: Iterable[str] = ()) -> None:
        self.backend = backend
        self.key = key.encode() if isinstance(key, str) else key
        self.witnesses = Witnesses(witnesses, self.key)
        self._lock = threading.Lock()
        self._pool: collections.OrderedDict[str, Journal] = collections.OrderedDict()
        self._agent_locks: dict[str, threading.Lock] = {}
        self._first_records: dict[tuple[str, int], AnyRecord | None] = {}
        self._parents: dict[str, tuple[str, int] | None] = {}
        self._snap_steps: dict[tuple[str, int], int | None] = {}
        self.closing = threading.Event()
        """Set when the server shuts down: open live-tail streams end at their next poll."""
        self._keys: dict[str, bytes | None] = {}
        self._idents: dict[str, tuple[int, int] | None] = {}
        """Which journal of each agent id the pool and caches hold (see
        :func:`engine.store_identity`)."""
        self.travel = Travel()
        self.verified: dict[str, tuple[int, bool]] = {}
        """Last full verify per agent: ``(last_seq verified, ok)``."""

    # --- journals ------------------------------------------------------------------------------
    def _key_for(self, agent_id: str) -> bytes | None:
        """The store's key if this agent's journal is keyed with it, else None.

        One key is given for the whole store, as with the CLI, but a store may hold both
        keyed and unkeyed journals: an unkeyed one does not read with a key. Whichever reads
        the agent's last segment is remembered (the key first; if neither does, the key, so
        that the real problem is reported).
        """
        if self.key is None:
            return None
        if agent_id in self._keys:
            return self._keys[agent_id]
        chosen: bytes | None = self.key
        for key in (self.key, None):
            with Journal(agent_id, backend=self.backend, key=key, readonly=True) as j:
                segs = j.segment_seqs()
                if not segs:
                    return self.key  # nothing written yet: decide later
                try:
                    next(iter(j.records(segs[-1], segs[-1])), None)
                except CorruptRecordError:
                    continue
                chosen = key
                break
        self._keys[agent_id] = chosen
        return chosen

    def strict(self, agent_id: str) -> Journal:
        """A fresh read-only journal that raises on any damage (verify, health)."""
        return Journal(agent_id, backend=self.backend, key=self._key_for(agent_id),
                       readonly=True)

    @contextlib.contextmanager
    def journal(self, agent_id: str) -> Iterator[Journal]:
        """The pooled read-only journal of ``agent_id``, used by one request at a time.

        It raises on damage (a 409 naming the file and offset); the parts of a damaged journal
        that do not depend on the damaged records (states from a later snapshot) still show.
        """
        with self._lock:
            lock = self._agent_locks.setdefault(agent_id, threading.Lock())
        with lock:
            ident = engine.store_identity(self.backend, agent_id)
            with self._lock:
                j = self._pool.pop(agent_id, None)
                replaced = self._idents.get(agent_id, ident) != ident
                self._idents[agent_id] = ident
            if replaced:
                # Removed and recorded again under the same id: nothing known of the old
                # journal holds for the new one.
                if j is not None:
                    j.close()
                    j = None
                self._forget(agent_id)
            if j is None:
                j = self.strict(agent_id)
            try:
                yield j
            finally:
                with self._lock:
                    self._pool[agent_id] = j
                    while len(self._pool) > POOL_SIZE:
                        _, old = self._pool.popitem(last=False)
                        old.close()

    def _forget(self, agent_id: str) -> None:
        """Drop what is cached about ``agent_id``'s journal."""
        self.travel.forget(agent_id)
        with self._lock:
            for k in [k for k in self._first_records if k[0] == agent_id]:
                del self._first_records[k]
            for k2 in [k for k in self._snap_steps if k[0] == agent_id]:
                del self._snap_steps[k2]
            self._parents.pop(agent_id, None)
            self._keys.pop(agent_id, None)
            self.verified.pop(agent_id, None)

    def close(self) -> None:
        """Close every pooled journal."""
        with self._lock:
            for j in self._pool.values():
                j.close()
            self._pool.clear()
        self.travel.clear()

    # --- agents --------------------------------------------------------------------------------
    def _first_record(self, j: Journal, first_seg: int) -> AnyRecord | None:
        key = (j.agent_id, first_seg)
        if key not in self._first_records:
            self._first_records[key] = next(iter(j.records(first_seg, first_seg)), None)
        return self._first_records[key]

    def _parent_of(self, agent_id: str) -> tuple[str, int] | None:
        """``(parent, step)`` when ``agent_id`` was forked from another agent, else None.

        Read once per agent and kept: where a journal was forked from never changes, so an
        agent page lists its forks without opening every other journal each time.
        """
        if agent_id not in self._parents:
            found: tuple[str, int] | None = None
            with contextlib.suppress(JournalError, OSError), self.journal(agent_id) as j:
                segs = j.segment_seqs()
                if not segs:
                    return None  # nothing written yet: look again next time
                rec = self._first_record(j, segs[0])
                if isinstance(rec, Fork):
                    found = (rec.parent, rec.parent_step)
            self._parents[agent_id] = found
        return self._parents[agent_id]

    def agents(self, match: str = "") -> list[dict[str, Any]]:
        """Every agent's row: steps, activity, writer, snapshots, bytes, health, parent."""
        ids = [a for a in self.backend.list_agents() if match.lower() in a.lower()]
        writers = engine.writer_pids(self.backend, ids)
        return [self._agent_row(a, writers.get(a)) for a in ids]

    def _agent_row(self, agent_id: str, pid: int | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "agent_id": agent_id, "steps": 0, "records": 0, "first_seq": 0, "last_ts": None,
            "live": pid is not None, "writer_pid": pid, "snapshots": 0, "bytes": 0,
            "health": "empty", "problem": None, "parent": None, "witness": None}
        try:
            with self.journal(agent_id) as j:
                segs = j.segment_seqs()
                row["snapshots"], row["bytes"] = len(j.snapshot_seqs()), j.disk_usage()
                if not segs:
                    return row
                row["first_seq"] = segs[0]
                first = self._first_record(j, segs[0])
                if isinstance(first, Fork):
                    row["parent"] = {"agent_id": first.parent, "step": first.parent_step,
                                     "seq": first.parent_seq}
            last = None
            with self.strict(agent_id) as sj:
                for rec in sj.records(segs[-1]):
                    last = rec
            if last is not None:
                row["steps"], row["records"], row["last_ts"] = last.step, last.seq, last.ts
                done = self.verified.get(agent_id)
                if (done is None or done[0] != last.seq) and pid is None \
                        and row["bytes"] <= AUTO_VERIFY_BYTES:
                    # Small and idle: verify it all now (once per last seq) so that damage
                    # before the last segment shows in the listing. Larger journals are
                    # verified on demand, from the agent's page.
                    self.verify(agent_id)
                    done = self.verified.get(agent_id)
                row["health"] = ("damaged" if done and not done[1] else
                                 "verified" if done and done[0] == last.seq else "ok")
            if self.witnesses.configured:
                with self.journal(agent_id) as j:
                    row["witness"] = self.witnesses.check(j)["status"]
        except (JournalError, OSError) as e:
            row["health"] = "key_needed" if is_key_needed(e) else "damaged"
            row["problem"] = str(e)
        return row

    def agent(self, agent_id: str) -> dict[str, Any]:
        """One agent's header: range of steps and seqs, slider marks, keyed, fork parent."""
        with self.journal(agent_id) as j:
            segs = j.segment_seqs()
            last_seq, last_step = j.last_seq, j.last_step
            if segs and not last_seq:
                with self.strict(agent_id) as sj:  # raises what keeps it from being read
                    for _ in sj.records(segs[-1]):
                        pass
            if not segs or not last_seq:
                raise StepNotFoundError(f"agent {agent_id!r} has no readable steps",
                                        hint="check the agent's health (key needed?)")
            first = self._first_record(j, segs[0])
            snaps = j.snapshot_seqs()
            marks = []
            seg_set = set(segs)
            for s in snaps:
                k = (agent_id, s)
                if k not in self._snap_steps:
                    # Segments roll at snapshots: the one right after snapshot s starts with
                    # its mark, whose header holds the step without reading any record.
                    self._snap_steps[k] = (j.first_step_of_segment(s + 1) if s + 1 in seg_set
                                           else None)
                step = self._snap_steps[k]
                if step is not None:
                    marks.append({"seq": s, "step": step})
            first_step = j.first_step_of_segment(segs[0])
        pid = engine.writer_pids(self.backend, [agent_id]).get(agent_id)
        # Other agents are opened only after this one is released: holding two agents'
        # locks at once could deadlock with a request doing the same the other way round.
        children = []
        for other in self.backend.list_agents():
            if other == agent_id:
                continue
            parent = self._parent_of(other)
            if parent is not None and parent[0] == agent_id:
                children.append({"agent_id": other, "step": parent[1]})
        return {
            "agent_id": agent_id, "first_seq": segs[0], "first_step": first_step,
            "last_seq": last_seq, "last_step": last_step, "snapshots": marks,
            "forks": children, "keyed": self._key_for(agent_id) is not None,
            "live": pid is not None, "writer_pid": pid,
            "parent": ({"agent_id": first.parent, "step": first.parent_step,
                        "seq": first.parent_seq} if isinstance(first, Fork) else None),
        }

    # --- steps ---------------------------------------------------------------------------------
    def rows(self, agent_id: str, *, before: int | None = None, after: int | None = None,
             limit: int = 200) -> dict[str, Any]:
        """A page of the step list, by seq: the ``limit`` records before ``before`` (default:
        the last ones), or the ones from ``after`` on."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.journal(agent_id) as j:
            segs = j.segment_seqs()
            last = j.last_seq
            lo = segs[0] if segs else 1
            if after is not None:
                start, end = max(after, lo), min(after + limit - 1, last)
            else:
                end = min(last, (before - 1) if before is not None else last)
                start = max(lo, end - limit + 1)
            rows: list[dict[str, Any]] = []
            problems: list[dict[str, Any]] = []
            prev_ts: float | None = None
            # Segment by segment, so that damage in one hides only that segment's records:
            # the others still list (each segment's header carries the chain hash it starts
            # from).
            bounds = [*segs, last + 1]
            for k, first in enumerate(segs):
                seg_end = bounds[k + 1] - 1
                if seg_end < start - 1 or first > end:
                    continue
                a, b = max(first, start - 1, lo), min(seg_end, end)
                done = a - 1
                try:
                    for rec in j.records(a, b):
                        if rec.seq >= start:
                            rows.append(row_of(rec, prev_ts))
                        prev_ts, done = rec.ts, rec.seq
                except CorruptRecordError as e:
                    if len(segs) == 1:
                        raise
                    problems.append({"from_seq": max(done + 1, start), "to_seq": b,
                                     "message": str(e)})
                    prev_ts = None
            if problems and not rows:
                raise CorruptRecordError(problems[0]["message"],
                                         hint="run 'agentjournal verify' on this agent")
            return {"agent_id": agent_id, "first_seq": lo, "last_seq": last, "rows": rows,
                    "problems": problems}

    def seq_of_step(self, agent_id: str, step: int) -> int:
        """Seq of the last record of ``step`` (or of the last step before it)."""
        with self.journal(agent_id) as j:
            return j.seq_of_step(step)

    # --- state and changes ---------------------------------------------------------------------
    def state(self, agent_id: str, step: int, path: str = "") -> bytes:
        """The state (or the value at ``path``) at agent step ``step``, as JSON."""
        with self.journal(agent_id) as j:
            return self.travel.state(j, step, path)

    def changes(self, agent_id: str, step: int) -> bytes:
        """The records of ``step`` with their ops annotated (``at``, ``old``), as JSON."""
        with self.journal(agent_id) as j:
            return self.travel.changes(j, step)

    def compare(self, agent_id: str, a: int, b: int, a_agent: str | None = None
                ) -> dict[str, Any]:
        """The ops turning the state at step ``a`` (of ``a_agent``, default the same agent)
        into the state at step ``b``, annotated like :meth:`changes`."""
        src = a_agent or agent_id
        with self.journal(src) as ja:
            old = ja.state_at(a)
        with self.journal(agent_id) as jb:
            new = jb.state_at(b)
        ops = delta.diff(old, new)
        _, annotated = apply_tracking(old, [dict(op) for op in ops])
        return {"agent_id": agent_id, "a": a, "b": b, "a_agent": src, "ops": annotated}

    # --- integrity -----------------------------------------------------------------------------
    def verify(self, agent_id: str, from_seq: int | None = None, to_seq: int | None = None
               ) -> dict[str, Any]:
        """Verify the whole journal, or check the records of a seq range."""
        with self.strict(agent_id) as j:
            if from_seq is None and to_seq is None:
                # With witnesses, the check of 'verify --against' too (a rollback problem).
                rep = j.verify(against=self.witnesses.newest(agent_id))
                bad = [p.seq for p in rep.problems if p.seq is not None]
                if any(p.seq is None and p.kind == "corrupt" for p in rep.problems):
                    # A line failing its hash names no seq: it is the one after the last
                    # record that reads (seqs have no gaps).
                    _, problem = _read_range(j, rep.first_seq or 1, None)
                    if problem is not None and problem["seq"] is not None:
                        bad.append(problem["seq"])
                self.verified[agent_id] = (rep.last_seq, rep.ok)
                return {"agent_id": agent_id, "ok": rep.ok, "records": rep.records,
                        "first_seq": rep.first_seq, "last_seq": rep.last_seq,
                        "first_bad_seq": min(bad) if bad else None,
                        "problems": [vars(p) for p in rep.problems[:50]],
                        "cuts": [vars(c) for c in rep.cuts],
                        "quarantined": len(rep.quarantined)}
            n, problem = _read_range(j, from_seq or 1, to_seq)
            return {"agent_id": agent_id, "ok": problem is None, "records": n,
                    "first_seq": from_seq, "last_seq": to_seq,
                    "first_bad_seq": problem["seq"] if problem else None,
                    "problems": [problem] if problem else []}

    def integrity(self, agent_id: str) -> dict[str, Any]:
        """Snapshots with sizes, the retained-history watermark, anchors, last verify."""
        with self.journal(agent_id) as j:
            segs = j.segment_seqs()
            snaps = j.snapshot_seqs()
            sizes = engine.snapshot_sizes(self.backend, agent_id, snaps)
            witness = self.witnesses.check(j) if self.witnesses.configured else None
        newest = self.witnesses.newest(agent_id)
        info = self.agent(agent_id) if segs else None
        steps = {m["seq"]: m["step"] for m in (info["snapshots"] if info else [])}
        done = self.verified.get(agent_id)
        return {
            "agent_id": agent_id,
            "snapshots": [{"seq": s, "step": steps.get(s), "bytes": sizes.get(s)}
                          for s in snaps],
            "segments": len(segs),
            "watermark": {"first_seq": segs[0] if segs else None,
                          "first_step": info["first_step"] if info else None,
                          "pruned": bool(segs and segs[0] > 1)},
            # The witnessed head with the highest seq, and how the journal stands against
            # every witness file's head (None: started without --witness).
            "anchored_head": None if newest is None else {"seq": newest.seq,
                                                          "hash": newest.hash},
            "witness": witness,
            "verified": None if done is None else {"last_seq": done[0], "ok": done[1]},
        }


def _read_range(j: Journal, from_seq: int, to_seq: int | None
                ) -> tuple[int, dict[str, Any] | None]:
    """Read the records ``from_seq..to_seq``: how many read, and the first problem (with the
    seq of the record that does not read, known from the last one that does)."""
    segs = j.segment_seqs()
    start = max(from_seq, segs[0]) if segs else from_seq
    n = 0
    try:
        for _ in j.records(start, to_seq):
            n += 1
    except CorruptRecordError as e:
        seq = e.seq
        if seq is None and (n or start in segs):
            # Known only when the reading got past the range's start or began at a segment's:
            # otherwise the bad line may be before the range, in the same segment.
            seq = start + n
        return n, {"kind": "key_needed" if is_key_needed(e) else "corrupt",
                   "message": e.message, "path": e.path, "offset": e.offset, "seq": seq}
    return n, None

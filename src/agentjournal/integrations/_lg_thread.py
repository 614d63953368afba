"""One LangGraph thread on one journal: the records, the in-memory index, the lock.

The journal's **state** is ``{"ns": {<checkpoint_ns>: {<channel>: <JSON value>}}}``: after the
record of a checkpoint, ``state["ns"][ns]`` holds that checkpoint's channel values, so each
checkpoint is stored as the JSON Patch from the previous record (appending a message is one
``add``). Everything else goes in the step records' ``meta`` (``"lg": 1`` marks ours):

=========== =====================================================================================
``op``      meaning and members
=========== =====================================================================================
``put``     a checkpoint: ``thread``, ``ns``, ``id``, ``parent`` (id or null), ``cp`` (the
            checkpoint without its channel values: ``v``, ``ts``, ``channel_versions``,
            ``versions_seen``, ...), ``md`` (metadata), ``nv`` (the ``new_versions``)
``writes``  pending writes of checkpoint ``id`` in ``ns``: ``task``, ``path`` (task path) and
            ``w``, a list of ``[idx, channel, value]`` (``idx`` as in ``WRITES_IDX_MAP``); the
            state does not change
``reset``   start of a rewrite (prune, delete_for_runs): the state becomes ``{"ns": {}}``; the
            checkpoints kept are recorded again after it
``commit``  end of a rewrite: what was not recorded again since ``reset`` is deleted
``abort``   a rewrite cut short by a crash: the index before ``reset`` stands
=========== =====================================================================================

Values, metadata and versions are JSON forms made by :mod:`._lg_codec` with the saver's serde.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, writes_sort_key
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from .. import delta
from ..events import Fork, Step
from ..replay import Journal
from ._lg_codec import Encoded, decode, encode, encode_channel

__all__ = ["Entry", "ThreadJournal", "WriteRow"]

_MISSING: Any = object()
_RUN_GAP = 128
"""Checkpoints this close together are read by one forward replay instead of one lookup each."""

WriteRow = tuple[str, str, Any, str]
"""A stored pending write: (task_id, channel, JSON value, task_path)."""


@dataclass
class Entry:
    """A checkpoint in the index: where its record is and what its ``meta`` says."""

    seq: int
    meta: dict[str, Any]
    _md: Any = _MISSING

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    def metadata(self, serde: SerializerProtocol) -> dict[str, Any]:
        """The decoded metadata (cached: for filtering; callers get :func:`decode` copies)."""
        if self._md is _MISSING:
            self._md = decode(serde, self.meta["md"])
        md: dict[str, Any] = self._md
        return md

    def versions(self, serde: SerializerProtocol) -> dict[str, Any]:
        cp = decode(serde, self.meta["cp"])
        return dict(cp.get("channel_versions") or {})


@dataclass
class _Index:
    entries: dict[str, dict[str, Entry]]
    writes: dict[tuple[str, str], dict[tuple[str, int], WriteRow]]
    blobs: dict[tuple[str, str, Any], int]

    @classmethod
    def empty(cls) -> _Index:
        return cls({}, {}, {})


class ThreadJournal:
    """The journal of one thread, with its index, guarded by one lock.

    Every public method takes :attr:`lock`: Pregel calls ``put``/``put_writes`` from
    background threads while the caller may read.
    """

    def __init__(self, journal: Journal, thread_id: str, serde: SerializerProtocol) -> None:
        self.j = journal
        self.thread_id = thread_id
        self.serde = serde
        self.lock = threading.RLock()
        self.transient = False  # a read-only view, closed after one call (see JournalSaver)
        self.idx = _Index.empty()
        self.mirror: dict[str, Any] = {}
        # ns -> (seq, versions): the put whose values ``mirror["ns"][ns]`` holds.
        self.mirror_at: dict[str, tuple[int, dict[str, Any]]] = {}
        # (ns, channel) -> the last encoding made: its JSON is reused for equal bytes.
        self.enc: dict[tuple[str, str], Encoded] = {}
        self.arrays = isinstance(serde, JsonPlusSerializer)
        with self.lock:
            self._load()

    # --- rebuilding the index from the records --------------------------------------------
    def _load(self) -> None:
        idx = _Index.empty()
        saved: _Index | None = None
        mirror_at: dict[str, tuple[int, dict[str, Any]]] = {}  # ns -> (seq, put meta)
        for rec in self.j.records():
            meta = rec.meta if isinstance(rec, Step) else None
            if not meta or meta.get("lg") != 1:
                if isinstance(rec, Fork) or (isinstance(rec, Step) and rec.ops):
                    mirror_at = {}  # someone else changed the state: trust no mirror
                continue
            op = meta.get("op")
            if op == "put":
                self._index_put(idx, rec.seq, meta)
                mirror_at[str(meta["ns"])] = (rec.seq, meta)
            elif op == "writes":
                self._index_writes(idx, meta)
            elif op == "reset":
                saved, idx, mirror_at = idx, _Index.empty(), {}
            elif op == "commit":
                saved = None
            elif op == "abort" and saved is not None:
                idx, saved, mirror_at = saved, None, {}
        if saved is not None:
            # A rewrite that did not reach its commit (a crash): the old index stands, and
            # an abort record says so, so that what is appended from now on counts.
            idx, mirror_at = saved, {}
            if not self.j.readonly:
                self.j.append(ops=[], step=max(self.j.last_step, 1), snapshot=False,
                              meta={"lg": 1, "op": "abort"})
        self.idx = idx
        self.mirror = self.j.resume().state
        self.mirror_at = {ns: (seq, self._versions(meta)) for ns, (seq, meta) in mirror_at.items()}

    def _versions(self, meta: dict[str, Any]) -> dict[str, Any]:
        cp = decode(self.serde, meta["cp"])
        return dict(cp.get("channel_versions") or {})

    def _index_put(self, idx: _Index, seq: int, meta: dict[str, Any]) -> None:
        ns = str(meta["ns"])
        idx.entries.setdefault(ns, {})[str(meta["id"])] = Entry(seq, meta)
        for ch, ver in (decode(self.serde, meta["nv"]) or {}).items():
            idx.blobs[(ns, ch, ver)] = seq

    @staticmethod
    def _index_writes(idx: _Index, meta: dict[str, Any]) -> None:
        cur = idx.writes.setdefault((str(meta["ns"]), str(meta["id"])), {})
        task, path = str(meta["task"]), str(meta.get("path", ""))
        for k, ch, val in meta["w"]:
            cur[(task, int(k))] = (task, str(ch), val, path)

    # --- recording --------------------------------------------------------------------------
    def put(self, ns: str, checkpoint: dict[str, Any], metadata: dict[str, Any],
            new_versions: dict[str, Any], parent: str | None) -> None:
        """Record a checkpoint: its values as a patch, the rest in the record's ``meta``."""
        with self.lock:
            cp = dict(checkpoint)
            values: dict[str, Any] = cp.pop("channel_values", None) or {}
            versions = dict(cp.get("channel_versions") or {})
            new_blobs = {(ch, ver): (self._encode(ns, ch, values[ch]) if ch in values
                                     else _MISSING)
                         for ch, ver in new_versions.items()}
            old_ns = (self.mirror.get("ns") or {}).get(ns)
            new_ns: dict[str, Any] = {}
            for ch, ver in versions.items():
                if (ch, ver) in new_blobs:
                    val = new_blobs[(ch, ver)]
                else:
                    val = self._stored_value(ns, ch, ver, old_ns)
                if val is not _MISSING:
                    new_ns[ch] = val
            meta = {"lg": 1, "op": "put", "thread": self.thread_id, "ns": ns,
                    "id": str(checkpoint["id"]), "parent": parent,
                    "cp": encode(self.serde, cp), "md": encode(self.serde, metadata),
                    "nv": encode(self.serde, dict(new_versions))}
            self._record_put(ns, new_ns, meta)

    def _encode(self, ns: str, ch: str, value: Any) -> Any:
        e = encode_channel(self.serde, value, self.enc.get((ns, ch)), self.arrays)
        self.enc[(ns, ch)] = e
        return e.doc

    def _stored_value(self, ns: str, ch: str, ver: Any, old_ns: dict[str, Any] | None) -> Any:
        """The value a channel had when version ``ver`` of it was recorded (or _MISSING)."""
        at = self.mirror_at.get(ns)
        if at is not None and old_ns is not None and ch in at[1] and at[1][ch] == ver:
            return old_ns.get(ch, _MISSING)  # usually: unchanged since the previous checkpoint
        seq = self.idx.blobs.get((ns, ch, ver))
        if seq is None:
            return _MISSING
        return self._ns_at(ns, seq).get(ch, _MISSING)

    def _record_put(self, ns: str, new_ns: dict[str, Any], meta: dict[str, Any],
                    snapshot: bool | None = None) -> None:
        base = "/ns/" + delta.escape(ns)
        all_ns = self.mirror.get("ns")
        if all_ns is None:
            ops: list[dict[str, Any]] = [{"op": "add", "path": "/ns", "value": {ns: new_ns}}]
        elif ns not in all_ns:
            ops = [{"op": "add", "path": base, "value": new_ns}]
        else:
            ops = [{**op, "path": base + op["path"]} for op in delta.diff(all_ns[ns], new_ns)]
        rec = self.j.append(ops=ops, step=self.j.last_step + 1, snapshot=snapshot, meta=meta)
        self.mirror.setdefault("ns", {})[ns] = new_ns
        self._index_put(self.idx, rec.seq, meta)
        self.mirror_at[ns] = (rec.seq, self._versions(meta))

    def put_writes(self, ns: str, checkpoint_id: str, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str) -> None:
        """Record pending writes; special channels replace, regular ones keep the first."""
        with self.lock:
            cur = self.idx.writes.get((ns, checkpoint_id), {})
            rows = []
            for i, (ch, val) in enumerate(writes):
                k = WRITES_IDX_MAP.get(ch, i)
                if k >= 0 and (task_id, k) in cur:
                    continue
                rows.append([k, ch, encode(self.serde, val)])
            if rows:
                self._record_writes(ns, checkpoint_id, task_id, task_path, rows)

    def _record_writes(self, ns: str, checkpoint_id: str, task_id: str, task_path: str,
                       rows: list[list[Any]]) -> None:
        meta = {"lg": 1, "op": "writes", "thread": self.thread_id, "ns": ns,
                "id": checkpoint_id, "task": task_id, "path": task_path, "w": rows}
        self.j.append(ops=[], step=max(self.j.last_step, 1), snapshot=False, meta=meta)
        self._index_writes(self.idx, meta)

    # --- reading ----------------------------------------------------------------------------
    def _ns_at(self, ns: str, seq: int) -> dict[str, Any]:
        at = self.mirror_at.get(ns)
        if at is not None and at[0] == seq:
            return dict((self.mirror.get("ns") or {}).get(ns) or {})
        state = self.j.state_at_seq(seq)
        return dict((state.get("ns") or {}).get(ns) or {})

    def namespaces(self) -> list[str]:
        with self.lock:
            return list(self.idx.entries)

    def entry(self, ns: str, checkpoint_id: str | None) -> Entry | None:
        """The checkpoint ``checkpoint_id`` of ``ns``, or the latest by id when None."""
        with self.lock:
            by_id = self.idx.entries.get(ns)
            if not by_id:
                return None
            if checkpoint_id is None:
                return by_id[max(by_id)]
            return by_id.get(checkpoint_id)

    def select(self, ns: str | None, checkpoint_id: str | None, before: str | None,
               filt: dict[str, Any] | None, limit: int | None) -> list[tuple[str, Entry]]:
        """Entries matching a ``list`` call, newest id first within each namespace."""
        out: list[tuple[str, Entry]] = []
        with self.lock:
            for cns, by_id in self.idx.entries.items():
                if ns is not None and cns != ns:
                    continue
                for cid in sorted(by_id, reverse=True):
                    if checkpoint_id and cid != checkpoint_id:
                        continue
                    if before is not None and cid >= before:
                        continue
                    e = by_id[cid]
                    if filt:
                        md = e.metadata(self.serde)
                        if not all(v == md.get(k) for k, v in filt.items()):
                            continue
                    if limit is not None and len(out) >= limit:
                        return out
                    out.append((cns, e))
        return out

    def values_of(self, picks: Iterable[tuple[str, Entry]]) -> dict[int, dict[str, Any]]:
        """``seq -> channel values (JSON)`` for the given entries, replaying nearby ones once."""
        want: dict[int, str] = {e.seq: ns for ns, e in picks}
        got: dict[int, dict[str, Any]] = {}
        with self.lock:
            seqs = sorted(want)
            i = 0
            while i < len(seqs):
                j = i
                while j + 1 < len(seqs) and seqs[j + 1] - seqs[j] <= _RUN_GAP:
                    j += 1
                first, last = seqs[i], seqs[j]
                if i == j:
                    got[first] = self._ns_at(want[first], first)
                    i += 1
                    continue
                state = self.j.state_at_seq(first)
                got[first] = dict(state["ns"][want[first]])
                for rec in self.j.records(first + 1, last):
                    if isinstance(rec, (Step, Fork)) and rec.ops:
                        state = delta.apply(state, rec.ops)  # path copying: states stay apart
                    if rec.seq in want:
                        got[rec.seq] = dict(state["ns"][want[rec.seq]])
                i = j + 1
        return got

    def writes_of(self, ns: str, checkpoint_id: str) -> list[WriteRow]:
        """Pending writes of a checkpoint in ``writes_sort_key`` order."""
        with self.lock:
            stored = self.idx.writes.get((ns, checkpoint_id), {})
            keys = sorted(stored, key=lambda k: writes_sort_key(stored[k][3], *k))
            return [stored[k] for k in keys]

    # --- rewriting: prune, delete_for_runs ----------------------------------------------------
    def all_entries(self) -> list[tuple[str, Entry]]:
        """Every checkpoint, in record order."""
        with self.lock:
            pairs = [(ns, e) for ns, by_id in self.idx.entries.items() for e in by_id.values()]
            return sorted(pairs, key=lambda p: p[1].seq)

    def rewrite(self, keep: list[tuple[str, Entry]]) -> None:
        """Keep only ``keep`` (and their writes); physically drop the rest by compaction.

        The kept checkpoints are recorded again after a ``reset`` record and a snapshot of the
        empty state; a ``commit`` record makes the change; compaction then deletes every
        segment and snapshot before that snapshot, writing an ``anchor`` so that what remains
        still verifies. A crash before the commit leaves the old index in force (see _load);
        one after it leaves the dropped records on disk until the next compaction.
        """
        with self.lock:
            keep = sorted(keep, key=lambda p: p[1].seq)
            values = self.values_of(keep)
            kept_writes = {(ns, e.id): dict(self.idx.writes.get((ns, e.id), {}))
                           for ns, e in keep}
            self.j.append(ops=[{"op": "replace", "path": "", "value": {"ns": {}}}],
                          step=self.j.last_step + 1, snapshot=False,
                          meta={"lg": 1, "op": "reset"})
            self.j.snapshot()
            self.mirror, self.mirror_at, old = {"ns": {}}, {}, self.idx
            self.idx = _Index.empty()
            try:
                self.replay_into(self, keep, values, kept_writes)
                self.j.append(ops=[], step=self.j.last_step, snapshot=False,
                              meta={"lg": 1, "op": "commit"})
            except BaseException:
                self.idx = old  # the records say the same until the commit
                raise
            self.j.compact(keep_snapshots=1, prune=True)

    @staticmethod
    def replay_into(dst: ThreadJournal, picks: list[tuple[str, Entry]],
                    values: dict[int, dict[str, Any]],
                    writes: dict[tuple[str, str], dict[tuple[str, int], WriteRow]]) -> None:
        """Record ``picks`` (with their values and writes) again, in ``dst``, in order."""
        for ns, e in picks:
            meta = {**e.meta, "thread": dst.thread_id}
            dst._record_put(ns, values[e.seq], meta, snapshot=False)
        groups: dict[tuple[str, str, str, str], list[list[Any]]] = {}
        for (ns, cid), stored in writes.items():
            for (task, k), (_, ch, val, path) in stored.items():
                groups.setdefault((ns, cid, task, path), []).append([k, ch, val])
        for (ns, cid, task, path), rows in groups.items():
            dst._record_writes(ns, cid, task, path, rows)

    def close(self) -> None:
        with self.lock:
            self.j.close()

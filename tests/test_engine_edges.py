"""Edges of the engine's parts: heads, shared writers, the exit and fork hooks, the follower,
fork failures, the snapshot check. Real journals on disk; faults injected only where named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    CorruptRecordError,
    Head,
    Journal,
    JournalClosedError,
    JournalExistsError,
    StepNotFoundError,
    StepPrunedError,
    TamperedError,
)
from agentjournal.journal.follow import Tail
from agentjournal.replay import core as core_mod
from agentjournal.snapshot.check import snapshot_mismatch
from agentjournal.snapshot.store import SnapshotDoc

AGENT = "edges"


def _fill(root: Path, n: int = 6, **kw: object) -> None:
    with Journal(AGENT, root, **kw) as j:  # type: ignore[arg-type]
        for i in range(n):
            j.append({"i": i})


# --------------------------------------------------------------------------- heads


def test_heads_checked_on_open_and_by_verify(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        app = j.append({"i": 1})
        head = j.head()
        assert (head.seq, head.hash) == (app.seq, app.hash)
        j.append({"i": 2})
        newer = j.head()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.head() == newer
        assert r.check_head(head) is None and r.check_head(Head(AGENT, 0, "")) is None
        assert "another agent" in (r.check_head(Head("x", 1, "")) or "") or \
            "agent 'x'" in (r.check_head(Head("x", 1, "")) or "")
        assert "ends at seq" in (r.check_head(Head(AGENT, 99, "ab")) or "")
        assert "rewritten" in (r.check_head(Head(AGENT, 1, "00" * 32)) or "")
        assert r.verify(against=newer).ok
        rep = r.verify(against=Head(AGENT, 99, "ab"))
        assert not rep.ok and rep.problems[-1].kind == "rollback" and rep.last_hash == newer.hash
    with pytest.raises(TamperedError, match="ends at seq"):
        Journal(AGENT, tmp_path, expect_head=Head(AGENT, 50, "ab"))
    with Journal(AGENT, tmp_path, expect_head=newer) as j:
        assert j.last_seq == newer.seq


def test_a_pruned_anchored_head_cannot_be_checked(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=2, keep_snapshots=1, prune=True) as j:
        j.append({"i": 0})
        old = j.head()
        for i in range(1, 9):
            j.append({"i": i})
        assert j.segment_seqs()[0] > old.seq
        assert "pruned" in (j.check_head(old) or "")


# --------------------------------------------------------------------------- arguments


def test_bad_snapshot_and_meta_arguments(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path) as j:
        with pytest.raises(TypeError, match="snapshot"):
            j.append({"a": 1}, snapshot="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="meta"):
            j.append({"a": 1}, meta=["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not both"):
            j.append({"a": 1}, ops=[])
        assert j.last_seq == 0


# --------------------------------------------------------------------------- shared writers


def test_a_stronger_handle_syncs_its_own_appends(tmp_path: Path) -> None:
    weak = Journal(AGENT, tmp_path, durability="none", snapshot_every=None)
    strong = Journal(AGENT, tmp_path, durability="sync", snapshot_every=None)
    weak.append({"a": 1})
    assert weak.durable_seq == 0  # none mode: nothing synced yet
    strong.append({"a": 2})
    assert strong.durable_seq == 2  # the sync handle synced through the shared writer
    weak.close()
    strong.close()


def test_another_key_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, key=b"one"):
        with pytest.raises(ValueError, match="another key"):
            Journal(AGENT, tmp_path, key=b"two")


def test_a_poisoned_shared_writer_is_replaced_on_the_next_open(tmp_path: Path) -> None:
    first = Journal(AGENT, tmp_path, snapshot_every=None)
    first.append({"a": 1})
    assert first.writer is not None
    first.writer._poison = OSError(28, "injected ENOSPC")  # a write failed earlier
    second = Journal(AGENT, tmp_path, snapshot_every=None)  # recovers: a new writer
    second.append({"a": 2})
    with pytest.raises(JournalClosedError):
        first.append({"a": 3})
    first.close()
    second.close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.resume().state == {"a": 2} and r.verify().ok


def test_exit_hook_closes_open_journals_and_fork_hook_starts_afresh(tmp_path: Path) -> None:
    j = Journal(AGENT, tmp_path, durability="none", snapshot_every=None)
    j.append({"a": 1})
    core_mod._close_all_at_exit()  # what interpreter exit runs
    with pytest.raises(JournalClosedError):
        j.append({"a": 2})
    j.close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.resume().state == {"a": 1}
    saved = core_mod._shared, core_mod._registry_lock
    try:
        core_mod._after_fork_in_child()  # what a child made by fork() runs first
        assert core_mod._shared == {} and core_mod._registry_lock is not saved[1]
    finally:
        core_mod._shared, core_mod._registry_lock = saved


# --------------------------------------------------------------------------- the follower


def test_the_follower_on_empty_missing_and_damaged_segments(tmp_path: Path) -> None:
    from agentjournal.backends import FilesystemBackend

    backend = FilesystemBackend(tmp_path)
    Journal(AGENT, tmp_path, snapshot_every=None).close()
    store = backend.agent(AGENT, create=False)
    try:
        tail = Tail(store)
        assert tail.poll() == [] and tail.position == (None, 0)
    finally:
        store.close()
    _fill(tmp_path, 9, snapshot_every=None, segment_max_records=3)
    store = backend.agent(AGENT, create=False)
    try:
        tail = Tail(store)
        got = tail.poll()
        assert [r.seq for r in got] == list(range(1, 10)) and tail.position[0] is not None
        segs = sorted((tmp_path / AGENT / "segments").glob("*.jsonl"))
        fresh = Tail(store)
        fresh.poll()  # reads to the end
        again = Tail(store, from_seq=1)
        os.unlink(segs[1])  # a middle segment goes missing
        with pytest.raises(CorruptRecordError, match="missing"):
            again.poll()
    finally:
        store.close()


# --------------------------------------------------------------------------- forks


def test_a_fork_that_fails_leaves_nothing_behind(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from agentjournal.journal.writer import JournalWriter

    _fill(tmp_path, 4)

    def boom(*_a: object, **_k: object) -> None:
        raise OSError(5, "injected EIO")

    with Journal(AGENT, tmp_path) as j:
        monkeypatch.setattr(JournalWriter, "append_fork", boom)
        with pytest.raises(OSError, match="injected"):
            j.fork(2, "branch")
        monkeypatch.undo()
        assert not (tmp_path / "branch").exists()
        with j.fork(2, "branch") as b:
            assert b.resume().state == {"i": 1}
        with pytest.raises(JournalExistsError):
            j.fork(2, "branch")


def test_fork_from_the_step_of_a_snapshot_after_pruning(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=3, keep_snapshots=1, prune=True) as j:
        for i in range(10):
            j.append({"i": i})
        snap = j.snapshot_seqs()[-1]
        step = j.load_snapshot(snap).step
        with j.fork(step, "from-snap") as f:
            assert f.resume().state == j.load_snapshot(snap).state
            assert f.verify().ok


# --------------------------------------------------------------------------- the snapshot check


def test_snapshot_check_reasons() -> None:
    doc = SnapshotDoc(format=2, agent_id="a", seq=3, step=3, chain_hash="ab", ts=0.0, state={})
    assert "holds agent" in (snapshot_mismatch(doc, agent_id="b", seq=3, chain_at="ab") or "")
    assert "not in the journal" in (snapshot_mismatch(doc, agent_id="a", seq=3, chain_at=None)
                                    or "")
    assert "does not match" in (snapshot_mismatch(doc, agent_id="a", seq=3, chain_at="cd") or "")
    assert "digest" in (snapshot_mismatch(doc, agent_id="a", seq=3, chain_at="ab", digest="x",
                                          recorded_digest="y") or "")
    assert snapshot_mismatch(doc, agent_id="a", seq=3, chain_at="ab") is None


def test_fork_of_a_record_gone_between_lookup_and_read_is_a_typed_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A live writer elsewhere may prune the record after fork() located it: the fork must
    # fail with StepNotFoundError (it used to leak a bare StopIteration from next()).
    with Journal("p", tmp_path, snapshot_every=None) as j:
        for i in range(1, 6):
            j.append({"n": i})
        monkeypatch.setattr(j, "records", lambda a=1, b=None: iter(()))
        with pytest.raises(StepNotFoundError, match="no longer in the journal"):
            j.fork(3, "child")
        assert not j.backend.exists("child")


def test_threads_reopening_one_agent_never_meet_their_own_lock(tmp_path: Path) -> None:
    # A writer being closed by one thread still holds the agent's lock; another thread opening
    # the agent meanwhile used to fail with JournalLockedError (about 1 open in 9 here) instead
    # of waiting for the close. Every open must succeed and every append land.
    import threading

    from agentjournal import JournalLockedError

    errors: list[BaseException] = []

    def work() -> None:
        for i in range(100):
            try:
                with Journal("a", tmp_path, snapshot_every=None, durability="none") as j:
                    j.append({"i": i})
            except JournalLockedError as e:
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Journal("a", tmp_path, readonly=True) as j:
        assert j.last_seq == 400 and j.verify().ok


def test_snapshot_intervals_are_checked_at_open_and_when_set(tmp_path: Path) -> None:
    for bad in ({"snapshot_every": 0}, {"snapshot_every": -3}, {"snapshot_seconds": 0},
                {"snapshot_seconds": -1.5}):
        with pytest.raises(ValueError, match="must be"):
            Journal("iv", root=tmp_path, **bad)  # type: ignore[arg-type]
    with Journal("iv", root=tmp_path, snapshot_every=3) as j:
        with pytest.raises(ValueError, match="snapshot_every"):
            j.snapshot_every = 0
        with pytest.raises(ValueError, match="snapshot_seconds"):
            j.snapshot_seconds = 0.0
        assert (j.snapshot_every, j.snapshot_seconds) == (3, None)  # unchanged by a refusal
        j.snapshot_every, j.snapshot_seconds = None, 2.0
        assert (j.snapshot_every, j.snapshot_seconds) == (None, 2.0)


def test_state_at_does_not_list_the_snapshots_at_every_call(tmp_path: Path) -> None:
    """Time travel into old history (its snapshot deleted by retention) used to list every
    snapshot file at every call: ~1,000 of them in a kept 1M-step history (3 ms a call)."""
    with Journal("ls", root=tmp_path, snapshot_every=5, keep_snapshots=2,
                 sparse_snapshots=2) as j:
        for i in range(1, 201):
            j.append({"i": i})
        calls = 0
        store = j.store
        real = store.list_snapshots

        def counting() -> list[int]:
            nonlocal calls
            calls += 1
            return real()

        store.list_snapshots = counting  # type: ignore[method-assign]
        for k in range(6, 150, 7):  # from the first snapshot on (before it, no snapshot
            assert j.state_at(k) == {"i": k}  # fits and the listing is taken again)
        assert calls <= 1


def test_a_reader_notices_snapshots_deleted_since_it_listed_them(tmp_path: Path) -> None:
    with Journal("rd", root=tmp_path, snapshot_every=5) as w:
        for i in range(1, 61):
            w.append({"i": i})
        with Journal("rd", root=tmp_path, readonly=True) as r:
            assert r.state_at(58) == {"i": 58}  # lists the snapshots
            w.compact(keep_snapshots=2, prune=True)  # deletes most of them, and old records
            first = w.first_step_of_segment(w.segment_seqs()[0])
            assert first > 40
            for k in range(first, 61):
                assert r.state_at(k) == {"i": k}
            with pytest.raises(StepPrunedError):
                r.state_at(first - 2)


def test_resume_from_the_newest_snapshot_lists_no_snapshots(tmp_path: Path) -> None:
    """The hinted newest snapshot is tried before any listing (a listing costs what there
    are: ~1,000 files in a kept 1M-step history)."""
    with Journal("rs", root=tmp_path, snapshot_every=5) as w:
        for i in range(1, 103):
            w.append({"i": i})
    for readonly in (True, False):
        with Journal("rs", root=tmp_path, readonly=readonly) as j:
            calls = 0
            real = j.store.list_snapshots

            def counting(real: Any = real) -> list[int]:
                nonlocal calls
                calls += 1
                return list(real())

            j.store.list_snapshots = counting  # type: ignore[method-assign]
            assert j.resume().state == {"i": 102}
            assert calls == 0, readonly

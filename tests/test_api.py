"""The Journal API end to end on real files: recording, resume, time travel, durability modes."""

from __future__ import annotations

import errno
import os
import time

import pytest

from agentjournal import (
    Cut,
    Durability,
    InvalidPatchError,
    Journal,
    JournalClosedError,
    JournalExistsError,
    JournalNotFoundError,
    JournalPoisonedError,
    NotJSONEncodableError,
    SnapshotMark,
    Step,
    StepNotFoundError,
    TamperedError,
    _fs,
)


def conv(n: int) -> dict:
    return {"conversation_history": [{"role": "user", "content": f"m{i}"} for i in range(n)],
            "budget_spent_usd": round(0.01 * n, 2)}


def test_append_resume_state_at_history(tmp_path):
    with Journal("a", tmp_path, snapshot_every=4) as j:
        for n in range(1, 11):
            r = j.append(conv(n))
            assert r.step == n
        assert j.last_step == 10
        assert j.state_at(3) == conv(3)
        assert j.state_at(10) == conv(10)
        assert j.snapshot_seqs(), "a snapshot every 4 steps"
    with Journal("a", tmp_path, snapshot_every=4) as j:
        res = j.resume()
        assert res.state == conv(10) and res.step == 10 and res.next_step == 11
        steps = [r.step for r in j.history(4, 6) if isinstance(r, Step)]
        assert steps == [4, 5, 6]
        kinds = {type(r) for r in j.history()}
        assert kinds == {Step, SnapshotMark}
        assert j.diff(2, 3) == [
            {"op": "add", "path": "/conversation_history/-", "value": {"role": "user",
                                                                       "content": "m2"}},
            {"op": "replace", "path": "/budget_spent_usd", "value": 0.03},
        ]
        assert j.verify().ok


def test_resume_is_the_last_step_not_the_last_snapshot(tmp_path):
    with Journal("a", tmp_path, snapshot_every=100) as j:
        for n in range(1, 8):
            j.append(conv(n))
        assert j.snapshot_seqs() == []
    with Journal("a", tmp_path) as j:
        assert j.resume().state == conv(7)


def test_ops_append_and_validation(tmp_path):
    with Journal("a", tmp_path) as j:
        j.append(ops=[{"op": "add", "path": "/x", "value": [1]}])
        j.append(ops=[{"op": "add", "path": "/x/-", "value": 2}])
        assert j.resume().state == {"x": [1, 2]}
        with pytest.raises(InvalidPatchError):
            j.append(ops=[{"op": "remove", "path": "/nope"}])
        with pytest.raises(NotJSONEncodableError) as e:
            j.append(ops=[{"op": "add", "path": "/y", "value": {"when": object()}}])
        assert "/y" in str(e.value)
        # Nothing was recorded by the failed calls.
        assert j.last_seq == 2 and j.resume().state == {"x": [1, 2]}
        with pytest.raises(ValueError):
            j.append({"a": 1}, ops=[])


def test_non_json_state_names_its_path(tmp_path):
    with Journal("a", tmp_path) as j:
        j.append({"m": {"ok": 1}})
        with pytest.raises(NotJSONEncodableError) as e:
            j.append({"m": {"ok": 1, "bad": {1, 2}}})
        assert e.value.path == "/m/bad"
        assert j.last_seq == 1


def test_shadow_never_aliases_caller_objects(tmp_path):
    with Journal("a", tmp_path) as j:
        msg = {"content": "a"}
        state = {"msgs": [msg]}
        j.append(state)
        msg["content"] = "edited in place"  # mutation of an old item
        j.append(state)
        assert j.state_at(1) == {"msgs": [{"content": "a"}]}
        assert j.state_at(2) == {"msgs": [{"content": "edited in place"}]}


def test_steps_never_go_back(tmp_path):
    with Journal("a", tmp_path) as j:
        j.append({"a": 1}, step=5)
        with pytest.raises(ValueError):
            j.append({"a": 2}, step=4)
        j.append({"a": 3}, step=5)  # the same step again is fine
        assert j.state_at(5) == {"a": 3}
        with pytest.raises(StepNotFoundError):
            j.state_at(4)
        with pytest.raises(StepNotFoundError):
            j.state_at(6)


def test_fork_links_to_parent(tmp_path):
    with Journal("p", tmp_path) as j:
        for n in range(1, 6):
            j.append(conv(n))
        with j.fork(3, "child") as f:
            first = next(iter(f.records()))
            assert first.parent == "p" and first.parent_step == 3
            assert f.resume().state == conv(3)
            f.append(conv(9))
            assert f.state_at(3) == conv(3) and f.resume().step == 4
            assert f.verify().ok
        with pytest.raises(JournalExistsError):
            j.fork(2, "child")


def test_readonly_does_not_lock_and_cannot_append(tmp_path):
    with Journal("a", tmp_path) as w:
        w.append({"a": 1})
        with Journal("a", tmp_path, readonly=True) as r:
            assert r.resume().state == {"a": 1}
            with pytest.raises(JournalClosedError):
                r.append({"a": 2})
        w.append({"a": 2})
    with pytest.raises(JournalNotFoundError):
        Journal("missing", tmp_path, readonly=True)


def test_group_mode_durable_seq(tmp_path):
    with Journal("g", tmp_path, durability="group", group_records=3, group_ms=10_000) as j:
        j.append({"a": 1})
        j.append({"a": 2})
        assert j.durable_seq == 0
        j.append({"a": 3})
        assert j.durable_seq == 3
        j.append({"a": 4})
        assert j.sync() == 4
    with Journal("g2", tmp_path, durability=Durability.GROUP, group_ms=20) as j:
        j.append({"a": 1})
        deadline = time.monotonic() + 5
        while j.durable_seq < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert j.durable_seq == 1, "the background flusher syncs within the window"


def test_none_mode_survives_reopen(tmp_path):
    with Journal("n", tmp_path, durability="none") as j:
        for i in range(20):
            j.append({"i": i})
    with Journal("n", tmp_path) as j:
        assert j.resume().state == {"i": 19}


class FailingSync(_fs.FileOps):
    def fdatasync(self, fd: int) -> None:
        raise OSError(errno.EIO, "injected")


def test_fsync_error_poisons_writer(tmp_path, monkeypatch):
    with Journal("p", tmp_path) as j:
        j.append({"a": 1})
        monkeypatch.setattr(_fs, "ops", FailingSync())
        with pytest.raises(JournalPoisonedError):
            j.append({"a": 2})
        monkeypatch.setattr(_fs, "ops", _fs.FileOps())
        with pytest.raises(JournalPoisonedError):
            j.append({"a": 3})  # no retry, even though the disk works again
    with Journal("p", tmp_path) as j:
        # Record 2 was written but not acknowledged: either outcome is a valid prefix.
        assert j.resume().state in ({"a": 1}, {"a": 2})
        j.append({"a": 4})
        assert j.verify().ok


def test_keyed_chain_needs_the_key(tmp_path):
    with Journal("k", tmp_path, key=b"secret") as j:
        j.append({"a": 1})
        j.append({"a": 2})
    with Journal("k", tmp_path, key=b"secret", readonly=True) as j:
        assert j.resume().state == {"a": 2}
    with pytest.raises(TamperedError):
        Journal("k", tmp_path)  # no key: the writer cannot check the chain
    with Journal("k", tmp_path, key=b"wrong", readonly=True) as j:
        assert not j.verify().ok


def test_closed_journal_refuses_use(tmp_path):
    j = Journal("c", tmp_path)
    j.append({"a": 1})
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalClosedError):
        j.resume()


def test_files_are_private(tmp_path):
    with Journal("a", tmp_path, snapshot_every=1) as j:
        j.append({"a": 1})
    for dirpath, _dirnames, filenames in os.walk(tmp_path / "a"):
        assert os.stat(dirpath).st_mode & 0o777 == 0o700
        for f in filenames:
            assert os.stat(os.path.join(dirpath, f)).st_mode & 0o777 == 0o600


def test_repair_cuts_damage_followed_by_records(tmp_path):
    from agentjournal import CorruptRecordError, RecoveryWarning

    with Journal("r", tmp_path, snapshot_every=None) as j:
        for i in range(10):
            j.append({"i": i})
    seg = tmp_path / "r" / "segments" / f"{1:020d}.jsonl"
    lines = seg.read_bytes().splitlines(keepends=True)
    # Damage record 6 (line 0 is the header) while records 7..10 stay intact, as an
    # out-of-order power loss in `none` mode can leave it.
    lines[6] = lines[6][:20] + b"\x00" * (len(lines[6]) - 21) + b"\n"
    seg.write_bytes(b"".join(lines))
    with pytest.raises(CorruptRecordError) as e:
        Journal("r", tmp_path)
    assert e.value.offset == sum(len(x) for x in lines[:6])
    with pytest.warns(RecoveryWarning, match="cut"):
        j = Journal("r", tmp_path, repair=True)
    with j:
        assert j.writer is not None and j.writer.recovery.repaired
        # Records 1..5 are kept; the cut itself is record 6 of the chain (format 3).
        cut = list(j.records())[-1]
        assert isinstance(cut, Cut) and (cut.seq, cut.reason, cut.lines_after) == (6, "damage", 4)
        assert j.last_seq == 6 and j.resume().state == {"i": 4}
        j.append({"i": 99})
        assert j.verify().ok
    assert list((tmp_path / "r" / "quarantine").iterdir()), "the cut bytes are kept"


def test_repair_with_a_wrong_key_cuts_nothing(tmp_path):
    from agentjournal import CorruptRecordError

    with Journal("k", tmp_path, key=b"right", snapshot_every=None) as j:
        for i in range(5):
            j.append({"i": i})
    seg = tmp_path / "k" / "segments" / f"{1:020d}.jsonl"
    before = seg.read_bytes()
    for key in (None, b"wrong"):
        with pytest.raises(CorruptRecordError):
            Journal("k", tmp_path, key=key, repair=True)
        assert seg.read_bytes() == before
    with Journal("k", tmp_path, key=b"right", readonly=True) as j:
        assert j.resume().state == {"i": 4}


def test_fork_at_the_oldest_kept_snapshot_after_pruning(tmp_path):
    with Journal("p", tmp_path, snapshot_every=5, keep_snapshots=2, prune=True) as j:
        for n in range(1, 31):
            j.append(conv(n))
        first = j.segment_seqs()[0]
        assert first > 1, "old segments were pruned"
        base_step = j.load_snapshot(first - 1).step
        assert j.state_at(base_step) == conv(base_step)
        with j.fork(base_step, "child") as f:
            rec = next(iter(f.records()))
            assert rec.parent_step == base_step
            assert f.resume().state == conv(base_step)
            assert f.verify().ok

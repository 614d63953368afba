"""The journal writer and reader: single writer, durability modes, rolls, recovery, reading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    CorruptRecordError,
    Durability,
    Journal,
    JournalClosedError,
    JournalNotFoundError,
    LimitExceededError,
    RecoveryWarning,
    StepNotFoundError,
)
from agentjournal.journal import reader as reader_mod
from agentjournal.journal.reader import SegmentReader, scan
from agentjournal.journal.writer import JournalWriter

AGENT = "agent-1"

SECOND_WRITER = textwrap.dedent("""
    import json, sys
    from agentjournal import Journal, JournalLockedError
    try:
        Journal(sys.argv[2], sys.argv[1])
    except JournalLockedError as e:
        print(json.dumps({"error": type(e).__name__, "pid": e.pid, "msg": str(e)}))
    else:
        print(json.dumps({"error": None}))
""")


def _second_writer(root: Path, agent: str = AGENT) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", SECOND_WRITER, str(root), agent],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_second_writer_process_gets_locked_error(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path) as j:
        j.append({"a": 1})
        got = _second_writer(tmp_path)
        assert got["error"] == "JournalLockedError"
        assert got["pid"] == os.getpid()  # names the holder
        assert str(os.getpid()) in got["msg"]
        # another agent under the same root is not locked
        assert _second_writer(tmp_path, "agent-2")["error"] is None
        # readers never lock
        with Journal(AGENT, tmp_path, readonly=True) as r:
            assert r.resume().state == {"a": 1}
    # released on close
    assert _second_writer(tmp_path)["error"] is None


def test_writers_in_the_same_process_share_one_writer(tmp_path: Path) -> None:
    # Two components of one program (a manager and a tool, say) open the same agent: they
    # share the process's writer instead of failing on its lock, and their steps chain.
    j = Journal(AGENT, tmp_path)
    k = Journal(AGENT, str(tmp_path) + "/")  # another spelling of the same root
    j.append({"a": 1})
    k.append({"a": 1, "b": 2})
    j.append({"a": 3, "b": 2})
    assert k.last_seq == j.last_seq == 3
    assert k.resume().state == {"a": 3, "b": 2}
    j.close()
    assert _second_writer(tmp_path)["error"] == "JournalLockedError"  # k still holds it
    k.append({"a": 4, "b": 2})
    k.close()
    assert _second_writer(tmp_path)["error"] is None  # the last user released it
    with Journal(AGENT, tmp_path) as again:
        assert again.resume().state == {"a": 4, "b": 2}
        assert again.verify().ok


def test_lock_released_when_the_holder_dies(tmp_path: Path) -> None:
    code = ("import os, sys; from agentjournal import Journal; "
            "j = Journal('agent-1', sys.argv[1]); j.append({'x': 1}); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    with Journal(AGENT, tmp_path) as j:
        assert j.resume().state == {"x": 1}


@pytest.mark.parametrize("mode", ["sync", "group", "none"])
def test_durability_modes_round_trip(tmp_path: Path, mode: str) -> None:
    with Journal(AGENT, tmp_path, durability=mode, group_records=3) as j:
        for i in range(1, 8):
            j.append({"i": i})
        assert j.sync() == j.last_seq
        assert j.durable_seq == j.last_seq
    with Journal(AGENT, tmp_path, durability=Durability(mode)) as j:
        assert j.resume().state == {"i": 7}


def test_segment_roll_by_size_and_count(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None, segment_max_bytes=600) as j:
        for i in range(1, 12):
            j.append({"i": i, "pad": "x" * 100})
        assert len(j.segment_seqs()) > 3
        assert j.verify().ok
        assert j.state_at(5) == {"i": 5, "pad": "x" * 100}


def test_writer_recovery_of_torn_tail_and_header_only_segment(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None, segment_max_records=2) as j:
        for i in range(1, 6):
            j.append({"i": i})
        segs = j.segment_seqs()
    seg_dir = tmp_path / AGENT / "segments"
    last = seg_dir / f"{segs[-1]:020d}.jsonl"
    header = last.read_bytes().split(b"\n")[0] + b"\n"
    # a new segment with only its header (killed while rolling): the header a writer would
    # have written, sealed (an edited header that fails its hash is tampering, not a crash)
    from agentjournal import _codec

    parts = _codec.split_line(header.rstrip(b"\n"))
    assert parts is not None
    body = parts[0].replace(b'"first_seq":5', b'"first_seq":6')
    (seg_dir / f"{6:020d}.jsonl").write_bytes(_codec.seal_line(body, None)[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(AGENT, tmp_path) as j:
            assert j.last_seq == 5
            assert not (seg_dir / f"{6:020d}.jsonl").exists()
            j.append({"i": 6})
            assert j.verify().ok
    assert not [w for w in caught if not issubclass(w.category, RecoveryWarning)]


def test_recovery_refuses_mid_log_corruption(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        for i in range(1, 5):
            j.append({"i": i})
    seg = next((tmp_path / AGENT / "segments").iterdir())
    data = bytearray(seg.read_bytes())
    second = data.index(b"\n") + 1
    data[second + 20] ^= 1
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError) as ei:
        Journal(AGENT, tmp_path)
    assert ei.value.path == str(seg) and ei.value.offset == second
    # the lock was released: a reader with valid_prefix gets what is before the damage
    with Journal(AGENT, tmp_path, readonly=True, valid_prefix=True) as r:
        assert list(r.records()) == []
        assert r.reader.damage is not None


def test_reader_tailing_scan_from_an_offset(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        for i in range(1, 5):
            j.append({"i": i})
        first = j.segment_seqs()[0]
        data = j.store.read_segment(first)
        full = scan(data, first_seq=first, agent_id=AGENT, key=None, where="s")
        cut = full.ends[1]
        rest = scan(data[cut:], first_seq=first, agent_id=AGENT, key=None, where="s",
                    offset=cut, next_seq=3, prev=full.records[1].h, header=full.header)
        assert [r.seq for r in rest.records] == [3, 4]
        assert rest.valid_end == len(data)
        rd = SegmentReader(j.store)
        assert [r.seq for r in rd.records(2, 3)] == [2, 3]
        assert rd.read(first).last_seq == 4


def test_scan_rejects_foreign_or_newer_segments(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        j.append({"i": 1})
        data = j.store.read_segment(1)
    other = scan(data, first_seq=1, agent_id="someone-else", key=None, where="s")
    assert other.error is not None and "header names agent" in other.error.message
    moved = scan(data, first_seq=7, agent_id=AGENT, key=None, where="s")
    assert moved.error is not None
    keyed = scan(data, first_seq=1, agent_id=AGENT, key=b"k", where="s")
    assert keyed.error is not None
    no_header = scan(data.split(b"\n", 1)[1], first_seq=1, agent_id=AGENT, key=None, where="s")
    assert no_header.error is not None


def test_record_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentjournal.journal import writer as writer_mod

    monkeypatch.setattr(writer_mod, "MAX_RECORD_BYTES", 2000)
    with Journal(AGENT, tmp_path) as j:
        j.append({"small": 1})
        with pytest.raises(LimitExceededError):
            j.append({"big": "x" * 5000})
        j.append({"small": 2})  # not poisoned: nothing was written
        assert j.resume().state == {"small": 2}


def test_reader_line_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        j.append({"big": "x" * 5000})
        j.append({"i": 2})
    monkeypatch.setattr(reader_mod, "MAX_RECORD_BYTES", 1000)
    with Journal(AGENT, tmp_path, readonly=True) as r:
        with pytest.raises(CorruptRecordError):
            list(r.records())


def test_missing_journal_and_closed_use(tmp_path: Path) -> None:
    with pytest.raises(JournalNotFoundError):
        Journal(AGENT, tmp_path / "nowhere", readonly=True)
    with pytest.raises(JournalNotFoundError):
        Journal(AGENT, tmp_path, create=False)
    j = Journal(AGENT, tmp_path)
    j.close()
    j.close()
    with pytest.raises(JournalClosedError):
        j.append({"x": 1})
    with pytest.raises(JournalClosedError):
        list(j.records())


def test_writer_close_is_idempotent_and_refuses_appends(tmp_path: Path) -> None:
    j = Journal(AGENT, tmp_path)
    store = j.store
    j.close()
    store2 = j.backend.agent(AGENT, create=False)
    w = JournalWriter(store2)
    w.close()
    w.close()
    with pytest.raises(JournalClosedError):
        w.append_step([])
    store2.close()
    assert store is not None


def test_empty_journal(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path) as j:
        assert j.resume().state == {}
        assert j.last_seq == 0 and j.last_step == 0
        assert j.snapshot() is None
        with pytest.raises(StepNotFoundError):
            j.state_at(1)
        assert list(j.history()) == []
        assert j.verify().ok
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.resume().state == {}
        assert r.last_seq == 0


def test_bad_arguments(tmp_path: Path) -> None:
    for kw in ({"snapshot_every": 0}, {"snapshot_seconds": 0}, {"keep_snapshots": 0}):
        with pytest.raises(ValueError):
            Journal(AGENT, tmp_path, **kw)  # type: ignore[arg-type]
    with Journal(AGENT, tmp_path) as j:
        with pytest.raises(ValueError):
            j.append()
        with pytest.raises(ValueError):
            j.append({"a": 1}, ops=[])


# --------------------------------------------------------------------------- edges


def test_group_mode_roll_flusher_and_close_sync(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, durability="group", group_records=100, group_ms=10_000,
                 snapshot_every=None, segment_max_records=2) as j:
        for i in range(1, 6):
            j.append({"i": i})  # rolls with records pending: they are synced first
        assert j.writer is not None and not j.writer.poisoned
        assert j.durable_seq >= 4
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.resume().state == {"i": 5}


def test_group_flusher_failure_poisons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from agentjournal import JournalPoisonedError, _fs

    class FailSync(_fs.FileOps):
        def fdatasync(self, fd: int) -> None:
            raise OSError(5, "EIO")

    j = Journal(AGENT, tmp_path, durability="group", group_records=1000, group_ms=20,
                snapshot_every=None)
    j.append({"i": 1})
    monkeypatch.setattr(_fs, "ops", FailSync())
    j.append({"i": 2})
    deadline = time.monotonic() + 10
    assert j.writer is not None
    while not j.writer.poisoned and time.monotonic() < deadline:
        time.sleep(0.01)
    assert j.writer.poisoned  # the background fdatasync failed
    with pytest.raises(JournalPoisonedError):
        j.append({"i": 3})
    monkeypatch.undo()
    j.close()
    with Journal(AGENT, tmp_path) as j2:
        assert j2.last_seq >= 1


def test_writer_refuses_unencodable_ops(tmp_path: Path) -> None:
    from agentjournal import NotJSONEncodableError

    with Journal(AGENT, tmp_path) as j:
        assert j.writer is not None
        with pytest.raises(NotJSONEncodableError):
            j.writer.append_step([{"op": "add", "path": "/x", "value": object()}])
        j.append({"ok": 1})
        assert j.verify().ok


def _segments(root: Path) -> list[Path]:
    return sorted((root / AGENT / "segments").iterdir())


def _three_segments(root: Path) -> None:
    with Journal(AGENT, root, snapshot_every=None, segment_max_records=2) as j:
        for i in range(1, 7):
            j.append({"i": i})


def test_reader_missing_middle_segment(tmp_path: Path) -> None:
    _three_segments(tmp_path)
    _segments(tmp_path)[1].unlink()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        with pytest.raises(CorruptRecordError, match="missing"):
            list(r.records())


def test_reader_segment_vanishing_and_stale_listing(tmp_path: Path) -> None:
    _three_segments(tmp_path)
    with Journal(AGENT, tmp_path) as j:
        rd = SegmentReader(j.store)
        assert rd.segments() == [1, 3, 5]
        for i in range(7, 10):
            j.append({"i": i})  # rolls: the reader's listing is now stale
        assert [r.seq for r in rd.records()] == list(range(1, 10))
        rd2 = SegmentReader(j.store)
        rd2.segments()
        _segments(tmp_path)[1].unlink()
        with pytest.raises(CorruptRecordError, match="vanished"):
            list(rd2.records())


def test_reader_empty_middle_segment(tmp_path: Path) -> None:
    _three_segments(tmp_path)
    _segments(tmp_path)[1].write_bytes(b"")
    with Journal(AGENT, tmp_path, readonly=True) as r:
        with pytest.raises(CorruptRecordError, match="no header"):
            list(r.records())
        assert not r.verify().ok


def test_scan_newer_format_and_garbage_tail_with_hash_suffix(tmp_path: Path) -> None:
    from agentjournal import _codec

    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        j.append({"i": 1})
        data = j.store.read_segment(1)
    hdr, rest = data.split(b"\n", 1)
    body = _codec.split_line(hdr)
    assert body is not None
    from agentjournal import FORMAT_VERSION

    current = b'"format":%d' % FORMAT_VERSION
    assert current in body[0]
    newer = _codec.seal_line(body[0].replace(current, b'"format":9'), None)[0]
    sc = scan(newer + rest, first_seq=1, agent_id=AGENT, key=None, where="s")
    assert sc.error is not None and "newer" in sc.error.message
    # a damaged record followed by a line that only looks sealed: still a torn tail
    fake = b'garbage{"kind":' + b',"h":"' + b"0" * 64 + b'"}\n'
    sc = scan(data + b"xx\n" + fake, first_seq=1, agent_id=AGENT, key=None, where="s")
    assert sc.error is not None and sc.tail


def test_append_without_its_sync_is_pending_until_sync(tmp_path: Path) -> None:
    """``append(sync=False)`` in ``sync`` mode: written (readable, replayable) but not yet
    durable; ``sync()`` makes it so; a normal append syncs whatever was pending."""
    with Journal("a", tmp_path, durability="sync") as j:
        j.append({"k": 1}, step=1)
        assert j.durable_seq == 1
        j.append({"k": 2}, step=2, sync=False)
        assert (j.last_seq, j.durable_seq) == (2, 1)
        with Journal("a", tmp_path, readonly=True) as r:
            assert r.resume().state == {"k": 2}
        assert j.sync() == 2 and j.durable_seq == 2
        j.append({"k": 3}, step=3, sync=False)
        j.append({"k": 4}, step=4)  # its sync covers the pending record too
        assert j.durable_seq == 4
        j.append({"k": 5}, step=5, sync=False)
    with Journal("a", tmp_path, readonly=True) as r:  # close synced it
        assert r.resume().state == {"k": 5} and r.verify().ok

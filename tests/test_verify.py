"""Journal.verify(): what it checks, and that it names where each problem is."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from agentjournal import Journal, MemoryBackend, _codec

AGENT = "v-agent"


def _build(root: Path) -> Journal:
    j = Journal(AGENT, root, snapshot_every=3, segment_max_records=3, compress=False)
    for i in range(1, 10):
        j.append({"i": i})
    return j


def test_report_and_progress(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with _build(tmp_path) as j:
        rep = j.verify(progress=lambda done, total: seen.append((done, total)))
    d = rep.to_dict()
    assert d["ok"] is True and d["records"] == rep.records and rep.last_step == 9
    assert seen and seen[-1][0] == seen[-1][1] == rep.segments


def _reseal_header(data: bytes, **changes: object) -> bytes:
    hdr, rest = data.split(b"\n", 1)
    obj = json.loads(hdr)
    obj.pop("h")
    obj.update(changes)
    return _codec.seal_line(msgspec.json.encode(obj), None)[0] + rest


def test_overlapping_segment_is_a_chain_break(tmp_path: Path) -> None:
    _build(tmp_path).close()
    segs = sorted((tmp_path / AGENT / "segments").iterdir())
    first = segs[0].read_bytes()
    (segs[0].parent / f"{2:020d}.jsonl").write_bytes(_reseal_header(first, first_seq=2))
    with Journal(AGENT, tmp_path, readonly=True) as j:
        rep = j.verify()
    assert not rep.ok
    assert any(p.kind in ("chain_break", "corrupt") and p.path for p in rep.problems)


def test_first_segment_that_does_not_start_the_chain(tmp_path: Path) -> None:
    _build(tmp_path).close()
    seg = sorted((tmp_path / AGENT / "segments").iterdir())[0]
    seg.write_bytes(_reseal_header(seg.read_bytes(), prev="ab" * 32))
    with Journal(AGENT, tmp_path, readonly=True) as j:
        rep = j.verify()
    assert not rep.ok and any(p.kind == "chain_break" for p in rep.problems)


def test_snapshot_of_a_record_that_is_not_there(tmp_path: Path) -> None:
    with _build(tmp_path) as j:
        data, _ = j.store.read_snapshot(3, 1 << 20)
    body = json.loads(data.split(b"\n")[0])
    body["seq"] = 99
    raw = msgspec.json.encode(body)
    (tmp_path / AGENT / "snapshots" / f"{99:020d}.json").write_bytes(
        raw + b'\n{"blake2b":"' + _codec.content_digest(raw).encode() + b'"}\n')
    with Journal(AGENT, tmp_path, readonly=True) as j:
        rep = j.verify()
    assert not rep.ok
    assert any(p.kind == "snapshot" and p.seq == 99 and "not in the journal" in p.message
               for p in rep.problems)


def test_verify_on_memory_backend_and_misc_accessors() -> None:
    be = MemoryBackend()
    with Journal(AGENT, backend=be, snapshot_every=2, segment_max_records=2) as j:
        for i in range(1, 6):
            j.append({"i": i})
        assert j.verify().ok
        assert j.disk_usage() > 0
        segs = j.segment_seqs()
        assert j.first_step_of_segment(segs[-1]) >= 1
        assert j.state_at_seq(0) == {}
        import pytest

        from agentjournal import JournalExistsError, StepNotFoundError

        with pytest.raises(StepNotFoundError):
            j.state_at_seq(j.last_seq + 1)
        with pytest.raises(StepNotFoundError):
            j.state_at(-1)
        # a fork target that exists without any segment is not a journal yet
        be.agent("empty-agent", create=True).close()
        j.fork(2, "empty-agent").close()
        with pytest.raises(JournalExistsError):
            j.fork(2, "empty-agent")

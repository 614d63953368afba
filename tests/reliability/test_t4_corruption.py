"""T4 mid-log corruption.

Seeded random bit flips and byte overwrites anywhere before the last valid record (in any
segment, plain or lz4-sealed, header or record). For every one of them:

* reading the history raises a typed :class:`CorruptRecordError` naming the damaged segment and
  the offset of the damaged line (never a silent skip, never an untyped error);
* :meth:`Journal.verify` reports it (not ok) with the same path and offset;
* the point-in-time option (``valid_prefix=True`` on :class:`Journal` and
  :class:`SegmentReader`) returns exactly the records before the damage and records the error;
* opening for writing never cuts valid records: it refuses with the same error when the damage
  is in the last segment, and leaves every byte alone otherwise;
* no reader ever returns a state that differs from genesis replay at the seq it claims.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lz4.frame
import pytest
from journal_helpers import (
    SLOW_FACTOR,
    canonical,
    figures,
    genesis_states,
    lines_of,
    segment_files,
)

from agentjournal import CorruptRecordError, Journal, JournalError
from agentjournal.journal.reader import SegmentReader

AGENT = "corrupt-agent"
KEY = b"t4-key"


@dataclass
class Layout:
    name: str
    options: dict[str, object]
    steps: int


LAYOUTS = [
    Layout("plain", {"snapshot_every": 5, "segment_max_records": 7}, steps=24),
    Layout("keyed", {"key": KEY, "snapshot_every": 6, "segment_max_records": 5,
                     "compress": False}, steps=20),
    # Old segments sealed (lz4): damage there is a bad frame, caught by its checksum.
    Layout("sealed", {"snapshot_every": 4, "keep_snapshots": 2, "compress_segments": True},
           steps=18),
]


def _state(i: int) -> dict[str, object]:
    return {
        "i": i,
        "msgs": [f"メッセージ {k}" for k in range(i % 5)],
        "tree": {"k/1": {"~x": i * 7, "list": list(range(i % 3))}},
        "big": 2**70 + i,
    }


@dataclass
class Seg:
    path: str
    data: bytes
    sealed: bool
    first_record_index: int
    """Index into the full record list of this segment's first record."""
    plain: bytes = b""
    lines: list = field(default_factory=list)  # type: ignore[type-arg]


@dataclass
class Counter:
    trials: int = 0
    flips: int = 0
    overwrites: int = 0
    detected: int = 0
    benign: int = 0
    in_sealed: int = 0
    in_header: int = 0
    refused_open: int = 0
    prefix_records: int = 0


def _build(root: Path, layout: Layout) -> tuple[list[object], list[Seg]]:
    with Journal(AGENT, root, **layout.options) as j:  # type: ignore[arg-type]
        for i in range(1, layout.steps + 1):
            j.append(_state(i))
        records = list(j.records())
    segs: list[Seg] = []
    idx = 0
    for path in segment_files(root, AGENT):
        data = Path(path).read_bytes()
        sealed = path.endswith(".lz4")
        plain = lz4.frame.decompress(data) if sealed else data
        lines = lines_of(plain)
        segs.append(Seg(path, data, sealed, idx, plain, lines))
        idx += sum(1 for ln in lines if ln.kind != "header")
    assert idx == len(records)
    return records, segs


def _expected(segs: list[Seg], si: int, offset: int) -> tuple[int, int]:
    """(number of records before the damage, offset of the damaged line) for damage at
    ``offset`` of segment ``si`` (a sealed segment is lost as a whole: its frame is bad)."""
    seg = segs[si]
    if seg.sealed:
        return seg.first_record_index, 0
    n = seg.first_record_index
    for ln in seg.lines:
        if ln.start <= offset < ln.end:
            return n, ln.start
        if ln.kind != "header":
            n += 1
    raise AssertionError("offset outside the segment")


def _run(tmp_path: Path, layout: Layout, trials: int, seed: int) -> Counter:
    root = tmp_path / layout.name
    records, segs = _build(root, layout)
    truth = genesis_states(records)
    last = segs[-1]
    assert not last.sealed and len(last.lines) >= 3
    limit_last = last.lines[-1].start  # damage strictly before the last valid record
    key = layout.options.get("key")
    weights = [len(s.data) if s is not last else limit_last for s in segs]
    rng = random.Random(seed)
    c = Counter()
    for _ in range(trials):
        si = rng.choices(range(len(segs)), weights=weights)[0]
        seg = segs[si]
        hi = limit_last if seg is last else len(seg.data)
        off = rng.randrange(hi)
        damaged = bytearray(seg.data)
        if rng.random() < 0.5:
            damaged[off] ^= 1 << rng.randrange(8)
            c.flips += 1
        else:
            damaged[off] = rng.choice([b for b in range(256) if b != seg.data[off]])
            c.overwrites += 1
        c.trials += 1
        if seg.sealed:
            try:
                same = lz4.frame.decompress(bytes(damaged)) == seg.plain
            except RuntimeError:
                same = False
            if same:
                # A flip in a frame field that does not change the content (e.g. block size
                # bits): nothing was damaged, nothing may be reported lost.
                c.benign += 1
                _check_intact(root, key, records)
                continue
            c.in_sealed += 1
        n_before, at = _expected(segs, si, off)
        if not seg.sealed and at == 0:
            c.in_header += 1
        Path(seg.path).write_bytes(bytes(damaged))
        try:
            _check_damaged(root, layout, key, records, truth, seg, si == len(segs) - 1,
                           n_before, at, c)
        finally:
            Path(seg.path).write_bytes(seg.data)
        c.detected += 1
    _check_intact(root, key, records)
    return c


def _check_intact(root: Path, key: object, records: list[object]) -> None:
    with Journal(AGENT, root, readonly=True, key=key) as j:  # type: ignore[arg-type]
        assert [r.h for r in j.records()] == [r.h for r in records]  # type: ignore[attr-defined]


def _check_damaged(root: Path, layout: Layout, key: object, records: list[object],
                   truth: dict[int, object], seg: Seg, in_last: bool, n_before: int, at: int,
                   c: Counter) -> None:
    where = seg.path
    # 1. A full read raises a typed error naming segment and offset.
    with Journal(AGENT, root, readonly=True, key=key) as j:  # type: ignore[arg-type]
        got = []
        with pytest.raises(CorruptRecordError) as ei:
            for r in j.records():
                got.append(r)
        err = ei.value
        assert err.path == where, (str(err), where)
        assert err.offset == at, (str(err), at)
        assert where in str(err) and f"byte {at}" in str(err)
        # Everything yielded before the error is genuine.
        assert [r.h for r in got] == [r.h for r in records[: len(got)]]  # type: ignore[attr-defined]
        assert len(got) <= n_before
        # 2. verify() reports it with path and offset.
        rep = j.verify()
        assert not rep.ok
        assert any(p.path == where and p.offset == at for p in rep.problems), rep.problems
        # 3. Whatever resume returns is the true state at the seq it claims.
        try:
            res = j.resume()
        except CorruptRecordError as e:
            assert e.path is not None
        else:
            assert canonical(res.state) == canonical(truth[res.seq])

    # 4. Point in time: exactly the prefix before the damage.
    with Journal(AGENT, root, readonly=True, key=key,  # type: ignore[arg-type]
                 valid_prefix=True) as j:
        prefix = list(j.records())
        assert [r.h for r in prefix] == [r.h for r in records[:n_before]]  # type: ignore[attr-defined]
        assert j.reader.damage is not None and j.reader.damage.path == where
        assert j.reader.damage.offset == at
        rd = SegmentReader(j.store, key, valid_prefix=True)  # type: ignore[arg-type]
        assert [r.seq for r in rd.records()] == [r.seq for r in prefix]  # type: ignore[attr-defined]
        assert rd.damage is not None and rd.damage.path == where
        if prefix:
            assert canonical(j.state_at_seq(prefix[-1].seq)) == canonical(truth[prefix[-1].seq])
    c.prefix_records += n_before

    # 5. Opening for writing never cuts valid records and never repairs silently.
    before = {p: Path(p).read_bytes() for p in segment_files(root, AGENT)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            j = Journal(AGENT, root, **layout.options)  # type: ignore[arg-type]
        except JournalError as e:
            assert in_last, f"refused to open for damage outside the last segment: {e}"
            assert isinstance(e, CorruptRecordError) and e.path == where and e.offset == at
            c.refused_open += 1
        else:
            assert not in_last, "opened a journal whose last segment is corrupt mid-log"
            assert j.last_seq == records[-1].seq  # type: ignore[attr-defined]
            j.close()
    after = {p: Path(p).read_bytes() for p in segment_files(root, AGENT)}
    assert after == before
    assert not (root / AGENT / "quarantine").exists()


def _report(layout: Layout, c: Counter) -> None:
    figures("T4", layout=layout.name, trials=c.trials, flips=c.flips, overwrites=c.overwrites,
            detected=c.detected, benign=c.benign, in_sealed=c.in_sealed,
            in_header=c.in_header, refused_open=c.refused_open,
            prefix_records_verified=c.prefix_records, undetected=0)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_t4_mid_log_corruption(tmp_path: Path, layout: Layout) -> None:
    c = _run(tmp_path, layout, trials=400, seed=4)
    assert c.detected + c.benign == c.trials >= 400
    _report(layout, c)


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_t4_mid_log_corruption_slow(tmp_path: Path, layout: Layout) -> None:
    c = _run(tmp_path, layout, trials=400 * SLOW_FACTOR, seed=44)
    _report(layout, c)


def test_t4_newline_merging_the_last_two_records(tmp_path: Path) -> None:
    """The newline before the last record, damaged: one line holding a valid record after
    garbage is mid-log corruption, not a torn tail, so the last record is never cut off."""
    layout = LAYOUTS[0]
    root = tmp_path / "nl"
    records, segs = _build(root, layout)
    last = segs[-1]
    nl = last.lines[-1].start - 1
    for byte in (ord(" "), ord("x"), 0, ord("}")):
        damaged = bytearray(last.data)
        damaged[nl] = byte
        Path(last.path).write_bytes(bytes(damaged))
        n_before, at = _expected(segs, len(segs) - 1, nl)
        _check_damaged(root, layout, None, records, genesis_states(records), last, True,
                       n_before, at, Counter())
    Path(last.path).write_bytes(last.data)


def test_t4_newline_ending_an_earlier_segment(tmp_path: Path) -> None:
    """The final newline of a segment that is not the last one, damaged: its last line is
    incomplete, which is corruption there (not a "missing segment" further on)."""
    layout = LAYOUTS[0]
    root = tmp_path / "nl2"
    records, segs = _build(root, layout)
    truth = genesis_states(records)
    for si in range(len(segs) - 1):
        seg = segs[si]
        end = len(seg.data) - 1
        for byte in (ord(" "), 0):
            damaged = bytearray(seg.data)
            damaged[end] = byte
            Path(seg.path).write_bytes(bytes(damaged))
            n_before, at = _expected(segs, si, end)
            _check_damaged(root, layout, None, records, truth, seg, False, n_before, at,
                           Counter())
            Path(seg.path).write_bytes(seg.data)
        # and the segment simply cut short by one byte (its newline lost)
        Path(seg.path).write_bytes(seg.data[:-1])
        n_before, at = _expected(segs, si, end)
        _check_damaged(root, layout, None, records, truth, seg, False, n_before, at, Counter())
        Path(seg.path).write_bytes(seg.data)


def test_t4_os_path_sanity(tmp_path: Path) -> None:
    # The segment paths the tests compare against are the ones the engine reports.
    records, segs = _build(tmp_path / "p", LAYOUTS[0])
    with Journal(AGENT, tmp_path / "p", readonly=True) as j:
        assert j.store.location("segment", 1) == os.fspath(segs[0].path)

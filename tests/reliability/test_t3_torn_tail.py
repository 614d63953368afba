"""T3 torn tail, exhaustive.

The last segment is cut at every byte offset inside its last two records, or has zeros or random
garbage appended (also after a cut). For every case:

* a read-only reader returns exactly the complete records before the tear (and resume equals
  genesis replay of them), and says so (:class:`TornTailWarning`, naming segment and offset);
* opening for writing moves the torn bytes to ``quarantine/``, truncates the segment to the end
  of the last complete record, warns (:class:`RecoveryWarning`) naming segment and offset, and
  records the cut in the chain: a ``cut`` record at ``last + 1`` with the segment, offset, size,
  digest and quarantine name of the bytes;
* the next append gets the seq after that and a full verify passes, also after reopening.
"""

from __future__ import annotations

import hashlib
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from journal_helpers import (
    SLOW_FACTOR,
    canonical,
    copy_store,
    figures,
    lines_of,
    replay_genesis,
    segment_files,
)

from agentjournal import Cut, Journal, RecoveryWarning, TornTailWarning, _codec
from agentjournal.journal.reader import SegmentReader

AGENT = "torn-agent"
KEY = b"t3-secret-key"


@dataclass
class Layout:
    name: str
    options: dict[str, object]
    steps: int
    tear_records: int = 2
    """How many of the last records may be torn (realistic: never a durable anchor)."""


LAYOUTS = [
    # Several segments, snapshots every 4 steps; the last segment holds 3+ records.
    Layout("plain", {"snapshot_every": 4, "segment_max_records": 6}, steps=11),
    # Keyed; old segments sealed with lz4; the last segment is [snapshot mark, step], so a tear
    # inside the mark leaves a header-only segment whose predecessor is sealed.
    Layout("keyed-sealed", {"key": KEY, "snapshot_every": 3, "keep_snapshots": 1,
                            "compress_segments": True}, steps=7),
    # Pruning retention: the anchor is durable before segments go, so only the steps after it
    # can be torn.
    Layout("pruned", {"snapshot_every": 3, "keep_snapshots": 1, "prune": True,
                      "compress": False}, steps=8),
]


def _state(i: int) -> dict[str, object]:
    # Small deltas keep the exhaustive sweep fast: each step changes a few fields.
    return {
        "step": i,
        "名前": "エージェント" + "é" * (i % 3),
        "last": {"role": "user", "content": f"msg {i} ✓"},
        "nested": {"a/b": {"c~d": [i, {"deep": "x" * (i % 4)}]}},
    }


def _build(root: Path, layout: Layout) -> None:
    with Journal(AGENT, root, **layout.options) as j:  # type: ignore[arg-type]
        for i in range(1, layout.steps + 1):
            j.append(_state(i))


def _open_kwargs(layout: Layout) -> dict[str, object]:
    return {"key": layout.options.get("key")}


def _read_all(root: Path, layout: Layout) -> list[object]:
    with Journal(AGENT, root, readonly=True, **_open_kwargs(layout)) as j:  # type: ignore[arg-type]
        return list(j.records())


class Counter:
    def __init__(self) -> None:
        self.cases = 0
        self.torn_bytes = 0
        self.quarantined = 0
        self.records_verified = 0
        self.segments_dropped = 0


def _check_case(base: Path, work: Path, layout: Layout, seg_path: str, data: bytes,
                full_records: list[object], prior_count: int, c: Counter) -> None:
    """Write ``data`` as the last segment of a copy of ``base`` and check everything."""
    copy_store(base, work)
    rel = os.path.relpath(seg_path, base)
    target = work / rel
    target.write_bytes(data)
    intact = Path(seg_path).read_bytes()
    # The lines of the segment that survive intact before the tear.
    valid_end = 0
    kept_in_seg = 0
    for ln in lines_of(intact):
        if ln.end > len(data) or data[ln.start : ln.end] != intact[ln.start : ln.end]:
            break
        valid_end = ln.end
        if ln.kind != "header":
            kept_in_seg += 1
    expected = full_records[: prior_count + kept_in_seg]
    # Every step recorded the whole state _state(step): the oracle needs no replay at all.
    exp_state = _state(expected[-1].step)  # type: ignore[attr-defined]
    torn = len(data) - valid_end

    # 1. Readers return exactly the complete records before the tear, and say they stopped.
    kw = _open_kwargs(layout)
    with warnings.catch_warnings(record=True) as read_warnings:
        warnings.simplefilter("always")
        with Journal(AGENT, work, readonly=True, **kw) as j:  # type: ignore[arg-type]
            got = list(j.records())
            assert [(r.seq, r.h) for r in got] == [(r.seq, r.h) for r in expected]
            assert canonical(j.resume().state) == canonical(exp_state)
            rep = j.verify()
            assert rep.ok == (torn == 0)
            if torn:
                assert any(p.kind == "torn_tail" and p.path == str(target) for p in rep.problems)
            with warnings.catch_warnings():
                # A bare reader knows of no writer: it warns only about a tail that fails its
                # checks (counted above for the journal's own reads).
                warnings.simplefilter("ignore", TornTailWarning)
                rd = SegmentReader(j.store, layout.options.get("key"))  # type: ignore[arg-type]
                assert [r.seq for r in rd.records()] == [r.seq for r in expected]
    tw = [str(w.message) for w in read_warnings if issubclass(w.category, TornTailWarning)]
    assert len(tw) == len(read_warnings), [str(w.message) for w in read_warnings]
    if torn:  # once per journal opened, however many reads pass the tail
        assert len(tw) == 1 and str(target) in tw[0] and f"at byte {valid_end} " in tw[0], tw
    else:
        assert not tw
    c.records_verified += len(got)

    # 2. Opening for writing quarantines, truncates and warns with segment and offset.
    qdir = work / AGENT / "quarantine"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        j = Journal(AGENT, work, **layout.options)  # type: ignore[arg-type]
    try:
        rw = [w for w in caught if issubclass(w.category, RecoveryWarning)]
        assert len(rw) == len(caught), [str(w.message) for w in caught]
        if torn:
            assert len(rw) == 1
            msg = str(rw[0].message)
            assert str(target) in msg and f"byte {valid_end}" in msg, msg
            q = sorted(qdir.iterdir())
            assert len(q) == 1
            assert q[0].read_bytes() == data[valid_end:]
            assert q[0].name.startswith(target.name + f".{valid_end}.")
            assert oct(q[0].stat().st_mode & 0o777) == oct(0o600)
            c.quarantined += 1
            c.torn_bytes += torn
        else:
            assert not rw
            assert not qdir.exists() or not list(qdir.iterdir())
        last = expected[-1]
        if torn:
            # The cut is recorded in the chain, first record of a new segment (format 3).
            cut = list(j.records(last.seq + 1))
            assert len(cut) == 1 and isinstance(cut[0], Cut), cut
            assert (cut[0].seq, cut[0].step, cut[0].prev) == (last.seq + 1, last.step, last.h)
            assert (cut[0].reason, cut[0].segment, cut[0].offset, cut[0].size) == (
                "torn_tail", int(target.name[:20]), valid_end, torn)
            assert cut[0].digest == hashlib.blake2b(data[valid_end:], digest_size=32).hexdigest()
            assert cut[0].quarantine == q[0].name and cut[0].cut_seq == last.seq + 1
            assert segment_files(work, AGENT)[-1].endswith(f"{last.seq + 1:020d}.jsonl")
            assert j.verify().cuts[0].kept
        if kept_in_seg == 0:
            # A header-only segment is dropped (when bytes were cut, the record of the cut
            # starts a segment of the same first seq again).
            if torn:
                assert target.exists() and len(lines_of(target.read_bytes())) == 2
            else:
                assert not target.exists()
            c.segments_dropped += 1
        else:
            assert target.stat().st_size == valid_end
        recorded = 1 if torn else 0
        assert j.last_seq == last.seq + recorded
        assert canonical(j.resume().state) == canonical(exp_state)
        # 3. The next append and a full verify pass.
        nxt = dict(exp_state)
        nxt["after_recovery"] = "✓ " + str(len(data))
        app = j.append(nxt)
        assert app.seq == last.seq + recorded + 1
        rep = j.verify()
        assert rep.ok, rep.problems
        assert rep.last_seq >= app.seq
        assert canonical(j.resume().state) == canonical(nxt)
    finally:
        j.close()
    # 4. Reopening finds nothing to repair; replay from genesis matches.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal(AGENT, work, **layout.options) as j2:  # type: ignore[arg-type]
            recs = list(j2.records())
            assert [r.seq for r in recs] == list(range(recs[0].seq, recs[-1].seq + 1))
            assert recs[-1].seq >= app.seq
            if recs[0].seq == 1:
                assert canonical(replay_genesis(recs)) == canonical(j2.resume().state)
            assert canonical(j2.resume().state) == canonical(nxt)
            assert j2.verify().ok
    c.cases += 1


def _run(tmp_path: Path, layout: Layout, garbage_trials: int, seed: int) -> Counter:
    base = tmp_path / "base"
    _build(base, layout)
    full = _read_all(base, layout)
    seg_path = segment_files(base, AGENT)[-1]
    seg = Path(seg_path).read_bytes()
    lines = lines_of(seg)
    records_in_seg = [ln for ln in lines if ln.kind != "header"]
    assert len(records_in_seg) >= 2, "layout must end with two records in the last segment"
    prior = len(full) - len(records_in_seg)
    tearable = records_in_seg[-layout.tear_records:]
    assert all(ln.kind != "anchor" for ln in tearable)
    c = Counter()
    n = 0

    def case(data: bytes) -> None:
        nonlocal n
        n += 1
        _check_case(base, tmp_path / f"w{n}", layout, seg_path, data, full, prior, c)
        # Keep the tmp dir small: each case's copy is removed once checked.
        import shutil

        shutil.rmtree(tmp_path / f"w{n}")

    # Every byte offset inside the last two records (the whole file is the untorn case).
    for cut in range(tearable[0].start, len(seg)):
        case(seg[:cut])
    rng = random.Random(seed)
    # Zeros and garbage appended to the intact segment and to torn ones.
    for zeros in (1, 2, 64, 4096):
        case(seg + b"\0" * zeros)
    for _ in range(garbage_trials):
        cut = rng.choice([len(seg), rng.randrange(tearable[0].start, len(seg))])
        size = rng.choice([1, 3, 17, 200, 1500])
        junk = bytes(rng.randrange(256) for _ in range(size))
        if rng.random() < 0.3:
            junk += b"\n"  # a complete garbage line
        if rng.random() < 0.2:
            junk = b'{"kind":"step","seq":' + junk  # looks like the start of a record
        case(seg[:cut] + junk)
    return c


def _report(name: str, layout: Layout, c: Counter) -> None:
    figures("T3", layout=layout.name, cases=c.cases, quarantined=c.quarantined,
            torn_bytes=c.torn_bytes, segments_dropped=c.segments_dropped,
            records_verified=c.records_verified, lost=0)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_t3_torn_tail(tmp_path: Path, layout: Layout) -> None:
    c = _run(tmp_path, layout, garbage_trials=40, seed=3)
    _report("T3", layout, c)


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_t3_torn_tail_slow(tmp_path: Path, layout: Layout) -> None:
    c = _run(tmp_path, layout, garbage_trials=40 * SLOW_FACTOR, seed=33)
    _report("T3", layout, c)


def test_t3_torn_header_of_new_segment(tmp_path: Path) -> None:
    """A crash while rolling leaves part of a header: readers say so, recovery drops the
    segment (quarantining and recording the part of a header it cuts)."""
    base = tmp_path / "base"
    with Journal(AGENT, base, snapshot_every=None, segment_max_records=3) as j:
        for i in range(1, 4):
            j.append(_state(i))
    full = _read_all(base, LAYOUTS[0])
    segs = segment_files(base, AGENT)
    line = Path(segs[0]).read_bytes().split(b"\n")[0]
    parts = _codec.split_line(line)
    assert parts is not None
    # The header a writer would write for seq 4 (sealed: a complete header that failed its
    # hash would be tampering, not a crash), cut at every byte.
    body = parts[0].replace(b'"first_seq":1', b'"first_seq":4').replace(b'"first_step":1',
                                                                       b'"first_step":4')
    body = body.replace(b'"prev":""', b'"prev":"' + full[-1].h.encode() + b'"')
    hdr = _codec.seal_line(body, None)[0]
    new = Path(segs[0]).parent / "00000000000000000004.jsonl"
    dropped = 0
    for cut in range(0, len(hdr) + 1):
        work = tmp_path / f"h{cut}"
        copy_store(base, work)
        (work / AGENT / "segments" / new.name).write_bytes(hdr[:cut])
        part = 0 < cut < len(hdr)  # bytes that are not a whole header (none, or a header)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Journal(AGENT, work, readonly=True) as r:
                assert [x.seq for x in r.records()] == [x.seq for x in full]
        assert [w.category for w in caught] == ([TornTailWarning] if part else [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Journal(AGENT, work) as j:
                assert all(issubclass(w.category, RecoveryWarning) for w in caught)
                assert j.last_seq == 3 + part
                if part:  # the record of the cut starts segment 4 anew
                    [rec] = j.records(4)
                    assert isinstance(rec, Cut) and (rec.offset, rec.size) == (0, cut)
                else:
                    assert not (work / AGENT / "segments" / new.name).exists()
                j.append({"fine": True})
                assert j.verify().ok
        dropped += 1
    figures("T3", layout="torn-header", cases=dropped, lost=0)

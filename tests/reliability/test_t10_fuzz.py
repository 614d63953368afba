"""T10 fuzz the readers: segment, snapshot and header parsing, and lz4 decompression.

Every byte read from disk is untrusted. Inputs: mutated valid files (flips, overwrites,
insertions, deletions, truncations, duplicated ranges), the same with their hashes recomputed
(a forger without a key gets past the hash check and reaches the decoders), arbitrary JSON
sealed as records, lz4 bombs, deep nesting, invalid UTF-8 and huge lengths.

The documented errors, and nothing else:

==============================  ===========================================================
``_codec.decompress``           ``ValueError`` (malformed frame, checksum, truncated,
                                trailing bytes) or ``LimitExceededError`` (over the limit)
``journal.reader.scan``         never raises; ``Scan.error`` is a ``CorruptRecordError``
                                (``TamperedError`` for hash/chain failures)
``snapshot.decode_snapshot``    ``CorruptSnapshotError`` or ``LimitExceededError``
``Journal`` reads (``records``,  ``CorruptRecordError`` (incl. ``TamperedError``),
``resume``, ``state_at``,       ``LimitExceededError``, ``InvalidPatchError`` (forged ops that
``history``, ...)               do not apply), ``StepNotFoundError``/``StepPrunedError`` --
                                all ``JournalError`` subclasses; skipped snapshots warn with
                                ``SnapshotSkippedWarning``
``Journal.verify``              never raises for damage: it reports problems
==============================  ===========================================================

Memory is bounded (decompression is capped: tracemalloc peak checked) and so is time (every
test has a timeout; the slowest input is reported in the figures line).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4.frame
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_helpers import SLOW_FACTOR, figures, segment_files

from agentjournal import (
    CorruptRecordError,
    CorruptSnapshotError,
    Journal,
    JournalError,
    LimitExceededError,
    MemoryBackend,
    SnapshotSkippedWarning,
    StepNotFoundError,
    _codec,
)
from agentjournal.backends import filesystem as fs_backend
from agentjournal.journal import reader as reader_mod
from agentjournal.journal.reader import TornTailWarning, scan
from agentjournal.snapshot.store import decode_snapshot

AGENT = "fuzz-agent"
EXAMPLES = 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(SETTINGS, max_examples=EXAMPLES * SLOW_FACTOR)

STATS: dict[str, dict[str, float]] = {}


def _count(test: str, outcome: str, elapsed: float) -> None:
    s = STATS.setdefault(test, {"inputs": 0, "max_ms": 0.0})
    s["inputs"] += 1
    s[outcome] = s.get(outcome, 0) + 1
    s["max_ms"] = max(s["max_ms"], round(elapsed * 1000, 2))


def _report(test: str) -> None:
    s = STATS.pop(test, {"inputs": 0})
    figures("T10", target=test, **{k: (int(v) if k != "max_ms" else v) for k, v in s.items()},
            untyped=0)


# --------------------------------------------------------------------------- valid inputs


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [{"role": "user", "content": f"héllo {k} ✓"} for k in range(i % 4)],
            "tree": {"a/b": {"~c": [i, None, True, 1.5, 2**65]}}}


def _make_store(root: Path) -> None:
    with Journal(AGENT, root, snapshot_every=3, segment_max_records=4) as j:
        for i in range(1, 9):
            j.append(_state(i))


_BASE = Path(tempfile.mkdtemp(prefix="aj-t10-base-"))
_make_store(_BASE / "store")
SEGMENTS = [Path(p).read_bytes() for p in segment_files(_BASE / "store", AGENT)]
SEG_FIRSTS = [int(Path(p).name.split(".")[0]) for p in segment_files(_BASE / "store", AGENT)]
_SNAP_DIR = _BASE / "store" / AGENT / "snapshots"
SNAP_NAME = sorted(os.listdir(_SNAP_DIR))[0]
SNAPSHOT_LZ4 = (_SNAP_DIR / SNAP_NAME).read_bytes()
SNAPSHOT_PLAIN = lz4.frame.decompress(SNAPSHOT_LZ4)


# --------------------------------------------------------------------------- mutations


def mutate(data: bytes, rnd: random.Random, n: int) -> bytes:
    """Apply ``n`` random structural mutations."""
    b = bytearray(data)
    for _ in range(n):
        if not b:
            b += bytes([rnd.randrange(256)])
            continue
        i = rnd.randrange(len(b))
        what = rnd.randrange(8)
        if what == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif what == 1:
            b[i] = rnd.randrange(256)
        elif what == 2:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 20)))
        elif what == 3:
            del b[i : i + rnd.randrange(1, 40)]
        elif what == 4:
            del b[i:]
        elif what == 5:
            j = rnd.randrange(i, min(len(b), i + 200) + 1)
            b[i:i] = b[i:j]  # duplicate a range
        elif what == 6:
            b[i:i] = rnd.choice([b"\n", b'"', b"{", b"[" * 50, b"\xff\xfe", b"\\u0000",
                                 b'"h":"', b"9" * 30, b"-1e999"])
        else:
            b[i] = rnd.choice(b'\n{}[]":,0\\')
    return bytes(b)


def reseal(data: bytes, key: bytes | None = None) -> bytes:
    """Recompute the hash of every line that still ends like a sealed line (a keyless forger)."""
    out = []
    for line in data.split(b"\n"):
        parts = _codec.split_line(line)
        if parts is not None:
            line = _codec.seal_line(parts[0], key)[0][:-1]
        out.append(line)
    return b"\n".join(out)


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def _typed(fn: Callable[[], Any], allowed: tuple[type[BaseException], ...], test: str) -> Any:
    t0 = time.perf_counter()
    try:
        result = fn()
    except allowed as e:
        _count(test, type(e).__name__, time.perf_counter() - t0)
        return e
    _count(test, "ok", time.perf_counter() - t0)
    return result


# --------------------------------------------------------------------------- lz4


BOMB_CONTENT = 64 << 20


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = _codec.compress(b"\0" * BOMB_CONTENT)
    assert len(data) < BOMB_CONTENT // 100  # a small frame ...
    return data


def test_t10_decompress_bomb_is_capped(bomb: bytes) -> None:
    """An lz4 bomb (~250 KB expanding to 64 MiB) against a 1 MiB limit: a typed error, memory
    bounded by the limit, not by the content size."""
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError):
            _codec.decompress(bomb, limit, what="bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit + len(bomb), peak
    # ... the same frame is fine under a limit that fits it, and exactly at the limit.
    assert len(_codec.decompress(bomb, BOMB_CONTENT)) == BOMB_CONTENT
    with pytest.raises(LimitExceededError):
        _codec.decompress(bomb, BOMB_CONTENT - 1)
    figures("T10", target="lz4-bomb", frame_bytes=len(bomb), content_bytes=BOMB_CONTENT,
            limit=limit, peak_bytes=peak, untyped=0)


@pytest.mark.parametrize("backend", ["filesystem", "memory"])
def test_t10_header_of_a_sealed_bomb_is_read_in_bounded_memory(tmp_path: Path,
                                                               backend: str) -> None:
    """Issue 10 item 22: the header lookup of time travel inflated a whole sealed segment (a
    1.3 MB file of 300 MB content peaked at 650 MB for one header). It inflates the header."""
    from agentjournal import MemoryBackend

    mem = MemoryBackend() if backend == "memory" else None
    with Journal("bomb", tmp_path, backend=mem, snapshot_every=3, segment_max_records=3,
                 compress_segments=True, keep_snapshots=2) as j:
        for i in range(12):
            j.append({"i": i})
        store = j.store
        assert store.list_segments()[0] == (1, True)
        header = store.read_segment(1).split(b"\n")[0] + b"\n"
        frame = _codec.compress(header + b"A" * BOMB_CONTENT)
        if mem is not None:
            mem._agents["bomb"].sealed[1] = frame  # noqa: SLF001 - planting is the test
        else:
            (tmp_path / "bomb" / "segments" / f"{1:020d}.jsonl.lz4").write_bytes(frame)
        tracemalloc.start()
        try:
            assert j.first_step_of_segment(1) == 1
            assert store.read_segment(1, 0, 4096) == (header + b"A" * 4096)[:4096]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20, peak
    figures("T10", target=f"sealed-header-bomb-{backend}", frame_bytes=len(frame),
            content_bytes=len(header) + BOMB_CONTENT, peak_bytes=peak, untyped=0)


def test_t10_decompress_lying_size_header() -> None:
    """A frame whose header claims a huge content size is decoded by what it holds."""
    small = lz4.frame.compress(b"x" * 100, store_size=False, content_checksum=True)
    lying = lz4.frame.compress(b"x" * 100, store_size=True, content_checksum=True)
    assert _codec.decompress(small, 1000) == b"x" * 100
    # Claim a content size of ~2**62: whatever lz4 makes of it, memory stays within the limit.
    limit = 1 << 20
    for byte in (13, 12, 10):
        b = bytearray(lying)
        b[byte] ^= 0x40
        tracemalloc.start()
        try:
            with pytest.raises(ValueError):
                _codec.decompress(bytes(b), limit)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * limit, peak


@pytest.mark.parametrize("data", [b"", b"not lz4", _codec.LZ4_MAGIC, _codec.LZ4_MAGIC + b"\0" * 3,
                                  _codec.compress(b"abc")[:-1], _codec.compress(b"abc") + b"x",
                                  _codec.compress(b"abc") * 2])
def test_t10_decompress_malformed(data: bytes) -> None:
    with pytest.raises(ValueError) as ei:
        _codec.decompress(data, 1 << 20)
    assert type(ei.value) in (ValueError, LimitExceededError)


def _fuzz_decompress(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    valid = _codec.compress(SEGMENTS[0])
    r = _typed(lambda: _codec.decompress(mutate(valid, rnd, n), 1 << 16, what="f"),
               (ValueError,), "decompress")
    if isinstance(r, ValueError):
        assert type(r) in (ValueError, LimitExceededError)


@SETTINGS
@given(st.integers(0, 2**32), st.integers(1, 4))
def test_t10_fuzz_decompress(seed: int, n: int) -> None:
    _fuzz_decompress(seed, n)


def test_t10_fuzz_decompress_report() -> None:
    _report("decompress")


# --------------------------------------------------------------------------- segments


def _scan(data: bytes, first: int, key: bytes | None = None) -> Any:
    sc = scan(data, first_seq=first, agent_id=AGENT, key=key, where="seg")
    if sc.error is not None:
        assert isinstance(sc.error, CorruptRecordError)
        assert sc.error.path == "seg" and sc.error.offset is not None
        assert 0 <= sc.error.offset <= len(data)
    assert sc.valid_end <= len(data)
    assert [r.seq for r in sc.records] == list(range(first, first + len(sc.records)))
    return sc


def _fuzz_segment(seed: int, n: int, forge: bool) -> None:
    rnd = random.Random(seed)
    k = rnd.randrange(len(SEGMENTS))
    data = mutate(SEGMENTS[k], rnd, n)
    if forge:
        data = reseal(data)
    t0 = time.perf_counter()
    sc = _scan(data, SEG_FIRSTS[k])
    _count("segment-forged" if forge else "segment", "error" if sc.error else "ok",
           time.perf_counter() - t0)
    if not forge and sc.error is None:
        # Without a forger only an unchanged prefix of lines can pass.
        assert SEGMENTS[k].startswith(data[: sc.valid_end])


@SETTINGS
@given(st.integers(0, 2**32), st.integers(1, 6), st.booleans())
def test_t10_fuzz_segment(seed: int, n: int, forge: bool) -> None:
    _fuzz_segment(seed, n, forge)


@pytest.mark.slow
@SLOW
@given(st.integers(0, 2**32), st.integers(1, 6), st.booleans())
def test_t10_fuzz_segment_slow(seed: int, n: int, forge: bool) -> None:
    _fuzz_segment(seed, n, forge)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
kinds = st.sampled_from(["header", "step", "snapshot", "fork", "anchor", "bogus"])


@SETTINGS
@given(st.lists(st.tuples(kinds, st.dictionaries(
    st.sampled_from(["seq", "ts", "step", "prev", "ops", "at", "digest", "format", "agent_id",
                     "first_seq", "first_step", "keyed", "parent", "parent_seq", "removed",
                     "first_prev", "extra"]), json_values, max_size=8)), max_size=5),
       st.booleans())
def test_t10_fuzz_sealed_json_lines(lines: list[tuple[str, dict[str, Any]]], header: bool) -> None:
    """Arbitrary JSON objects with valid hashes: the decoder, not the hash, must stop them."""
    body = []
    if header:
        body.append(SEGMENTS[0].split(b"\n")[0] + b"\n")
    for kind, fields in lines:
        raw = msgspec.json.encode({"kind": kind, **fields})
        body.append(_codec.seal_line(raw, None)[0])
    data = b"".join(body)
    t0 = time.perf_counter()
    sc = _scan(data, 1)
    _count("segment-json", "error" if sc.error else "ok", time.perf_counter() - t0)


def test_t10_segment_hostile_lines() -> None:
    hdr = SEGMENTS[0].split(b"\n")[0] + b"\n"
    step = b'{"kind":"step","seq":1,"ts":1.0,"step":1,"prev":"","ops":'
    cases = {
        "deep-ops": step + nested(100_000) + b"}",
        "deep-object": step + b"[" + nested(60_000, b'{"a":', b"}")[:-60_000] + b"1"
        + b"}" * 60_000 + b"]}",
        "deep-unknown-field": step + b'[],"x":' + nested(100_000) + b"}",
        "bad-utf8": step + b'[{"op":"add","path":"/\xff\xfe","value":1}]}',
        "huge-int": step.replace(b'"seq":1', b'"seq":' + b"9" * 5000) + b"[]}",
        "huge-float": step.replace(b'"ts":1.0', b'"ts":1e999') + b"[]}",
        "nul": step + b'[{"op":"add","path":"/\\u0000","value":"\x00"}]}',
        "long-string": step + b'[{"op":"add","path":"/a","value":"' + b"x" * (1 << 20)
        + b'"}]}',
    }
    for raw in cases.values():
        line = _codec.seal_line(raw, None)[0]
        for data in (hdr + line, line, hdr + line[:-1], hdr + line * 3):
            sc = _scan(data, 1)
            # a forged record may decode (it is hash-valid): then it must be a proper record
            for rec in sc.records:
                assert isinstance(rec.seq, int)
        # the header itself deeply nested, forged
        bad_hdr = _codec.seal_line(hdr[:-3].rsplit(b',"h":', 1)[0] + b',"x":' + nested(100_000)
                                   + b"}", None)[0]
        _scan(bad_hdr + line, 1)
    figures("T10", target="segment-hostile", inputs=len(cases) * 5, untyped=0)


def test_t10_segment_line_over_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "MAX_RECORD_BYTES", 4096)
    hdr = SEGMENTS[0].split(b"\n")[0] + b"\n"
    big = _codec.seal_line(b'{"kind":"step","seq":1,"ts":1.0,"step":1,"prev":"","ops":[{"op":'
                           b'"add","path":"/a","value":"' + b"x" * 10_000 + b'"}]}', None)[0]
    sc = _scan(hdr + big, 1)
    assert sc.error is not None and not sc.records
    sc = _scan(hdr + big[:-1], 1)  # unterminated and over the limit
    assert sc.error is not None and sc.tail


# --------------------------------------------------------------------------- snapshots


SNAP_ERRORS = (CorruptSnapshotError, LimitExceededError)


def _decode_snap(data: bytes, compressed: bool, limit: int = 1 << 20) -> Any:
    return decode_snapshot(data, compressed, where="snap", limit=limit)


def _fuzz_snapshot(seed: int, n: int, compressed: bool, forge: bool) -> None:
    rnd = random.Random(seed)
    plain = mutate(SNAPSHOT_PLAIN, rnd, n)
    if forge:
        # recompute the trailer digest over whatever the first line now is
        nl = plain.find(b"\n")
        body = plain if nl < 0 else plain[:nl]
        plain = body + b'\n{"blake2b":"' + _codec.content_digest(body).encode() + b'"}\n'
    if compressed:
        data = (_codec.compress(plain) if forge or rnd.random() < 0.5
                else mutate(SNAPSHOT_LZ4, rnd, n))
    else:
        data = plain
    test = "snapshot-forged" if forge else "snapshot"
    r = _typed(lambda: _decode_snap(data, compressed), SNAP_ERRORS, test)
    if not isinstance(r, BaseException) and not forge:
        doc, _ = r
        assert doc.seq == 3  # only an intact document passes its checksum


@SETTINGS
@given(st.integers(0, 2**32), st.integers(1, 5), st.booleans(), st.booleans())
def test_t10_fuzz_snapshot(seed: int, n: int, compressed: bool, forge: bool) -> None:
    _fuzz_snapshot(seed, n, compressed, forge)


@pytest.mark.slow
@SLOW
@given(st.integers(0, 2**32), st.integers(1, 5), st.booleans(), st.booleans())
def test_t10_fuzz_snapshot_slow(seed: int, n: int, compressed: bool, forge: bool) -> None:
    _fuzz_snapshot(seed, n, compressed, forge)


def _with_digest(body: bytes, trailer: bytes | None = None) -> bytes:
    if trailer is None:
        trailer = b'{"blake2b":"' + _codec.content_digest(body).encode() + b'"}'
    return body + b"\n" + trailer + b"\n"


def test_t10_snapshot_hostile() -> None:
    body = SNAPSHOT_PLAIN.split(b"\n")[0]
    deep_state = body.rsplit(b',"state":', 1)[0] + b',"state":' + nested(100_000) + b"}"
    cases = {
        "deep-state": _with_digest(deep_state),
        "deep-trailer": _with_digest(body, b'{"blake2b":"x","y":' + nested(100_000) + b"}"),
        "bad-utf8-state": _with_digest(body.replace(b'"i":', b'"\xff\xfe":', 1)),
        "bad-utf8-trailer": _with_digest(body, b'{"blake2b":"\xff"}'),
        "no-newline": body,
        "empty": b"",
        "only-newline": b"\n",
        "trailer-not-object": _with_digest(body, b"[1,2]"),
        "huge-seq": _with_digest(body.replace(b'"seq":3', b'"seq":' + b"9" * 400, 1)),
        "newer-format": _with_digest(re.sub(rb'"format":\d+', b'"format":999', body, count=1)),
        "missing-fields": _with_digest(b'{"format":1}'),
    }
    for plain in cases.values():
        for compressed in (False, True):
            data = _codec.compress(plain) if compressed else plain
            _typed(lambda d=data, c=compressed: _decode_snap(d, c), SNAP_ERRORS,
                   "snapshot-hostile")
    # a big snapshot against a small limit, plain and compressed (a bomb)
    big = _with_digest(body.rsplit(b',"state":', 1)[0] + b',"state":"' + b"x" * (8 << 20)
                       + b'"}')
    with pytest.raises(LimitExceededError):
        _decode_snap(big, False, limit=1 << 20)
    packed = _codec.compress(big)
    del big
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError):
            _decode_snap(packed, True, limit=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    _report("snapshot-hostile")


# --------------------------------------------------------------------------- headers


def _header_of(data: bytes) -> Any:
    """The step index's header read over a planted segment (time travel reads only it)."""
    root = Path(tempfile.mkdtemp(prefix="aj-t10-hdr-"))
    try:
        shutil.copytree(_BASE / "store", root / "s")
        os.chmod(root / "s", 0o700)
        p = segment_files(root / "s", AGENT)[1]
        Path(p).write_bytes(data)
        with Journal(AGENT, root / "s", readonly=True) as j:
            return j.first_step_of_segment(SEG_FIRSTS[1])
    finally:
        shutil.rmtree(root)


def test_t10_header_hostile() -> None:
    hdr = SEGMENTS[1].split(b"\n")[0]
    cases = [
        hdr[:-1] + b',"x":' + nested(100_000) + b"}",
        hdr.replace(b'"agent_id":"', b'"agent_id":"\xff', 1),
        b"",
        b"\n",
        b"garbage",
        hdr.replace(b'"first_step":', b'"first_step":"', 1),
        hdr.replace(b'"first_step":4', b'"first_step":' + b"9" * 1000, 1),
    ]
    for data in cases:
        _typed(lambda d=data: _header_of(d + b"\n"), (CorruptRecordError,), "header")
    _report("header")


@SETTINGS
@given(st.integers(0, 2**32), st.integers(1, 4))
def test_t10_fuzz_header(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    hdr = SEGMENTS[1].split(b"\n")[0] + b"\n"
    data = mutate(hdr, rnd, n) + SEGMENTS[1][len(hdr):]
    _typed(lambda: _header_of(data), (CorruptRecordError,), "header-fuzz")


# --------------------------------------------------------------------------- whole journals


JOURNAL_ERRORS = (JournalError,)


def _exercise(j: Journal, test: str) -> None:
    """Every read path of a journal, each allowed only typed errors."""
    _typed(lambda: list(j.records()), JOURNAL_ERRORS, test)
    _typed(lambda: j.resume(), JOURNAL_ERRORS, test)
    for step in (1, 4, 8):
        _typed(lambda s=step: j.state_at(s), JOURNAL_ERRORS, test)
    _typed(lambda: list(j.history(2, 6)), JOURNAL_ERRORS, test)
    _typed(lambda: j.diff(1, 8), JOURNAL_ERRORS, test)
    rep = j.verify()  # never raises
    assert isinstance(rep.ok, bool)


def _fuzz_journal(seed: int, n: int, forge: bool, target: str) -> None:
    rnd = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="aj-t10-j-"))
    try:
        shutil.copytree(_BASE / "store", root / "s")
        os.chmod(root / "s", 0o700)
        if target == "segment":
            p = Path(rnd.choice(segment_files(root / "s", AGENT)))
        else:
            p = root / "s" / AGENT / "snapshots" / rnd.choice(sorted(os.listdir(_SNAP_DIR)))
        data = mutate(p.read_bytes(), rnd, n)
        if forge and target == "segment":
            data = reseal(data)
        p.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SnapshotSkippedWarning)
            # A mutation that ends a segment mid-line is a torn tail: reported by a warning.
            warnings.simplefilter("ignore", TornTailWarning)
            with Journal(AGENT, root / "s", readonly=True) as j:
                _exercise(j, "journal-" + target)
            # Opening for writing: a typed error, or a working journal.
            w = _typed(lambda: Journal(AGENT, root / "s"), JOURNAL_ERRORS, "journal-open")
            if isinstance(w, Journal):
                with w:
                    _typed(lambda: w.append({"after": "fuzz"}), JOURNAL_ERRORS, "journal-open")
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(st.integers(0, 2**32), st.integers(1, 4), st.booleans(),
       st.sampled_from(["segment", "snapshot"]))
def test_t10_fuzz_journal(seed: int, n: int, forge: bool, target: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # RecoveryWarning on a torn tail
        _fuzz_journal(seed, n, forge, target)


@pytest.mark.slow
@SLOW
@given(st.integers(0, 2**32), st.integers(1, 4), st.booleans(),
       st.sampled_from(["segment", "snapshot"]))
def test_t10_fuzz_journal_slow(seed: int, n: int, forge: bool, target: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _fuzz_journal(seed, n, forge, target)


def test_t10_sealed_segment_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 bomb: bytes) -> None:
    """A sealed segment that expands past the cap: LimitExceededError, memory bounded."""
    monkeypatch.setattr(fs_backend, "MAX_SEALED_SEGMENT", 1 << 20)
    shutil.copytree(_BASE / "store", tmp_path / "s")
    os.chmod(tmp_path / "s", 0o700)
    first = Path(segment_files(tmp_path / "s", AGENT)[0])
    first.unlink()
    (first.parent / (first.name + ".lz4")).write_bytes(bomb)
    tracemalloc.start()
    try:
        with Journal(AGENT, tmp_path / "s", readonly=True) as j:
            with pytest.raises(LimitExceededError):
                list(j.records())
            assert not j.verify().ok
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_t10_snapshot_bomb_is_skipped(tmp_path: Path, bomb: bytes) -> None:
    """A snapshot bomb is skipped (with a warning) for an older snapshot or genesis."""
    shutil.copytree(_BASE / "store", tmp_path / "s")
    os.chmod(tmp_path / "s", 0o700)
    snaps = sorted((tmp_path / "s" / AGENT / "snapshots").iterdir())
    snaps[-1].write_bytes(bomb)
    with Journal(AGENT, tmp_path / "s", readonly=True, max_snapshot_bytes=1 << 20) as j:
        with pytest.warns(SnapshotSkippedWarning):
            assert j.resume().state == _state(8)
        rep = j.verify()
        assert not rep.ok and any(p.kind == "snapshot" for p in rep.problems)


def test_t10_memory_backend_journal_fuzz() -> None:
    """The same typed-errors rule over the in-memory backend (bytes planted in its store)."""
    rnd = random.Random(10)
    outcomes = 0
    for _ in range(EXAMPLES // 3):
        be = MemoryBackend()
        with Journal(AGENT, backend=be, snapshot_every=3, segment_max_records=4) as j:
            for i in range(1, 9):
                j.append(_state(i))
        data = be._agents[AGENT]  # type: ignore[attr-defined]
        first = rnd.choice(sorted(data.segments))
        data.segments[first] = bytearray(reseal(mutate(bytes(data.segments[first]), rnd, 2)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SnapshotSkippedWarning)
            warnings.simplefilter("ignore", TornTailWarning)  # a mutation ending mid-line
            with Journal(AGENT, backend=be, readonly=True) as j:
                _exercise(j, "journal-memory")
        outcomes += 1
    _report("journal-memory")


def _fuzz_lock_hint(raw: bytes) -> None:
    """Whatever sits in the LOCK file's hint area, results are the same as without a hint."""
    root = Path(tempfile.mkdtemp(prefix="aj-t10-lock-"))
    try:
        shutil.copytree(_BASE / "store", root / "s")
        os.chmod(root / "s", 0o700)
        lock = root / "s" / AGENT / "LOCK"
        with open(lock, "r+b") as f:
            f.seek(32)
            f.write(raw)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with Journal(AGENT, root / "s", readonly=True) as j:
                assert j.resume().state == _state(8)
                assert j.state_at(5) == _state(5)
            with Journal(AGENT, root / "s", snapshot_every=3, segment_max_records=4) as j:
                assert j.resume().state == _state(8) and j.last_seq == 10
                j.append(_state(9))
                assert j.verify().ok
            with Journal(AGENT, root / "s", readonly=True) as j:
                assert j.resume().state == _state(9)
        _count("lock-hint", "ok", time.perf_counter() - t0)
    finally:
        shutil.rmtree(root)


hints = st.one_of(
    st.binary(max_size=96),
    st.builds(lambda seg, snap, clean: msgspec.json.encode(
        {"seg": seg, "snap": snap, "clean": clean}),
        st.integers(-2, 14) | st.integers(), st.integers(-2, 14) | st.integers(), st.booleans()),
)


@settings(SETTINGS, max_examples=EXAMPLES // 3)
@given(hints)
def test_t10_fuzz_lock_hint(raw: bytes) -> None:
    _fuzz_lock_hint(raw[:95].ljust(95) + b"\n")


def test_t10_lock_hint_bad_utf8() -> None:
    _fuzz_lock_hint(b'{"seg":"\xff\xfe"}'.ljust(95) + b"\n")


def test_t10_report_figures() -> None:
    """Print the figures of the property tests above (they run first, in file order)."""
    for name in sorted(STATS):
        _report(name)


def test_t10_step_not_found_is_typed() -> None:
    with Journal(AGENT, backend=MemoryBackend()) as j:
        with pytest.raises(StepNotFoundError):
            j.state_at(1)

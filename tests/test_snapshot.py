"""Snapshots: a cache that bounds replay, never the source of truth.

A snapshot is used only if its checksum passes and its chain hash matches the journal;
otherwise the next older one is used (with a :class:`SnapshotSkippedWarning`), then genesis.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import lz4.frame
import pytest

from agentjournal import (
    CorruptSnapshotError,
    Journal,
    LimitExceededError,
    NotJSONEncodableError,
    SnapshotSkippedWarning,
    _codec,
)
from agentjournal.snapshot.store import SnapshotDoc, decode_snapshot, encode_snapshot, state_copy

AGENT = "snap-agent"


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "log": [f"entry {k}" for k in range(i)]}


def _build(root: Path, compress: bool = True) -> list[Path]:
    with Journal(AGENT, root, snapshot_every=3, compress=compress) as j:
        for i in range(1, 11):
            j.append(_state(i))
        assert j.snapshot_seqs() == [3, 7, 11]
    return sorted((root / AGENT / "snapshots").iterdir())


def _doc(**kw: Any) -> SnapshotDoc:
    base = {"format": 1, "agent_id": AGENT, "seq": 3, "step": 3, "chain_hash": "ab" * 32,
            "ts": 1.0, "state": {"x": [1, "ü", None]}}
    base.update(kw)
    return SnapshotDoc(**base)


@pytest.mark.parametrize("compress", [True, False])
def test_encode_decode_round_trip(compress: bool) -> None:
    data, digest = encode_snapshot(_doc(), compress)
    assert data.startswith(_codec.LZ4_MAGIC) == compress
    doc, got = decode_snapshot(data, compress, where="w")
    assert got == digest and doc.state == {"x": [1, "ü", None]} and doc.seq == 3
    with pytest.raises(LimitExceededError):
        decode_snapshot(data, compress, where="w", limit=10)


def test_decode_rejects_damage_and_newer_formats() -> None:
    plain, _ = encode_snapshot(_doc(), False)
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(plain[:-5], False, where="w")
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(plain.replace(b'"x"', b'"y"'), False, where="w")
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(plain.split(b"\n")[0] + b"\nnot json\n", False, where="w")
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(b"garbage", True, where="w")
    newer, _ = encode_snapshot(_doc(format=99), False)
    with pytest.raises(CorruptSnapshotError, match="newer"):
        decode_snapshot(newer, False, where="w")
    body = b'{"format":1}'
    with pytest.raises(CorruptSnapshotError, match="undecodable"):
        decode_snapshot(body + b'\n{"blake2b":"' + _codec.content_digest(body).encode()
                        + b'"}\n', False, where="w")


def test_non_json_state_is_refused() -> None:
    with pytest.raises(NotJSONEncodableError):
        encode_snapshot(_doc(state={"x": object()}), True)


def test_state_copy_is_independent() -> None:
    s = {"a": [1, {"b": 2}]}
    c = state_copy(s)
    c["a"][1]["b"] = 3
    assert s == {"a": [1, {"b": 2}]}


def _resume_with_warnings(root: Path) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(AGENT, root, readonly=True) as j:
            state = j.resume().state
            mid = j.state_at(9)
    assert mid == _state(9)
    assert all(issubclass(w.category, SnapshotSkippedWarning) for w in caught)
    return state, [str(w.message) for w in caught]


@pytest.mark.parametrize("compress", [True, False])
def test_bad_checksum_is_skipped_for_an_older_snapshot(tmp_path: Path, compress: bool) -> None:
    snaps = _build(tmp_path, compress)
    newest = snaps[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x20  # corrupt the middle: lz4 or BLAKE2b checksum fails
    newest.write_bytes(bytes(data))
    state, msgs = _resume_with_warnings(tmp_path)
    assert state == _state(10)
    assert msgs and "seq 11" in msgs[0]
    with Journal(AGENT, tmp_path, readonly=True) as j:
        rep = j.verify()
        assert not rep.ok and rep.problems[0].kind == "snapshot"
        assert rep.problems[0].path == str(newest)


def test_mismatched_chain_hash_is_skipped(tmp_path: Path) -> None:
    snaps = _build(tmp_path, compress=False)
    newest = snaps[-1]
    body = json.loads(newest.read_bytes().split(b"\n")[0])
    body["chain_hash"] = "0" * 64  # a valid file, but not of this journal's record 11
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    newest.write_bytes(raw + b'\n{"blake2b":"' + _codec.content_digest(raw).encode() + b'"}\n')
    state, msgs = _resume_with_warnings(tmp_path)
    assert state == _state(10)
    assert msgs and "chain" in msgs[0]


def test_a_snapshot_copied_from_elsewhere_is_skipped(tmp_path: Path) -> None:
    snaps = _build(tmp_path)
    # the snapshot of seq 7 renamed to seq 11: it names another seq
    snaps[-1].write_bytes(snaps[-2].read_bytes())
    state, msgs = _resume_with_warnings(tmp_path)
    assert state == _state(10) and msgs


def test_all_snapshots_bad_falls_back_to_genesis(tmp_path: Path) -> None:
    for p in _build(tmp_path):
        p.write_bytes(lz4.frame.compress(b"not a snapshot"))
    state, msgs = _resume_with_warnings(tmp_path)
    assert state == _state(10)
    assert len(msgs) >= 3


def test_snapshot_over_the_size_limit_is_skipped(tmp_path: Path) -> None:
    _build(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(AGENT, tmp_path, readonly=True, max_snapshot_bytes=16) as j:
            assert j.resume().state == _state(10)
    assert caught and all(issubclass(w.category, SnapshotSkippedWarning) for w in caught)


def test_writer_resumes_past_a_bad_snapshot_and_keeps_writing(tmp_path: Path) -> None:
    snaps = _build(tmp_path)
    snaps[-1].write_bytes(b"\x04\x22\x4d\x18garbage")
    with pytest.warns(SnapshotSkippedWarning):
        with Journal(AGENT, tmp_path, snapshot_every=3) as j:
            j.append(_state(11))
            assert j.resume().state == _state(11)
    with Journal(AGENT, tmp_path, readonly=True) as j:
        assert j.state_at(11) == _state(11)


def test_snapshot_trigger_survives_restart(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=4) as j:
        for i in range(1, 4):
            j.append(_state(i))
        assert j.snapshot_seqs() == []
    with Journal(AGENT, tmp_path, snapshot_every=4) as j:
        app = j.append(_state(4))
        assert app.snapshot_seq == 4  # counted from the journal, not from this process


def test_snapshot_seconds_trigger(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None, snapshot_seconds=1e-9) as j:
        app = j.append(_state(1))
        assert app.snapshot_seq == 1
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        assert j.append(_state(2), snapshot=True).snapshot_seq == 3
        assert j.append(_state(3), snapshot=False).snapshot_seq is None


def test_a_large_snapshot_hashed_while_compressed_is_the_same_file_content() -> None:
    """Above PARALLEL_DIGEST_BYTES the digest is computed in a helper thread during the lz4
    compression: the content, the digest and what a reader decodes are those of the plain
    path (only the lz4 framing may differ)."""
    from agentjournal import _codec
    from agentjournal.snapshot.store import PARALLEL_DIGEST_BYTES

    state = {"messages": [{"role": "user", "content": f"message {i} " + "y" * 300}
                          for i in range(1200)], "n": 1.0, "ok": True}
    doc = SnapshotDoc(format=3, agent_id="a", seq=7, step=7, chain_hash="0" * 64, ts=1.5,
                      state=state)
    data, digest = encode_snapshot(doc, True)
    plain, plain_digest = encode_snapshot(doc, False)
    assert len(plain) > PARALLEL_DIGEST_BYTES
    assert digest == plain_digest == _codec.content_digest(plain[:plain.index(b"\n")])
    assert _codec.decompress(data, 1 << 30) == plain
    got, got_digest = decode_snapshot(data, True, where="x")
    assert got.state == state and got_digest == digest
    small = SnapshotDoc(format=3, agent_id="a", seq=1, step=1, chain_hash="0" * 64, ts=1.5,
                        state={"k": "v"})
    data, digest = encode_snapshot(small, True)
    assert decode_snapshot(data, True, where="x")[1] == digest
    # the helper itself, with any tail
    out, d = _codec.compress_with_digest(b"abc" * 100_000, lambda h: h.encode())
    assert _codec.decompress(out, 1 << 30) == b"abc" * 100_000 + d.encode()

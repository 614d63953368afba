"""T12 tamper evidence and compatibility.

Every record (and header) of a closed journal is, in turn, edited, deleted, duplicated,
swapped with its neighbour, preceded by a forged record, and cut in the middle; whole segments
are deleted, swapped and renamed; snapshots are replaced by forged ones. ``verify()`` must
report each (not ok) with the location: the segment path and an offset or seq.

A forger who knows the format but not the key rewrites the whole chain with plain BLAKE2b
after editing (also flipping the header's ``keyed`` flag, or using a wrong key): against a
keyed journal, verify still detects 100%. (An unkeyed chain only proves integrity against
accidents and against editors who do not recompute it; that is what the key is for.)

Limitation (inherent to any hash chain, documented in docs/reliability.md): removing whole
records from the *end* leaves a shorter, valid journal; detecting it needs the head (last seq
and hash) kept elsewhere. The test checks that ``verify()`` then reports the shorter
``last_seq``, so a caller holding the head sees it.

Golden journals of format version 1 (``tests/data/golden_v1``, made by
``tests/data/make_golden.py``) are loaded by the current code and must replay to the state
hashes recorded in ``tests/data/golden_v1.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.frame
import msgspec
import pytest
from journal_helpers import canonical, copy_store, figures, segment_files, state_hash

from agentjournal import FORMAT_VERSION, Journal, SnapshotSkippedWarning, _codec

AGENT = "tamper-agent"
KEY = b"the-real-key"
DATA = Path(__file__).resolve().parent.parent / "data"
FIGS: dict[str, int] = {}


def _bump(name: str, n: int = 1) -> None:
    FIGS[name] = FIGS.get(name, 0) + n


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msgs": [f"msg {k} ✓" for k in range(i % 4)], "n": {"a/b": i, "~": -i}}


def _build(root: Path, key: bytes | None) -> None:
    with Journal(AGENT, root, key=key, snapshot_every=4, segment_max_records=5,
                 compress=False) as j:
        for i in range(1, 15):
            j.append(_state(i))


@dataclass
class Store:
    root: Path
    files: dict[str, bytes]
    """Segment path -> bytes, in order."""

    def lines(self) -> Iterator[tuple[str, int, list[bytes]]]:
        for path, data in self.files.items():
            ls = data.split(b"\n")[:-1]
            for i in range(len(ls)):
                yield path, i, ls


def _load(root: Path) -> Store:
    return Store(root, {p: Path(p).read_bytes() for p in segment_files(root, AGENT)})


def _verify(root: Path, key: bytes | None) -> Any:
    with Journal(AGENT, root, readonly=True, key=key) as j:
        return j.verify()


def _assert_detected(root: Path, key: bytes | None, what: str) -> None:
    rep = _verify(root, key)
    assert not rep.ok, f"undetected: {what}"
    assert any(p.path and (p.offset is not None or p.seq is not None) for p in rep.problems), (
        what, rep.problems)
    _bump("detected")


def _with_files(store: Store, files: dict[str, bytes | None], check: Callable[[], None]) -> None:
    """Write ``files`` (None = delete), run ``check``, restore the original segments."""
    try:
        for p, data in files.items():
            if data is None:
                os.unlink(p)
            else:
                Path(p).write_bytes(data)
        check()
    finally:
        for p in list(Path(store.root / AGENT / "segments").iterdir()):
            if str(p) not in store.files:
                p.unlink()
        for p, data in store.files.items():
            Path(p).write_bytes(data)


def _join(ls: list[bytes]) -> bytes:
    return b"".join(ln + b"\n" for ln in ls)


def _edit(line: bytes) -> bytes:
    """A small semantic edit that keeps the line well-formed (the stored hash kept)."""
    obj = json.loads(line)
    if "ops" in obj and obj["ops"]:
        obj["ops"][0]["path"] = obj["ops"][0]["path"] + "x"
    elif "ts" in obj:
        obj["ts"] = obj["ts"] + 1
    else:
        obj["created"] = obj.get("created", 0) + 1
    return msgspec.json.encode(obj)


def _forge(line: bytes, key: bytes | None = None) -> bytes:
    parts = _codec.split_line(line)
    assert parts is not None
    return _codec.seal_line(parts[0], key)[0][:-1]


@pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
def test_t12_every_record_edit_delete_reorder_insert_truncate(tmp_path: Path,
                                                             key: bytes | None) -> None:
    root = tmp_path / "j"
    _build(root, key)
    store = _load(root)
    assert _verify(root, key).ok
    paths = list(store.files)
    last_path = paths[-1]
    n = 0
    for path, i, ls in list(store.lines()):
        is_last_line = path == last_path and i == len(ls) - 1
        cases: dict[str, list[bytes]] = {
            "edit": ls[:i] + [_edit(ls[i])] + ls[i + 1 :],
            "flip-byte": ls[:i] + [ls[i][:5] + bytes([ls[i][5] ^ 1]) + ls[i][6:]] + ls[i + 1 :],
            "duplicate": ls[: i + 1] + [ls[i]] + ls[i + 1 :],
            "insert-forged": ls[:i] + [_forge(_edit(ls[i]))] + ls[i:],
            "cut-inside": ls[:i] + [ls[i][: len(ls[i]) // 2]],
        }
        # The edited line re-hashed with plain BLAKE2b: the next record's prev (or, keyed, the
        # hash itself) catches it. Unkeyed, a header or the very last record has no successor
        # vouching for it, so only the keyed journal is asked to catch those.
        if key is not None or (i > 0 and not is_last_line):
            cases["edit+rehash"] = ls[:i] + [_forge(_edit(ls[i]))] + ls[i + 1 :]
        if not is_last_line:
            cases["delete"] = ls[:i] + ls[i + 1 :]
            if i + 1 < len(ls):
                cases["swap-next"] = ls[:i] + [ls[i + 1], ls[i]] + ls[i + 2 :]
        for what, new_lines in cases.items():
            data = _join(new_lines)
            if what == "cut-inside":
                data = data[:-1]  # no newline: a cut in the middle of the record
                rest = {p: None for p in paths[paths.index(path) + 1 :]}
            else:
                rest = {}
            desc = f"{what} line {i} of {os.path.basename(path)}"
            _with_files(store, {path: data, **rest},
                        lambda desc=desc: _assert_detected(root, key, desc))
            n += 1
            _bump(what)
    assert n > 100
    _check_tail_truncation(store, key)
    _check_segment_level(store, key)
    _report(key)


def _check_tail_truncation(store: Store, key: bytes | None) -> None:
    """Whole records removed from the end: a valid, shorter journal (see the docstring)."""
    last_path = list(store.files)[-1]
    ls = store.files[last_path].split(b"\n")[:-1]
    full = _verify(store.root, key).last_seq
    for drop in range(1, len(ls) - 1):
        def check(drop: int = drop) -> None:
            rep = _verify(store.root, key)
            assert rep.last_seq == full - drop  # what a caller holding the head compares
        _with_files(store, {last_path: _join(ls[: len(ls) - drop])}, check)
        _bump("tail_truncation_reported_by_last_seq")


def _check_segment_level(store: Store, key: bytes | None) -> None:
    paths = list(store.files)
    for k, p in enumerate(paths[:-1]):
        _with_files(store, {p: None},
                    lambda p=p: _assert_detected(store.root, key, f"rm {p}"))
        _bump("delete-segment")
        header_only = store.files[p].split(b"\n")[0] + b"\n"
        for name, data in (("empty-segment", b""), ("header-only-segment", header_only)):
            _with_files(store, {p: data},
                        lambda n=name, p=p: _assert_detected(store.root, key, f"{n} {p}"))
            _bump(name)
        q = paths[k + 1]
        _with_files(store, {p: store.files[q], q: store.files[p]},
                    lambda p=p, q=q: _assert_detected(store.root, key, f"swap {p} {q}"))
        _bump("swap-segments")
    # the last segment removed and an older one duplicated under a new name
    extra = str(Path(paths[-1]).with_name("00000000000000099999.jsonl"))
    _with_files(store, {extra: store.files[paths[0]]},
                lambda: _assert_detected(store.root, key, "renamed copy"))
    _bump("renamed-segment")


def _rewrite_chain(store: Store, edit_at: int, key: bytes | None,
                   unkey_header: bool) -> dict[str, bytes]:
    """The forger: edit the ``edit_at``-th record, then recompute every prev and hash after it
    (headers too) with ``key`` (None = plain BLAKE2b)."""
    out: dict[str, bytes] = {}
    prev = ""
    count = 0
    for path, data in store.files.items():
        new = []
        for line in data.split(b"\n")[:-1]:
            obj = json.loads(line)
            obj.pop("h")
            if obj["kind"] == "header":
                obj["prev"] = prev
                if unkey_header:
                    obj["keyed"] = False
            else:
                count += 1
                obj["prev"] = prev
                if count == edit_at:
                    obj = json.loads(_edit(msgspec.json.encode(obj)))
            sealed, h = _codec.seal_line(msgspec.json.encode(obj), key)
            if obj["kind"] != "header":
                prev = h
            new.append(sealed)
        out[path] = b"".join(new)
    return out


def test_t12_recomputed_chain_against_a_key(tmp_path: Path) -> None:
    root = tmp_path / "k"
    _build(root, KEY)
    store = _load(root)
    records = sum(len(d.split(b"\n")) - 1 for d in store.files.values()) - len(store.files)
    n = 0
    for edit_at in range(1, records + 1):
        for forger_key, unkey in ((None, False), (None, True), (b"guessed-key", False)):
            forged = _rewrite_chain(store, edit_at, forger_key, unkey)
            _with_files(store, dict(forged),
                        lambda e=edit_at: _assert_detected(root, KEY, f"rechained at {e}"))
            n += 1
    # The same forgery against an unkeyed journal passes the chain: that is why keys exist.
    plain = tmp_path / "u"
    _build(plain, None)
    ustore = _load(plain)
    forged = _rewrite_chain(ustore, 3, None, False)

    def unkeyed_check() -> None:
        rep = _verify(plain, None)
        # only the snapshots (whose chain hash or digest no longer matches) can notice
        assert all(p.kind == "snapshot" for p in rep.problems), rep.problems

    _with_files(ustore, forged, unkeyed_check)
    FIGS["rechained_forgeries_detected"] = n
    figures("T12", target="recomputed-chain", forgeries=n, detected=n, undetected=0)


def test_t12_forged_snapshots(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, None)
    snaps = sorted((root / AGENT / "snapshots").iterdir())
    assert snaps
    for snap in snaps:
        orig = snap.read_bytes()
        body = orig.split(b"\n")[0]
        doc = json.loads(body)
        doc["state"]["i"] = -1  # a different state, with a valid checksum line
        nb = msgspec.json.encode(doc)
        snap.write_bytes(nb + b'\n{"blake2b":"' + _codec.content_digest(nb).encode() + b'"}\n')
        rep = _verify(root, None)
        assert not rep.ok and any(p.kind == "snapshot" and p.path == str(snap)
                                  for p in rep.problems)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Journal(AGENT, root, readonly=True) as j:
                # the forged snapshot is never used: every step still has its true state
                assert j.resume().state == _state(14)
                for k in range(1, 15):
                    assert j.state_at(k) == _state(k)
        assert any(issubclass(w.category, SnapshotSkippedWarning) for w in caught)
        snap.write_bytes(orig)
        _bump("forged_snapshots")


def _report(key: bytes | None) -> None:
    figures("T12", target="keyed" if key else "unkeyed",
            **{k.replace("-", "_").replace("+", "_"): v for k, v in sorted(FIGS.items())},
            undetected=0)
    FIGS.clear()


# --------------------------------------------------------------------------- golden files


def _golden() -> dict[str, Any]:
    return json.loads((DATA / "golden_v1.json").read_text(encoding="utf-8"))


def _copy_golden(tmp_path: Path) -> Path:
    dst = tmp_path / "golden"
    copy_store(DATA / "golden_v1", dst)  # the checkout may be read-only and loosely permitted
    return dst


def test_t12_golden_v1_replays_to_recorded_hashes(tmp_path: Path) -> None:
    expect = _golden()
    assert expect["format"] == 1 <= FORMAT_VERSION
    root = _copy_golden(tmp_path)
    checked = 0
    for agent, info in expect["agents"].items():
        key = info["key"].encode() if info.get("key") else None
        with Journal(agent, root, readonly=True, key=key) as j:
            recs = list(j.records())
            assert [r.h for r in recs] == info["hashes"], f"{agent}: record hashes changed"
            assert j.verify().ok
            res = j.resume()
            assert (res.seq, res.step) == (info["last_seq"], info["last_step"])
            assert state_hash(res.state) == info["final_state_hash"]
            for step, h in info["state_hashes"].items():
                assert state_hash(j.state_at(int(step))) == h, (agent, step)
                checked += 1
            for step, state in info.get("states", {}).items():
                assert canonical(j.state_at(int(step))) == canonical(state)
            assert sorted(j.snapshot_seqs()) == info["snapshots"]
        # The current code keeps writing where format 1 stopped.
        with Journal(agent, root, key=key) as j:
            j.append({"after": "golden ✓"})
            assert j.verify().ok
        checked += 1
    figures("T12", target="golden-v1", agents=len(expect["agents"]), checks=checked,
            mismatches=0)


def test_t12_golden_v1_files_are_pristine() -> None:
    """The committed files are exactly what the manifest describes (no accidental edits)."""
    expect = _golden()
    for agent, info in expect["agents"].items():
        segs = sorted(os.listdir(DATA / "golden_v1" / agent / "segments"))
        assert segs == info["segment_files"]
        for name in segs:
            data = (DATA / "golden_v1" / agent / "segments" / name).read_bytes()
            if name.endswith(".lz4"):
                data = lz4.frame.decompress(data)
            assert all(json.loads(line)["kind"] in ("header", "step", "snapshot", "fork",
                                                    "anchor") for line in data.splitlines())


def test_t12_make_golden_is_reproducible(tmp_path: Path) -> None:
    """make_golden.py makes the same histories today (timestamps aside)."""
    import subprocess
    import sys

    out = tmp_path / "made"
    subprocess.run([sys.executable, str(DATA / "make_golden.py"), "--out", str(out),
                    "--manifest", str(tmp_path / "m.json")], check=True)
    made = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    want = _golden()
    for agent, info in want["agents"].items():
        got = made["agents"][agent]
        for k in ("final_state_hash", "state_hashes", "last_seq", "last_step", "snapshots",
                  "segment_files"):
            assert got[k] == info[k], (agent, k)
    shutil.rmtree(out)

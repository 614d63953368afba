"""``agentjournal export`` / ``import``: one verifiable file; damaged files are refused."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.exchange import ImportRefusedError, export_journal, import_journal
from test_cli_support import assert_clean_stderr, make_agent, run, run_json


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    return tmp_path / "src"


@pytest.fixture()
def dst(tmp_path: Path) -> Path:
    return tmp_path / "dst"


@pytest.fixture()
def states(src: Path) -> list[dict[str, Any]]:
    return make_agent(src)


@pytest.fixture()
def exported(tmp_path: Path, src: Path, states: list[Any]) -> Path:
    del states
    out = tmp_path / "researcher.jsonl"
    doc = run_json("export", "researcher", "-o", str(out), root=src)
    assert doc["path"] == str(out) and doc["bytes"] == out.stat().st_size
    return out


def _same_history(a: Path, b: Path, agent: str = "researcher") -> None:
    with Journal(agent, a, readonly=True) as ja, Journal(agent, b, readonly=True) as jb:
        assert [r.h for r in ja.records()] == [r.h for r in jb.records()]
        assert jb.snapshot_seqs() == ja.snapshot_seqs()
        assert jb.verify().ok


def test_round_trip(exported: Path, src: Path, dst: Path, states: list[Any]) -> None:
    lines = exported.read_bytes().splitlines()
    manifest = json.loads(lines[0])
    assert manifest["kind"] == "agentjournal-export" and manifest["agent_id"] == "researcher"
    # The journal's own lines are in the file byte for byte.
    seg = sorted((src / "researcher" / "segments").iterdir())[0].read_bytes()
    assert seg.splitlines()[1] in lines
    doc = run_json("import", str(exported), root=dst)
    assert doc["written"] and doc["agent_id"] == "researcher"
    _same_history(src, dst)
    for step in (1, 12, 30):
        res = run("show", "researcher", "--at", str(step), root=dst)
        assert json.loads(res.stdout) == states[step]
    assert run("log", "researcher", root=dst).stdout == run("log", "researcher",
                                                            root=src).stdout
    assert run("verify", "researcher", root=dst).exit_code == 0
    res = run("import", str(exported), root=dst)
    assert res.exit_code == 6 and "already has a journal" in res.stderr


def test_dry_run_writes_nothing(exported: Path, dst: Path) -> None:
    doc = run_json("import", str(exported), "--dry-run", root=dst)
    assert doc["written"] is False and doc["records"] > 0
    assert not (dst / "researcher").exists()


def test_export_to_stdout_and_import_from_stdin(src: Path, dst: Path,
                                                states: list[Any]) -> None:
    del states
    res = run("export", "researcher", root=src)
    assert res.exit_code == 0 and "exported researcher" in res.stderr
    assert_clean_stderr(res, r"^exported researcher")  # no warning about binary stdout
    data = res.stdout_bytes
    res = run("import", "-", root=dst, input=data)
    assert res.exit_code == 0
    assert_clean_stderr(res, r"^imported researcher")
    _same_history(src, dst)
    assert run("export", "researcher", "--json", root=src).exit_code == 2


def test_export_refuses_to_overwrite_without_force(exported: Path, src: Path) -> None:
    res = run("export", "researcher", "-o", str(exported), root=src)
    assert res.exit_code == 6 and "--force" in res.stderr
    assert run("export", "researcher", "-o", str(exported), "--force", root=src).exit_code == 0


def _rewrite(path: Path, fn: Any) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(fn(lines)))


def _refused(exported: Path, dst: Path, what: str) -> str:
    res = run("import", str(exported), root=dst)
    assert res.exit_code == 5, (what, res.stderr)
    assert "Traceback" not in res.stderr
    assert not (dst / "researcher" / "segments").exists() or not any(
        (dst / "researcher" / "segments").iterdir()), what
    return res.stderr


def test_import_refuses_a_flipped_bit(exported: Path, dst: Path) -> None:
    data = bytearray(exported.read_bytes())
    at = data.index(b"message 7")
    data[at] ^= 0x01
    exported.write_bytes(bytes(data))
    line_start = data.rindex(b"\n", 0, at) + 1
    err = _refused(exported, dst, "bit flip")
    assert f"byte {line_start}" in err and str(exported) in err


def test_import_refuses_a_truncated_file(exported: Path, dst: Path) -> None:
    with Journal("researcher", exported.parent / "src", readonly=True) as j:
        n_snaps = len(j.snapshot_seqs())
    # Whole lines dropped: the records still chain, but the manifest says more.
    _rewrite(exported, lambda lines: lines[: -(n_snaps + 3)])
    assert "truncated" in _refused(exported, dst, "truncated")


def test_import_refuses_a_missing_snapshot_line_and_a_dropped_record(exported: Path,
                                                                    dst: Path) -> None:
    original = exported.read_bytes()
    _rewrite(exported, lambda lines: lines[:-1])
    _refused(exported, dst, "snapshot line")
    exported.write_bytes(original)
    _rewrite(exported, lambda lines: lines[:5] + lines[6:])  # one record removed
    _refused(exported, dst, "dropped record")


def test_import_refuses_a_forged_snapshot(exported: Path, dst: Path) -> None:
    def forge(lines: list[bytes]) -> list[bytes]:
        last = json.loads(lines[-1])
        last["doc"]["state"]["status"] = "forged"
        lines[-1] = json.dumps(last, separators=(",", ":")).encode() + b"\n"
        return lines

    _rewrite(exported, forge)
    assert "snapshot" in _refused(exported, dst, "forged snapshot")


def test_import_refuses_other_files(tmp_path: Path, dst: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"hello": "world"}\n')
    assert "not an agentjournal export" in _refused(junk, dst, "junk")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    _refused(empty, dst, "empty")
    assert run("import", str(tmp_path / "nope.jsonl"), root=dst).exit_code == 2


def test_keyed_journal_needs_its_key(tmp_path: Path, dst: Path) -> None:
    src = tmp_path / "keyed"
    make_agent(src, "secret", 6, key=b"k1")
    out = tmp_path / "secret.jsonl"
    assert run("export", "secret", "-o", str(out), root=src).exit_code == 5  # no key
    assert run("--key", "k1", "export", "secret", "-o", str(out), root=src).exit_code == 0
    res = run("import", str(out), root=dst)
    assert res.exit_code == 5 and "key" in res.stderr
    assert run("import", str(out), "--key", "wrong", root=dst).exit_code == 5
    res = run("import", str(out), root=dst, env={"AGENTJOURNAL_KEY": "k1"})
    assert res.exit_code == 0, res.stderr
    with Journal("secret", dst, readonly=True, key=b"k1") as j:
        assert j.verify().ok and j.last_step == 6


def test_pruned_journal_round_trips_with_its_base_snapshot(src: Path, dst: Path,
                                                           states: list[Any],
                                                           tmp_path: Path) -> None:
    assert run("compact", "researcher", "--keep", "1", "--prune", root=src).exit_code == 0
    out = tmp_path / "pruned.jsonl"
    doc = run_json("export", "researcher", "-o", str(out), "--no-snapshots", root=src)
    assert doc["snapshots"] == 1 and doc["first_seq"] > 1
    assert run("import", str(out), root=dst).exit_code == 0
    assert json.loads(run("show", "researcher", root=dst).stdout) == states[30]
    assert run("verify", "researcher", root=dst).exit_code == 0


def test_python_api_matches(src: Path, dst: Path, states: list[Any]) -> None:
    del states
    buf = io.BytesIO()
    with Journal("researcher", src, readonly=True) as j:
        rep = export_journal(j, buf)
    buf.seek(0)
    got = import_journal(buf, root=dst)
    assert (got.records, got.last_hash) == (rep.records, rep.last_hash) and got.written
    broken = io.BytesIO(buf.getvalue().replace(b"message 9", b"message X"))
    with pytest.raises(ImportRefusedError):
        import_journal(broken, root=dst / "other")


def test_export_reports_the_snapshots_it_leaves_out(src: Path, dst: Path, states: list[Any],
                                                    tmp_path: Path) -> None:
    snap = sorted((src / "researcher" / "snapshots").iterdir())[0]
    snap.write_bytes(snap.read_bytes()[:-7])  # a truncated lz4 frame
    seq = int(snap.name.split(".")[0])
    out = tmp_path / "skip.jsonl"
    doc = run_json("export", "researcher", "-o", str(out), root=src)
    assert [k["seq"] for k in doc["skipped"]] == [seq] and doc["skipped"][0]["reason"]
    res = run("export", "researcher", "-o", str(out), "--force", root=src)
    assert res.exit_code == 0 and f"snapshot {seq} left out" in res.stderr
    assert run("import", str(out), root=dst).exit_code == 0
    assert json.loads(run("show", "researcher", root=dst).stdout) == states[30]


# --------------------------------------------------------------------------- step ranges


def _states_match(a: Path, b: Path, steps: range, agent: str = "researcher",
                  key: bytes | None = None) -> None:
    with Journal(agent, a, readonly=True, key=key) as ja, \
            Journal(agent, b, readonly=True, key=key) as jb:
        for step in steps:
            assert jb.state_at(step) == ja.state_at(step), step


@pytest.mark.parametrize(("lo", "hi"), [(14, 22), (1, 5), (25, None), (None, 9), (30, 30)])
def test_range_round_trip(tmp_path: Path, src: Path, dst: Path, states: list[Any],
                          lo: int | None, hi: int | None) -> None:
    """export --from/--to, import, verify: the states at every step of the range are the
    journal's, and its records are the journal's own lines (same seqs, same hashes)."""
    out = tmp_path / "range.jsonl"
    args = [*(["--from", str(lo)] if lo is not None else []),
            *(["--to", str(hi)] if hi is not None else [])]
    doc = run_json("export", "researcher", "-o", str(out), *args, root=src)
    r = doc["range"]
    assert r is not None
    assert r["first_step"] <= (lo or 1) and r["to_step"] == (hi or 30)
    assert r["end_seq"] == doc["last_seq"] - (1 if r["anchor_seq"] else 0)
    assert json.loads(out.read_bytes().splitlines()[0])["range"] == r
    got = run_json("import", str(out), root=dst)
    assert got["range"] == r and got["last_hash"] == doc["last_hash"]
    assert run("verify", "researcher", root=dst).exit_code == 0
    with Journal("researcher", dst, readonly=True) as j:
        assert j.verify().ok
        assert j.last_step == r["to_step"]
        assert [s for s in j.snapshot_seqs() if s == r["base_seq"]] == (
            [r["base_seq"]] if r["base_seq"] else [])
    _states_match(src, dst, range(max(r["first_step"], lo or 1), r["to_step"] + 1))
    with Journal("researcher", src, readonly=True) as ja, \
            Journal("researcher", dst, readonly=True) as jb:
        theirs = {rec.seq: rec.h for rec in ja.records(doc["first_seq"], r["end_seq"])}
        ours = {rec.seq: rec.h for rec in jb.records(doc["first_seq"], r["end_seq"])}
        assert ours == theirs
        if r["anchor_seq"]:
            # The one record the export wrote: the anchor vouching for the left-out start.
            anchor = next(iter(jb.records(r["anchor_seq"], r["anchor_seq"])))
            assert anchor.kind == "anchor"
            assert anchor.first_seq == doc["first_seq"]  # type: ignore[union-attr]
    res = run("show", "researcher", "--at", str(r["to_step"]), root=dst)
    assert json.loads(res.stdout) == states[r["to_step"]]


def test_range_starts_after_genesis_at_a_snapshot(tmp_path: Path, src: Path, dst: Path,
                                                  states: list[Any]) -> None:
    del states
    out = tmp_path / "range.jsonl"
    doc = run_json("export", "researcher", "-o", str(out), "--from", "14", "--to", "22",
                   root=src)
    r = doc["range"]
    assert r["base_seq"] > 0 and r["anchor_seq"] == doc["last_seq"]
    assert r["first_step"] == 10  # the snapshot before step 14 (snapshot_every=10)
    run_json("import", str(out), root=dst)
    res = run("show", "researcher", "--at", "5", root=dst)
    assert res.exit_code == 3  # before the range: not in the file
    assert run_json("verify", "researcher", root=dst)["ok"] is True


def test_range_of_a_keyed_journal(tmp_path: Path, dst: Path) -> None:
    src = tmp_path / "keyed"
    make_agent(src, "secret", 30, key=b"k1")
    out = tmp_path / "secret.jsonl"
    doc = run_json("export", "secret", "-o", str(out), "--from", "13", "--to", "24",
                   "--key", "k1", root=src)
    assert doc["keyed"] and doc["range"]["anchor_seq"]
    assert run("import", str(out), root=dst).exit_code == 5  # no key
    assert run("import", str(out), "--key", "k1", root=dst).exit_code == 0
    assert run("verify", "secret", "--key", "k1", root=dst).exit_code == 0
    _states_match(src, dst, range(13, 25), "secret", key=b"k1")


def test_range_of_a_pruned_journal(tmp_path: Path, src: Path, dst: Path,
                                   states: list[Any]) -> None:
    del states
    with Journal("researcher", src) as j:
        j.compact(keep_snapshots=2, prune=True)
        first = j.first_step_of_segment(j.segment_seqs()[0])
    out = tmp_path / "range.jsonl"
    res = run("export", "researcher", "-o", str(out), "--from", "2", root=src)
    assert res.exit_code == 3 and "pruned" in res.stderr
    doc = run_json("export", "researcher", "-o", str(out), "--from", str(first + 1),
                   root=src)
    assert doc["range"]["anchor_seq"] == 0  # the journal's own anchor is in the range
    run_json("import", str(out), root=dst)
    assert run("verify", "researcher", root=dst).exit_code == 0
    _states_match(src, dst, range(first + 1, 31))


def test_range_bad_bounds(tmp_path: Path, src: Path, states: list[Any]) -> None:
    del states
    out = tmp_path / "x.jsonl"
    res = run("export", "researcher", "-o", str(out), "--from", "40", root=src)
    assert res.exit_code == 3 and "ends at step 30" in res.stderr
    res = run("export", "researcher", "-o", str(out), "--from", "9", "--to", "3", root=src)
    assert res.exit_code == 2
    assert not out.exists()


def test_a_tampered_range_is_refused(tmp_path: Path, src: Path, dst: Path,
                                     states: list[Any]) -> None:
    del states
    out = tmp_path / "range.jsonl"
    run_json("export", "researcher", "-o", str(out), "--from", "14", "--to", "22", root=src)
    lines = out.read_bytes().splitlines(keepends=True)
    # Drop the anchor the export wrote (and fix nothing else): the start is not vouched for.
    anchor = next(i for i, line in enumerate(lines) if b'"kind":"anchor"' in line)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines[:anchor] + lines[anchor + 1:]))
    res = run("import", str(bad), root=dst)
    assert res.exit_code == 5
    # Change a value in a record of the range.
    at = next(i for i, line in enumerate(lines) if b'"kind":"step"' in line)
    lines[at] = lines[at].replace(b'"op":', b'"op" :', 1)
    bad.write_bytes(b"".join(lines))
    res = run("import", str(bad), root=dst)
    assert res.exit_code == 5 and "hash" in res.stderr
    assert not (dst / "researcher").exists()


@pytest.mark.parametrize("config", [
    {"snapshot_every": 3, "segment_max_records": 4},  # segments that do not start at snapshots
    {"snapshot_every": 7, "key": b"k1"},
    {"snapshot_every": None},  # no snapshot: every range starts at seq 1
    {"snapshot_every": 5, "segment_max_records": 9, "key": b"k2"},
])
def test_random_ranges_round_trip(tmp_path: Path, config: dict[str, Any]) -> None:
    """Ranges of journals with gaps in their steps, segments rolled by size, keyed or not:
    each exported range imports, verifies and rebuilds the journal's state at every step."""
    rng = random.Random(repr(config))
    key = config.get("key")
    step = 0
    with Journal("r", tmp_path / "src", durability="none", **config) as j:
        for i in range(40):
            step += rng.choice([0, 1, 1, 2])
            j.append({"i": i, "l": list(range(i % 7))}, step=step)
    with Journal("r", tmp_path / "src", readonly=True, key=key) as j:
        first, last = next(iter(j.records())).step, j.last_step
        for n in range(8):
            lo = rng.choice([None, rng.randint(first, last)])
            hi = rng.choice([None, rng.randint(lo or first, last + 2)])
            buf = io.BytesIO()
            rep = export_journal(j, buf, from_step=lo, to_step=hi, snapshots=n % 2 == 0)
            buf.seek(0)
            got = import_journal(buf, root=tmp_path / f"dst{n}", key=key)
            assert got.range == rep.range and got.last_hash == rep.last_hash
            with Journal("r", tmp_path / f"dst{n}", readonly=True, key=key) as copy:
                assert copy.verify().ok
                start = max(first, lo or 0, rep.range["first_step"] if rep.range else 0)
                for s in range(start, min(last, hi if hi is not None else last) + 1):
                    if s > copy.last_step:  # no step recorded between: the state is the same
                        assert j.seq_of_step(s) == j.seq_of_step(copy.last_step), s
                        continue
                    assert copy.state_at(s) == j.state_at(s), (lo, hi, s)


def test_a_range_after_damage_is_exported_and_one_across_it_refused(
        tmp_path: Path, src: Path, dst: Path, states: list[Any]) -> None:
    """A range reads only its own segments (from the snapshot before it): damage earlier in
    the journal does not keep the intact later steps from being exported, verified."""
    seg = sorted((src / "researcher" / "segments").iterdir())[0]  # steps 1..10
    data = seg.read_bytes()
    at = data.index(b'"step":3,')
    seg.write_bytes(data[:at] + b'"step":3 ,' + data[at + len(b'"step":3,'):])
    assert run("verify", "researcher", root=src).exit_code == 1
    out = tmp_path / "late.jsonl"
    doc = run_json("export", "researcher", "-o", str(out), "--from", "22", root=src)
    assert doc["range"]["first_step"] == 20
    run_json("import", str(out), root=dst)
    assert run("verify", "researcher", root=dst).exit_code == 0
    res = run("show", "researcher", "--at", "25", root=dst)
    assert json.loads(res.stdout) == states[25]
    res = run("export", "researcher", "-o", str(tmp_path / "x.jsonl"), "--from", "2",
              "--to", "12", root=src)
    assert res.exit_code == 5 and not (tmp_path / "x.jsonl").exists()

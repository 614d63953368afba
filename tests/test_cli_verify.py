"""``agentjournal verify`` on damaged journals: each problem is reported with its location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentjournal.cli.schemas import validate
from test_cli_support import make_agent, run, segment_files


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "store"
    make_agent(r)
    make_agent(r, "healthy", 5)
    return r


def _line_start(data: bytes, index: int) -> int:
    pos = 0
    for _ in range(index):
        pos = data.index(b"\n", pos) + 1
    return pos


def _verify(root: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    text = run("verify", "researcher", *args, root=root)
    js = run("verify", "researcher", "--json", *args, root=root)
    assert text.exit_code == js.exit_code
    doc = json.loads(js.stdout)
    validate("verify", doc)
    return text.exit_code, text.stdout, doc["agents"][0]


def test_bit_flip_is_reported_with_file_and_offset(root: Path) -> None:
    seg = segment_files(root, "researcher")[0]
    data = bytearray(seg.read_bytes())
    start = _line_start(bytes(data), 3)  # header, seq 1, seq 2, then the record of seq 3
    at = data.index(b"message 3", start)
    data[at + 2] ^= 0x01  # one bit
    seg.write_bytes(bytes(data))
    code, text, rep = _verify(root)
    assert code == 1
    assert not rep["ok"] and not rep["chain_ok"]
    p = rep["problems"][0]
    assert p["kind"] == "corrupt" and p["path"] == str(seg) and p["offset"] == start
    assert f"{seg}:{start}" in text
    assert "BAD" in text
    # The other agent is fine, but --all still fails as a whole.
    res = run("verify", "--all", "--json", root=root)
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert [a["ok"] for a in doc["agents"]] == [True, False] and doc["ok"] is False


def test_truncated_tail_is_reported(root: Path) -> None:
    seg = segment_files(root, "researcher")[-1]
    data = seg.read_bytes()
    last_line = data.rindex(b"\n", 0, len(data) - 1) + 1
    seg.write_bytes(data[:-10])
    code, text, rep = _verify(root)
    assert code == 1
    p = rep["problems"][0]
    assert p["kind"] == "torn_tail" and p["path"] == str(seg) and p["offset"] == last_line
    assert f"{seg}:{last_line}" in text
    # Readers stop before the torn tail: the history up to it is still readable.
    assert run("log", "researcher", root=root).exit_code == 0


def test_missing_segment_is_reported(root: Path) -> None:
    segs = segment_files(root, "researcher")
    assert len(segs) >= 3
    segs[1].unlink()
    first_missing = int(segs[1].name.split(".")[0])
    code, text, rep = _verify(root)
    assert code == 1
    kinds = {p["kind"]: p for p in rep["problems"]}
    p = kinds["missing_segment"]
    assert p["seq"] == first_missing and p["path"] == str(segs[2])
    assert "missing_segment" in text and str(segs[2]) in text
    res = run("log", "researcher", root=root)
    assert res.exit_code == 5 and "missing" in res.stderr and "Traceback" not in res.stderr


def test_reading_commands_report_corruption_with_exit_5(root: Path) -> None:
    seg = segment_files(root, "researcher")[0]
    data = bytearray(seg.read_bytes())
    start = _line_start(bytes(data), 2)
    data[start + 20] ^= 0x40
    seg.write_bytes(bytes(data))
    for args in (["log", "researcher"], ["show", "researcher", "--at", "5"],
                 ["export", "researcher", "-o", str(root.parent / "x.jsonl")]):
        res = run(*args, root=root)
        assert res.exit_code == 5, args
        assert str(seg) in res.stderr and f"byte {start}" in res.stderr
        assert "Traceback" not in res.stderr

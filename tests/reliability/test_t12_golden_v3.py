"""T12 compatibility, format version 3: golden journals with a ``cut`` record.

``tests/data/golden_v3`` (made by ``tests/data/make_golden.py``) holds the histories of
``golden_v2`` written by format 3, plus ``golden-cut``: a crash tore its last record, and
opening it for writing cut the tail into ``quarantine/`` and recorded the cut in the chain.
The current code must replay them to the hashes, metadata and cuts recorded in
``tests/data/golden_v3.json`` and keep appending to them. (Formats 1 and 2 keep their own
golden sets and tests.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from journal_helpers import canonical, copy_store, figures, state_hash

from agentjournal import FORMAT_VERSION, Cut, Journal, Step

DATA = Path(__file__).resolve().parent.parent / "data"


def _golden() -> dict[str, Any]:
    return json.loads((DATA / "golden_v3.json").read_text(encoding="utf-8"))


def _cuts(recs: list[Any]) -> list[dict[str, Any]]:
    return [{"seq": r.seq, "reason": r.reason, "segment": r.segment, "size": r.size,
             "digest": r.digest, "cut_seq": r.cut_seq} for r in recs if isinstance(r, Cut)]


def test_t12_golden_v3_replays_to_recorded_hashes_meta_and_cuts(tmp_path: Path) -> None:
    expect = _golden()
    assert expect["format"] == 3 <= FORMAT_VERSION
    root = tmp_path / "golden"
    copy_store(DATA / "golden_v3", root)
    checked = 0
    for agent, info in expect["agents"].items():
        key = info["key"].encode() if info.get("key") else None
        with Journal(agent, root, readonly=True, key=key) as j:
            recs = list(j.records())
            assert [r.h for r in recs] == info["hashes"], f"{agent}: record hashes changed"
            rep = j.verify()
            assert rep.ok, rep.problems
            res = j.resume()
            assert (res.seq, res.step) == (info["last_seq"], info["last_step"])
            assert state_hash(res.state) == info["final_state_hash"]
            for step, h in info["state_hashes"].items():
                assert state_hash(j.state_at(int(step))) == h, (agent, step)
                checked += 1
            for step, state in info.get("states", {}).items():
                assert canonical(j.state_at(int(step))) == canonical(state)
            metas = {str(r.seq): r.meta for r in recs if isinstance(r, Step) and r.meta}
            assert metas == info.get("metas", {}), f"{agent}: meta changed"
            assert _cuts(recs) == info.get("cuts", []), f"{agent}: cuts changed"
            assert [c.seq for c in rep.cuts] == [c["seq"] for c in info.get("cuts", [])]
            assert all(c.kept for c in rep.cuts)
            checked += len(metas) + len(rep.cuts)
        with Journal(agent, root, key=key) as j:
            j.append({"after": "golden v3 ✓"}, meta={"after": True})
            assert j.verify().ok
        checked += 1
    assert expect["agents"]["golden-cut"]["cuts"], "the v3 golden set must hold a cut record"
    figures("T12", target="golden-v3", agents=len(expect["agents"]), checks=checked,
            mismatches=0)


def test_t12_golden_v3_files_are_pristine() -> None:
    expect = _golden()
    for agent, info in expect["agents"].items():
        segs = sorted(os.listdir(DATA / "golden_v3" / agent / "segments"))
        assert segs == info["segment_files"]


def test_t12_make_golden_v3_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "made"
    subprocess.run([sys.executable, str(DATA / "make_golden.py"), "--out", str(out),
                    "--manifest", str(tmp_path / "m.json")], check=True, capture_output=True)
    made = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    for agent, info in _golden()["agents"].items():
        got = made["agents"][agent]
        for k in ("final_state_hash", "state_hashes", "last_seq", "last_step", "snapshots",
                  "segment_files", "metas", "kinds"):
            assert got.get(k) == info.get(k), (agent, k)
        assert got.get("cuts", []) == info.get("cuts", []), agent
    shutil.rmtree(out)

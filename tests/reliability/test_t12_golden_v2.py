"""T12 compatibility, format version 2: golden journals whose step records carry ``meta``.

``tests/data/golden_v2`` (made by ``tests/data/make_golden.py``) holds the histories of
``golden_v1`` written by format 2, plus ``golden-meta``: steps with caller metadata, some of
them changing no state. The current code must replay them to the hashes and metadata recorded
in ``tests/data/golden_v2.json`` and keep appending to them.
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

from agentjournal import FORMAT_VERSION, Journal, Step

DATA = Path(__file__).resolve().parent.parent / "data"


def _golden() -> dict[str, Any]:
    return json.loads((DATA / "golden_v2.json").read_text(encoding="utf-8"))


def test_t12_golden_v2_replays_to_recorded_hashes_and_meta(tmp_path: Path) -> None:
    expect = _golden()
    assert expect["format"] == 2 <= FORMAT_VERSION
    root = tmp_path / "golden"
    copy_store(DATA / "golden_v2", root)
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
            metas = {str(r.seq): r.meta for r in recs if isinstance(r, Step) and r.meta}
            assert metas == info.get("metas", {}), f"{agent}: meta changed"
            checked += len(metas)
        with Journal(agent, root, key=key) as j:
            j.append({"after": "golden v2 ✓"}, meta={"after": True})
            assert j.verify().ok
        checked += 1
    assert expect["agents"]["golden-meta"]["metas"], "the v2 golden set must hold meta records"
    figures("T12", target="golden-v2", agents=len(expect["agents"]), checks=checked,
            mismatches=0)


def test_t12_golden_v2_files_are_pristine() -> None:
    expect = _golden()
    for agent, info in expect["agents"].items():
        segs = sorted(os.listdir(DATA / "golden_v2" / agent / "segments"))
        assert segs == info["segment_files"]


def test_t12_make_golden_v2_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "made"
    subprocess.run([sys.executable, str(DATA / "make_golden.py"), "--out", str(out),
                    "--manifest", str(tmp_path / "m.json")], check=True)
    made = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    for agent, info in _golden()["agents"].items():
        got = made["agents"][agent]
        for k in ("final_state_hash", "state_hashes", "last_seq", "last_step", "snapshots",
                  "segment_files", "metas"):
            assert got.get(k) == info.get(k), (agent, k)
    shutil.rmtree(out)

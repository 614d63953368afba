"""Smoke test: benchmarks/bench_serve.py runs on tiny sizes and prints every figure it promises
(no timing is asserted: the figures depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_serve_quick() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--quick"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    assert doc["bench"] == "serve" and doc["steps"] == 2000
    for key in ("first_paint_ms", "slider_step_ms", "slider_back_ms", "jump_ms",
                "server_peak_rss_mib"):
        assert doc[key] > 0, key
    # A slider step sends the step's ops, not the state.
    assert doc["step_response_bytes"] * 5 < doc["state_response_bytes"]

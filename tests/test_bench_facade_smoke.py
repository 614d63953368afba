"""Smoke test of benchmarks/bench_facade.py on tiny sizes: it runs and writes its figures (no
timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_facade_quick_writes_its_json(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_facade.py"),
                          "--quick", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("journal_append_sync", "manager_save_sync", "ratio_manager_vs_append",
                "manager_resume_fresh", "fleet", "kaizen"):
        assert key in doc, key
    assert [f["agents"] for f in doc["fleet"]] == [1, 16, 64, 1, 16, 64]
    assert [f["snapshot_every"] for f in doc["fleet_threads_engine"]] == [10, 100]
    assert "what" in out.stdout  # the table

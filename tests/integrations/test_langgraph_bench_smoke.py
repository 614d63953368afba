"""benchmarks/bench_langgraph.py runs (tiny size) and prints its table and JSON line.

No timing is asserted: only that the script works and that every system read back the
history it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

BENCH = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "bench_langgraph.py"


def test_bench_langgraph_quick_run(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(BENCH), "--steps", "30", "--repeat", "1",
                        "--systems", "journal-sync,memory", "--tmpdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("LangGraph growing conversation, 30 steps")
    assert "AIMessage" in lines[0]
    doc = json.loads(lines[-1])
    assert doc["bench"] == "langgraph" and doc["steps"] == 30
    by = {r["system"]: r for r in doc["results"]}
    assert set(by) == {"journal-sync", "memory"}
    for r in by.values():
        assert r["history_len"] == 32  # the input checkpoint + one per step + the last
        for k in ("first100_ms", "last100_ms", "bytes_written", "latest_ms",
                  "history_1000_ms", "back_500_ms"):
            assert r[k] >= 0, k
    assert by["journal-sync"]["bytes_on_disk"] > 0 and "new_process_latest_ms" in \
        by["journal-sync"]
    assert list(tmp_path.iterdir()) == []  # the scratch stores were removed

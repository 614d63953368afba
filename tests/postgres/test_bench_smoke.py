"""benchmarks/bench_postgres_backend.py runs on a tiny size and prints its JSON line (no
timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_postgres_backend_smoke(pg_dsn: str, pg_schema: str) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_postgres_backend.py"),
                        "--dsn", pg_dsn, "--steps", "10", "--schema", pg_schema],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert p.returncode == 0, p.stdout + p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("BENCH_POSTGRES_BACKEND "))
    doc = json.loads(line.split(" ", 1)[1])
    assert set(doc["modes"]) == {f"{s}-{m}" for s in ("postgres", "filesystem")
                                 for m in ("sync", "group", "none")} | {
        "raw-insert-sync", "raw-insert-none", "pg-row-sync", "pg-row-none", "pg-time-sync",
        "pg-time-none"}
    assert doc["records"] >= 5 * 10

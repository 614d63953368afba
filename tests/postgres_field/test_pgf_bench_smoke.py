"""Smoke test of benchmarks/bench_postgres.py: ``--quick`` on the test server runs every
workload of the systems chosen here and prints the figures it promises (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.postgres")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_postgres.py"


def test_quick_run_prints_the_tables_and_the_json_line(pg_dsn: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dsn", pg_dsn,
         "--systems", "journal,journal-lg,pg-saver", "--fleet", "2x2",
         "--fleet-systems", "journal,pg-saver"],
        capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Growing conversation" in p.stdout and "Fleet: acknowledged steps/s" in p.stdout
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    assert doc["bench"] == "postgres" and doc["quick"] is True
    conv = {r["system"]: r for r in doc["conversation"]}
    assert set(conv) == {"journal", "journal-lg", "pg-saver"}
    for r in conv.values():
        assert r["steps"] == 50
        assert r["wal_bytes"] > 0 and r["size_end"] > 0 and r["rows"] > 0
        assert r["resume_ms"] > 0 and r["history_len"] >= 50
    fleet = {(r["system"], r["agents"], r["processes"]): r for r in doc["fleet"]}
    assert set(fleet) == {("journal", 2, 2), ("pg-saver", 2, 2)}
    assert all(r["steps"] > 0 for r in fleet.values())

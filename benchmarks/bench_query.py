#!/usr/bin/env python3
"""History queries (issue 13): touching, grep, blame and bisect over a long history.

The agent keeps a bounded context window (the newest 40 messages of ~400 bytes, so the state
stays ~20 KB), a budget counter and a step counter that change every step, a tool-result cache
that gains one key every 100 steps, and a status that turns "failed" 10 steps before the end.
Data are deterministic. The journal is built with ``durability="none"`` and
``snapshot_every=100`` (the files are the same as in ``sync`` mode; it is only faster to make).

Measured, each as the median of ``--repeat`` runs in this process (and, for touching and grep,
also as the CLI command run as a whole process, interpreter start-up included), next to the
floor of any scan: reading every record (decode and chain check) through ``Journal.records()``:

* ``touching``: every record with an op under ``/tool_results_cache`` (a full scan).
* ``grep``: a string that is in no record (a full scan), and a regular expression.
* ``blame`` of paths written in the last 1000 steps (target <= 200 ms at 100k steps), and of
  paths written near the start (bounded by one replay of the history).
* ``bisect``: a monotone predicate (materializations, target <= 20 at 100k steps) and a
  non-monotone one (a linear scan).

    python benchmarks/bench_query.py                  # 20k steps
    python benchmarks/bench_query.py --steps 100000   # the figures in docs/performance.md
    python benchmarks/bench_query.py --quick          # tiny (smoke test)

Prints a table, then one JSON line. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from agentjournal import Journal  # noqa: E402
from agentjournal.query import bisect, blame, grep, touching  # noqa: E402

AGENT = "query-bench"
WINDOW = 40
CACHE_EVERY = 100


def _message(i: int) -> dict[str, Any]:
    words = " ".join(f"w{(i * 7 + k) % 997}" for k in range(60))
    return {"role": "user" if i % 2 else "assistant", "content": f"message {i}: {words}"}


def build(root: Path, steps: int) -> float:
    """Write the journal; returns the seconds it took."""
    t0 = time.perf_counter()
    with Journal(AGENT, root, durability="none", snapshot_every=100) as j:
        j.append({"conversation_history": [_message(0)], "budget_spent_usd": 0.0,
                  "step_number": 1, "status": "running", "tool_results_cache": {}})
        for i in range(2, steps + 1):
            ops: list[dict[str, Any]] = [
                {"op": "add", "path": "/conversation_history/-", "value": _message(i)},
                {"op": "replace", "path": "/budget_spent_usd", "value": round(i * 0.001, 3)},
                {"op": "replace", "path": "/step_number", "value": i}]
            if i > WINDOW:
                ops.insert(0, {"op": "remove", "path": "/conversation_history/0"})
            if i % CACHE_EVERY == 0:
                ops.append({"op": "add", "path": f"/tool_results_cache/k{i}",
                            "value": {"query": f"weather {i}", "temp": i % 31}})
            if i == steps - 10:
                ops.append({"op": "replace", "path": "/status", "value": "failed"})
            j.append(ops=ops)
    return time.perf_counter() - t0


def _median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def _cli_ms(root: Path, args: list[str], repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "agentjournal.cli", "--root", str(root), *args]

    def once() -> None:
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)

    return _median_ms(once, repeat)[0]


def measure(root: Path, steps: int, repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(name: str, ms: float, target: str = "", **extra: Any) -> None:
        rows.append({"name": name, "ms": round(ms, 2), "target": target, **extra})

    recent_key = f"/tool_results_cache/k{(steps // CACHE_EVERY) * CACHE_EVERY}"
    with Journal(AGENT, root, readonly=True) as j:
        ms, n = _median_ms(lambda: sum(1 for _ in j.records()), repeat)
        row("floor: read every record (decode + chain check)", ms, "", records=n)
        ms, n = _median_ms(lambda: sum(1 for _ in touching(j, "/tool_results_cache")), repeat)
        row("touching /tool_results_cache (in-process)", ms, "<= 2000", matches=n)
        ms, n = _median_ms(lambda: sum(1 for _ in touching(j, "/budget_spent_usd")), repeat)
        row("touching /budget_spent_usd: every step (in-process)", ms, "<= 2000", matches=n)
        ms, n = _median_ms(lambda: sum(1 for _ in grep(j, "no such text")), repeat)
        row("grep 'no such text' (in-process)", ms, "<= 2000", matches=n)
        rx = r"weather [1-9]*[13]00\b"
        ms, n = _median_ms(lambda: sum(1 for _ in grep(j, rx, regex=True)), repeat)
        row("grep --regex 'weather [1-9]*[13]00\\b' (in-process)", ms, "<= 2000", matches=n)
        for path, what in [("/conversation_history/39/content", "newest message"),
                           (recent_key, "cache key of the last 100 steps"),
                           ("/status", "written 10 steps before the end")]:
            ms, b = _median_ms(lambda p=path: blame(j, p), repeat)
            row(f"blame {path} ({what})", ms, "<= 200", step=b.last.step if b.last else None)
        ms, b = _median_ms(lambda: blame(j, "/tool_results_cache"), repeat)
        row("blame /tool_results_cache (+ every member)", ms, "scan",
            members=len(b.children))
        ms, b = _median_ms(lambda: blame(j, f"/tool_results_cache/k{CACHE_EVERY}"), repeat)
        row(f"blame /tool_results_cache/k{CACHE_EVERY} (written at step {CACHE_EVERY})", ms,
            "scan", step=b.last.step if b.last else None)
        ms, r = _median_ms(lambda: bisect(j, f"/step_number >= {steps * 7 // 9}"), repeat)
        row(f"bisect /step_number >= {steps * 7 // 9} (monotone)", ms, "<= 20 mat.",
            step=r.step, materializations=r.materializations)
        ms, r = _median_ms(lambda: bisect(j, '/status == "failed"'), max(1, repeat // 2))
        row('bisect /status == "failed" (linear)', ms, "scan", step=r.step,
            materializations=r.materializations)
    row("CLI: log --touching /tool_results_cache --json (process)",
        _cli_ms(root, ["log", AGENT, "--touching", "/tool_results_cache", "--json"], repeat),
        "<= 2000")
    row("CLI: grep 'no such text' --json (process)",
        _cli_ms(root, ["grep", AGENT, "no such text", "--json"], repeat), "<= 2000")
    row("CLI: blame /status (process)", _cli_ms(root, ["blame", AGENT, "/status"], repeat))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000, help="history length (default 20k)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--tmpdir", help="where to build the journal")
    args = ap.parse_args()
    steps = 600 if args.quick else args.steps
    repeat = 1 if args.quick else args.repeat
    tmp = Path(tempfile.mkdtemp(prefix="bench-query-", dir=args.tmpdir))
    try:
        built = build(tmp, steps)
        rows = measure(tmp, steps, repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r["name"]) for r in rows)
    print(f"history queries over {steps} steps (built in {built:.1f} s; median of {repeat})")
    print(f"{'query':<{width}}  {'ms':>9}  {'target':>10}  detail")
    for r in rows:
        detail = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("name", "ms",
                                                                         "target"))
        print(f"{r['name']:<{width}}  {r['ms']:>9.2f}  {r['target']:>10}  {detail}")
    print(json.dumps({"benchmark": "query", "steps": steps, "repeat": repeat,
                      "build_s": round(built, 2), "python": sys.version.split()[0],
                      "rows": rows}, separators=(",", ":")))


if __name__ == "__main__":
    main()

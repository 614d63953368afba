"""Core engine benchmark: append latency, step recording, resume, time travel, bytes per step.

Not part of the unit tests. Deterministic data (benchmarks/_workload.py). Prints a table and,
last, one JSON line with every figure. Targets from DESIGN.md are printed beside the figures.

    python benchmarks/bench_core.py            # full sizes (1k and 100k-step journals)
    python benchmarks/bench_core.py --quick    # tiny sizes (CI smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workload import Workload, apply_step, new_state  # noqa: E402

from agentjournal import Journal  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def us(ns: float) -> float:
    return ns / 1000.0


def bench_append(root: str, mode: str, n: int, wl: Workload) -> dict[str, float]:
    """Journal.append(ops=...) of a ~500 B delta (no diff; ops validated), snapshots off."""
    j = Journal(f"append-{mode}", root, durability=mode, snapshot_every=None)
    j.append(ops=[{"op": "add", "path": "/messages", "value": []},
                  {"op": "add", "path": "/counter", "value": 0}])
    times = []
    try:
        for i in range(1, n + 1):
            m = wl.message((i - 1) % (len(wl.messages) - 1) + 1)
            ops = [{"op": "add", "path": "/messages/-", "value": m},
                   {"op": "replace", "path": "/counter", "value": i}]
            t0 = time.perf_counter_ns()
            j.append(ops=ops)
            times.append(time.perf_counter_ns() - t0)
    finally:
        j.close()
    return {"median_us": us(statistics.median(times)), "p99_us": us(pct(times, 99))}


def bench_record_state(root: str, n: int, wl: Workload, mode: str,
                       tag: str = "") -> dict[str, float]:
    """Recording steps given the whole (growing) state: the last 100 steps of n (500 KB at 1000)."""
    j = Journal(f"record{tag}-{mode}", root, durability=mode, snapshot_every=100)
    state = new_state()
    times = []
    try:
        for i in range(1, n + 1):
            apply_step(state, wl, i)
            t0 = time.perf_counter_ns()
            j.append(state)
            times.append(time.perf_counter_ns() - t0)
        size = len(json.dumps(state))
    finally:
        j.close()
    last = times[-100:]
    return {"median_us": us(statistics.median(last)), "p99_us": us(pct(last, 99)),
            "mean_us_incl_snapshots": us(statistics.mean(last)), "state_bytes": size}


def build(root: str, agent: str, n: int, wl: Workload, *, bounded: bool) -> Journal:
    """A journal of n steps, snapshot every 100, in `none` mode (to build fast)."""
    j = Journal(agent, root, durability="none", snapshot_every=100)
    state = new_state()
    for i in range(1, n + 1):
        if bounded:  # keep the state ~20 KB: the newest 40 messages
            m = wl.message((i - 1) % (len(wl.messages) - 1) + 1)
            state["messages"].append(m)
            if len(state["messages"]) > 40:
                del state["messages"][0]
            state["counter"] = i
            state["budget"] += 0.01
            j.append(state)
        else:
            apply_step(state, wl, i)
            j.append(state)
    j.close()
    return j


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def bench_read(root: str, agent: str, n: int, repeat: int, rng: random.Random) -> dict[str, float]:
    def resume() -> None:
        with Journal(agent, root, snapshot_every=100) as j:
            j.resume()

    def resume_ro() -> None:
        with Journal(agent, root, readonly=True) as j:
            j.resume()

    ro = Journal(agent, root, readonly=True)
    ks = [rng.randint(1, n) for _ in range(repeat)]
    it = iter(ks)
    try:
        sa = timed(lambda: ro.state_at(next(it)), repeat)
        hist = timed(lambda: sum(1 for _ in ro.history(max(1, n - 999), n)), max(3, repeat // 4))
        disk = ro.disk_usage()
    finally:
        ro.close()
    return {
        "resume_ms": statistics.median(timed(resume, repeat)) / 1e6,
        "resume_readonly_ms": statistics.median(timed(resume_ro, repeat)) / 1e6,
        "state_at_ms": statistics.median(sa) / 1e6,
        "state_at_p99_ms": pct(sa, 99) / 1e6,
        "history_1000_ms": statistics.median(hist) / 1e6,
        "bytes_per_step": disk / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    ap.add_argument("--root", default=None, help="directory for the journals (default: a temp dir)")
    args = ap.parse_args()
    quick = args.quick
    n_append = 200 if quick else 3000
    n_conv = 120 if quick else 1000
    scales = [200, 1000] if quick else [1000, 100_000]
    repeat = 5 if quick else 50
    root = args.root or tempfile.mkdtemp(prefix="aj-bench-")
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o700)
    wl = Workload(max(n_conv, 1000 if not quick else n_conv))
    res: dict[str, Any] = {"quick": quick, "machine": {
        "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform()}}
    try:
        res["append"] = {m: bench_append(root, m, n_append, wl) for m in ("sync", "group", "none")}
        res["record_state"] = {m: bench_record_state(root, n_conv, wl, m) for m in ("none", "sync")}
        # Workload 1n: every message carries token counts and floats (none is number-free).
        wl_num = Workload(max(n_conv, 1000 if not quick else n_conv), numbers=True)
        res["record_state_numbers"] = {
            "none": bench_record_state(root, n_conv, wl_num, "none", tag="-numbers")}
        rng = random.Random(7)
        build(root, "conv", n_conv, wl, bounded=False)
        res["conversation"] = bench_read(root, "conv", n_conv, repeat, rng)
        res["scale"] = {}
        for n in scales:
            build(root, f"scale-{n}", n, wl, bounded=True)
            res["scale"][n] = bench_read(root, f"scale-{n}", n, repeat, rng)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)

    a, r, c = res["append"], res["record_state"], res["conversation"]
    rows = []
    for mode, target in (("sync", "fdatasync + 50 µs"), ("group", ""), ("none", "≤ 30 µs")):
        rows.append((f"append ~500 B delta, {mode}", f"{a[mode]['median_us']:.1f} µs",
                     f"p99 {a[mode]['p99_us']:.1f}", target))
    for mode, target in (("none", "≤ 100 µs"), ("sync", "fdatasync + 100 µs")):
        rows.append((f"record step of {r[mode]['state_bytes'] // 1000} KB state ({mode})",
                     f"{r[mode]['median_us']:.1f} µs",
                     f"mean incl. snapshots {r[mode]['mean_us_incl_snapshots']:.1f}", target))
    rn = res["record_state_numbers"]["none"]
    rows.append((f"record step of {rn['state_bytes'] // 1000} KB state with numbers (none)",
                 f"{rn['median_us']:.1f} µs",
                 f"mean incl. snapshots {rn['mean_us_incl_snapshots']:.1f}", "(reported)"))
    rows += [
        (f"resume {n_conv}-message history", f"{c['resume_ms']:.2f} ms",
         f"read-only {c['resume_readonly_ms']:.2f} ms", "≤ 2 ms"),
        (f"history listing {min(n_conv, 1000)} steps", f"{c['history_1000_ms']:.2f} ms", "",
         "≤ 5 ms"),
        ("bytes on disk per step (conversation)", f"{c['bytes_per_step']:.0f} B", "", ""),
    ]
    for n, s in res["scale"].items():
        rows += [
            (f"scale {n} steps: resume", f"{s['resume_ms']:.2f} ms",
             f"read-only {s['resume_readonly_ms']:.2f}", "flat"),
            (f"scale {n} steps: state_at(random k)", f"{s['state_at_ms']:.2f} ms",
             f"p99 {s['state_at_p99_ms']:.2f}", "≤ 5 ms"),
            (f"scale {n} steps: history 1000", f"{s['history_1000_ms']:.2f} ms", "", "≤ 5 ms"),
            (f"scale {n} steps: bytes/step", f"{s['bytes_per_step']:.0f} B", "", ""),
        ]
    ns = list(res["scale"])
    ratio = res["scale"][ns[-1]]["resume_ms"] / res["scale"][ns[0]]["resume_ms"]
    res["scale_resume_ratio"] = ratio
    rows.append((f"resume {ns[-1]} vs {ns[0]} steps", f"{ratio:.2f}x", "", "≤ 1.2x"))
    w = max(len(x[0]) for x in rows)
    print(f"{'measure':<{w}}  {'median':>12}  {'':<32}  target")
    for name, med, extra, target in rows:
        print(f"{name:<{w}}  {med:>12}  {extra:<32}  {target}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()

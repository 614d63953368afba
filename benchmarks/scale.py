#!/usr/bin/env python3
"""Workload 2 of issue 6, "scale": agentjournal alone at 1k, 10k, 100k steps (1M with --large).

Shows how reads cost as the history grows: resume (fresh object, read-write and read-only, and
a fresh process), ``state_at`` at random steps, listing 1000 steps of history, bytes per step.

The agent here keeps a bounded context window -- the newest 40 messages of the growing
conversation of workload 1, plus the counter and the budget -- so the state stays ~20 KB at every
history length and what is measured is the effect of *history* length alone (a 100k-message
state would be 50 MB whatever the store). Each step appends one ~500-byte message and drops the
oldest. Messages are those of ``_workload.Workload(1000)``, reused cyclically.

The journals are built in ``durability="none"`` mode with ``snapshot_every=100`` to save time
(durability changes how long an append waits, not what is written: the files are the same).

    python benchmarks/scale.py                      # 1k, 10k, 100k; table; --json FILE
    python benchmarks/scale.py --large              # ... and 1M
    python benchmarks/scale.py --quick              # tiny sizes (smoke test)

With retention (``--part flat``, ``_flat.py``): the "costs flat in history length" run of
issue 9 -- ``keep_snapshots=10`` with old segments kept, compressed or pruned; per-step cost with
snapshots and retention amortized, snapshot + retention alone, resume in a new process,
``state_at``, ``history``, ``verify`` throughput, peak RSS of ``verify`` and ``export``, and the
``sync``-mode step; a table with the largest/smallest ratio of every row, a JSON line, and
``--flat-chart`` (docs/img/scale_flat.png). ``--part all`` (the default) runs both parts.

    python benchmarks/scale.py --part flat --flat-chart docs/img/scale_flat.png --markdown
    python benchmarks/scale.py --flat-replot FILE.json     # the table of an earlier --json

``peers.py`` runs the read part as its workload 2 (in a subprocess; ``--quick``: both parts) and
charts it (docs/img/scale.png). No figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _flat as F  # noqa: E402
import _workload as W  # noqa: E402

WINDOW = 40  # messages kept in the state
CYCLE = 1000  # distinct messages, reused
SNAPSHOT_EVERY = 100
AGENT = "scale"
SIZES = [1_000, 10_000, 100_000]
LARGE = 1_000_000
QUICK_SIZES = [200, 1_000]
HISTORY_SPAN = 1000

now_ns = time.perf_counter_ns


def _pct(xs: list[int], q: float) -> int:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))]


class Bounded:
    """The bounded-window agent: ``state(k)`` without replaying, for verification."""

    def __init__(self) -> None:
        self.wl = W.Workload(CYCLE)

    def msg_index(self, i: int) -> int:
        return (i - 1) % CYCLE + 1

    def apply(self, state: dict[str, Any], i: int) -> None:
        state["messages"].append(self.wl.messages[self.msg_index(i)])
        if len(state["messages"]) > WINDOW:
            del state["messages"][0]
        state["counter"] = i
        state["budget"] = state["budget"] + self.wl.costs[self.msg_index(i)]

    def expected(self, k: int, budgets: list[float]) -> dict[str, Any]:
        lo = max(1, k - WINDOW + 1)
        return {"messages": [self.wl.messages[self.msg_index(i)] for i in range(lo, k + 1)],
                "counter": k, "budget": budgets[k]}

    def check(self, state: Any, k: int, budgets: list[float]) -> bool:
        """Whether ``state`` is exactly the state after step ``k``."""
        return W.states_equal(state, self.expected(k, budgets))


def build(root: Path, n: int, agent: Bounded) -> tuple[dict[str, Any], list[float]]:
    """Write an n-step journal; returns build figures and the budget after every step."""
    from agentjournal import Journal

    state = W.new_state()
    budgets = [0.0]
    per_step: list[int] = []
    t0 = time.perf_counter()
    with Journal(AGENT, root, durability="none", snapshot_every=SNAPSHOT_EVERY) as j:
        for i in range(1, n + 1):
            agent.apply(state, i)
            t = now_ns()
            j.append(state)
            per_step.append(now_ns() - t)
            budgets.append(state["budget"])
    build_s = time.perf_counter() - t0
    return {"build_s": build_s, "append_median_us": statistics.median(per_step) / 1e3,
            "append_mean_us": statistics.fmean(per_step) / 1e3,
            "state_bytes": W.json_size(state)}, budgets


def dir_bytes(path: Path) -> dict[str, int]:
    out = {"segments": 0, "snapshots": 0, "other": 0}
    for p in path.rglob("*"):
        if p.is_file():
            key = p.parent.name if p.parent.name in out else "other"
            out[key] += p.stat().st_size
    out["total"] = sum(out.values())
    return out


def probe(root: Path) -> None:
    """Fresh interpreter: import, open, resume (the figures go to stdout as JSON)."""
    t0 = now_ns()
    from agentjournal import Journal
    t1 = now_ns()
    j = Journal(AGENT, root, snapshot_every=SNAPSHOT_EVERY)
    r = j.resume()
    t2 = now_ns()
    j.close()
    print(json.dumps({"import_ms": (t1 - t0) / 1e6, "open_resume_ms": (t2 - t1) / 1e6,
                      "step": r.step}))


def measure(root: Path, n: int, agent: Bounded, budgets: list[float], rng: random.Random,
            reps: int, process_reps: int) -> dict[str, Any]:
    from agentjournal import Journal

    final = agent.expected(n, budgets)
    res: dict[str, Any] = {"steps": n}

    def resume(readonly: bool) -> tuple[int, Any]:
        t = now_ns()
        j = Journal(AGENT, root, readonly=readonly, snapshot_every=SNAPSHOT_EVERY)
        st = j.resume().state
        dt = now_ns() - t
        j.close()
        return dt, st

    for label, ro in (("resume_fresh_object", False), ("resume_readonly", True)):
        times, ok = [], True
        for _ in range(reps):
            dt, st = resume(ro)
            times.append(dt)
            ok = ok and W.states_equal(st, final)
        res[label] = {"median_ms": statistics.median(times) / 1e6,
                      "p99_ms": _pct(times, 99) / 1e6, "first_ms": times[0] / 1e6,
                      "verified": ok,
                      "how": "new Journal object (" + ("read-only" if ro else "writable, lock")
                             + ") + resume(); open included"}

    runs = []
    for _ in range(process_reps):
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe", str(root)],
                           capture_output=True, text=True, timeout=600)
        if p.returncode == 0:
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    if runs:
        res["resume_fresh_process"] = {
            "median_ms": statistics.median(r["open_resume_ms"] for r in runs),
            "import_ms": statistics.median(r["import_ms"] for r in runs),
            "runs": len(runs), "verified": all(r["step"] == n for r in runs),
            "how": "new interpreter: import agentjournal (reported apart), then open + resume"}

    # state_at and history on the agent's own (writable) journal -- what the agent process
    # and a StateManager holding the agent use -- and on a read-only one (an inspector: the CLI,
    # or a StateManager not holding the agent), which re-lists the segments on every call.
    for sfx, ro in (("", False), ("_readonly", True)):
        who = "read-only Journal" if ro else "writable Journal (holding the lock)"
        with Journal(AGENT, root, readonly=ro, snapshot_every=SNAPSHOT_EVERY) as j:
            ks = [rng.randint(1, n) for _ in range(reps)]
            times, ok = [], True
            for k in ks:
                t = now_ns()
                st = j.state_at(k)
                times.append(now_ns() - t)
                ok = ok and W.states_equal(st, agent.expected(k, budgets))
            res["state_at" + sfx] = {
                "median_ms": statistics.median(times) / 1e6, "p99_ms": _pct(times, 99) / 1e6,
                "max_ms": max(times) / 1e6, "first_ms": times[0] / 1e6, "n": len(ks),
                "verified": ok, "how": f"one {who}; random steps k in 1..n"}
            span = min(HISTORY_SPAN, n)
            times, counts = [], []
            for _ in range(max(5, reps // 4)):
                s = rng.randint(1, n - span + 1)
                t = now_ns()
                c = sum(1 for _ in j.history(s, s + span - 1))
                times.append(now_ns() - t)
                counts.append(c)
            res["history" + sfx] = {
                "span": span, "median_ms": statistics.median(times) / 1e6,
                "p99_ms": _pct(times, 99) / 1e6, "records_median": statistics.median(counts),
                "how": f"one {who}; count the records of history(s, s+{span - 1}), random s"}
    b = dir_bytes(root / AGENT)
    res["bytes"] = b
    res["bytes_per_step"] = b["total"] / n
    res["segment_bytes_per_step"] = b["segments"] / n
    return res


def run(sizes: list[int], tmpdir: Path | None, reps: int, process_reps: int,
        keep: bool = False) -> dict[str, Any]:
    agent = Bounded()
    rng = random.Random(20240612)
    out: dict[str, Any] = {
        "description": (f"bounded context window: newest {WINDOW} messages + counter + budget "
                        f"(~20 KB state); one ~500 B message per step; journals built in "
                        f"durability='none', snapshot_every={SNAPSHOT_EVERY}"),
        "window_messages": WINDOW, "snapshot_every": SNAPSHOT_EVERY, "reps": reps,
        "history_span": HISTORY_SPAN, "sizes": {}}
    base = Path(tempfile.mkdtemp(prefix="aj-scale-", dir=tmpdir))
    try:
        for n in sizes:
            root = base / f"n{n}"
            print(f"[scale] building {n} steps ...", file=sys.stderr, flush=True)
            b, budgets = build(root, n, agent)
            print(f"[scale] built {n} steps in {b['build_s']:.1f}s; measuring", file=sys.stderr,
                  flush=True)
            m = measure(root, n, agent, budgets, rng, reps, process_reps)
            m["build"] = b
            out["sizes"][str(n)] = m
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    ns = sorted(int(k) for k in out["sizes"])
    if len(ns) > 1:
        lo, hi = out["sizes"][str(ns[0])], out["sizes"][str(ns[-1])]
        out["ratios_largest_vs_smallest"] = {
            "of": [ns[-1], ns[0]],
            "resume_fresh_object": hi["resume_fresh_object"]["median_ms"]
            / lo["resume_fresh_object"]["median_ms"],
            "resume_readonly": hi["resume_readonly"]["median_ms"]
            / lo["resume_readonly"]["median_ms"],
            "state_at": hi["state_at"]["median_ms"] / lo["state_at"]["median_ms"],
            "state_at_readonly": hi["state_at_readonly"]["median_ms"]
            / lo["state_at_readonly"]["median_ms"],
            "history": hi["history"]["median_ms"] / lo["history"]["median_ms"],
        }
    return out


def _f(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def table_rows(scale: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["steps", "resume obj", "resume ro", "resume proc", "state_at", "p99",
               "state_at ro", f"history {scale['history_span']}", "history ro", "bytes/step",
               "build s", "verified"]
    rows = []
    for n, s in sorted(scale["sizes"].items(), key=lambda kv: int(kv[0])):
        fp = s.get("resume_fresh_process", {})
        ok = all(s[k].get("verified", True) for k in
                 ("resume_fresh_object", "resume_readonly", "state_at", "state_at_readonly")
                 ) and fp.get(
                     "verified", True)
        rows.append([f"{int(n):,}", _f(s["resume_fresh_object"]["median_ms"]),
                     _f(s["resume_readonly"]["median_ms"]), _f(fp.get("median_ms")),
                     _f(s["state_at"]["median_ms"]), _f(s["state_at"]["p99_ms"]),
                     _f(s["state_at_readonly"]["median_ms"]), _f(s["history"]["median_ms"]),
                     _f(s["history_readonly"]["median_ms"]), f"{s['bytes_per_step']:.0f}",
                     f"{s['build']['build_s']:.1f}", "yes" if ok else "NO"])
    return headers, rows


def print_table(scale: dict[str, Any]) -> None:
    headers, rows = table_rows(scale)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print("(median ms; resume obj = new writable Journal + resume(), ro = read-only, proc = new"
          " interpreter, import excluded; state_at / history on the agent's writable journal,"
          " 'ro' on a read-only one)")
    r = scale.get("ratios_largest_vs_smallest")
    if r:
        a, b = r["of"]
        print(f"{a:,} vs {b:,} steps: resume x{r['resume_fresh_object']:.2f} (read-only "
              f"x{r['resume_readonly']:.2f}), state_at x{r['state_at']:.2f} (read-only "
              f"x{r['state_at_readonly']:.2f}), history x{r['history']:.2f}")


def chart(scale: dict[str, Any], path: Path, subtitle: str = "") -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(scale["sizes"].items(), key=lambda kv: int(kv[0]))
    ns = [int(k) for k, _ in items]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 6.0), gridspec_kw={"width_ratios": [2, 1]})
    series = [
        ("resume, new object (writable)", lambda s: s["resume_fresh_object"]["median_ms"], "o-"),
        ("resume, new object (read-only)", lambda s: s["resume_readonly"]["median_ms"], "s--"),
        ("resume, new process", lambda s: s.get("resume_fresh_process", {}).get("median_ms"),
         "^-."),
        ("state_at(random k)", lambda s: s["state_at"]["median_ms"], "D-"),
        ("state_at(random k), read-only journal", lambda s: s["state_at_readonly"]["median_ms"],
         "d--"),
        (f"list {scale['history_span']} steps of history", lambda s: s["history"]["median_ms"],
         "v-"),
        (f"list {scale['history_span']} steps, read-only journal",
         lambda s: s["history_readonly"]["median_ms"], "<--"),
    ]
    for label, get, style in series:
        ys = [get(s) for _, s in items]
        if all(y is not None for y in ys):
            ax.plot(ns, ys, style, label=label, lw=1.5, ms=6)
    ax.set_xscale("log")
    ax.set_xticks(ns, [f"{n:,}" for n in ns])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("history length, steps (log scale)")
    ax.set_ylabel("ms (median)")
    ax.set_title("agentjournal read cost vs history length", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    seg = [s["segment_bytes_per_step"] for _, s in items]
    snap = [s["bytes"]["snapshots"] / int(n) for n, s in items]
    x = range(len(ns))
    bx.bar(x, seg, label="journal segments", color="tab:blue")
    bx.bar(x, snap, bottom=seg, label="snapshots (lz4)", color="tab:orange")
    bx.set_xticks(list(x), [f"{n:,}" for n in ns])
    bx.set_xlabel("history length, steps")
    bx.set_ylabel("bytes on disk per step")
    bx.set_title("bytes per step", fontsize=10)
    bx.legend(fontsize=8, loc="lower right")
    bx.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"Scale: bounded {scale['window_messages']}-message state (~20 KB), "
                 f"snapshot every {scale['snapshot_every']} steps" + (
                     f" -- {subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None, help="comma-separated step counts")
    ap.add_argument("--large", action="store_true", help=f"add {LARGE:,} steps")
    ap.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, few reps")
    ap.add_argument("--part", choices=("all", "reads", "flat"), default="all",
                    help="reads: the read measures above; flat: the retention run "
                         "(_flat.py); all: both (default)")
    ap.add_argument("--variants", default=",".join(F.VARIANTS),
                    help="retention variants of the flat run (default: keep,compress,prune)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--process-reps", type=int, default=None,
                    help="resumes in a new process per size (median)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--chart", type=Path, default=None, help="write the PNG here")
    ap.add_argument("--flat-chart", type=Path, default=None,
                    help="write the flat run's chart here (e.g. docs/img/scale_flat.png)")
    ap.add_argument("--flat-replot", type=Path, default=None, metavar="JSON",
                    help="print the flat table (and --flat-chart) of a --json file; run nothing")
    ap.add_argument("--markdown", action="store_true", help="also print the flat table as "
                    "Markdown")
    ap.add_argument("--tmpdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tmpdir is not None:
        args.tmpdir.mkdir(parents=True, exist_ok=True)  # a new place for the stores
    if args.probe:
        probe(args.probe)
        return 0
    if args.flat_replot:
        flat = json.loads(args.flat_replot.read_text())["flat"]
        flat["rows"] = F.rows(flat)
        F.print_table(flat)
        if args.markdown:
            print("\n".join(F.table_lines(flat, markdown=True)))
        if args.flat_chart:
            print("chart:", F.chart(flat, args.flat_chart))
        return 0
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes else
             QUICK_SIZES if args.quick else list(SIZES))
    if args.large and LARGE not in sizes:
        sizes.append(LARGE)
    sizes.sort()
    reps = args.reps or (5 if args.quick else 50)
    process_reps = args.process_reps or (2 if args.quick else 5)
    out: dict[str, Any] = {}
    if args.part in ("all", "reads"):
        out = run(sizes, args.tmpdir, reps, process_reps, keep=args.keep)
        print_table(out)
    if args.part in ("all", "flat"):
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        # The sync-mode window: at 1k and 100k steps (quick: the smallest and largest size).
        sync_sizes = {sizes[0], sizes[-1]} if args.quick else set(F.SYNC_SIZES)
        base = Path(tempfile.mkdtemp(prefix="aj-flat-", dir=args.tmpdir))
        t0 = time.perf_counter()
        try:
            flat = F.run(sizes, variants, base, Bounded(), reps * 4 if not args.reps else reps,
                         process_reps, sync_sizes, keep=args.keep)
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
        flat["wall_s"] = time.perf_counter() - t0
        out["flat"] = flat
        print(f"\nScale with retention ({flat['description']}):")
        F.print_table(flat)
        if args.markdown:
            print()
            print("\n".join(F.table_lines(flat, markdown=True)))
        if args.flat_chart:
            print("chart:", F.chart(flat, args.flat_chart))
        unverified = [f"{v} {n}: {k}" for v, per in flat["variants"].items()
                      for n, s in per.items()
                      for k in ("state_at", "state_at_readonly", "state_at_covered",
                                "state_at_covered_readonly", "resume_process")
                      if not s[k]["verified"]] + [
            f"{v} {n}: verify" for v, per in flat["variants"].items() for n, s in per.items()
            if not s["verify"]["ok"]]
        if unverified:
            print("NOT VERIFIED: " + "; ".join(unverified), file=sys.stderr)
        print(json.dumps({"scale_flat": {
            "sizes": sizes, "wall_s": round(flat["wall_s"], 1), "verified": not unverified,
            "rows": [{k: r[k] for k in ("variant", "measure", "unit", "values", "ratio",
                                        "flat")} for r in flat["rows"]]}}))
        if unverified:
            return 1
    if args.chart and out.get("sizes"):
        print("chart:", chart(out, args.chart))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

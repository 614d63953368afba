"""The "costs flat in history length" run of issue 9, with retention (part of ``scale.py``).

At each history length (1k, 10k, 100k; 1M with ``--large``) and for each retention variant --
``keep_snapshots=10`` with old segments kept (``keep``), lz4-compressed (``compress``,
``compress_segments=True``) or deleted behind an anchor (``prune``, ``prune=True``) -- one
journal is built by the bounded-window agent of ``scale.py`` (~20 KB state, one ~500 B message
per step, ``snapshot_every=100``) and measured:

* every append is timed, the ones that trigger a snapshot and retention included; the per-step
  median, p99 and mean are over the *last* 900 appends (9 of which take a snapshot), where a
  cost that grows with the history shows; the appends that triggered a snapshot in the last
  ``max(1000, n // 10)`` steps are also reported alone (snapshot + retention);
* resume in a new interpreter (median of several; ``import agentjournal`` reported apart);
* ``state_at`` at random steps and listing 1000 steps (``history``), on the agent's writable
  journal and on a read-only one;
* ``verify`` throughput, and the peak RSS of ``verify`` and of ``export`` (to ``/dev/null``),
  each in its own interpreter, which reports its own peak RSS (``VmHWM``)
  (``RUSAGE_CHILDREN`` in the parent would be the maximum over every child run so far);
* for ``keep`` at 1k and 100k steps, the per-step cost in the default ``sync`` durability:
  the journal built in ``none`` mode is reopened in ``sync`` mode and 1000 more steps are timed.

Journals are built in ``durability="none"``: it changes how long an append waits, not what is
written. No figure is asserted anywhere; ``scale.py`` prints the table and the JSON.

Worker mode (one measure in a fresh interpreter, JSON on stdout)::

    python benchmarks/_flat.py --worker resume|verify|export ROOT VARIANT
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

AGENT = "flat"
SNAPSHOT_EVERY = 100
KEEP_SNAPSHOTS = 10
VARIANTS = ("keep", "compress", "prune")
HISTORY_SPAN = 1000
HISTORY_SPAN_PRUNE = 800  # prune keeps ~900 steps (10 snapshots, 100 apart): list 800 of them
TAIL = 900  # appends in the per-step window (9 of them take a snapshot)
ROUNDS = 6  # the window, and the reads, in rounds across every journal
VERIFY_ROUNDS = 3
SYNC_WINDOW = 1000
SYNC_SIZES = (1_000, 100_000)
TARGET = 1.3

now_ns = time.perf_counter_ns


def options(variant: str) -> dict[str, Any]:
    """The retention options of a variant (what every writable open of it passes)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    return {"snapshot_every": SNAPSHOT_EVERY, "keep_snapshots": KEEP_SNAPSHOTS,
            "compress_segments": variant == "compress", "prune": variant == "prune"}


def _pct(xs: Any, q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    return float(s[max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))])


def _stats_us(xs: Any) -> dict[str, Any]:
    xs = list(xs)
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median_us": statistics.median(xs) / 1e3,
            "p99_us": _pct(xs, 99) / 1e3, "mean_us": statistics.fmean(xs) / 1e3,
            "max_us": max(xs) / 1e3}


def _maxrss_mb() -> float:
    # The process's own peak (VmHWM, per address space). ru_maxrss is not: Linux keeps it
    # across fork and exec, so a child of a large benchmark process reports the parent's size.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- worker side (a fresh interpreter per measure) -------------------------------------------
def worker(kind: str, root: Path, variant: str) -> dict[str, Any]:
    """One measure in this (fresh) interpreter; what ``--worker`` prints as JSON."""
    t0 = now_ns()
    from agentjournal import Journal
    t1 = now_ns()
    out: dict[str, Any] = {"import_ms": (t1 - t0) / 1e6}
    if kind == "resume":
        j = Journal(AGENT, root, **options(variant))
        r = j.resume()
        out["open_resume_ms"] = (now_ns() - t1) / 1e6
        out["step"] = r.step
        out["counter"] = r.state["counter"] if isinstance(r.state, dict) else None
        j.close()
    elif kind == "verify":
        j = Journal(AGENT, root, readonly=True)
        out["rss_before_mb"] = _maxrss_mb()
        t = now_ns()
        rep = j.verify()
        out["s"] = (now_ns() - t) / 1e9
        out["records"], out["segments"], out["ok"] = rep.records, rep.segments, rep.ok
        j.close()
    elif kind == "export":
        from agentjournal.exchange import export_journal

        j = Journal(AGENT, root, readonly=True)
        out["rss_before_mb"] = _maxrss_mb()
        t = now_ns()
        with open(os.devnull, "wb") as sink:
            rep = export_journal(j, sink)
        out["s"] = (now_ns() - t) / 1e9
        out["report"] = {k: v for k, v in rep.to_dict().items()
                         if isinstance(v, (int, float, str, bool))}
        j.close()
    else:
        raise ValueError(f"unknown worker {kind!r}")
    out["maxrss_mb"] = _maxrss_mb()
    return out


def _run_worker(kind: str, root: Path, variant: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", kind,
                        str(root), variant], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{kind} worker failed on {root}: {p.stderr.strip()[-2000:]}")
    res: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return res


# --- measuring side --------------------------------------------------------------------------
def _timed(fn: Any) -> tuple[int, Any]:
    t = now_ns()
    v = fn()
    return now_ns() - t, v


def _ms(times: list[int]) -> dict[str, float]:
    return {"median_ms": statistics.median(times) / 1e6, "p99_ms": _pct(times, 99) / 1e6,
            "max_ms": max(times) / 1e6, "n": len(times)}


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Subject:
    """One journal under test: its size and variant, the agent's state, its figures."""

    def __init__(self, base: Path, n: int, variant: str, agent: Any) -> None:
        self.root = base / f"{variant}-{n}"
        self.n, self.variant, self.agent = n, variant, agent
        self.state: dict[str, Any] = {"messages": [], "counter": 0, "budget": 0.0}
        self.budgets = [0.0]
        self.step = 0
        self.j: Any = None
        self.res: dict[str, Any] = {"steps": n, "variant": variant}
        self.times: dict[str, list[int]] = {}
        # the per-step window: the last TAIL appends (quick sizes: fewer), 1 % of them snapshots
        self.tail = min(TAIL, n - SNAPSHOT_EVERY)

    def open(self, durability: str = "none") -> None:
        from agentjournal import Journal

        self.j = Journal(AGENT, self.root, durability=durability, **options(self.variant))

    def close(self) -> None:
        if self.j is not None:
            self.j.close()
            self.j = None

    def append(self, count: int, times: Any, snap: Any) -> None:
        """Append ``count`` steps, timing each; ``snap`` gets 1 for an append that snapshot."""
        j, state = self.j, self.state
        for _ in range(count):
            self.step += 1
            self.agent.apply(state, self.step)
            t = now_ns()
            a = j.append(state)
            times.append(now_ns() - t)
            snap.append(a.snapshot_seq is not None)
            self.budgets.append(state["budget"])

    def add(self, key: str, dt: int) -> None:
        self.times.setdefault(key, []).append(dt)


def _window_stats(times: Any, snap: Any) -> dict[str, Any]:
    return {"all": _stats_us(times),
            "snapshot": _stats_us(t for t, s in zip(times, snap, strict=True) if s),
            "plain": _stats_us(t for t, s in zip(times, snap, strict=True) if not s)}


def phase_build(subjects: list[Subject]) -> None:
    """Each journal up to ``n - tail`` steps (timed too, reported apart); left open."""
    for s in subjects:
        times, snap = array("q"), array("b")
        t0 = time.perf_counter()
        s.open()
        s.append(s.n - s.tail, times, snap)
        s.res["build"] = {"steps": s.n - s.tail, "s": time.perf_counter() - t0,
                          **_window_stats(times[1:], snap[1:])}  # the first append creates
        log(f"built {s.variant} {s.n - s.tail:,} steps in {s.res['build']['s']:.1f}s")


def phase_window(subjects: list[Subject], rng: random.Random) -> None:
    """The last ``tail`` appends of every journal, in ROUNDS rounds, journals shuffled.

    Interleaving spreads the noise of a shared machine (other processes' CPU and disk bursts)
    over every size alike, instead of landing on whichever journal was being written.
    """
    acc = {id(s): (array("q"), array("b")) for s in subjects}
    chunks = {id(s): _split(s.tail, ROUNDS) for s in subjects}
    for r in range(ROUNDS):
        for s in rng.sample(subjects, len(subjects)):
            s.append(chunks[id(s)][r], *acc[id(s)])
    for s in subjects:
        s.close()
        s.res["window"] = {"steps": [s.n - s.tail + 1, s.n], "rounds": ROUNDS,
                           **_window_stats(*acc[id(s)])}


def phase_reads(subjects: list[Subject], rng: random.Random, reps: int) -> None:
    """``state_at`` and ``history`` on a writable and a read-only journal, interleaved."""
    from agentjournal import Journal

    opened = []
    for s in subjects:
        for sfx, kw in (("", options(s.variant)), ("_readonly", {"readonly": True})):
            j = Journal(AGENT, s.root, **kw)
            segs = j.segment_seqs()
            # After pruning, the steps before the oldest kept segment are gone.
            first = max(1, j.first_step_of_segment(segs[0])) if segs else 1
            # From the oldest kept snapshot on, a state is that snapshot + < 100 steps; before
            # it (keep, compress: its snapshot was deleted) a replay from step 1.
            snaps = j.snapshot_seqs()
            near = max(first, j.first_step_of_segment(snaps[0] + 1)) if snaps else first
            s.res["first_step_kept"], s.res["first_step_covered"] = first, near
            span = min(HISTORY_SPAN_PRUNE if s.variant == "prune" else HISTORY_SPAN,
                       s.n - first + 1)
            s.res["history_span"] = span
            opened.append((s, sfx, j, first, near, span))
    ok: dict[tuple[int, str], bool] = {}
    # Calls per journal and round. state_at(1..n) replays up to n records when its snapshot
    # was deleted (keep, compress): one call per round (its cost is plain from a few).
    counts = {"state_at": 1, "state_at_covered": max(1, reps // ROUNDS),
              "history": max(1, reps // 10 // ROUNDS)}
    for _ in range(ROUNDS):
        for s, sfx, j, first, near, span in rng.sample(opened, len(opened)):
            for key, lo in (("state_at", first), ("state_at_covered", near)):
                for _ in range(counts[key]):
                    k = rng.randint(lo, s.n)
                    dt, st = _timed(lambda j=j, k=k: j.state_at(k))
                    s.add(key + sfx, dt)
                    ok[id(s), key + sfx] = (ok.get((id(s), key + sfx), True)
                                            and s.agent.check(st, k, s.budgets))
            for _ in range(counts["history"]):
                a = rng.randint(first, s.n - span + 1)
                dt, c = _timed(lambda j=j, a=a, e=a + span - 1: sum(1 for _ in j.history(a, e)))
                s.add("history" + sfx, dt)
                s.res.setdefault("history_records" + sfx, []).append(c)
    for s, sfx, j, _first, _near, _span in opened:
        j.close()
        for key in ("state_at", "state_at_covered"):
            s.res[key + sfx] = {**_ms(s.times[key + sfx]), "verified": ok[id(s), key + sfx]}
        s.res["history" + sfx] = {**_ms(s.times["history" + sfx]),
                                  "span": s.res["history_span"]}


def phase_processes(subjects: list[Subject], rng: random.Random, process_reps: int) -> None:
    """Resume, verify and export, each in a new interpreter, rounds interleaved."""
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    plan = [("resume", process_reps), ("verify", VERIFY_ROUNDS), ("export", 1)]
    for kind, rounds in plan:
        for _ in range(rounds):
            for s in rng.sample(subjects, len(subjects)):
                runs.setdefault((id(s), kind), []).append(_run_worker(kind, s.root, s.variant))
        log(f"{kind} in new processes: done")
    for s in subjects:
        rs = runs[id(s), "resume"]
        s.res["resume_process"] = {
            "median_ms": statistics.median(r["open_resume_ms"] for r in rs),
            "import_ms": statistics.median(r["import_ms"] for r in rs),
            "maxrss_mb": statistics.median(r["maxrss_mb"] for r in rs), "runs": len(rs),
            "verified": all(r["step"] == s.n and r["counter"] == s.n for r in rs)}
        vs = runs[id(s), "verify"]
        secs = statistics.median(v["s"] for v in vs)
        s.res["verify"] = {"records_per_s": vs[0]["records"] / secs, "s": secs,
                           "runs_s": [v["s"] for v in vs], "records": vs[0]["records"],
                           "segments": vs[0]["segments"], "ok": all(v["ok"] for v in vs),
                           "maxrss_mb": max(v["maxrss_mb"] for v in vs),
                           "rss_before_mb": max(v["rss_before_mb"] for v in vs)}
        e = runs[id(s), "export"][0]
        s.res["export"] = {"s": e["s"], "maxrss_mb": e["maxrss_mb"],
                           "rss_before_mb": e["rss_before_mb"], "report": e["report"]}


def phase_sync(subjects: list[Subject], rng: random.Random) -> None:
    """Reopen journals built in ``none`` mode in ``sync``: SYNC_WINDOW more appends each."""
    if not subjects:
        return
    acc = {id(s): (array("q"), array("b")) for s in subjects}
    for s in subjects:
        s.open("sync")
    for count in _split(SYNC_WINDOW, ROUNDS):
        for s in rng.sample(subjects, len(subjects)):
            s.append(count, *acc[id(s)])
    for s in subjects:
        s.close()
        times, snap = acc[id(s)]
        s.res["sync"] = {**_stats_us(times), "steps": [s.n + 1, s.n + SYNC_WINDOW],
                         "snapshots": sum(snap)}
        log(f"sync window after {s.n:,} steps: median {s.res['sync']['median_us']:.0f} µs")


def _disk(path: Path) -> dict[str, int]:
    out = {"segments": 0, "snapshots": 0, "other": 0, "files": 0}
    for p in path.rglob("*"):
        if p.is_file():
            key = p.parent.name if p.parent.name in ("segments", "snapshots") else "other"
            out[key] += p.stat().st_size
            out["files"] += 1
    out["total"] = out["segments"] + out["snapshots"] + out["other"]
    return out


def log(msg: str) -> None:
    print(f"[flat] {msg}", file=sys.stderr, flush=True)


def run(sizes: list[int], variants: list[str], base: Path, agent: Any, reps: int,
        process_reps: int, sync_sizes: set[int], keep: bool = False) -> dict[str, Any]:
    """Every size and variant; returns the ``flat`` document (figures, rows and ratios)."""
    out: dict[str, Any] = {
        "description": (f"bounded ~20 KB state, one ~500 B message per step; snapshot_every="
                        f"{SNAPSHOT_EVERY}, keep_snapshots={KEEP_SNAPSHOTS}; journals built in "
                        f"durability='none'; per-step figures over the last {TAIL} appends, "
                        f"taken in {ROUNDS} rounds across every journal"),
        "snapshot_every": SNAPSHOT_EVERY, "keep_snapshots": KEEP_SNAPSHOTS, "reps": reps,
        "process_reps": process_reps, "verify_rounds": VERIFY_ROUNDS, "rounds": ROUNDS,
        "tail": TAIL, "sync_window": SYNC_WINDOW, "target": TARGET, "sizes": sizes,
        "variants": {}}
    rng = random.Random(20261201)
    subjects = [Subject(base, n, v, agent) for v in variants for n in sizes]
    t0 = time.perf_counter()
    try:
        phase_build(subjects)
        phase_window(subjects, rng)
        out["build_s"] = time.perf_counter() - t0
        log(f"every journal written ({out['build_s']:.0f}s); reading")
        phase_reads(subjects, rng, reps)
        log("state_at and history: done")
        phase_processes(subjects, rng, process_reps)
        for s in subjects:
            s.res["disk"] = _disk(s.root / AGENT)
            s.res["bytes_per_step"] = s.res["disk"]["total"] / s.n
        phase_sync([s for s in subjects if s.variant == "keep" and s.n in sync_sizes], rng)
    finally:
        for s in subjects:
            s.close()
            if not keep:
                shutil.rmtree(s.root, ignore_errors=True)
    for s in subjects:
        out["variants"].setdefault(s.variant, {})[str(s.n)] = s.res
    out["rows"] = rows(out)
    return out


# --- rows, ratios, table, chart --------------------------------------------------------------
# (label, unit, getter, higher_is_better)
ROWS: list[tuple[str, str, Any, bool]] = [
    ("step median (last 900 appends)", "µs", lambda s: s["window"]["all"]["median_us"], False),
    ("step p99 (last 900 appends)", "µs", lambda s: s["window"]["all"]["p99_us"], False),
    ("step mean = amortized", "µs", lambda s: s["window"]["all"]["mean_us"], False),
    ("snapshot + retention append", "ms",
     lambda s: s["window"]["snapshot"].get("median_us", float("nan")) / 1e3, False),
    ("resume, new process", "ms", lambda s: s["resume_process"]["median_ms"], False),
    ("state_at(random k in 1..n)", "ms", lambda s: s["state_at"]["median_ms"], False),
    ("state_at(1..n), read-only journal", "ms", lambda s: s["state_at_readonly"]["median_ms"],
     False),
    ("state_at(k after oldest kept snapshot)", "ms",
     lambda s: s["state_at_covered"]["median_ms"], False),
    ("state_at(after oldest kept), read-only", "ms",
     lambda s: s["state_at_covered_readonly"]["median_ms"], False),
    ("history, 1000 steps (prune: 800)", "ms", lambda s: s["history"]["median_ms"], False),
    ("history, read-only journal", "ms", lambda s: s["history_readonly"]["median_ms"], False),
    ("verify throughput", "records/s", lambda s: s["verify"]["records_per_s"], True),
    ("verify peak RSS", "MB", lambda s: s["verify"]["maxrss_mb"], False),
    ("export peak RSS", "MB", lambda s: s["export"]["maxrss_mb"], False),
    ("step in sync mode, median", "µs", lambda s: s.get("sync", {}).get("median_us"), False),
    ("step in sync mode, p99", "µs", lambda s: s.get("sync", {}).get("p99_us"), False),
]
INFO_ROWS: list[tuple[str, str, Any]] = [
    ("snapshot append while building (median)", "ms",
     lambda s: s["build"]["snapshot"].get("median_us", float("nan")) / 1e3),
    ("bytes on disk per step", "B", lambda s: s["bytes_per_step"]),
    ("files on disk", "", lambda s: s["disk"]["files"]),
]


def rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (variant, measure): values per size and the largest/smallest cost ratio.

    The ratio is of *costs*: for a throughput it is smallest-size / largest-size (time per
    record), so that for every row ``ratio <= 1.3`` means flat.
    """
    out = []
    for variant, per in doc["variants"].items():
        for label, unit, get, higher in ROWS + [(a, b, c, False) for a, b, c in INFO_ROWS]:
            vals = {}
            for n, s in per.items():
                try:
                    v = get(s)
                except KeyError:
                    v = None
                if v is not None and v == v:  # drop NaN
                    vals[n] = float(v)
            if not vals:
                continue
            ns = sorted(vals, key=int)
            lo, hi = vals[ns[0]], vals[ns[-1]]
            ratio = (lo / hi if higher else hi / lo) if len(ns) > 1 and lo and hi else None
            info = (label, unit) in [(a, b) for a, b, _ in INFO_ROWS]
            # Against the second size too: at the smallest one (1k steps = 10 snapshots of
            # 100) retention has nothing to delete or compress yet, so the steady state
            # starts at the second size.
            mid = vals[ns[1]] if len(ns) > 2 else None
            steady = ((mid / hi if higher else hi / mid) if mid and hi else None)
            out.append({"variant": variant, "measure": label, "unit": unit, "values": vals,
                        "ratio_of": [int(ns[-1]), int(ns[0])] if ratio else None,
                        "ratio": ratio, "info": info, "ratio_steady": steady,
                        "steady_of": [int(ns[-1]), int(ns[1])] if steady else None,
                        "flat": None if ratio is None or info else ratio <= TARGET})
    return out


def _f(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return (f"{v:,.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 10
            else f"{v:.3f}")


def table_lines(doc: dict[str, Any], markdown: bool = False) -> list[str]:
    """The table, per variant: one line per measure, one column per size, then the ratio."""
    sizes = [str(n) for n in doc["sizes"]]
    second = f"÷{int(sizes[1]):,}" if len(sizes) > 2 else "-"
    head = (["variant", "measure", "unit"] + [f"{int(n):,}" for n in sizes]
            + ["ratio", "flat", second])
    body = []
    for r in doc["rows"]:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        flat = "" if r["flat"] is None else "yes" if r["flat"] else "NO"
        steady = r.get("ratio_steady")
        body.append([r["variant"], r["measure"], r["unit"]]
                    + [_f(r["values"].get(n)) for n in sizes]
                    + [ratio, flat, "-" if steady is None else f"{steady:.2f}×"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
        lines += ["| " + " | ".join(("**NO**" if c == "NO" else c) for c in b) + " |"
                  for b in body]
        return lines
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    just = [str.ljust] * 3 + [str.rjust] * (len(head) - 3)
    fmt = [lambda c, w, f=f: f(c, w) for f in just]
    lines = ["  ".join(f(h, w) for f, h, w in zip(fmt, head, widths, strict=True)),
             "-" * (sum(widths) + 2 * (len(widths) - 1))]
    prev = None
    for b in body:
        if prev is not None and b[0] != prev:
            lines.append("")
        prev = b[0]
        lines.append("  ".join(f(c, w) for f, c, w in zip(fmt, b, widths, strict=True)))
    return lines


def print_table(doc: dict[str, Any]) -> None:
    for line in table_lines(doc):
        print(line)
    flat = [r for r in doc["rows"] if r["flat"] is not None]
    bad = [f"{r['variant']}: {r['measure']} ({r['ratio']:.2f}×)" for r in flat if not r["flat"]]
    print(f"ratio = cost at {doc['sizes'][-1]:,} / cost at {doc['sizes'][0]:,} steps "
          f"(throughput: inverted); flat = ratio <= {TARGET}. {len(flat) - len(bad)} of "
          f"{len(flat)} rows flat" + (f"; not flat: {'; '.join(bad)}" if bad else "."))


def chart(doc: dict[str, Any], path: Path, subtitle: str = "") -> str:
    """Every measure normalized to the smallest size, one panel per variant (log x)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(doc["variants"])
    fig, axes = plt.subplots(1, len(variants), figsize=(5.2 * len(variants), 5.6), sharey=True,
                             squeeze=False)
    ns = [int(n) for n in doc["sizes"]]
    markers = "osD^v<>phX*Pd8"
    colors = plt.get_cmap("tab20").colors
    top = 2.0
    for ax, variant in zip(axes[0], variants, strict=True):
        rs = [r for r in doc["rows"] if r["variant"] == variant and not r["info"]]
        for i, r in enumerate(rs):
            pts = [(int(n), v) for n, v in sorted(r["values"].items(), key=lambda kv: int(kv[0]))]
            if len(pts) < 2:
                continue
            base = pts[0][1]
            ys = [(base / v if r["unit"] == "records/s" else v / base) for _, v in pts]
            top = max(top, *ys)
            ax.plot([p[0] for p in pts], ys, marker=markers[i % len(markers)],
                    ls="--" if "read-only" in r["measure"] else "-", color=colors[i % 20],
                    label=r["measure"], lw=1.3, ms=5)
        ax.axhline(TARGET, color="red", lw=1, ls=":", label=f"target {TARGET}×")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.minorticks_off()
        ax.set_title(f"{variant}", fontsize=10)
        ax.set_xlabel("history length, steps (log scale)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"cost relative to {ns[0]:,} steps, log scale (verify: time per "
                          "record)")
    ticks = [t for t in (0.25, 0.5, 1, 1.3, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= top]
    for ax in axes[0]:
        ax.set_ylim(0.2, top * 1.2)
        ax.set_yticks(ticks, [f"{t:g}×" for t in ticks])
        ax.minorticks_off()
    h, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(h, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"Costs against history length, keep_snapshots={doc['keep_snapshots']}, "
                 f"snapshot every {doc['snapshot_every']} steps" +
                 (f" -- {subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], Path(sys.argv[3]), sys.argv[4])))
        sys.exit(0)
    sys.exit("usage: _flat.py --worker resume|verify|export ROOT VARIANT (run scale.py instead)")

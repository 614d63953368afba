#!/usr/bin/env python3
"""Measure checkpointers on the same workloads, in one run, on this machine (issue 6).

Systems (see ``_peers.py``): the seed system ``kailash-kaizen`` (StateManager +
FilesystemStorage, checkpoint every step, retention 10, with and without gzip) and LangGraph (a
real StateGraph with SqliteSaver on a file, with InMemorySaver, and without a checkpointer as the
zero line; plus SqliteSaver with the beta DeltaChannel). agentjournal's systems (sync, group,
none, and the StateManager facade) come from ``_agentjournal_adapter.py`` through the slot marked
in ``_peers.py``.

Workload 1, growing conversation: N steps (default 1000); each appends one ~500-byte message and
updates a counter and a budget float. Per system: per-step cost (median and p99 of the first and
last 100 steps), total time, bytes written, bytes on disk, time to resume the latest state from a
fresh process and from a fresh object, to load the state at step 10 and step 500, and to list the
whole history.

Workload 2, scale (agentjournal alone, ``scale.py``, run in its own process): 1k, 10k, 100k
steps (1M with --large): resume, state_at at random steps, history listing, bytes per step.

Workload 3, large states: save and load of ~1 KB, ~20 KB and ~500 KB states.

Every system runs in its own fresh worker process (same interpreter, same flags, same workload
bytes), one after another, so no system inherits another's heap or caches. Correctness is checked
(untimed) for every resume/load against the canonical state.

Usage:
    python benchmarks/peers.py                    # full run, tables on stdout (no charts)
    python benchmarks/peers.py --charts docs/img  # ... and redraw the charts of the docs
    python benchmarks/peers.py --quick            # CI smoke test: 30 steps
    python benchmarks/peers.py --large            # ... scale workload up to 1M steps
    python benchmarks/peers.py --json out.json --systems kaizen-fs,langgraph-sqlite

No figure here is asserted anywhere: this reports, it does not test.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import gzip
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    sys.path.insert(0, str(HERE))
    import _peers as P  # type: ignore[no-redef]
    import _workload as W  # type: ignore[no-redef]
else:
    from . import _peers as P
    from . import _workload as W

now_ns = time.perf_counter_ns


def _scale_module() -> Any:
    """``scale.py`` (workload 2): its table and chart helpers import no agentjournal."""
    if __package__ in (None, ""):
        import scale as S  # type: ignore[import-not-found]
    else:
        from . import scale as S
    return S

LARGE_REPS = {"1KB": 50, "20KB": 30, "500KB": 10}
LARGE_REPS_QUICK = {"1KB": 3, "20KB": 3, "500KB": 2}
QUICK_STEPS = 30
PACKAGES = ["kailash-kaizen", "kailash", "langgraph", "langgraph-checkpoint",
            "langgraph-checkpoint-sqlite", "langchain-core", "ormsgpack", "matplotlib",
            "agentjournal"]


# ---------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------

def proc_io() -> dict[str, int] | None:
    """This process's I/O counters from /proc/self/io (Linux), all threads included.

    ``wchar`` is the number of bytes the process handed to write()/pwrite() and friends: what the
    system under test asked the kernel to write, whether or not it ever reaches the device (this
    is what we report as "bytes written"; it is exact and independent of page-cache timing).
    ``write_bytes`` is what the kernel attributed to this process as dirtied for the block
    device (0 on tmpfs; files deleted before writeback still count) and ``cancelled_write_bytes``
    what it cancelled again (truncate/unlink of dirty pages); both are recorded as well.
    ``rchar`` is bytes read (the seed system reads its retained checkpoints on every save).
    """
    try:
        with open("/proc/self/io", "rb") as f:
            out = {}
            for line in f.read().decode().splitlines():
                k, _, v = line.partition(":")
                out[k.strip()] = int(v)
            return out
    except OSError:
        return None


def io_delta(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int | None]:
    keys = ("wchar", "rchar", "write_bytes", "cancelled_write_bytes", "syscw")
    if a is None or b is None:
        return {k: None for k in keys}
    return {k: b.get(k, 0) - a.get(k, 0) for k in keys}


def pct(values: list[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))
    return s[int(k)]


def summary(ns: list[int]) -> dict[str, float]:
    if not ns:
        return {}
    return {"n": len(ns), "median_ms": statistics.median(ns) / 1e6, "p99_ms": pct(ns, 99) / 1e6,
            "min_ms": min(ns) / 1e6, "max_ms": max(ns) / 1e6, "mean_ms": statistics.fmean(ns) / 1e6}


def timed(fn: Any, *args: Any) -> tuple[int, Any]:
    t0 = now_ns()
    r = fn(*args)
    return now_ns() - t0, r


def import_library(adapter: P.Adapter) -> float:
    """Import the system's library (timed, reported: it is part of a cold start)."""
    t0 = time.perf_counter()
    for mod in adapter.requires:
        importlib.import_module(mod)
    if adapter.family == "langgraph":
        importlib.import_module("langgraph.checkpoint.memory")
    return time.perf_counter() - t0


def load_points(steps: int) -> list[int]:
    pts = [10, 500] if steps >= 1000 else [min(10, steps), max(1, steps // 2)]
    return sorted(set(pts))


def window(steps: int) -> int:
    return min(100, max(1, steps // 2))


# ---------------------------------------------------------------------------------------------
# Worker: one system, in its own process
# ---------------------------------------------------------------------------------------------

def run_growing(adapter: P.Adapter, wl: W.Workload, workdir: Path, system: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    adapter.setup(workdir, wl)
    sample_every = max(1, wl.steps // 100)
    io0 = proc_io()
    ap0, al0 = adapter.bytes_on_disk()
    samples = [{"step": 0, "apparent": ap0, "allocated": al0, "wchar": 0}]
    durations: list[int] = []
    gc.collect()
    it = adapter.iter_steps(wl)
    t_prev = now_ns()
    for i in it:
        t = now_ns()
        durations.append(t - t_prev)
        if i % sample_every == 0 or i == wl.steps:  # sampled outside the timed intervals
            io = proc_io()
            ap, al = adapter.bytes_on_disk()
            samples.append({"step": i, "apparent": ap, "allocated": al,
                            "wchar": (io["wchar"] - io0["wchar"]) if io and io0 else None})
        t_prev = now_ns()
    tail = now_ns() - t_prev  # e.g. LangGraph's last checkpoint write after its last event
    io1 = proc_io()
    if len(durations) != wl.steps:
        raise RuntimeError(f"{system}: {len(durations)} steps ran, expected {wl.steps}")
    adapter.after_run()
    ap1, al1 = adapter.bytes_on_disk()
    samples.append({"step": wl.steps, "apparent": ap1, "allocated": al1,
                    "wchar": (io1["wchar"] - io0["wchar"]) if io1 and io0 else None,
                    "after_finish": True})
    wn = window(wl.steps)
    res["per_step"] = {
        "window": wn,
        "first": summary(durations[:wn]),
        "last": summary(durations[-wn:]),
        "all": summary(durations),
        "us": [round(d / 1e3, 1) for d in durations],
    }
    res["total_s"] = (sum(durations) + tail) / 1e9
    res["tail_ms"] = tail / 1e6
    io = io_delta(io0, io1)
    res["bytes_written"] = io["wchar"]
    res["io"] = io
    res["bytes_on_disk"] = ap1
    res["bytes_on_disk_allocated"] = al1
    res["disk_samples"] = samples
    return res


def run_reads(adapter: P.Adapter, wl: W.Workload, workdir: Path, system: str,
              res: dict[str, Any]) -> None:
    final = W.state_at(wl, wl.steps)
    adapter.close()

    # Fresh process: a new interpreter opens the files the run left and resumes the latest state.
    if adapter.persistent:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--probe-resume", system,
               "--workdir", str(workdir), "--steps", str(wl.steps)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            res["resume_fresh_process"] = {"error": p.stderr[-2000:]}
        else:
            res["resume_fresh_process"] = json.loads(p.stdout.strip().splitlines()[-1])
    else:
        res["resume_fresh_process"] = {"not_applicable": "state lives in the writing process"}

    # Fresh object on the same storage (InMemorySaver: the same saver, a newly compiled graph).
    adapter.reopen()
    gc.collect()
    first_ns, st = timed(adapter.resume_latest)
    ok = W.states_equal(st, final)
    again = []
    for _ in range(5):
        ns, st = timed(adapter.resume_latest)
        again.append(ns)
        ok = ok and W.states_equal(st, final)
    res["resume_fresh_object"] = {"first_ms": first_ns / 1e6,
                                  "repeat_median_ms": statistics.median(again) / 1e6,
                                  "verified": ok,
                                  "how": ("same InMemorySaver, newly compiled graph"
                                          if not adapter.persistent else
                                          "new objects on the same files")}
    del st

    res["load_at"] = {}
    for k in load_points(wl.steps):
        if not adapter.retained(k):
            res["load_at"][str(k)] = {"retained": False}
            continue
        want = W.state_at(wl, k)
        first_ns, st = timed(adapter.load_at, k)
        ok = W.states_equal(st, want)
        again = []
        for _ in range(3):
            ns, st = timed(adapter.load_at, k)
            again.append(ns)
            ok = ok and W.states_equal(st, want)
        res["load_at"][str(k)] = {"retained": True, "first_ms": first_ns / 1e6,
                                  "repeat_median_ms": statistics.median(again) / 1e6,
                                  "verified": ok}

    runs = []
    count = None
    for _ in range(3):
        ns, count = timed(adapter.list_history)
        runs.append(ns)
    res["list_history"] = {"first_ms": runs[0] / 1e6, "median_ms": statistics.median(runs) / 1e6,
                           "entries": count}
    raw = getattr(adapter, "list_history_raw", None)
    if raw is not None:  # the lower-level listing the system also offers
        runs = []
        for _ in range(3):
            ns, count = timed(raw)
            runs.append(ns)
        res["list_history_raw"] = {"first_ms": runs[0] / 1e6,
                                   "median_ms": statistics.median(runs) / 1e6,
                                   "entries": count, "how": adapter.list_history_raw_how}
    adapter.close()


def run_large(adapter: P.Adapter, workdir: Path, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    adapter.setup_large(workdir)
    reps = LARGE_REPS_QUICK if quick else LARGE_REPS
    for label, target in W.LARGE_STATE_SIZES.items():
        state = W.state_of_size(target)
        saves, loads, ok = [], [], True
        gc.collect()
        for r in range(reps[label]):
            key = f"s{label}-{r}"
            adapter.prepare_key(key)
            ns, _ = timed(adapter.save_state, key, state)
            saves.append(ns)
        for r in range(reps[label]):
            key = f"s{label}-{r}"
            ns, st = timed(adapter.load_state, key)
            loads.append(ns)
            ok = ok and W.states_equal(st, state)
        out[label] = {"state_bytes": W.json_size(state), "reps": reps[label],
                      "save": summary(saves), "load": summary(loads), "verified": ok}
    adapter.close_large()
    out["bytes_on_disk"] = P.dir_bytes(workdir)[0]
    return out


def worker(system: str, steps: int, workdir: Path, out: Path, workloads: set[str],
           quick: bool) -> None:
    adapter = P.make(system)
    doc: dict[str, Any] = {"system": system, "family": adapter.family,
                           "description": adapter.description, "durability": adapter.durability,
                           "persistent": adapter.persistent, "config": adapter.config()}
    doc["import_s"] = import_library(adapter)
    if "1" in workloads:
        wl = W.Workload(steps)
        res = run_growing(adapter, wl, workdir / "w1", system)
        if adapter.supports_reads:
            run_reads(adapter, wl, workdir / "w1", system, res)
        else:
            adapter.close()
        doc["growing_conversation"] = res
        del wl
        gc.collect()
    if "3" in workloads and adapter.supports_save_load:
        doc["large_states"] = run_large(P.make(system), workdir / "w3", quick)
    try:
        import resource
        doc["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        pass
    out.write_text(json.dumps(doc))


def probe_resume(system: str, steps: int, workdir: Path) -> None:
    """Runs in a fresh interpreter: open the store a run left, resume its latest state."""
    t0 = time.perf_counter()
    adapter = P.make(system)
    import_s = import_library(adapter)
    wl = W.Workload(steps)
    final = W.state_at(wl, steps)
    # The first full garbage collection after importing a large library scans every object the
    # import made (~60 ms after langgraph); that is a cost of the import, not of resuming, so
    # take it here, as the worker does before its own timings.
    gc.collect()
    t_open, _ = timed(adapter.open_existing, workdir, wl)
    t_resume, st = timed(adapter.resume_latest)
    ok = W.states_equal(st, final)
    t_again, st = timed(adapter.resume_latest)  # separates first-call costs in the process
    ok = ok and W.states_equal(st, final)
    print(json.dumps({"open_ms": t_open / 1e6, "resume_ms": t_resume / 1e6,
                      "open_plus_resume_ms": (t_open + t_resume) / 1e6,
                      "second_resume_ms": t_again / 1e6,
                      "verified": ok, "import_s": import_s,
                      "process_s": time.perf_counter() - t0,
                      "note": "new interpreter; OS page cache warm"}))


# ---------------------------------------------------------------------------------------------
# Parent: machine, versions, orchestration, tables, charts
# ---------------------------------------------------------------------------------------------

def filesystem_of(path: Path) -> dict[str, str]:
    best: dict[str, str] = {}
    try:
        real = os.path.realpath(path)
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts, *_ = line.split()
                mnt = mnt.replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and \
                        len(mnt) >= len(best.get("mount", "")):
                    best = {"mount": mnt, "type": fstype, "device": dev, "options": opts}
    except OSError:
        pass
    return best


def machine_info(tmp: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "workdir_filesystem": filesystem_of(tmp),
        "loadavg_at_start": loadavg(),
        "fdatasync_500B_at_start": fsync_floor(tmp),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_total_kb"] = int(line.split()[1])
                    break
    except OSError:
        pass
    return info


def fsync_floor(directory: Path, n: int = 200) -> dict[str, float]:
    """What one durable append costs on this filesystem right now: write ~500 B to a file and
    ``fdatasync`` it, ``n`` times (median and p99, ms). The floor under every per-step figure
    that syncs (agentjournal sync, LangGraph SQLite); recorded at the start and the end of the
    run because other I/O on the machine moves it."""
    path = directory / "fsync-floor.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        line = b"x" * 499 + b"\n"
        for _ in range(n):
            t0 = now_ns()
            os.write(fd, line)
            os.fdatasync(fd)
            times.append(now_ns() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return {"median_ms": statistics.median(times) / 1e6, "p99_ms": pct(times, 99) / 1e6,
            "n": n}


def loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages (other work on the machine adds noise)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 10:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def print_tables(doc: dict[str, Any]) -> None:
    wl = doc["workloads"]["growing_conversation"]
    systems = doc["systems"]
    n = wl["steps"]
    wn = window(n)
    print(f"\nWorkload 1: growing conversation, {n} steps, final state "
          f"{wl['final_state_bytes'] / 1e3:.0f} KB, new data {wl['new_data_bytes'] / 1e3:.0f} KB "
          f"(times in ms; MB = 10^6 bytes)")
    rows = []
    for name, s in systems.items():
        g = s.get("growing_conversation")
        if not g:
            continue
        ps = g["per_step"]
        rows.append([name, fmt_ms(ps["first"]["median_ms"]), fmt_ms(ps["first"]["p99_ms"]),
                     fmt_ms(ps["last"]["median_ms"]), fmt_ms(ps["last"]["p99_ms"]),
                     f"{g['total_s']:.2f}", fmt_mb(g["bytes_written"]),
                     fmt_mb(g["bytes_on_disk"]),
                     "-" if not g["bytes_written"] else
                     f"{g['bytes_written'] / wl['new_data_bytes']:.0f}x"])
    print(table(["system", f"first{wn} med", "p99", f"last{wn} med", "p99", "total s",
                 "written MB", "on disk MB", "written/new"], rows))
    print("(langgraph-memory: 'on disk' = serialised bytes held in process memory)")
    lp = [str(k) for k in wl["load_points"]]
    rows = []
    for name, s in systems.items():
        g = s.get("growing_conversation")
        if not g or "resume_fresh_object" not in g:
            continue
        fp = g["resume_fresh_process"]
        fp_s = fmt_ms(fp.get("resume_ms")) if "resume_ms" in fp else (
            "n/a" if "not_applicable" in fp else "error")
        la = []
        for k in lp:
            e = g["load_at"].get(k, {})
            la.append(fmt_ms(e.get("first_ms")) if e.get("retained") else "gone")
        lh = g["list_history"]
        ok = (g["resume_fresh_object"]["verified"]
              and all(e.get("verified", True) for e in g["load_at"].values())
              and fp.get("verified", True))
        lr = g.get("list_history_raw")
        rows.append([name, fp_s, fmt_ms(g["resume_fresh_object"]["first_ms"]), *la,
                     f"{fmt_ms(lh['first_ms'])} ({lh['entries']})",
                     fmt_ms(lr["first_ms"]) if lr else "-", "yes" if ok else "NO"])
    print()
    print(table(["system", "resume new proc", "resume new obj", *[f"load@{k}" for k in lp],
                 "list history (n)", "saver.list", "verified"], rows))
    print("(resume/load/list: first call, ms; 'gone' = deleted by retention; list history ="
          " the documented listing (kaizen list_checkpoints, LangGraph get_state_history);"
          " saver.list = LangGraph's lower-level checkpointer listing)")

    rows = []
    labels = list(W.LARGE_STATE_SIZES)
    for name, s in systems.items():
        ls = s.get("large_states")
        if not ls:
            continue
        row = [name]
        for lab in labels:
            e = ls[lab]
            row.append(f"{fmt_ms(e['save']['median_ms'])} / {fmt_ms(e['load']['median_ms'])}"
                       + ("" if e["verified"] else " !"))
        rows.append(row)
    if rows:
        print("\nWorkload 3: large states, save / load median ms")
        print(table(["system", *[f"~{lab}" for lab in labels]], rows))
    if doc.get("skipped"):
        print("\nskipped: " + "; ".join(f"{k}: {v}" for k, v in doc["skipped"].items()))


# ---------------------------------------------------------------------------------------------
# DESIGN.md targets, computed from this run's figures
# ---------------------------------------------------------------------------------------------

def _g(doc: dict[str, Any], system: str) -> dict[str, Any] | None:
    return doc["systems"].get(system, {}).get("growing_conversation")


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets of DESIGN.md, each with this run's figure and met / missed.

    Per-step ratios are judged on the median over all steps (snapshot steps included in the
    sample); the first-100, last-100 and total-time ratios are reported beside it.
    """
    out: list[dict[str, Any]] = []

    def speed(ours: str, peer: str, goal: float, what: str, by_total: bool = False) -> None:
        a, b = _g(doc, ours), _g(doc, peer)
        if not a or not b:
            return
        pa, pb = a["per_step"], b["per_step"]
        r = {k: pb[k]["median_ms"] / pa[k]["median_ms"] for k in ("all", "first", "last")}
        total = b["total_s"] / a["total_s"]
        out.append({"target": what, "ours": ours, "peer": peer, "goal_ratio": goal,
                    "ratio": total if by_total else r["all"], "ratio_median": r["all"],
                    "ratio_first": r["first"], "ratio_last": r["last"],
                    "ratio_total_time": total,
                    "ours_median_ms": pa["all"]["median_ms"],
                    "peer_median_ms": pb["all"]["median_ms"],
                    "met": (total if by_total else r["all"]) >= goal})

    def written(ours: str, peer: str, goal: float, what: str) -> None:
        a, b = _g(doc, ours), _g(doc, peer)
        if not a or not b or not a.get("bytes_written") or not b.get("bytes_written"):
            return
        r = b["bytes_written"] / a["bytes_written"]
        out.append({"target": what, "ours": ours, "peer": peer, "goal_ratio": goal, "ratio": r,
                    "ours_bytes": a["bytes_written"], "peer_bytes": b["bytes_written"],
                    "met": r >= goal})

    speed("agentjournal-none", "kaizen-fs", 50, "none mode >= 50x faster per step than the seed "
          "system checkpointing every step")
    speed("agentjournal-none", "kaizen-fs-gzip", 50, "(same, against the seed with gzip)")
    speed("agentjournal-sync", "langgraph-sqlite", 8, "sync mode >= 8x faster per step than "
          "LangGraph's SQLite checkpointer")
    speed("agentjournal-manager-sync", "langgraph-sqlite", 8, "the StateManager facade with "
          "its defaults (sync) >= 8x faster in total than LangGraph's SQLite checkpointer",
          by_total=True)
    written("agentjournal-none", "kaizen-fs", 100, ">= 100x fewer bytes written than the seed")
    written("agentjournal-none", "kaizen-fs-gzip", 100,
            ">= 100x fewer bytes written than the seed (gzip)")
    written("agentjournal-sync", "langgraph-sqlite", 100,
            ">= 100x fewer bytes written than LangGraph SQLite")
    g = _g(doc, "agentjournal-sync")
    if g and "resume_fresh_object" in g:
        fp = g.get("resume_fresh_process", {})
        v = fp.get("resume_ms")
        out.append({"target": "resume of a 1000-message history <= 2 ms", "ours":
                    "agentjournal-sync", "bound_ms": 2.0, "value_ms": v,
                    "fresh_object_first_ms": g["resume_fresh_object"]["first_ms"],
                    "fresh_object_repeat_median_ms":
                    g["resume_fresh_object"]["repeat_median_ms"],
                    "measure": "fresh process, open + resume (first call)",
                    "met": v is not None and v <= 2.0})
    sc = doc.get("scale")
    if sc and sc.get("sizes"):
        ns = sorted(int(k) for k in sc["sizes"])
        lo, hi = sc["sizes"][str(ns[0])], sc["sizes"][str(ns[-1])]
        r = hi["resume_fresh_object"]["median_ms"] / lo["resume_fresh_object"]["median_ms"]
        out.append({"target": f"resume flat: {ns[-1]:,} steps within 1.2x of {ns[0]:,}",
                    "ratio": r, "bound_ratio": 1.2, "met": r <= 1.2,
                    "measure": "new writable Journal + resume(), median"})
        for key, label in (("state_at", "state_at(k) of the largest history <= 5 ms"),
                           ("history", f"listing {sc['history_span']} steps <= 5 ms")):
            for sfx, who in (("", "writable journal"), ("_readonly", "read-only journal")):
                v = hi[key + sfx]["median_ms"]
                out.append({"target": f"{label} ({who}, {ns[-1]:,} steps)", "bound_ms": 5.0,
                            "value_ms": v, "p99_ms": hi[key + sfx]["p99_ms"], "met": v <= 5.0})
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print("\nDESIGN.md targets (this run)")
    trows = []
    for t in rows:
        if "goal_ratio" in t:
            fig = f"{t['ratio']:.0f}x" if t["ratio"] >= 10 else f"{t['ratio']:.2f}x"
            extra = ""
            if "ratio_total_time" in t:
                extra = (f"first100 {t['ratio_first']:.0f}x, last100 {t['ratio_last']:.0f}x, "
                         f"total time {t['ratio_total_time']:.1f}x")
            elif "ours_bytes" in t:
                extra = f"{t['peer_bytes'] / 1e6:.1f} MB vs {t['ours_bytes'] / 1e6:.2f} MB"
            goal = f">= {t['goal_ratio']:.0f}x"
        elif "bound_ratio" in t:
            fig, goal, extra = f"{t['ratio']:.2f}x", f"<= {t['bound_ratio']}x", t["measure"]
        else:
            fig = fmt_ms(t["value_ms"]) + " ms"
            goal = f"<= {t['bound_ms']:.0f} ms"
            extra = (f"p99 {fmt_ms(t['p99_ms'])} ms" if "p99_ms" in t else
                     f"fresh object: first {fmt_ms(t['fresh_object_first_ms'])} ms, repeat "
                     f"{fmt_ms(t['fresh_object_repeat_median_ms'])} ms")
        what = t["target"] + (f" [{t['ours']} vs {t['peer']}]" if "peer" in t else "")
        trows.append([what, fig, goal, "met" if t["met"] else "MISSED", extra])
    print(table(["target", "this run", "goal", "", "detail"], trows))


ROLL = 21  # steps in the rolling median of the per-step chart


def rolling_median(xs: list[float], w: int) -> list[float]:
    h = w // 2
    return [statistics.median(xs[max(0, i - h): i + h + 1]) for i in range(len(xs))]


STYLE_COLOURS = {
    "agentjournal-sync": "tab:blue", "agentjournal-group": "tab:cyan",
    "agentjournal-none": "tab:green", "agentjournal-manager": "tab:olive",
    "agentjournal-manager-sync": "darkolivegreen",
    "kaizen-fs": "tab:red", "kaizen-fs-gzip": "tab:orange",
    "langgraph-sqlite": "tab:purple", "langgraph-sqlite-delta": "tab:pink",
    "langgraph-memory": "tab:brown", "langgraph-none": "tab:gray",
}


def charts(doc: dict[str, Any], outdir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    n = doc["workloads"]["growing_conversation"]["steps"]
    sysg = {k: v["growing_conversation"] for k, v in doc["systems"].items()
            if "growing_conversation" in v}
    title_sfx = f"{n} steps, {doc['machine'].get('cores')} cores, Python {doc['machine']['python']}"

    palette = plt.get_cmap("tab10").colors
    colour = {name: palette[i % len(palette)] for i, name in enumerate(doc["systems"])}
    colour.update({k: v for k, v in STYLE_COLOURS.items() if k in colour})

    def style(name: str) -> dict[str, Any]:
        fam = doc["systems"][name].get("family", "")
        ls = {"agentjournal": "-", "kaizen": "--", "langgraph": "-."}.get(fam, ":")
        if name in ("langgraph-memory", "langgraph-none"):
            ls = ":"
        return {"color": colour[name], "ls": ls, "lw": 2.0 if fam == "agentjournal" else 1.3}

    def label(name: str) -> str:
        return name + (" (held in RAM)" if name.startswith("langgraph-memory") else "")

    fig, ax = plt.subplots(figsize=(11, 5.5))
    for name, g in sysg.items():
        us = g["per_step"]["us"]
        ax.plot(range(1, len(us) + 1), [u / 1e3 for u in rolling_median(us, ROLL)], label=name,
                **style(name))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"time per step, ms (rolling median of {ROLL} steps, log scale)")
    ax.set_title(f"Per-step cost, growing conversation ({title_sfx})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    p = outdir / "peers_step_cost.png"
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(str(p))

    for key, fname, ylabel in (
            ("apparent", "peers_bytes_on_disk.png", "bytes on disk, MB (log scale)"),
            ("wchar", "peers_bytes_written.png", "bytes written so far, MB (log scale)")):
        fig, ax = plt.subplots(figsize=(11, 5.5))
        for name, g in sysg.items():
            pts = [(s["step"], s[key]) for s in g["disk_samples"]
                   if not s.get("after_finish") and s.get(key)]
            if not pts or (key == "wchar" and name.startswith("langgraph-memory")):
                continue
            ax.plot([a for a, _ in pts], [b / 1e6 for _, b in pts],
                    label=label(name) if key == "apparent" else name, **style(name))
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        what = "Bytes on disk" if key == "apparent" else "Cumulative bytes written (wchar)"
        what += " (agentjournal's three modes write the same bytes)"
        ax.set_title(f"{what}\ngrowing conversation ({title_sfx})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        p = outdir / fname
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(str(p))
    if doc.get("scale", {}).get("sizes"):
        made.append(_scale_module().chart(doc["scale"], outdir / "scale.png",
                                          f"{doc['machine'].get('cores')} cores, Python "
                                          f"{doc['machine']['python']}"))
    return made


def run_scale(doc: dict[str, Any], args: argparse.Namespace,
              base_tmp_parent: Path | None) -> None:
    """Workload 2 in its own process (``scale.py``); its figures go to ``doc["scale"]``."""
    if P.AGENTJOURNAL_IMPORT_ERROR or "agentjournal-none" not in P.REGISTRY:
        doc["skipped"]["scale"] = f"agentjournal unavailable: {P.AGENTJOURNAL_IMPORT_ERROR}"
        print(f"[skip] scale: {doc['skipped']['scale']}", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory(prefix="aj-scale-", dir=base_tmp_parent) as tmp:
        out = Path(tmp) / "scale.json"
        cmd = [sys.executable, str(HERE / "scale.py"), "--json", str(out), "--tmpdir", tmp]
        if args.quick:
            cmd.append("--quick")  # all parts: the smoke test also runs the retention run
        else:
            cmd += ["--part", "reads"]  # the retention run is scale.py's own (minutes at 100k)
        if args.large:
            cmd.append("--large")
        if args.scale_sizes:
            cmd += ["--sizes", args.scale_sizes]
        print("[run ] scale (workload 2) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not out.exists():
            doc["skipped"]["scale"] = f"worker failed: {p.stderr.strip()[-1500:]}"
            print(f"[fail] scale:\n{p.stderr[-3000:]}", file=sys.stderr)
            return
        doc["scale"] = json.loads(out.read_text())
        print(f"[done] scale in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="workload 1 steps (default 1000)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {QUICK_STEPS} steps, few repetitions, no charts")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--charts", type=Path, default=None, metavar="DIR",
                    help="draw the PNG charts into DIR (e.g. docs/img, whose charts are tracked "
                    "files: they are redrawn only when asked); default: no charts")
    ap.add_argument("--no-charts", action="store_true", help="no charts (the default)")
    ap.add_argument("--systems", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--workloads", default="1,2,3",
                    help="comma-separated: 1 growing conversation, 2 scale (agentjournal alone),"
                         " 3 large states (default all)")
    ap.add_argument("--large", action="store_true",
                    help="workload 2 also at 1,000,000 steps (several minutes, ~1 GB of disk)")
    ap.add_argument("--scale-sizes", default=None,
                    help="workload 2 step counts, comma-separated (default 1000,10000,100000)")
    ap.add_argument("--tmpdir", type=Path, default=None,
                    help="where stores are created (default: system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the stores after the run")
    ap.add_argument("--list-systems", action="store_true")
    ap.add_argument("--replot", type=Path, metavar="JSON",
                    help="only redraw the charts (and print the tables) of an earlier run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--probe-resume", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tmpdir is not None:
        args.tmpdir.mkdir(parents=True, exist_ok=True)  # a new place for the stores
    steps = args.steps or (QUICK_STEPS if args.quick else 1000)
    workloads = {w.strip() for w in args.workloads.split(",") if w.strip()}

    if args.probe_resume:
        probe_resume(args.probe_resume, steps, args.workdir)
        return 0
    if args.worker:
        worker(args.worker, steps, args.workdir, args.out, workloads, args.quick)
        return 0

    if args.replot:
        doc = json.loads(args.replot.read_text())
        print_tables(doc)
        if doc.get("scale", {}).get("sizes"):
            _scale_module().print_table(doc["scale"])
        print_targets(doc.get("targets", []))
        if args.charts is not None and not args.no_charts:
            made = charts(doc, args.charts)
            print("\ncharts: " + ", ".join(made))
        return 0

    if args.list_systems:
        for name in P.REGISTRY:
            ok, why = P.availability(name)
            print(f"{name:26s} {'available' if ok else 'unavailable: ' + why}")
        if P.AGENTJOURNAL_IMPORT_ERROR:
            print(f"(agentjournal: {P.AGENTJOURNAL_IMPORT_ERROR})")
        return 0

    names = list(P.REGISTRY) if not args.systems else [
        s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in P.REGISTRY]
    if unknown:
        ap.error(f"unknown systems {unknown}; known: {', '.join(P.REGISTRY)}")

    base_tmp = Path(tempfile.mkdtemp(prefix="aj-peers-", dir=args.tmpdir))
    wl = W.Workload(steps)
    final = W.state_at(wl, steps)
    raw = json.dumps(final).encode()
    doc: dict[str, Any] = {
        "benchmark": "agentjournal peers (issue 6)",
        "schema": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "machine": machine_info(base_tmp),
        "versions": versions(),
        "workloads": {
            "growing_conversation": {
                "steps": steps, "seed": wl.seed, "message_bytes_target": wl.message_bytes,
                "message_bytes_mean": statistics.fmean(
                    len(json.dumps(wl.message(i)).encode()) for i in range(1, steps + 1)),
                "final_state_bytes": len(raw),
                "final_state_gzip_ratio": len(raw) / len(gzip.compress(raw)),
                "new_data_bytes": wl.delta_bytes(),
                "load_points": load_points(steps), "window": window(steps),
                "bytes_written_measure": "wchar delta from /proc/self/io over the step loop",
                "per_step_measure": "perf_counter_ns between consecutive completed steps",
            },
            "large_states": {
                "sizes": {lab: W.json_size(W.state_of_size(t))
                          for lab, t in W.LARGE_STATE_SIZES.items()},
                "reps": LARGE_REPS_QUICK if args.quick else LARGE_REPS,
            },
        },
        "systems": {},
        "skipped": {},
    }
    if P.AGENTJOURNAL_IMPORT_ERROR:
        doc["agentjournal"] = P.AGENTJOURNAL_IMPORT_ERROR
    del final, raw

    try:
        for name in (names if workloads & {"1", "3"} else []):
            ok, why = P.availability(name)
            if not ok:
                doc["skipped"][name] = why
                print(f"[skip] {name}: {why}", file=sys.stderr)
                continue
            d = base_tmp / name
            d.mkdir()
            out = base_tmp / f"{name}.json"
            print(f"[run ] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
                   "--steps", str(steps), "--workdir", str(d), "--out", str(out),
                   "--workloads", ",".join(sorted(workloads))]
            if args.quick:
                cmd.append("--quick")
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0 or not out.exists():
                doc["skipped"][name] = f"worker failed: {p.stderr.strip()[-1500:]}"
                print(f"[fail] {name}:\n{p.stderr[-3000:]}", file=sys.stderr)
                continue
            if p.stderr.strip():  # warnings the library printed, kept for the record
                doc.setdefault("stderr", {})[name] = p.stderr[-3000:]
            doc["systems"][name] = json.loads(out.read_text())
            print(f"[done] {name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr,
                  flush=True)
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(base_tmp, ignore_errors=True)
        else:
            print(f"stores kept in {base_tmp}", file=sys.stderr)

    if "2" in workloads:
        run_scale(doc, args, base_tmp_parent=args.tmpdir)
    doc["targets"] = targets(doc)
    doc["machine"]["loadavg_at_end"] = loadavg()
    doc["machine"]["fdatasync_500B_at_end"] = fsync_floor(
        Path(args.tmpdir) if args.tmpdir else Path(tempfile.gettempdir()))
    if "1" in workloads or "3" in workloads:
        print_tables(doc)
    if doc.get("scale", {}).get("sizes"):
        print(f"\nWorkload 2: scale, agentjournal alone ({doc['scale']['description']})")
        _scale_module().print_table(doc["scale"])
    print_targets(doc["targets"])
    chart_dir = args.charts  # never docs/img unless asked: its charts are tracked files
    if chart_dir is not None and not args.no_charts and (
            ("1" in workloads and doc["systems"]) or doc.get("scale", {}).get("sizes")):
        try:
            doc["charts"] = charts(doc, chart_dir)
            print("\ncharts: " + ", ".join(doc["charts"]))
        except ImportError as e:
            print(f"\ncharts skipped: {e}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
        print(f"json: {args.json}")
    failed = [k for k, v in doc["skipped"].items() if v.startswith("worker failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

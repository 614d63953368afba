#!/usr/bin/env python3
"""Render the JSON of a ``peers.py`` run as Markdown tables (for docs/performance.md, README).

    python benchmarks/report.py docs/benchmarks.json            # every table
    python benchmarks/report.py docs/benchmarks.json --summary  # the README's short table

Every figure comes from the one JSON document, i.e. from one run: peers' and ours together.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ORDER = ["agentjournal-sync", "agentjournal-group", "agentjournal-none", "agentjournal-manager",
         "kaizen-fs", "kaizen-fs-gzip", "langgraph-sqlite", "langgraph-sqlite-delta",
         "langgraph-memory", "langgraph-none"]


def ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def mb(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}" if n < 10e6 else f"{n / 1e6:.0f}"


def md(headers: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i < right_from else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def systems(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    names = [n for n in ORDER if n in doc["systems"]]
    names += [n for n in doc["systems"] if n not in names]
    return [(n, doc["systems"][n]) for n in names]


def header(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    fs = m.get("workdir_filesystem", {})
    v = doc["versions"]
    vs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    f0, f1 = m.get("fdatasync_500B_at_start", {}), m.get("fdatasync_500B_at_end", {})
    la0, la1 = m.get("loadavg_at_start"), m.get("loadavg_at_end")
    cmd = "python benchmarks/peers.py " + " ".join(doc.get("argv") or [])
    return "\n".join([
        f"Run of {doc['created']} (UTC): `{cmd.strip()}`.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, "
        f"{round(m.get('mem_total_kb', 0) / 1e6)} GB RAM, {m.get('platform')}; "
        f"{m.get('python_implementation')} {m.get('python')}, SQLite {m.get('sqlite')}; "
        f"stores on {fs.get('type', '?')} ({fs.get('device', '?')}). "
        f"Load average {la0} at the start, {la1} at the end; "
        f"a 500-byte write + fdatasync cost {ms(f0.get('median_ms'))} ms (median, p99 "
        f"{ms(f0.get('p99_ms'))}) at the start and {ms(f1.get('median_ms'))} ms (p99 "
        f"{ms(f1.get('p99_ms'))}) at the end.",
        "",
        f"Versions: {vs}.",
    ])


def table_writes(doc: dict[str, Any]) -> str:
    wl = doc["workloads"]["growing_conversation"]
    n = wl["window"]
    rows = []
    for name, s in systems(doc):
        g = s.get("growing_conversation")
        if not g:
            continue
        ps = g["per_step"]
        rows.append([f"`{name}`", ms(ps["all"]["median_ms"]), ms(ps["first"]["median_ms"]),
                     ms(ps["first"]["p99_ms"]), ms(ps["last"]["median_ms"]),
                     ms(ps["last"]["p99_ms"]), f"{g['total_s']:.2f}", mb(g["bytes_written"]),
                     mb(g["bytes_on_disk"])])
    return md(["system", "per step, all", f"first {n}", "p99", f"last {n}", "p99", "total s",
               "written MB", "on disk MB"], rows)


def table_reads(doc: dict[str, Any]) -> str:
    wl = doc["workloads"]["growing_conversation"]
    lp = [str(k) for k in wl["load_points"]]
    rows = []
    for name, s in systems(doc):
        g = s.get("growing_conversation")
        if not g or "resume_fresh_object" not in g:
            continue
        fp = g["resume_fresh_process"]
        loads = []
        for k in lp:
            e = g["load_at"].get(k, {})
            loads.append(ms(e.get("first_ms")) if e.get("retained") else "deleted")
        lh = g["list_history"]
        rows.append([f"`{name}`", ms(fp["resume_ms"]) if "resume_ms" in fp else "n/a",
                     ms(g["resume_fresh_object"]["first_ms"]),
                     ms(g["resume_fresh_object"]["repeat_median_ms"]), *loads,
                     f"{ms(lh['median_ms'])} ({lh['entries']})"])
    return md(["system", "resume, new process", "resume, new object", "again", *[
        f"load step {k}" for k in lp], "list history (entries)"], rows) + (
        "\n\nms. Resume and load: the first call (\"again\": median of 5 more resumes); list"
        " history: median of 3; \"deleted\": removed by the system's retention.")


def table_large(doc: dict[str, Any]) -> str:
    labels = list(doc["workloads"]["large_states"]["sizes"])
    rows = []
    for name, s in systems(doc):
        ls = s.get("large_states")
        if not ls:
            continue
        rows.append([f"`{name}`", *[f"{ms(ls[lab]['save']['median_ms'])} / "
                                    f"{ms(ls[lab]['load']['median_ms'])}" for lab in labels]])
    sizes = doc["workloads"]["large_states"]["sizes"]
    return md(["system", *[f"~{lab} ({sizes[lab]:,} B)" for lab in labels]], rows)


def table_scale(doc: dict[str, Any]) -> str:
    sc = doc["scale"]
    rows = []
    for n, s in sorted(sc["sizes"].items(), key=lambda kv: int(kv[0])):
        fp = s.get("resume_fresh_process", {})
        rows.append([f"{int(n):,}", ms(s["resume_fresh_object"]["median_ms"]),
                     ms(s["resume_readonly"]["median_ms"]), ms(fp.get("median_ms")),
                     ms(s["state_at"]["median_ms"]), ms(s["state_at"]["p99_ms"]),
                     ms(s["state_at_readonly"]["median_ms"]), ms(s["history"]["median_ms"]),
                     ms(s["history_readonly"]["median_ms"]), f"{s['bytes_per_step']:.0f}"])
    return md(["steps", "resume, new object", "read-only", "new process", "state_at(k)",
               "p99", "read-only", f"list {sc['history_span']} steps", "read-only",
               "bytes/step"], rows)


def table_targets(doc: dict[str, Any]) -> str:
    rows = []
    for t in doc.get("targets", []):
        if "goal_ratio" in t:
            fig = f"{t['ratio']:.1f}×" if t["ratio"] < 10 else f"{t['ratio']:.0f}×"
            goal = f"≥ {t['goal_ratio']:.0f}×"
            if "ratio_total_time" in t:
                detail = (f"{ms(t['peer_median_ms'])} vs {ms(t['ours_median_ms'])} ms; first "
                          f"100 {t['ratio_first']:.0f}×, last 100 {t['ratio_last']:.0f}×, "
                          f"total time {t['ratio_total_time']:.0f}×")
            else:
                detail = f"{mb(t['peer_bytes'])} MB vs {mb(t['ours_bytes'])} MB"
            what = f"{t['target']} (`{t['ours']}` vs `{t['peer']}`)"
        elif "bound_ratio" in t:
            fig, goal, detail, what = (f"{t['ratio']:.2f}×", f"≤ {t['bound_ratio']}×",
                                       t["measure"], t["target"])
        else:
            fig, goal, what = f"{ms(t['value_ms'])} ms", f"≤ {t['bound_ms']:.0f} ms", t["target"]
            detail = (f"p99 {ms(t['p99_ms'])} ms" if "p99_ms" in t else
                      f"new object: {ms(t['fresh_object_first_ms'])} ms first call, "
                      f"{ms(t['fresh_object_repeat_median_ms'])} ms again")
        rows.append([what, fig, goal, "met" if t["met"] else "**missed**", detail])
    return md(["target (DESIGN.md)", "this run", "goal", "", "detail"], rows, right_from=1)


def summary(doc: dict[str, Any]) -> str:
    """One row per system: the figures a reader compares first."""
    rows = []
    for name, s in systems(doc):
        g = s.get("growing_conversation")
        if not g:
            continue
        ps = g["per_step"]
        fp = g.get("resume_fresh_process", {})
        e500 = g.get("load_at", {}).get("500", {})
        rows.append([f"`{name}`", ms(ps["first"]["median_ms"]), ms(ps["last"]["median_ms"]),
                     mb(g["bytes_written"]), mb(g["bytes_on_disk"]),
                     ms(fp["resume_ms"]) if "resume_ms" in fp else "–",
                     (ms(e500["first_ms"]) if e500.get("retained") else "deleted")
                     if e500 else "–",
                     ms(g["list_history"]["median_ms"]) if "list_history" in g else "–"])
    return md(["system", "ms/step, first 100", "ms/step, last 100", "MB written",
               "MB on disk", "resume, new process, ms¹", "load step 500, ms¹",
               "list history, ms"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args(argv)
    doc = json.loads(args.json.read_text())
    if args.summary:
        print(summary(doc))
        return 0
    parts = [header(doc), "### Workload 1: growing conversation — recording",
             table_writes(doc), "### Workload 1 — reading", table_reads(doc)]
    if doc.get("scale"):
        parts += ["### Workload 2: scale (agentjournal alone)", table_scale(doc)]
    parts += ["### Workload 3: large states (save / load, median ms)", table_large(doc),
              "### Targets", table_targets(doc)]
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

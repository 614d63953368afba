#!/usr/bin/env python3
"""LangGraph checkpointers on one growing-conversation graph: JournalSaver against the others.

The graph (no model) appends one ~500-byte ``AIMessage`` per step to ``messages`` (a list with
an ``operator.add`` reducer) and bumps a counter, for N steps (default 1000, ``--big``: 10000).
Systems, each in its own fresh process, one after another:

- ``sqlite``: ``SqliteSaver`` on a file (WAL, synchronous=FULL: each checkpoint fsynced)
- ``sqlite-delta``: the same with ``messages`` as a ``DeltaChannel`` (when langgraph has it)
- ``memory``: ``InMemorySaver`` (nothing written; reads measured in the writing process)
- ``journal-sync``: ``JournalSaver`` (journal durability ``sync``), graph durability ``sync``
- ``journal-async``: ``JournalSaver``, graph durability ``async`` (LangGraph's default)

The SQLite systems run with graph durability ``sync`` (each checkpoint durable before the next
step, like ``journal-sync``). Figures: per-step cost (median of the first and of the last 100
steps, node to node), total run time, bytes written (``wchar`` of ``/proc/self/io``: bytes
handed to write calls), bytes on disk, and, in a new process, ``get_state`` of the latest
checkpoint, ``get_state_history`` of 1000 checkpoints and ``get_state`` at the checkpoint 500
back (medians of ``--repeat`` runs). Prints a table, then one JSON line.

    python benchmarks/bench_langgraph.py                 # 1000 steps
    python benchmarks/bench_langgraph.py --big           # 10000 steps
    python benchmarks/bench_langgraph.py --plain         # messages as plain dicts
    python benchmarks/bench_langgraph.py --steps 50 --systems journal-sync,memory   # quick

Reports, does not test: no figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

SYSTEMS = ["sqlite", "sqlite-delta", "memory", "journal-sync", "journal-async"]
PAD = "x" * 420


def _wchar() -> int:
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def _concat(state: list[Any], writes: list[list[Any]]) -> list[Any]:
    """Batch reducer for DeltaChannel: deterministic and batching-invariant."""
    out = list(state or [])
    for w in writes:
        out.extend(w)
    return out


try:
    from langgraph.channels import DeltaChannel
except ImportError:  # an older langgraph: the sqlite-delta system is skipped
    DeltaChannel = None


class State(TypedDict):
    messages: Annotated[list[Any], operator.add]
    n: int
    goal: int


if DeltaChannel is not None:
    class DState(TypedDict):
        messages: Annotated[list[Any], DeltaChannel(_concat)]
        n: int
        goal: int


PLAIN = "--plain" in sys.argv  # children inherit the flag through their argv


def build(system: str, saver: Any, stamps: list[float]) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, StateGraph

    schema: Any = DState if system == "sqlite-delta" else State

    def speak(s: dict[str, Any]) -> dict[str, Any]:
        stamps.append(time.perf_counter())
        n = s["n"] + 1
        text = f"turn {n} {PAD}"
        msg: Any = ({"role": "assistant", "content": text, "id": f"m{n}"} if PLAIN
                    else AIMessage(text, id=f"m{n}"))
        return {"messages": [msg], "n": n}

    b = StateGraph(schema)
    b.add_node("speak", speak)
    b.add_edge(START, "speak")
    b.add_conditional_edges("speak", lambda s: "speak" if s["n"] < s["goal"] else END)
    return b.compile(checkpointer=saver)


def open_saver(system: str, d: Path) -> tuple[Any, Any]:
    """(saver, closer) for a system whose data lives under ``d``."""
    if system.startswith("sqlite"):
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(d / "lg.sqlite", check_same_thread=False)
        return SqliteSaver(conn), conn.close
    if system == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver(), lambda: None
    from agentjournal.integrations.langgraph import JournalSaver

    s = JournalSaver(d / "store")
    return s, s.close


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reads(system: str, saver: Any, steps: int, repeat: int) -> dict[str, float]:
    g = build(system, saver, [])
    cfg = {"configurable": {"thread_id": "bench"}}
    latest = g.get_state(cfg)
    assert latest.values["n"] == steps, latest.values["n"]
    out: dict[str, float] = {}
    out["latest_ms"] = 1000 * _median_time(lambda: g.get_state(cfg), repeat)
    hist: list[Any] = []

    def history() -> None:
        hist[:] = list(g.get_state_history(cfg, limit=1000))

    out["history_1000_ms"] = 1000 * _median_time(history, repeat)
    out["history_len"] = len(hist)
    back = hist[min(500, len(hist) - 1)].config
    out["back_500_ms"] = 1000 * _median_time(lambda: g.get_state(back), repeat)
    return out


def child_write(system: str, d: Path, steps: int, repeat: int) -> dict[str, Any]:
    saver, close = open_saver(system, d)
    stamps: list[float] = []
    g = build(system, saver, stamps)
    durability = "async" if system == "journal-async" else "sync"
    cfg = {"configurable": {"thread_id": "bench"}, "recursion_limit": steps + 10}
    w0 = _wchar()
    t0 = time.perf_counter()
    g.invoke({"messages": [], "n": 0, "goal": steps}, cfg, durability=durability)
    total = time.perf_counter() - t0
    written = _wchar() - w0
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    res: dict[str, Any] = {
        "system": system, "steps": steps, "total_s": total,
        "first100_ms": 1000 * statistics.median(gaps[:100]),
        "last100_ms": 1000 * statistics.median(gaps[-100:]),
        "bytes_written": written,
    }
    if system == "memory":
        res.update(reads(system, saver, steps, repeat))
    close()
    res["bytes_on_disk"] = _du(d)
    return res


def child_read(system: str, d: Path, steps: int, repeat: int) -> dict[str, Any]:
    import importlib

    # Imports are not what "a new process" measures: the saver opening the thread is.
    for mod in ("langgraph.graph", "langchain_core.messages",
                "langgraph.checkpoint.sqlite" if system.startswith("sqlite")
                else "agentjournal.integrations.langgraph"):
        importlib.import_module(mod)
    t0 = time.perf_counter()
    saver, close = open_saver(system, d)
    g = build(system, saver, [])
    g.get_state({"configurable": {"thread_id": "bench"}})
    first = time.perf_counter() - t0
    res = reads(system, saver, steps, repeat)
    res["new_process_latest_ms"] = 1000 * first
    close()
    return res


def run_child(args: list[str]) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(HERE), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def have(system: str) -> bool:
    import importlib.util

    mods = {"sqlite": ["langgraph.checkpoint.sqlite"],
            "sqlite-delta": ["langgraph.checkpoint.sqlite", "langgraph.channels.delta"]}
    try:
        return all(importlib.util.find_spec(m) is not None for m in mods.get(system, []))
    except ModuleNotFoundError:
        return False


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--big", action="store_true", help="10000 steps")
    ap.add_argument("--repeat", type=int, default=3, help="runs per read figure (median)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--plain", action="store_true",
                    help="messages as plain dicts instead of LangChain AIMessages")
    ap.add_argument("--child", choices=["write", "read"], help=argparse.SUPPRESS)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = 10000 if args.big else args.steps
    if args.child:
        fn = child_write if args.child == "write" else child_read
        print(json.dumps(fn(args.system, Path(args.dir), steps, args.repeat)))
        return

    results = []
    base = Path(tempfile.mkdtemp(prefix="bench-lg-", dir=args.tmpdir))
    try:
        for system in args.systems.split(","):
            if not have(system):
                print(f"skipped {system}: its langgraph package is not installed",
                      file=sys.stderr)
                continue
            d = base / system
            d.mkdir()
            common = ["--system", system, "--dir", str(d), "--steps", str(steps),
                      "--repeat", str(args.repeat), *(["--plain"] if args.plain else [])]
            res = run_child(["--child", "write", *common])
            if system != "memory":
                res.update(run_child(["--child", "read", *common]))
            results.append(res)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    cols = [("system", "system", str), ("first100_ms", "step first100", "{:.2f} ms".format),
            ("last100_ms", "step last100", "{:.2f} ms".format),
            ("total_s", "total", "{:.1f} s".format),
            ("bytes_written", "written", fmt_bytes), ("bytes_on_disk", "on disk", fmt_bytes),
            ("new_process_latest_ms", "latest, new proc", "{:.0f} ms".format),
            ("latest_ms", "latest", "{:.1f} ms".format),
            ("history_1000_ms", "history 1000", "{:.0f} ms".format),
            ("back_500_ms", "500 back", "{:.1f} ms".format)]
    table = [[c[1] for c in cols]]
    for r in results:
        table.append([c[2](r[c[0]]) if c[0] in r else "-" for c in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    kind = "plain dict" if args.plain else "LangChain AIMessage"
    print(f"LangGraph growing conversation, {steps} steps (~500 B/step, {kind}), medians; "
          f"{platform.python_version()} on {platform.machine()}, shared machine")
    for k, row in enumerate(table):
        print("  ".join(v.rjust(widths[i]) if i else v.ljust(widths[i])
                        for i, v in enumerate(row)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(json.dumps({"bench": "langgraph", "steps": steps, "messages": kind,
                      "results": results}))


if __name__ == "__main__":
    main()

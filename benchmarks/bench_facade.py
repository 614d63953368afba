"""The seed facade and the Kaizen integration, measured side by side (issue 11).

Rows (medians of one run; the machine may be shared, see the JSON line's ``loadavg``):

1. per save, ``sync`` durability, the growing conversation (1000 steps, ~500 KB at the end):
   ``Journal.append`` of the same AgentState documents vs ``StateManager.save_checkpoint`` in its
   defaults (snapshots every 10 steps or 60 s, 100 kept) -- and LangGraph's ``SqliteSaver`` on
   the same conversation (a real StateGraph, ``durability="sync"``);
2. resume of the 500 KB state by a fresh object: a new ``StateManager``'s ``resume_from_latest``
   vs ``get_state`` of a graph on a new SQLite connection;
3. a fleet in one process: 1, 16 and 64 agents saving concurrently through one ``StateManager``
   in ``sync`` (acknowledged saves per second), and the same 64 agents' saves made by 64 plain
   threads calling ``Journal.append`` (the engine's ceiling, no facade);
4. Kaizen's own ``StateManager`` on our ``JournalStorage`` vs on Kaizen's ``FilesystemStorage``
   (growing conversation, retention 100, save per step; then a fresh manager's resume).

Usage: ``python benchmarks/bench_facade.py [--quick] [--json-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import _workload as W  # noqa: E402

from agentjournal import AgentState, FilesystemStorage, Journal, StateManager  # noqa: E402


def med_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1e3, 4)


def fsync_floor(directory: Path, n: int = 200) -> float:
    """Median ms of one 500-byte write + fdatasync here (what every sync save pays)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "floor", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    xs = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 499 + b"\n")
            os.fdatasync(fd)
            xs.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return med_ms(xs)


def run_side_by_side(root: Path, wl: W.Workload) -> tuple[dict[str, Any], dict[str, Any]]:
    """``Journal.append`` and ``StateManager.save_checkpoint`` of the same documents, step by
    step in one loop (alternating which goes first), so both meet the same disk and load."""

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        se, sm_state = AgentState(agent_id="conv"), AgentState(agent_id="conv")
        j = Journal("conv", root / "engine", durability="sync", snapshot_every=10,
                    snapshot_seconds=60.0, keep_snapshots=100)
        sm = StateManager(FilesystemStorage(root / "manager", durability="sync"))
        le: list[float] = []
        lm: list[float] = []
        te = tm = 0.0
        for i in range(1, wl.steps + 1):
            for s in (se, sm_state):
                s.step_number = i
                s.conversation_history.append(wl.message(i))
                s.budget_spent_usd += wl.cost(i)
            for first in ((0, 1) if i % 2 else (1, 0)):
                t0 = time.perf_counter()
                if first == 0:
                    se.checkpoint_id = f"conv@{i:010d}.{j.last_seq + 1:010d}"
                    j.append(se.to_dict(), step=i)
                    le.append(time.perf_counter() - t0)
                    te += le[-1]
                else:
                    await sm.save_checkpoint(sm_state)
                    lm.append(time.perf_counter() - t0)
                    tm += lm[-1]
        j.close()
        await sm.aclose()
        return ({"median_ms": med_ms(le), "total_s": round(te, 3)},
                {"median_ms": med_ms(lm), "total_s": round(tm, 3)})

    return asyncio.run(main())


def resume_manager(root: Path, reps: int) -> dict[str, Any]:
    async def main() -> list[float]:
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            sm = StateManager(FilesystemStorage(root))
            got = await sm.resume_from_latest("conv")
            out.append(time.perf_counter() - t0)
            assert got is not None
            sm.close()
        return out

    xs = asyncio.run(main())
    return {"median_ms": med_ms(xs)}


def run_langgraph(work: Path, wl: W.Workload, reps: int) -> dict[str, Any] | None:
    try:
        import _peers as P
        ad = P.LangGraphAdapter("sqlite")
        ok, why = ad.available()
    except ImportError as e:
        return {"skipped": str(e)}
    if not ok:
        return {"skipped": why}
    work.mkdir(parents=True, exist_ok=True)
    ad.setup(work, wl)
    lat: list[float] = []
    t_all = time.perf_counter()
    t0 = t_all
    for _ in ad.iter_steps(wl):
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        t0 = t1
    total = time.perf_counter() - t_all
    ad.close()
    res = []
    for _ in range(reps):
        ad.reopen()  # new connection, fresh graph (untimed)
        t0 = time.perf_counter()
        st = ad.resume_latest()
        res.append(time.perf_counter() - t0)
        assert st["counter"] == wl.steps
        ad.close()
    return {"median_ms": med_ms(lat), "total_s": round(total, 3),
            "resume_median_ms": med_ms(res)}


def run_fleet(root: Path, agents: int, saves: int, frequency: int = 10) -> dict[str, Any]:
    msg = {"role": "assistant", "content": "x" * 400}

    async def one(sm: StateManager, k: int) -> None:
        s = AgentState(agent_id=f"fleet-{k}")
        for i in range(1, saves + 1):
            s.step_number = i
            s.conversation_history.append(msg)
            await sm.save_checkpoint(s)

    async def main() -> float:
        sm = StateManager(FilesystemStorage(root, durability="sync"),
                          checkpoint_frequency=frequency)
        # Open every agent's journal first (untimed): the rate is of acknowledged saves.
        await asyncio.gather(*(sm.save_checkpoint(AgentState(agent_id=f"fleet-{k}"))
                               for k in range(agents)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(sm, k) for k in range(agents)))
        dt = time.perf_counter() - t0
        await sm.aclose()
        return dt

    dt = asyncio.run(main())
    return {"agents": agents, "saves": agents * saves, "snapshot_every": frequency,
            "steps_per_s": round(agents * saves / dt)}


def run_threads_engine(root: Path, agents: int, saves: int, frequency: int) -> dict[str, Any]:
    """The fleet's saves without the facade: one plain thread per agent calling
    ``Journal.append`` in ``sync`` (same documents and snapshot settings): the engine's ceiling
    for the fleet rows, and what they should be compared with."""
    import threading

    msg = {"role": "assistant", "content": "x" * 400}
    journals = [Journal(f"fleet-{k}", root, durability="sync", snapshot_every=frequency,
                        snapshot_seconds=60.0, keep_snapshots=100) for k in range(agents)]
    for k, j in enumerate(journals):  # the journals exist first, as in run_fleet
        j.append(AgentState(agent_id=f"fleet-{k}").to_dict(), step=0)

    def work(k: int) -> None:
        j, s = journals[k], AgentState(agent_id=f"fleet-{k}")
        for i in range(1, saves + 1):
            s.step_number = i
            s.conversation_history.append(msg)
            s.checkpoint_id = f"fleet-{k}@{i:010d}.{j.last_seq + 1:010d}"
            j.append(s.to_dict(), step=i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(agents)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    for j in journals:
        j.close()
    return {"agents": agents, "saves": agents * saves, "snapshot_every": frequency,
            "steps_per_s": round(agents * saves / dt)}


def run_kaizen(work: Path, steps: int, which: str, reps: int) -> dict[str, Any]:
    try:
        from kaizen.core.autonomy.state import AgentState as KState
        from kaizen.core.autonomy.state import FilesystemStorage as KFS
        from kaizen.core.autonomy.state import StateManager as KManager
    except ImportError as e:
        return {"skipped": str(e)}

    def make() -> Any:
        if which == "kaizen-filesystem":
            return KFS(base_dir=work)
        from agentjournal.integrations.kaizen import JournalStorage

        dur = "none" if which.endswith("-none") else "sync"
        return JournalStorage(base_dir=work, durability=dur)

    wl = W.Workload(steps)

    async def main() -> dict[str, Any]:
        storage = make()
        sm = KManager(storage=storage)
        convo: list[dict[str, Any]] = []
        lat: list[float] = []
        t_all = time.perf_counter()
        for i in range(1, steps + 1):
            convo.append(wl.message(i))
            st = KState(agent_id="conv", step_number=i, conversation_history=convo)
            t0 = time.perf_counter()
            await sm.save_checkpoint(st)
            lat.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
        close = getattr(storage, "close", None)
        if close is not None:
            close()
        res = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fresh = KManager(storage=make())
            got = await fresh.resume_from_latest("conv")
            res.append(time.perf_counter() - t0)
            assert got is not None and got.step_number == steps
            c2 = getattr(fresh.storage, "close", None)
            if c2 is not None:
                c2()
        return {"median_ms": med_ms(lat), "total_s": round(total, 3),
                "resume_median_ms": med_ms(res)}

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--dir", help="work directory (default: a temp dir on the default fs)")
    args = ap.parse_args(argv)
    steps = 100 if args.quick else 1000
    kaizen_steps = 30 if args.quick else 200
    fleet_saves = {1: 20, 16: 5, 64: 2} if args.quick else {1: 1000, 16: 150, 64: 50}
    reps = 3 if args.quick else 15
    base = Path(tempfile.mkdtemp(prefix="bench-facade-", dir=args.dir))
    doc: dict[str, Any] = {"bench": "facade", "steps": steps, "kaizen_steps": kaizen_steps,
                           "loadavg": list(os.getloadavg()), "cpus": os.cpu_count()}
    try:
        doc["fdatasync_ms_start"] = fsync_floor(base / "floor")
        wl = W.Workload(steps)
        doc["journal_append_sync"], doc["manager_save_sync"] = run_side_by_side(base, wl)
        doc["manager_resume_fresh"] = resume_manager(base / "manager", reps)
        doc["langgraph_sqlite"] = run_langgraph(base / "lg", wl, reps)
        doc["fleet"] = [run_fleet(base / f"fleet{n}-{f}", n, s, f)
                        for f in (10, 100) for n, s in fleet_saves.items()]
        doc["fleet_threads_engine"] = [
            run_threads_engine(base / f"threads64-{f}", 64, fleet_saves[64], f) for f in (10, 100)]
        doc["kaizen"] = {w: run_kaizen(base / w, kaizen_steps, w, reps)
                         for w in ("kaizen-filesystem", "journalstorage-sync",
                                   "journalstorage-none")}
        doc["fdatasync_ms_end"] = fsync_floor(base / "floor")
        doc["loadavg_end"] = list(os.getloadavg())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    e, m = doc["journal_append_sync"], doc["manager_save_sync"]
    doc["ratio_manager_vs_append"] = round(m["median_ms"] / e["median_ms"], 3)
    lg = doc["langgraph_sqlite"] or {}
    if "total_s" in lg:
        doc["speedup_total_vs_langgraph"] = round(lg["total_s"] / m["total_s"], 2)
        doc["speedup_resume_vs_langgraph"] = round(
            lg["resume_median_ms"] / doc["manager_resume_fresh"]["median_ms"], 2)
    if not args.json_only:
        print_table(doc)
    print(json.dumps(doc, sort_keys=True))
    return 0


def print_table(doc: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    e, m = doc["journal_append_sync"], doc["manager_save_sync"]
    lg = doc["langgraph_sqlite"] or {}
    n = doc["steps"]
    rows.append((f"Journal.append, sync ({n} steps)", f"{e['median_ms']:.3f} ms",
                 f"{e['total_s']:.2f} s", ""))
    rows.append((f"StateManager.save_checkpoint, sync ({n})", f"{m['median_ms']:.3f} ms",
                 f"{m['total_s']:.2f} s", f"{doc['ratio_manager_vs_append']}x append"))
    if "total_s" in lg:
        rows.append((f"LangGraph SqliteSaver ({n})", f"{lg['median_ms']:.3f} ms",
                     f"{lg['total_s']:.2f} s",
                     f"manager {doc['speedup_total_vs_langgraph']}x faster in total"))
    rows.append(("fresh StateManager.resume_from_latest (~500 KB)",
                 f"{doc['manager_resume_fresh']['median_ms']:.3f} ms", "", ""))
    if "resume_median_ms" in lg:
        rows.append(("LangGraph get_state, new connection",
                     f"{lg['resume_median_ms']:.3f} ms", "",
                     f"manager {doc['speedup_resume_vs_langgraph']}x faster"))
    for f in doc["fleet"]:
        rows.append((f"fleet: {f['agents']} agents at once, sync, snapshot/{f['snapshot_every']}",
                     f"{f['steps_per_s']} saves/s", "", f"{f['saves']} saves"))
    for f in doc["fleet_threads_engine"]:
        rows.append((f"  same, 64 threads x Journal.append (no facade), snapshot/"
                     f"{f['snapshot_every']}", f"{f['steps_per_s']} saves/s", "",
                     "the engine's ceiling"))
    k = doc["kaizen"]
    for name, r in k.items():
        if "skipped" in r:
            rows.append((f"Kaizen StateManager on {name}", "skipped", "", r["skipped"][:40]))
            continue
        rows.append((f"Kaizen StateManager on {name} ({doc['kaizen_steps']})",
                     f"{r['median_ms']:.3f} ms", f"{r['total_s']:.2f} s",
                     f"resume {r['resume_median_ms']:.3f} ms"))
    print(f"load average {doc['loadavg'][0]:.2f} -> {doc['loadavg_end'][0]:.2f}; one 500-byte "
          f"write + fdatasync {doc['fdatasync_ms_start']} ms at the start, "
          f"{doc['fdatasync_ms_end']} ms at the end (median)")
    widths = [max(len(r[i]) for r in rows + [("what", "median/step", "total", "note")])
              for i in range(4)]
    head = ("what", "median/step", "total", "note")
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())

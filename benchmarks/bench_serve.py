"""Viewer benchmark: first paint of an agent's page and one slider step, in server time.

Builds a journal of N steps whose state is ~500 KB throughout (1000 messages of ~500 B; each
step rewrites one message and a counter), snapshots every 1000 steps, then starts the real
server (``agentjournal serve`` in a subprocess) and measures, from its ``Server-Timing``
header (the server's own time, no network):

- first paint: the API calls the agent page makes before it can draw (config, agent header,
  state at the step, that step's changes, the visible page of the step list, integrity),
  for a deep link to a random step, summed;
- slider step: ``changes`` of step N+1 after step N (what the page asks for moving right;
  it applies the ops itself, no state is sent), and of N-1 (moving left);
- jump: state + changes of a random far step;
- moving left from a fresh deep link (nothing there walked before);
- the peak RSS of the server process (VmHWM) at the end.

Prints a table and, last, one JSON line. Not part of the unit tests.

    python benchmarks/bench_serve.py            # 100k steps, 500 KB state
    python benchmarks/bench_serve.py --quick    # 2k steps, 50 KB state (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from agentjournal import Journal

TARGETS = {"first_paint_ms": 300.0, "slider_step_ms": 50.0}


def build(root: Path, steps: int, messages: int, msg_bytes: int, snapshot_every: int
          ) -> dict[str, Any]:
    rng = random.Random(14)
    words = [w * rng.randint(1, 4) for w in ("agent", "tool", "plan", "call", "result", "ok")]

    def text(i: int) -> str:
        out, n = [], 0
        while n < msg_bytes:
            w = words[(i * 7 + n) % len(words)]
            out.append(w)
            n += len(w) + 1
        return f"#{i} " + " ".join(out)[:msg_bytes]

    t0 = time.perf_counter()
    with Journal("agent", root=root, durability="none", snapshot_every=snapshot_every) as j:
        j.append({"counter": 0, "status": "running",
                  "messages": [{"role": "user" if k % 2 else "assistant", "content": text(k)}
                               for k in range(messages)]})
        for i in range(2, steps + 1):
            j.append(ops=[{"op": "replace", "path": "/counter", "value": i},
                          {"op": "replace", "path": f"/messages/{i % messages}/content",
                           "value": text(i)}])
        state_bytes = len(json.dumps(j.resume().state))
    return {"steps": steps, "state_bytes": state_bytes,
            "build_s": round(time.perf_counter() - t0, 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_ms(r: httpx.Response) -> float:
    r.raise_for_status()
    timing = r.headers["server-timing"]
    return float(timing.split("dur=")[1])


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def first_paint(c: httpx.Client, step: int, last_seq: int) -> float:
    """Server ms of the calls the page makes to show ``step`` (what app.js requests)."""
    a = "/api/agents/agent"
    total = server_ms(c.get("/api/config"))
    total += server_ms(c.get(a))
    total += server_ms(c.get(f"{a}/state", params={"step": step}))
    ch = c.get(f"{a}/changes", params={"step": step})
    total += server_ms(ch)
    seq = ch.json()["seq"]
    page_start = max(1, (seq - 1) // 200 * 200 + 1)
    total += server_ms(c.get(f"{a}/steps", params={"after": page_start, "limit": 200}))
    total += server_ms(c.get(f"{a}/integrity"))
    return total


def run(args: argparse.Namespace) -> dict[str, Any]:
    steps, messages = (2000, 100) if args.quick else (args.steps, 1000)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        info = build(work, steps, messages, 500, args.snapshot_every)
        port = free_port()
        env = dict(os.environ)
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentjournal.cli", "--root", str(work), "serve",
             "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        try:
            deadline = time.monotonic() + 60
            while True:  # until it listens
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {proc.communicate()[1]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            rng = random.Random(7)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                last_seq = c.get("/api/agents/agent").json()["last_seq"]
                cold = first_paint(c, steps, last_seq)
                paints = [first_paint(c, rng.randint(2, steps), last_seq)
                          for _ in range(args.paints)]
                # The slider, moving right from a random step, then left.
                start = rng.randint(2, steps - args.moves - 2)
                c.get("/api/agents/agent/state", params={"step": start})
                c.get("/api/agents/agent/changes", params={"step": start})
                right = [server_ms(c.get("/api/agents/agent/changes", params={"step": n}))
                         for n in range(start + 1, start + 1 + args.moves)]
                end = start + args.moves
                left = [server_ms(c.get("/api/agents/agent/changes", params={"step": n}))
                        for n in range(end - 1, max(1, end - 1 - args.moves // 4), -1)]
                # Moving left from a fresh deep link: no step there was walked before.
                start = rng.randint(args.moves + 2, steps)
                c.get("/api/agents/agent/state", params={"step": start})
                c.get("/api/agents/agent/changes", params={"step": start})
                fresh_left = [server_ms(c.get("/api/agents/agent/changes", params={"step": n}))
                              for n in range(start - 1, start - 1 - args.moves, -1)]
                jumps = []
                for _ in range(args.paints):
                    n = rng.randint(2, steps)
                    jumps.append(server_ms(c.get("/api/agents/agent/state",
                                                 params={"step": n}))
                                 + server_ms(c.get("/api/agents/agent/changes",
                                                   params={"step": n})))
                state_wire = len(c.get("/api/agents/agent/state",
                                       params={"step": steps}).content)
                step_wire = len(c.get("/api/agents/agent/changes",
                                      params={"step": steps}).content)
            rss = rss_peak_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 2)

    def p95(xs: list[float]) -> float:
        return round(sorted(xs)[min(len(xs) - 1, int(0.95 * (len(xs) - 1)))], 2)

    return {
        **info, "journal_bytes": disk,
        "first_paint_cold_ms": round(cold, 2),
        "first_paint_ms": med(paints), "first_paint_p95_ms": p95(paints),
        "slider_step_ms": med(right), "slider_step_p95_ms": p95(right),
        "slider_back_ms": med(left), "slider_back_p95_ms": p95(left),
        "slider_left_fresh_ms": med(fresh_left), "slider_left_fresh_p95_ms": p95(fresh_left),
        "slider_left_fresh_max_ms": round(max(fresh_left), 2),
        "snapshot_every": args.snapshot_every,
        "jump_ms": med(jumps), "jump_p95_ms": p95(jumps),
        "state_response_bytes": state_wire, "step_response_bytes": step_wire,
        "server_peak_rss_mib": round(rss / 1024, 1),
        "samples": {"paints": len(paints), "right": len(right), "left": len(left),
                    "left_fresh": len(fresh_left)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--paints", type=int, default=15, help="deep links measured")
    ap.add_argument("--moves", type=int, default=200, help="slider steps measured")
    ap.add_argument("--snapshot-every", type=int, default=1000,
                    help="snapshot interval of the journal (the engine's default is 100)")
    args = ap.parse_args()
    if args.quick:
        args.paints, args.moves = 3, 20
    r = run(args)
    rows = [
        ("first paint (server ms, sum of the page's calls), median", r["first_paint_ms"],
         f"<= {TARGETS['first_paint_ms']:.0f}"),
        ("first paint, p95", r["first_paint_p95_ms"], ""),
        ("first paint, cold server (first request)", r["first_paint_cold_ms"], ""),
        ("slider step right (changes of N+1), median ms", r["slider_step_ms"],
         f"<= {TARGETS['slider_step_ms']:.0f}"),
        ("slider step right, p95 ms", r["slider_step_p95_ms"], ""),
        ("slider step left (changes of N-1), median ms", r["slider_back_ms"],
         f"<= {TARGETS['slider_step_ms']:.0f}"),
        ("slider step left, p95 ms", r["slider_back_p95_ms"], ""),
        ("slider step left from a fresh deep link, median ms", r["slider_left_fresh_ms"],
         f"<= {TARGETS['slider_step_ms']:.0f}"),
        ("slider step left from a fresh deep link, p95 ms", r["slider_left_fresh_p95_ms"], ""),
        ("slider step left from a fresh deep link, max ms", r["slider_left_fresh_max_ms"],
         ""),
        ("jump to a random step (state + changes), median ms", r["jump_ms"], ""),
        ("bytes sent for one slider step", r["step_response_bytes"], ""),
        ("bytes of one whole state", r["state_response_bytes"], ""),
        ("server peak RSS (MiB)", r["server_peak_rss_mib"], ""),
    ]
    print(f"viewer on {r['steps']} steps (a snapshot every {r['snapshot_every']}), "
          f"state {r['state_bytes'] / 1024:.0f} KiB, "
          f"journal {r['journal_bytes'] / 2**20:.0f} MiB on disk (built in {r['build_s']} s)")
    w = max(len(x[0]) for x in rows)
    print(f"{'figure':<{w}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{w}}  {value:>10}  {target}")
    print(json.dumps({"bench": "serve", **r}))


if __name__ == "__main__":
    main()

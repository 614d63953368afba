"""Export/import benchmark: peak memory and time, against the length of the journal and against
a crafted file.

Not part of the unit tests. Deterministic data. Prints a table and, last, one JSON line.

* ``export``: a journal of N small records (several segments, a snapshot every 10 000) is
  exported to a file on disk; peak Python heap (tracemalloc) of the export and its wall time.
* ``crafted``: an unkeyed export file of one segment of many tiny records (all hashes
  recomputed, as anyone can: it verifies), ~9 MiB; peak heap and time of ``verify_export``
  (``import --dry-run``) and of ``import_journal`` reading it from disk (which includes the final
  ``Journal.verify`` of what it wrote).

Run it against another checkout with ``PYTHONPATH=<that>/src`` to compare versions.

    python benchmarks/bench_exchange.py            # 100k-record journal, ~9 MiB crafted file
    python benchmarks/bench_exchange.py --quick    # tiny sizes (CI smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgspec

import agentjournal
from agentjournal import Journal, _codec
from agentjournal.events import FORMAT_VERSION, Header, Step
from agentjournal.exchange import (
    Manifest,
    SegmentInfo,
    export_journal,
    import_journal,
    verify_export,
)

_enc = msgspec.json.Encoder()


def _seal(obj: Any) -> tuple[bytes, str]:
    return _codec.seal_line(_enc.encode(obj), None)


def craft(agent: str, n: int) -> bytes:
    """A self-consistent unkeyed export of ``n`` tiny records in one segment."""
    hdr, _ = _seal(Header(format=FORMAT_VERSION, agent_id=agent, first_seq=1, first_step=1,
                          prev="", created=1.0))
    lines, prev = [hdr], ""
    for i in range(n):
        line, prev = _seal(Step(seq=1 + i, ts=1.0, step=i + 1, prev=prev,
                                ops=[{"op": "add", "path": f"/k{i}", "value": i}]))
        lines.append(line)
    seg = b"".join(lines)
    m = Manifest(export_format=1, format=FORMAT_VERSION, agent_id=agent, keyed=False,
                 created=1.0, tool="crafted", records=n, first_seq=1, last_seq=n,
                 last_step=n, last_hash=prev,
                 segments=[SegmentInfo(first_seq=1, lines=n + 1, bytes=len(seg))],
                 snapshots=[])
    return _seal(m)[0] + seg


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, int]:
    """(median seconds of ``runs`` untraced calls, traced peak in bytes of one more call).

    tracemalloc slows allocation-heavy code several times, so time and memory are measured
    in separate calls.
    """
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--crafted", type=int, default=40_000,
                    help="records in the crafted file (40 000: ~9 MiB)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        args.records, args.crafted, args.runs = 2_000, 2_000, 1
    tmp = tempfile.mkdtemp(prefix="bench-exchange-")
    res: dict[str, Any] = {"python": platform.python_version(), "records": args.records,
                           "crafted_records": args.crafted, "runs": args.runs,
                           "agentjournal": os.path.dirname(agentjournal.__file__),
                           "machine": "shared (2 cores, other jobs running)"}
    try:
        root = os.path.join(tmp, "store")
        with Journal("big", root, durability="none", snapshot_every=10_000,
                     segment_max_records=20_000) as j:
            for i in range(args.records):
                j.append(ops=[{"op": "replace" if i else "add", "path": "/n", "value": i}])
        out = os.path.join(tmp, "export.jsonl")

        def export() -> None:
            with Journal("big", root, readonly=True) as r, open(out, "wb") as f:
                export_journal(r, f)

        res["export_s"], res["export_peak"] = measure(export, args.runs)
        res["export_bytes"] = os.path.getsize(out)

        data = craft("crafted", args.crafted)
        crafted = os.path.join(tmp, "crafted.jsonl")
        with open(crafted, "wb") as f:
            f.write(data)
        res["crafted_bytes"] = len(data)
        del data

        def verify() -> None:
            with open(crafted, "rb") as f:
                verify_export(f)

        res["verify_s"], res["verify_peak"] = measure(verify, args.runs)
        k = [0]

        def do_import() -> None:
            k[0] += 1
            with open(crafted, "rb") as f:
                import_journal(f, root=os.path.join(tmp, f"imported{k[0]}"))

        res["import_s"], res["import_peak"] = measure(do_import, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mib = 1 << 20
    rows = [
        (f"export, {args.records} records", res["export_s"], res["export_peak"],
         f"file {res['export_bytes'] / mib:.1f} MiB"),
        (f"import --dry-run, crafted {res['crafted_bytes'] / mib:.1f} MiB", res["verify_s"],
         res["verify_peak"], "one segment of tiny records"),
        ("import, same file", res["import_s"], res["import_peak"], "written and verified"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"agentjournal from {res['agentjournal']}; machine shared with other jobs")
    print(f"{'measure':<{w}}  {'median s':>9}  {'peak heap':>10}  note")
    for name, s, peak, note in rows:
        print(f"{name:<{w}}  {s:>9.3f}  {peak / mib:>7.1f} MiB  {note}")
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

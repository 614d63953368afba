"""Write the golden journals of the current on-disk format and their manifest.

    python tests/data/make_golden.py            # -> tests/data/golden_v<FORMAT>/, .json

The histories are fixed (only timestamps differ between runs). The expected states come from
this script's own list of states, never from replaying the journal, so the manifest is an
independent record of what the files must replay to. Commit the output when the format
version changes (keep the old directories: they are what compatibility is tested against).
Format 2 added agent ``golden-meta`` (step records with ``meta``); format 3 agent
``golden-cut`` (recovery cut a torn tail on open and recorded it in a ``cut`` record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import warnings
from copy import deepcopy
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))

from agentjournal import FORMAT_VERSION, Cut, Journal, RecoveryWarning, StepNotFoundError  # noqa: E402

TORN = b'{"kind":"step","seq":9,"ts":1796126466.5,"step":8,"prev":"'
"""The torn tail of ``golden-cut``: a record cut short by a crash."""


def canonical(state: Any) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_hash(state: Any) -> str:
    return hashlib.blake2b(canonical(state).encode(), digest_size=32).hexdigest()


def states() -> list[dict[str, Any]]:
    """The states after steps 1..12 (index 0 is step 1)."""
    s: dict[str, Any] = {}
    out = []

    def push() -> None:
        out.append(deepcopy(s))

    s["agent"] = {"name": "golden", "名前": "ゴールデン", "emoji": "🦉✓", "rtl": "שלום",
                  "combining": "e\u0301", "nul": "a\u0000b", "ctrl": "\t\n\r\"\\"}
    push()
    s["conversation_history"] = [{"role": "user", "content": "Hello, 世界"}]
    push()
    s["conversation_history"].append({"role": "assistant", "content": "¡Hola! ✨"})
    s["a/b"] = {"c~d": {"~0~1": 1, "/": 2, "": "empty key"}}
    push()
    s["big"] = {"pos": 2**64 + 1, "neg": -(2**70), "max63": 2**63 - 1, "min63": -(2**63),
                "float": 1.5e300, "tiny": 5e-324, "negzero": -0.0}
    push()
    s["conversation_history"].append({"role": "user", "content": "more " * 20})
    del s["agent"]["ctrl"]
    push()
    s["a/b"]["c~d"]["~0~1"] = [1, [2, [3, [4]]], {"deep": {"er": True}}]
    push()
    s["conversation_history"].pop(0)
    s["flags"] = [True, False, None]
    push()
    s["a/b"]["c~d"][""] = "changed"
    s["big"]["pos"] += 1
    push()
    s["conversation_history"] = [{"role": "system", "content": "reset ↺"}]
    push()
    s["flags"].insert(0, "first")
    push()
    s["counter"] = 10
    push()
    s["counter"] = 11
    s["unicode_keys"] = {"ключ": "значение", "κλειδί": "τιμή"}
    push()
    return out


def build(out: str) -> dict[str, Any]:
    if os.path.exists(out):
        shutil.rmtree(out)
    want = states()
    manifest: dict[str, Any] = {"format": FORMAT_VERSION, "agents": {}}
    expected: dict[str, dict[int, Any]] = {}

    # 1. unkeyed, lz4 snapshots every 3 steps, segments of 4 records, two records for step 6
    with Journal("golden", out, snapshot_every=3, segment_max_records=4) as j:
        for k, st in enumerate(want, start=1):
            if k == 6:
                half = deepcopy(want[4])
                half["a/b"]["c~d"]["~0~1"] = "half way"
                j.append(half, step=6)
            j.append(st, step=k)
        # 2. a fork at step 5 that goes its own way
        with j.fork(5, "golden-fork", snapshot_every=2) as f:
            fs = deepcopy(want[4])
            fork_states = {5: deepcopy(fs)}
            for k in (6, 7, 8):
                fs["fork_step"] = k
                fs.setdefault("log", []).append(f"fork {k} ✓")
                f.append(deepcopy(fs), step=k)
                fork_states[k] = deepcopy(fs)
    expected["golden"] = {k: st for k, st in enumerate(want, start=1)}
    expected["golden-fork"] = fork_states

    # 3. keyed, old segments sealed (lz4), two snapshots kept, plain-JSON snapshots
    with Journal("golden-keyed", out, key=b"golden-key", snapshot_every=2,
                 segment_max_records=3, keep_snapshots=2, compress_segments=True,
                 sparse_snapshots=None, compress=False) as j:
        for st in want:
            j.append(st)
    expected["golden-keyed"] = {k: st for k, st in enumerate(want, start=1)}

    # 4. pruning retention: an anchor record vouches for the removed segments
    with Journal("golden-pruned", out, snapshot_every=3, segment_max_records=3,
                 keep_snapshots=1, prune=True) as j:
        for st in want:
            j.append(st)
    expected["golden-pruned"] = {k: st for k, st in enumerate(want, start=1)}

    # 5. (format 2) step records carrying caller metadata, some of them changing no state
    metas: dict[str, Any] = {}
    with Journal("golden-meta", out, snapshot_every=4, segment_max_records=5) as j:
        for k, st in enumerate(want, start=1):
            meta = {"id": f"cp-{k:04d}", "parent": f"cp-{k - 1:04d}" if k > 1 else None,
                    "n": k, "ratio": k / 8, "ok": k % 2 == 0, "名前": "メタ ✓",
                    "nested": {"list": [1, [2, {"deep": None}]], "a/b~c": ""}}
            rec = j.append(st, step=k, meta=meta)
            metas[str(rec.seq)] = meta
            if k % 3 == 0:  # a record with metadata only: the state does not change
                note = {"writes": [[0, "channel", {"v": k}]], "task": f"task-{k}"}
                rec = j.append(ops=[], step=k, meta=note)
                metas[str(rec.seq)] = note
    expected["golden-meta"] = {k: st for k, st in enumerate(want, start=1)}

    # 6. (format 3) a crash tore the last record; opening for writing cut it into quarantine/
    # and recorded the cut in the chain (a `cut` record starting a format-3 segment)
    opts: dict[str, Any] = {"snapshot_every": 4, "segment_max_records": 5}
    with Journal("golden-cut", out, **opts) as j:
        for k, st in enumerate(want[:7], start=1):
            j.append(st, step=k)
    segdir = os.path.join(out, "golden-cut", "segments")
    with open(os.path.join(segdir, sorted(os.listdir(segdir))[-1]), "ab") as f:
        f.write(TORN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        with Journal("golden-cut", out, **opts) as j:
            for k, st in enumerate(want[7:], start=8):
                j.append(st, step=k)
    expected["golden-cut"] = {k: st for k, st in enumerate(want, start=1)}

    keys = {"golden-keyed": "golden-key"}
    for agent, by_step in expected.items():
        key = keys.get(agent)
        with Journal(agent, out, readonly=True, key=key.encode() if key else None) as j:
            recs = list(j.records())
            available = {}
            for k, st in by_step.items():
                try:
                    j.seq_of_step(k)
                except StepNotFoundError:  # pruned (StepPrunedError) or before a fork
                    continue
                available[str(k)] = state_hash(st)
            last = recs[-1]
            manifest["agents"][agent] = {
                "key": key,
                "hashes": [r.h for r in recs],
                "kinds": sorted({type(r).__name__ for r in recs}),
                "last_seq": last.seq,
                "last_step": last.step,
                "final_state_hash": state_hash(by_step[last.step]),
                "state_hashes": available,
                "states": {str(k): by_step[k] for k in (1, max(by_step))
                           if str(k) in available},
                "snapshots": j.snapshot_seqs(),
                "segment_files": sorted(os.listdir(os.path.join(out, agent, "segments"))),
            }
            if agent == "golden-meta":
                manifest["agents"][agent]["metas"] = metas
            cuts = [{"seq": r.seq, "reason": r.reason, "segment": r.segment, "size": r.size,
                     "digest": r.digest, "cut_seq": r.cut_seq} for r in recs if isinstance(r, Cut)]
            if cuts:
                manifest["agents"][agent]["cuts"] = cuts
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, f"golden_v{FORMAT_VERSION}"))
    ap.add_argument("--manifest", default=os.path.join(HERE, f"golden_v{FORMAT_VERSION}.json"))
    args = ap.parse_args()
    manifest = build(args.out)
    with open(args.manifest, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out} and {args.manifest}")


if __name__ == "__main__":
    main()

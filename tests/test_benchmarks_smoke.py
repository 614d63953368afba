"""Smoke test: every benchmark runs on tiny sizes and writes the figures it promises.

No timing is asserted anywhere (figures depend on the machine); only that the scripts exit 0,
that the JSON holds the expected keys, and that every state a system loaded back was the state
it recorded. The peer systems (kailash-kaizen, LangGraph) come from the ``bench`` extra: a peer
whose package is not installed is skipped, by name, with the reason; agentjournal's systems
always run.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

AGENTJOURNAL_SYSTEMS = ["agentjournal-sync", "agentjournal-group", "agentjournal-none",
                        "agentjournal-manager"]
# peer system -> the modules it needs (the bench extra installs them)
PEER_SYSTEMS = {
    "kaizen-fs": ["kaizen.core.autonomy.state"],
    "kaizen-fs-gzip": ["kaizen.core.autonomy.state"],
    "langgraph-sqlite": ["langgraph.graph", "langgraph.checkpoint.sqlite"],
    "langgraph-memory": ["langgraph.graph"],
    "langgraph-none": ["langgraph.graph"],
}


def _importable(mod: str) -> bool:
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        return False


def _missing(system: str) -> list[str]:
    return [m for m in PEER_SYSTEMS.get(system, []) if not _importable(m)]


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def peers_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run of peers.py: agentjournal's systems and every installed peer."""
    tmp = tmp_path_factory.mktemp("peers")
    systems = AGENTJOURNAL_SYSTEMS + [s for s in PEER_SYSTEMS if not _missing(s)]
    out = tmp / "peers.json"
    p = _run([str(BENCH / "peers.py"), "--quick", "--no-charts", "--systems", ",".join(systems),
              "--json", str(out), "--tmpdir", str(tmp)])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Workload 1" in p.stdout and "Workload 2" in p.stdout and "Workload 3" in p.stdout
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_bench_core_quick() -> None:
    p = _run([str(BENCH / "bench_core.py"), "--quick"])
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(res["append"]) == {"sync", "group", "none"}
    assert set(res["record_state"]) == {"none", "sync"}
    for key in ("resume_ms", "state_at_ms", "history_1000_ms", "bytes_per_step"):
        assert key in res["conversation"]
    assert res["scale"] and "scale_resume_ratio" in res


def test_peers_document(peers_doc: dict[str, Any]) -> None:
    m = peers_doc["machine"]
    for key in ("cores", "python", "workdir_filesystem", "fdatasync_500B_at_start",
                "loadavg_at_start"):
        assert key in m
    assert peers_doc["versions"]["agentjournal"]
    wl = peers_doc["workloads"]["growing_conversation"]
    assert wl["steps"] == 30 and wl["final_state_bytes"] > 0 and wl["new_data_bytes"] > 0
    assert not [k for k, v in peers_doc["skipped"].items() if "failed" in v]
    assert isinstance(peers_doc["targets"], list)


@pytest.mark.parametrize("system", AGENTJOURNAL_SYSTEMS + list(PEER_SYSTEMS))
def test_peers_system(peers_doc: dict[str, Any], system: str) -> None:
    missing = _missing(system)
    if missing:
        pytest.skip(f"peer {system} SKIPPED: {', '.join(missing)} not installed "
                    f"(pip install -e '.[bench]')")
    s = peers_doc["systems"][system]
    g = s["growing_conversation"]
    for key in ("per_step", "total_s", "bytes_written", "bytes_on_disk", "disk_samples"):
        assert key in g
    for part in ("first", "last", "all"):
        assert {"median_ms", "p99_ms"} <= set(g["per_step"][part])
    assert len(g["per_step"]["us"]) == 30
    if system == "langgraph-none":  # the zero line records nothing
        assert "large_states" not in s and "resume_fresh_object" not in g
        return
    assert g["resume_fresh_object"]["verified"]
    if s["persistent"]:
        assert g["resume_fresh_process"].get("verified"), g["resume_fresh_process"]
    for entry in g["load_at"].values():
        assert entry.get("verified", True)
    assert g["list_history"]["entries"] > 0
    for label in ("1KB", "20KB", "500KB"):
        e = s["large_states"][label]
        assert e["verified"] and "median_ms" in e["save"] and "median_ms" in e["load"]


def test_scale_workload(peers_doc: dict[str, Any]) -> None:
    sc = peers_doc["scale"]
    assert len(sc["sizes"]) >= 2
    for s in sc["sizes"].values():
        for key in ("resume_fresh_object", "resume_readonly", "state_at", "state_at_readonly"):
            assert s[key]["verified"], key
        assert s["resume_fresh_process"]["verified"]
        assert s["history"]["records_median"] > 0 and s["bytes_per_step"] > 0
    assert "ratios_largest_vs_smallest" in sc


def test_query_benchmark_runs() -> None:
    p = _run([str(BENCH / "bench_query.py"), "--quick"], timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    assert doc["benchmark"] == "query" and doc["rows"]
    by_name = {r["name"]: r for r in doc["rows"]}
    assert any(r.get("materializations") for r in by_name.values())
    assert all(r["ms"] > 0 for r in doc["rows"])

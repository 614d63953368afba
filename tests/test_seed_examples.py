"""The seed's documented usage runs on agentjournal: docs/guide.md, the seed's own code blocks
with their imports rewritten, and the quick start's demo."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.demo import run_demo

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
# Beside the repository (the project layout), or in the shared folder of a worktree checkout.
SEED = next((p for p in (ROOT.parent / "shared" / "seed" / "000_d4d76dd0c5e03522.txt",
                         ROOT.parents[1] / "shared" / "seed" / "000_d4d76dd0c5e03522.txt")
             if p.exists()), ROOT.parent / "shared" / "seed" / "000_d4d76dd0c5e03522.txt")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def sections(text: str) -> dict[str, list[str]]:
    """``## `` section title -> its ```python blocks, in order."""
    out: dict[str, list[str]] = {}
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        out[title.strip()] = [code for lang, code in FENCE.findall(body) if lang == "python"]
    return out


def run_blocks(blocks: list[str], ns: dict[str, Any], name: str) -> None:
    """Run blocks in order in one namespace, allowing top-level await."""

    async def main() -> None:
        for i, src in enumerate(blocks):
            # dont_inherit: this module's `from __future__ import annotations` must not turn
            # the examples' annotations into strings (LangGraph reads a TypedDict's types).
            code = compile(src, f"<{name} block {i + 1}>", "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            result = eval(code, ns)  # noqa: S307 - our own documentation
            if asyncio.iscoroutine(result):
                await result

    asyncio.run(main())


GUIDE_SECTIONS = sections(GUIDE.read_text())
PRELUDE = GUIDE_SECTIONS.pop("Your step function")


def test_guide_has_the_seed_sections() -> None:
    for title in ("Quick Reference", "Core Features", "Hook Integration",
                  "Storage Configuration", "Common Patterns", "Troubleshooting",
                  "Migrating checkpoint files from the seed"):
        assert GUIDE_SECTIONS.get(title), title


NEEDS = {"Kaizen: agentjournal under Kaizen's own StateManager": "kaizen.core.autonomy.state",
         "LangGraph": "langgraph"}


@pytest.mark.parametrize("title", [t for t, blocks in GUIDE_SECTIONS.items() if blocks])
def test_guide_section_runs(title: str, tmp_path: Path, monkeypatch: Any) -> None:
    if title in NEEDS:
        pytest.importorskip(NEEDS[title])
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": "guide"}
    run_blocks(PRELUDE + GUIDE_SECTIONS[title], ns, title)
    for obj in list(ns.values()):  # release journals the examples left open
        close = getattr(obj, "close", None)
        if type(obj).__name__ in ("StateManager", "FilesystemStorage") and close is not None:
            close()


def _seed_blocks() -> list[str]:
    text = SEED.read_text()
    keep = ("Quick Reference", "Core Features", "Hook Integration", "Storage Configuration",
            "Common Patterns", "Troubleshooting")
    blocks: list[str] = []
    for title, codes in sections(text).items():
        if title in keep:
            blocks += codes
    return [re.sub(r"from kaizen[\w.]* import", "from agentjournal import", b) for b in blocks]


@pytest.mark.skipif(not SEED.exists(), reason="the seed document is not beside the repo")
def test_the_seeds_own_code_blocks_run_with_our_imports(tmp_path: Path, monkeypatch: Any
                                                        ) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _seed_blocks()
    assert len(blocks) >= 12
    assert not any(re.search(r"^\s*(from|import) kaizen", b, re.M) for b in blocks)

    class TaskSignature:
        pass

    ns: dict[str, Any] = {"__name__": "seed", "TaskSignature": TaskSignature,
                          "signature": TaskSignature()}
    run_blocks(blocks, ns, "seed")
    # The quick reference agent ran its 10 cycles into the seed's directory, as a journal.
    qr = tmp_path / ".kaizen" / "checkpoints"
    agents = [p.name for p in qr.iterdir() if p.is_dir()]
    assert len(agents) == 1 and agents[0].startswith("task-")
    with Journal(agents[0], qr, readonly=True) as j:
        assert j.last_step == 10 and j.resume().state["status"] == "completed"
    assert ns["result"]["step"] == 50  # the long-running pattern ran last
    ns["state_manager"].close()


def test_demo_crashes_resumes_and_runs_again(tmp_path: Path) -> None:
    root = tmp_path / "demo-store"
    out1: list[str] = []
    r1 = run_demo(str(root), echo=out1.append)
    assert r1["agent_id"] == "demo-1"
    assert (r1["last_step_before_crash"], r1["recorded_before_crash"]) == (7, 8)
    assert (r1["resumed_at"], r1["final_step"], r1["status"]) == (8, 12, "completed")
    assert r1["verify_ok"] and r1["snapshot_steps"] == [5, 10, 12]
    assert r1["diff_steps"] == [6, 8] and r1["diff"]
    text = "\n".join(out1)
    for needle in ("SIGKILL", "8 steps recorded", "Resumed from the journal at step 8",
                   "History", "Diff of step 6 -> step 8", "verify: ok"):
        assert needle in text, needle
    out2: list[str] = []
    r2 = run_demo(str(root), echo=out2.append, steps=6, crash_at=2)
    assert r2["agent_id"] == "demo-2" and r2["resumed_at"] == 3 and r2["final_step"] == 6
    # Deterministic: a third run prints what the first printed, but for its agent id.
    out3: list[str] = []
    run_demo(str(root), echo=out3.append)
    assert [ln.replace("demo-3", "demo-1") for ln in out3[1:]] == out1[1:]
    with pytest.raises(ValueError):
        run_demo(str(root), crash_at=12)

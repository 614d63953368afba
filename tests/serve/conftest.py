"""Journals the viewer's tests look at: written once per session, read-only afterwards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the viewer needs the 'serve' extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the 'test' extra)")

from agentjournal import Journal  # noqa: E402

BIG_STEPS = 100_000
KEY = "viewer-test-key"


def write_big(root: Path, agent_id: str = "big", steps: int = BIG_STEPS) -> None:
    """``steps`` steps; every 10th appends a message, so the state grows to ``steps/10``."""
    with Journal(agent_id, root=root, durability="none", snapshot_every=1000) as j:
        j.append({"n": 0, "msgs": [], "status": "running"})
        for i in range(2, steps + 1):
            ops: list[dict[str, Any]] = [{"op": "replace", "path": "/n", "value": i}]
            if i % 10 == 0:
                ops.append({"op": "add", "path": "/msgs/-",
                            "value": {"role": "user", "content": f"message {i}"}})
            j.append(ops=ops)


def write_chat(root: Path, agent_id: str = "chat", steps: int = 40, **kw: Any) -> None:
    """A small conversation with every kind of op, a snapshot every 10 steps."""
    with Journal(agent_id, root=root, snapshot_every=10, **kw) as j:
        state: dict[str, Any] = {"messages": [], "notes": {}, "status": "running",
                                 "pending": ["a", "b", "c"]}
        for i in range(1, steps + 1):
            state["messages"].append({"role": "user" if i % 2 else "assistant",
                                      "content": f"turn {i}"})
            state["notes"][f"n{i}"] = i
            if i % 5 == 0 and state["pending"]:
                state["pending"].pop(0)
            if i == 7:
                state["status"] = "<script>window.__pwned = 1</script>"
            if i == 30:
                state["status"] = "done"
            j.append(state)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with: ``big`` (100k steps), ``chat``, its fork ``chat-retry`` at step 20, a
    keyed ``vault``, and ``broken`` (a record edited in its first segment)."""
    root = tmp_path_factory.mktemp("viewer") / "store"
    write_big(root)
    write_chat(root)
    with Journal("chat", root=root) as j:
        j.fork(20, "chat-retry").close()
    write_chat(root, "vault", steps=5, key=KEY)
    write_chat(root, "broken", steps=12)
    segs = sorted(os.listdir(root / "broken" / "segments"))
    seg = root / "broken" / "segments" / segs[0]
    data = bytearray(seg.read_bytes())
    at = data.index(b"turn 3")
    data[at:at + 6] = b"TURN 3"
    seg.write_bytes(bytes(data))
    return root

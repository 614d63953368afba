"""blame on real journals: checked against an oracle that compares every recorded state.

Random agents (seeded) append, insert, pop, set and delete; for every pointer that ever
existed, the step that last changed its value (found by comparing the states step by step)
must be the step ``blame`` names, across snapshots, many segments (the backward search and the
forward pass), keyed journals, pruned histories and forks.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.errors import InvalidPointerError, PathNotFoundError
from agentjournal.query import MISSING, blame
from agentjournal.query.blame import BACKWARD_SEGMENTS
from agentjournal.query.pointers import lookup


def _canon(v: Any) -> str:
    return "\x00missing" if v is MISSING else json.dumps(v, sort_keys=True)


def _mutate(state: dict[str, Any], rnd: random.Random, n: int) -> None:
    """One step of a random agent; every value written is unique (so a write is a change)."""
    kind = rnd.randrange(7)
    items = state["items"]
    if kind == 0 or not items:
        items.append({"id": n, "text": f"t{n}"})
    elif kind == 1:
        items.insert(rnd.randrange(len(items) + 1), {"id": n, "text": f"i{n}"})
    elif kind == 2:
        items.pop(rnd.randrange(len(items)))
    elif kind == 3:
        items[rnd.randrange(len(items))]["text"] = f"e{n}"
    elif kind == 4:
        state["kv"][f"k{rnd.randrange(6)}"] = n
    elif kind == 5 and state["kv"]:
        del state["kv"][rnd.choice(sorted(state["kv"]))]
    else:
        state["count"] = n


def _record(j: Journal, steps: int, seed: int, states: list[Any] | None = None) -> list[Any]:
    rnd = random.Random(seed)
    state: dict[str, Any] = (json.loads(json.dumps(states[-1])) if states else
                             {"items": [], "kv": {}, "count": 0})
    out = list(states or [])
    for n in range(len(out), len(out) + steps):
        _mutate(state, rnd, n)
        j.append(state)
        out.append(json.loads(json.dumps(state)))
    return out


def _pointers(states: list[Any]) -> set[str]:
    found = {"", "/items", "/kv", "/count"}
    for st in states:
        for i, _ in enumerate(st.get("items", [])):
            found.update({f"/items/{i}", f"/items/{i}/text", f"/items/{i}/id"})
        found.update(f"/kv/{k}" for k in st.get("kv", {}))
    return found


def _tokens(p: str) -> list[str]:
    return p.split("/")[1:] if p else []


def _oracle(states: list[Any], pointer: str, first: int = 1) -> list[int]:
    """Steps (states[k] is after step k) at which the value at ``pointer`` changed."""
    t = _tokens(pointer)
    return [k for k in range(first, len(states))
            if _canon(lookup(states[k], t)) != _canon(lookup(states[k - 1], t))]


def _check_all(j: Journal, states: list[Any], first: int = 1) -> None:
    for p in sorted(_pointers(states)):
        changes = _oracle(states, p, first)
        exists = lookup(states[-1], _tokens(p)) is not MISSING
        if not changes and not exists:
            with pytest.raises(PathNotFoundError):
                blame(j, p)
            continue
        b = blame(j, p, children=False)
        assert b.exists == exists, p
        assert (b.last.step if b.last else None) == (changes[-1] if changes else None), p
        if b.last is not None:
            assert _canon(b.last.previous) != _canon(b.last.value) or b.last.relation == "child"


@pytest.mark.parametrize("snapshot_every", [None, 7])
def test_last_write_matches_oracle(tmp_path: Path, snapshot_every: int | None) -> None:
    with Journal("a", tmp_path, durability="none", snapshot_every=snapshot_every) as j:
        states = [{}] + _record(j, 120, seed=1)  # states[k]: after step k
    with Journal("a", tmp_path, readonly=True) as j:
        _check_all(j, states)


def test_many_segments_use_backward_then_forward(tmp_path: Path) -> None:
    with Journal("a", tmp_path, durability="none", snapshot_every=3) as j:
        states = [{}] + _record(j, 150, seed=2)
    with Journal("a", tmp_path, readonly=True) as j:
        assert len(j.segment_seqs()) > BACKWARD_SEGMENTS * 3
        _check_all(j, states)


def test_all_lists_every_write_newest_first(tmp_path: Path) -> None:
    with Journal("a", tmp_path, durability="none", snapshot_every=5) as j:
        states = [{}] + _record(j, 80, seed=3)
    with Journal("a", tmp_path, readonly=True) as j:
        for p in ["/count", "/kv/k1", "/items/0/text", "/items/2", "/items"]:
            changes = _oracle(states, p)
            try:
                b = blame(j, p, all=True, children=False)
            except PathNotFoundError:
                assert not changes
                continue
            steps = [w.step for w in [b.last, *b.earlier] if w is not None]
            assert sorted(set(steps), reverse=True) == changes[::-1], p
            assert steps == sorted(steps, reverse=True)


def test_children_one_level_down(tmp_path: Path) -> None:
    with Journal("a", tmp_path, durability="none", snapshot_every=4) as j:
        states = [{}] + _record(j, 90, seed=4)
    with Journal("a", tmp_path, readonly=True) as j:
        for parent in ["/items", "/kv"]:
            b = blame(j, parent)
            value = lookup(states[-1], _tokens(parent))
            keys = list(value) if isinstance(value, dict) else [str(i) for i in
                                                                range(len(value))]
            assert [c.pointer for c in b.children] == [f"{parent}/{k}" for k in keys]
            for c in b.children:
                want = _oracle(states, c.pointer)
                assert c.last is not None and c.last.step == want[-1], c.pointer


def test_append_is_blamed_with_its_resolved_index(tmp_path: Path) -> None:
    with Journal("a", tmp_path, durability="none") as j:
        for i in range(50):
            j.append({"conversation_history": [{"role": "user", "content": f"m{k}"}
                                               for k in range(i + 1)], "n": i})
        j.append(ops=[{"op": "replace", "path": "/conversation_history/41/content",
                       "value": "edited"}])
    with Journal("a", tmp_path, readonly=True) as j:
        b = j.blame("/conversation_history/41/content", all=True)
        assert b.value == "edited"
        assert (b.last.step, b.last.op, b.last.previous) == (51, "replace", "m41")
        first = b.earlier[0]
        assert (first.step, first.path, first.relation) == (42, "/conversation_history/-",
                                                            "parent")
        assert first.value == "m41" and first.previous is MISSING
        assert j.blame("/conversation_history/0/role").last.step == 1


def test_removed_path_is_blamed_on_the_removal(tmp_path: Path) -> None:
    with Journal("a", tmp_path, durability="none") as j:
        j.append({"a": {"b": 1}, "x": 0})
        j.append({"a": {"b": 2}, "x": 1})
        j.append({"x": 2})
    with Journal("a", tmp_path, readonly=True) as j:
        b = j.blame("/a/b")
        assert not b.exists and b.value is MISSING
        assert (b.last.step, b.last.op, b.last.relation, b.last.previous) == (
            3, "remove", "parent", 2)
        with pytest.raises(PathNotFoundError, match="no step wrote it"):
            j.blame("/never")
        with pytest.raises(InvalidPointerError, match="must be empty or start with '/'"):
            j.blame("a/b")
        with pytest.raises(InvalidPointerError):
            j.blame("/bad~escape")


def test_empty_journal(tmp_path: Path) -> None:
    Journal("e", tmp_path).close()
    with Journal("e", tmp_path, readonly=True) as j, pytest.raises(PathNotFoundError):
        j.blame("/x")


def test_keyed_journal(tmp_path: Path) -> None:
    with Journal("k", tmp_path, key=b"secret", durability="none", snapshot_every=6) as j:
        states = [{}] + _record(j, 60, seed=5)
    with Journal("k", tmp_path, key=b"secret", readonly=True) as j:
        _check_all(j, states)


def test_pruned_history_says_where_it_starts(tmp_path: Path) -> None:
    with Journal("p", tmp_path, durability="none", snapshot_every=10) as j:
        j.append({"old": "set at step 1", "n": 0})
        for i in range(2, 61):
            j.append({"old": "set at step 1", "n": i})
        j.compact(keep_snapshots=2, prune=True)
        for i in range(61, 66):
            j.append({"old": "set at step 1", "n": i})
    with Journal("p", tmp_path, readonly=True) as j:
        assert j.segment_seqs()[0] > 1
        b = j.blame("/old")
        assert b.exists and b.last is None and b.value == "set at step 1"
        assert b.history_starts_at is not None and b.history_starts_at.step > 1
        recent = j.blame("/n")
        assert recent.last.step == 65 and recent.history_starts_at is None
        every = j.blame("/n", all=True)
        assert every.history_starts_at is not None
        assert every.earlier[-1].step >= every.history_starts_at.step
        root = j.blame("")
        assert root.last.step == 65
        assert [c.pointer for c in root.children] == ["/old", "/n"]
        assert root.children[0].last is None and root.children[0].history_starts_at


def test_fork_is_followed_into_the_parent(tmp_path: Path) -> None:
    with Journal("parent", tmp_path, durability="none", snapshot_every=4) as j:
        for i in range(1, 21):
            j.append({"plan": f"plan v{min(i, 7)}", "n": i, "notes": {"a": min(i, 3)}})
        child = j.fork(12, "child", durability="none")
    with child:
        for i in range(13, 18):
            child.append({"plan": "plan v7", "n": 100 + i, "notes": {"a": 3, "b": i}})
    with Journal("child", tmp_path, readonly=True) as j:
        b = j.blame("/plan", all=True)
        assert (b.last.agent_id, b.last.step, b.last.previous) == ("parent", 7, "plan v6")
        assert b.forks == ["parent"]
        assert [w.step for w in b.earlier] == [6, 5, 4, 3, 2, 1]
        own = j.blame("/n")
        assert (own.last.agent_id, own.last.step, own.forks) == ("child", 17, [])
        notes = j.blame("/notes")
        kids = {c.pointer: (c.last.agent_id, c.last.step) for c in notes.children}
        assert kids == {"/notes/a": ("parent", 3), "/notes/b": ("child", 17)}


def test_fork_of_a_deleted_parent_stops_at_the_fork(tmp_path: Path) -> None:
    import shutil

    with Journal("parent", tmp_path, durability="none") as j:
        for i in range(1, 6):
            j.append({"v": i})
        j.fork(3, "child", durability="none").close()
    shutil.rmtree(tmp_path / "parent")
    with Journal("child", tmp_path, readonly=True) as j:
        b = j.blame("/v")
        assert (b.last.kind, b.last.relation, b.forks) == ("fork", "parent", [])


def test_memory_backend_and_writable_journal() -> None:
    from agentjournal import MemoryBackend

    backend = MemoryBackend()
    with Journal("m", backend=backend, snapshot_every=3) as j:
        states = [{}] + _record(j, 40, seed=6)
        _check_all(j, states)  # on the writer's own (writable) journal
        j.fork(20, "mf").close()
    with Journal("mf", backend=backend, readonly=True) as f:
        b = f.blame("/count", all=True)
        assert b.forks == ["m"] and all(w.agent_id == "m" for w in [b.last, *b.earlier])
        assert b.last is not None and b.last.step == _oracle(states[:21], "/count")[-1]

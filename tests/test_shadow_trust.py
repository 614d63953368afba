"""The journal's trust in its own shadow (``_exact.Trust``): a diff against the private
shadow takes the number-free list prefixes that earlier diffs proved instead of comparing them
with a witness again. These tests try to make that trust wrong: an old item of a long list
edited in a way ``==`` cannot see (``1`` / ``True`` / ``1.0``, ``0.0`` / ``-0.0``), after the
list was proved pure over many steps; front removals, middle inserts, whole replacements,
explicit ops, a snapshot, a reopen and a fork in between. After every append the recorded
history must give back exactly (canonical JSON bytes) the state that was passed.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agentjournal import Journal, delta
from agentjournal._exact import Trust


def canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


LEAVES: list[Any] = [1, True, 1.0, 0.0, -0.0, 0, False, "1", None, 2**70]


def _mutate(rng: random.Random, state: dict[str, Any]) -> None:
    msgs: list[Any] = state["msgs"]
    r = rng.random()
    if r < 0.35 or not msgs:
        msgs.append({"text": f"m{rng.randrange(10**6)}", "meta": {"tags": ["a", "b"]}})
    elif r < 0.55:
        # The edit the trust must not hide: a leaf of an old item, often type-only.
        item = msgs[rng.randrange(len(msgs))]
        if isinstance(item, dict):
            where = item.setdefault("meta", {"tags": []}) if rng.random() < 0.5 else item
            where["x"] = rng.choice(LEAVES)
        else:
            msgs.append(rng.choice(LEAVES))
    elif r < 0.62:
        del msgs[: rng.randint(1, min(3, len(msgs)))]  # a sliding window
    elif r < 0.70:
        msgs.insert(rng.randrange(len(msgs) + 1), {"text": "inserted", "meta": {"tags": []}})
    elif r < 0.76:
        item = msgs[rng.randrange(len(msgs))]
        if isinstance(item, dict):  # a nested list of an old item
            item.setdefault("meta", {"tags": []}).setdefault("tags", []).append(
                rng.choice(LEAVES))
    elif r < 0.80:
        msgs[rng.randrange(len(msgs))] = rng.choice(LEAVES)  # an item replaced by a leaf
    elif r < 0.83:
        state["msgs"] = copy.deepcopy(msgs)  # the same content, new objects
    else:
        msgs.append({"text": "plain", "meta": {"tags": ["c"]}})


@pytest.mark.parametrize("seed", range(12))
def test_every_change_is_recorded_exactly_under_trust(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    state: dict[str, Any] = {"msgs": [{"text": f"m{i}", "meta": {"tags": ["a"]}}
                                      for i in range(12)]}
    expected: list[bytes] = []
    j = Journal("t", tmp_path, durability="none", snapshot_every=rng.choice([None, 7, 25]))
    try:
        for step in range(1, 121):
            if step > 1 and rng.random() < 0.05:
                # Explicit ops change the shadow behind the diff's back: trust is forgotten.
                op = {"op": "add", "path": "/msgs/-", "value": {"text": "by op", "x": 1}}
                j.append(ops=[op])
                state["msgs"].append({"text": "by op", "x": 1})
            else:
                _mutate(rng, state)
                j.append(state)
            expected.append(canonical(state))
            assert canonical(j.resume().state) == expected[-1], f"step {step}"
            if rng.random() < 0.04:
                j.close()
                j = Journal("t", tmp_path, durability="none")
            if rng.random() < 0.03:
                k = rng.randrange(1, len(expected) + 1)
                with j.fork(k, f"f{step}") as f:
                    assert canonical(f.resume().state) == expected[k - 1]
        for k in rng.sample(range(1, len(expected) + 1), 20):
            assert canonical(j.state_at(k)) == expected[k - 1], f"state_at({k})"
    finally:
        j.close()
    with Journal("t", tmp_path, readonly=True) as ro:
        assert canonical(ro.resume().state) == expected[-1]


def test_a_type_only_edit_of_a_long_trusted_prefix_is_recorded(tmp_path: Path) -> None:
    """The case the trust exists for, then the edit it must still see."""
    msgs = [{"text": f"m{i}", "n": None} for i in range(40)]
    state = {"msgs": msgs}
    with Journal("t", tmp_path, durability="none", snapshot_every=None) as j:
        for i in range(40, 60):  # 20 steps: the whole list is proved pure and trusted
            msgs.append({"text": f"m{i}", "n": None})
            assert len(j.append(state).ops) == 1
        for new in (1, True, 1.0, 0.0, -0.0):  # 1 -> True -> 1.0 and 0.0 -> -0.0 hide from ==
            msgs[3]["n"] = new
            ops = j.append(state).ops
            assert ops == [{"op": "replace", "path": "/msgs/3/n", "value": new}], ops
            assert canonical(j.resume().state) == canonical(state)
        # the prefix stays trusted up to the edit, and an append is one op again
        msgs.append({"text": "after", "n": None})
        assert j.append(state).ops == [{"op": "add", "path": "/msgs/-",
                                        "value": {"text": "after", "n": None}}]
    with Journal("t", tmp_path, readonly=True) as ro:
        assert canonical(ro.resume().state) == canonical(state)


def test_a_trust_knows_only_the_lists_it_noted_and_only_after_commit() -> None:
    """What a Trust knows is only ever used for the very lists it noted."""
    t = Trust()
    a = [{"s": f"x{i}"} for i in range(10)]
    b = [dict(x) for x in a]  # equal, not the same objects (as the caller's and the shadow's)
    ops = delta.diff({"l": a}, {"l": b + [{"s": "y"}]}, trust=t)
    assert ops == [{"op": "add", "path": "/l/-", "value": {"s": "y"}}]
    assert t.known == {}  # nothing before commit
    t.commit()
    assert t.prefix(a) == 10 and t.prefix(b) == 0
    t.forget()
    assert t.prefix(a) == 0


def test_a_marker_record_keeps_the_trust_and_an_op_forgets_it(tmp_path: Path) -> None:
    """``append(ops=[])`` (a delete marker, a note) leaves the shadow as it was, so what was
    proved of it stays proved; ops that change it forget it all."""
    msgs = [{"text": f"m{i}"} for i in range(30)]
    state = {"msgs": msgs}
    with Journal("t", tmp_path, durability="none", snapshot_every=None) as j:
        j.append(state)
        msgs.append({"text": "m30"})
        j.append(state)  # the 30 items it had are now proved number-free (m30: next time)
        trust = j._core.trust
        shadow_msgs = j._core.shadow["msgs"]
        assert trust.prefix(shadow_msgs) == 30
        j.append(ops=[], meta={"note": "marker"})
        assert trust.prefix(shadow_msgs) == 30
        j.append(ops=[{"op": "replace", "path": "/msgs/0/text", "value": 1}])
        msgs[0]["text"] = 1
        assert trust.prefix(j._core.shadow["msgs"]) == 0
        msgs.append({"text": "m31"})
        j.append(state)
        assert canonical(j.resume().state) == canonical(state)
        assert trust.prefix(j._core.shadow["msgs"]) == 0  # item 0 holds a number now


def test_the_facade_in_its_defaults_records_a_type_only_edit_of_an_old_message(
        tmp_path: Path) -> None:
    """What a migrating user runs: StateManager(FilesystemStorage(dir)) with every default.
    After many saves of a growing conversation (its prefix trusted), an old message's field
    going from 1 to True and to 1.0 is saved, and each checkpoint loads exactly."""
    import asyncio

    from agentjournal import AgentState, FilesystemStorage, StateManager

    async def main() -> None:
        sm = StateManager(FilesystemStorage(tmp_path))
        history = [{"role": "user", "content": f"m{i}", "flag": None} for i in range(30)]
        ids = []
        for step in range(1, 16):
            history.append({"role": "assistant", "content": f"a{step}", "flag": None})
            ids.append(await sm.save_checkpoint(AgentState(
                agent_id="a", step_number=step, conversation_history=history)))
        wanted = []
        for step, flag in ((16, 1), (17, True), (18, 1.0)):
            history[4]["flag"] = flag
            ids.append(await sm.save_checkpoint(AgentState(
                agent_id="a", step_number=step, conversation_history=history)))
            wanted.append(canonical(history))
        sm.close()
        again = StateManager(FilesystemStorage(tmp_path))
        for cid, want in zip(ids[-3:], wanted, strict=True):
            got = await again.load_checkpoint(cid)
            assert got is not None and canonical(got.conversation_history) == want
        again.close()

    asyncio.run(main())

"""T15 exact recording (property).

Hypothesis drives one live agent state through random steps, mutated in place as agents do:
type-only changes (``1`` -> ``True`` -> ``1.0``, ``0`` -> ``False``, ``0.0`` -> ``-0.0``), key
reorders, in-place edits of old messages, new messages carrying token counts and floats,
nesting up to :data:`agentjournal.delta.MAX_DEPTH`, and huge ints (up to
:data:`agentjournal.delta.MAX_INT_DIGITS` digits). Each step appends the live state itself to a
real :class:`Journal` on ``tmp_path`` (public API only), under random snapshot intervals,
compression and reopenings. Then ``resume()``, ``state_at(k)`` for every k, every snapshot
(``load_snapshot``) and a fresh reopen must give a state whose canonical JSON equals what was
appended at that step.

Canonical JSON: msgspec's encoding with keys sorted. It tells ``1``, ``1.0`` and ``true`` apart
and keeps the sign of ``-0.0``; keys are sorted because key order is not part of a document
(``docs/format.md``, "Key order"). The order replay gives is checked separately: every read of
a step gives the same order.

Nesting over the limit (given as a state, as ops and as meta), and an int too long to be read
back, are refused by ``append`` before anything is written: the store's bytes are unchanged and
the journal stays usable, also after a reopen.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_helpers import SLOW_FACTOR, figures

from agentjournal import Journal, LimitExceededError, NotJSONEncodableError
from agentjournal.delta import MAX_DEPTH, MAX_INT_DIGITS

AGENT = "t15-agent"
FIGS: dict[str, int] = {"sequences": 0, "steps": 0, "type_only": 0, "reorders": 0,
                        "old_item_edits": 0, "deep": 0, "huge_ints": 0, "state_checks": 0,
                        "snapshot_checks": 0}


def canonical(state: Any) -> bytes:
    return msgspec.json.encode(state, order="sorted")


def ordered(state: Any) -> bytes:
    """The encoding with the key order the state has (for the same-order-everywhere check)."""
    return msgspec.json.encode(state)


def nest(depth: int, leaf: Any) -> Any:
    v = leaf
    for i in range(depth):
        v = [v] if i % 2 else {"d": v}
    return v


# The JSON types Python's == mixes up, and the other leaves.
TWINS = [[0, False, 0.0, -0.0], [1, True, 1.0], [-1, -1.0], [2, 2.0], [2**64, float(2**64)]]
HUGE = [10**MAX_INT_DIGITS - 1, -(10**MAX_INT_DIGITS - 1), 2**63, -(2**63) - 1, 10**40]
numbers = st.sampled_from([x for twins in TWINS for x in twins])
leaves = numbers | st.none() | st.text(max_size=4) | st.sampled_from(HUGE)
values = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from("abcxy"), c, max_size=3),
    max_leaves=8,
)
message = st.fixed_dictionaries({
    "role": st.sampled_from(["user", "assistant"]),
    "content": st.text(max_size=8),
    "usage": st.fixed_dictionaries({"tokens": numbers, "cost": numbers}),
})


def _containers(node: Any, depth: int, out: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Every container with its depth (the root is 1), skipping the deep chains' insides."""
    if isinstance(node, dict | list) and depth <= 6:
        out.append((node, depth))
        for v in node.values() if isinstance(node, dict) else node:
            _containers(v, depth + 1, out)
    return out


def _twin(value: Any, data: st.DataObject) -> Any:
    """A value == ``value`` of another JSON type (or sign of zero), if there is one."""
    for twins in TWINS:
        if any(value == t and type(value) is type(t) and str(value) == str(t) for t in twins):
            others = [t for t in twins if type(t) is not type(value) or str(t) != str(value)]
            return data.draw(st.sampled_from(others), label="twin")
    return data.draw(numbers, label="number")


def step(data: st.DataObject, state: dict[str, Any]) -> None:
    """Mutate the live ``state`` in place: one to three edits of the kinds T15 is about."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        kind = data.draw(st.sampled_from(["twin", "twin", "reorder", "old_item", "message",
                                          "set", "deep", "huge", "remove"]), label="kind")
        conts = _containers(state, 1, [])
        node, depth = conts[data.draw(st.integers(0, len(conts) - 1), label="container")]
        if node is state["messages"] and kind != "twin" or (
                kind == "old_item" and not state["messages"]):
            kind = "message"  # the message list holds messages only
        if kind == "twin":  # a type-only change of some number, at any depth
            slots = [(c, k) for c, _ in conts
                     for k in (c if isinstance(c, dict) else range(len(c)))
                     if type(c[k]) in (int, float, bool)]
            if slots:
                c, k = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
                c[k] = _twin(c[k], data)
                FIGS["type_only"] += 1
        elif kind == "reorder" and isinstance(node, dict) and len(node) > 1:
            order = data.draw(st.permutations(list(node)), label="order")
            items = {k: node[k] for k in order}
            node.clear()
            node.update(items)  # the same object, keys in another order
            FIGS["reorders"] += 1
        elif kind == "old_item":
            m = state["messages"][data.draw(st.integers(0, len(state["messages"]) - 1))]
            field = data.draw(st.sampled_from(["tokens", "cost"]), label="field")
            if isinstance(m.get("usage"), dict) and field in m["usage"]:
                m["usage"][field] = _twin(m["usage"][field], data)  # in place, in an old item
                FIGS["old_item_edits"] += 1
        elif kind == "message":
            state["messages"].append(data.draw(message, label="message"))
        elif kind == "deep":  # as deep as the limit allows at this place
            leaf = data.draw(numbers, label="deep leaf")
            chain = nest(MAX_DEPTH - depth, leaf)
            if isinstance(node, dict):
                node[data.draw(st.sampled_from("abcxy"), label="key")] = chain
            else:
                node.append(chain)
            FIGS["deep"] += 1
        elif kind == "huge":
            state["huge"] = data.draw(st.sampled_from(HUGE), label="huge")
            FIGS["huge_ints"] += 1
        elif kind == "remove" and isinstance(node, dict) and node and node is not state:
            del node[data.draw(st.sampled_from(sorted(node)), label="del")]
        elif isinstance(node, dict):
            node[data.draw(st.sampled_from("abcxy"), label="key")] = data.draw(values)
        else:
            node.append(data.draw(values, label="item"))


options = st.fixed_dictionaries({
    "snapshot_every": st.sampled_from([None, 1, 2, 3]),
    "compress": st.booleans(),
})


def check(j: Journal, expected: list[bytes], orders: dict[int, bytes]) -> None:
    """``expected[k]`` is the canonical JSON appended at step k (``expected[0]``: none)."""
    n = len(expected) - 1
    r = j.resume()
    assert r.step == n and canonical(r.state) == expected[n], "resume differs from step n"
    for k in range(1, n + 1):
        got = j.state_at(k)
        assert canonical(got) == expected[k], f"state_at({k}) differs from what was appended"
        # Key order is not recorded, but every read of a step gives the same one.
        assert orders.setdefault(k, ordered(got)) == ordered(got), f"key order of step {k}"
        FIGS["state_checks"] += 1
    for seq in j.snapshot_seqs():
        doc = j.load_snapshot(seq)
        assert canonical(doc.state) == expected[doc.step], f"snapshot at seq {seq} differs"
        assert ordered(doc.state) == orders[doc.step]
        FIGS["snapshot_checks"] += 1
    assert j.verify().ok


EXAMPLES = 30
PROP = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _sequence(data: st.DataObject) -> None:
    opts = data.draw(options, label="options")
    root = tempfile.mkdtemp(prefix="aj-t15-")
    state: dict[str, Any] = {"messages": [], "counts": {"search": 1, "browse": 0}}
    expected: list[bytes] = [b""]
    j = Journal(AGENT, root, durability="none", **opts)
    try:
        for _ in range(data.draw(st.integers(1, 12), label="steps")):
            step(data, state)
            j.append(state)  # the live object itself: the journal must not alias it
            expected.append(canonical(state))
            FIGS["steps"] += 1
            if data.draw(st.integers(0, 5), label="reopen") == 0:
                j.close()
                j = Journal(AGENT, root, durability="none", **opts)
        orders: dict[int, bytes] = {}
        check(j, expected, orders)
        j.snapshot()
        j.close()
        with Journal(AGENT, root, readonly=True) as ro:  # resume from the new snapshot
            check(ro, expected, orders)
        FIGS["sequences"] += 1
    finally:
        j.close()
        shutil.rmtree(root, ignore_errors=True)


@PROP
@given(st.data())
def test_t15_exact_recording(data: st.DataObject) -> None:
    _sequence(data)


@pytest.mark.slow
def test_t15_exact_recording_slow() -> None:
    @settings(PROP, max_examples=EXAMPLES * SLOW_FACTOR)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _sequence(data)

    run()


def _lines(root: Path) -> list[bytes]:
    return sorted(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())
                  .splitlines())


@pytest.mark.parametrize("extra", [1, 2, 100, 10_000])
def test_t15_over_the_limits_is_refused_before_writing(tmp_path: Path,
                                                              extra: int) -> None:
    j = Journal(AGENT, tmp_path, durability="sync", snapshot_every=1)
    j.append({"ok": nest(MAX_DEPTH - 1, 1)})  # exactly at the limit: accepted
    seq = j.last_seq
    j.sync()
    before = _lines(tmp_path)
    too_deep = nest(MAX_DEPTH + extra, 1)
    attempts = [
        lambda: j.append(too_deep),
        lambda: j.append({"ok": 1, "x": {"y": nest(MAX_DEPTH - 2 + extra, 1)}}),
        lambda: j.append(ops=[{"op": "add", "path": "/x", "value": nest(MAX_DEPTH, 1)}]),
        lambda: j.append({"ok": 2}, meta={"m": too_deep}),
    ]
    for attempt in attempts:
        with pytest.raises(LimitExceededError) as info:
            attempt()
        assert info.value.path
        assert j.last_seq == seq
    # An int the decoder cannot read back (4300 digits and a sign) is refused the same way; on
    # the old code it was acknowledged, then cut as a torn tail on the next open.
    with pytest.raises(NotJSONEncodableError) as bad:
        j.append({"ok": 1, "n": -(10**MAX_INT_DIGITS)})
    assert bad.value.path == "/n" and j.last_seq == seq
    assert _lines(tmp_path) == before, "a refused append wrote something"
    assert j.append({"ok": 3}).seq == seq + 1  # the journal is still usable
    j.close()
    with Journal(AGENT, tmp_path) as again:
        assert again.resume().state == {"ok": 3}
        assert again.verify().ok


def teardown_module() -> None:
    figures("T15", **FIGS)

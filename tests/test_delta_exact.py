"""Exact recording (issue 10, items 8 and 11): type-only changes, key order, nesting limits.

Python's ``==`` says ``1 == 1.0 == True`` and ``0.0 == -0.0``, also inside containers; a diff
that trusts it records nothing for ``{"approved": 1}`` becoming ``{"approved": True}``. Every
test here compares on the canonical encoding (msgspec, keys sorted), which tells those apart.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentjournal import _exact, delta
from agentjournal.delta import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    apply,
    apply_in_place,
    check_depth,
    check_json,
    copy_containers,
    diff,
)
from agentjournal.errors import LimitExceededError, NotJSONEncodableError


def canonical(value: Any) -> bytes:
    """The canonical JSON of a document: msgspec's encoding with keys sorted (key order is not
    part of a document, see the delta module docstring)."""
    return msgspec.json.encode(value, order="sorted")


def decoded(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def assert_exact(old: Any, new: Any) -> list[delta.Op]:
    """diff, then both apply flavours give ``new`` exactly; ``old`` is left as it was."""
    before = canonical(old)
    ops = diff(old, new)
    assert canonical(apply(old, ops)) == canonical(new)
    assert canonical(apply_in_place(decoded(old), decoded(ops))) == canonical(new)
    assert canonical(old) == before
    return ops


class Shadow:
    """What the Journal does with its private copy of the last recorded state."""

    def __init__(self, state: Any) -> None:
        self.state = copy_containers(state)

    def record(self, new: Any) -> list[delta.Op]:
        ops = diff(self.state, new)
        self.state = apply_in_place(self.state, copy_containers(ops))
        assert canonical(self.state) == canonical(new)
        return ops


def nest(depth: int, leaf: Any = 1) -> Any:
    """A value of exactly ``depth`` container levels (dicts and lists alternating)."""
    v = leaf
    for i in range(depth):
        v = [v] if i % 2 else {"a": v}
    return v


def messages(n: int) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 else "assistant", "content": f"message {i}"}
            for i in range(n)]


# --------------------------------------------------------------------------- type-only changes

SWAPS = [(1, True), (True, 1), (1, 1.0), (1.0, 1), (True, 1.0), (0, False), (False, 0),
         (0, 0.0), (0.0, -0.0), (-0.0, 0.0), (0.0, False), (-0.0, 0), (2**64, float(2**64))]


@pytest.mark.parametrize(("a", "b"), SWAPS)
@pytest.mark.parametrize("where", [
    lambda v: v,
    lambda v: {"approved": v},
    lambda v: [v],
    lambda v: {"x": {"y": [{"z": v}]}},
    lambda v: [[[v]], "s"],
    lambda v: {"tool_usage_counts": {"search": v, "browse": 2}, "metadata": {}},
], ids=["root", "dict", "list", "deep", "nested-list", "agent-state"])
def test_type_only_change_is_recorded(a: Any, b: Any, where: Any) -> None:
    ops = assert_exact(where(a), where(b))
    assert len(ops) == 1 and ops[0]["op"] == "replace"


@pytest.mark.parametrize(("a", "b"), SWAPS)
def test_type_only_change_in_every_list_path(a: Any, b: Any) -> None:
    n = 40  # long enough for the witness
    base = [*messages(n), {"tokens": a}]
    # append fast path: the old part compares equal as one slice
    assert_exact({"l": base}, {"l": [*base[:-1], {"tokens": b}, "new"]})
    # front removal (a sliding window) with the change inside the kept part
    assert_exact({"l": base}, {"l": [*base[2:-1], {"tokens": b}, "new"]})
    # prefix/suffix skipping: a change in the middle, the type-only change after it
    middle = [*base[:5], "edited", *base[6:-1], {"tokens": b}]
    assert_exact({"l": base}, {"l": middle})
    # the same list, nothing else changed
    assert_exact({"l": base}, {"l": [*base[:-1], {"tokens": b}]})
    # the shapes: [1] -> [True] and [1] -> [True, 2]
    assert_exact([a], [b])
    assert_exact([a], [b, 2])


def test_in_place_type_change_of_an_old_item_after_many_steps() -> None:
    """A live state mutated in place, as agents do: the witness must not hide the change."""
    live: dict[str, Any] = {"messages": [], "counter": 0}
    shadow = Shadow(live)
    for i in range(80):
        live["messages"].append({"role": "user", "content": f"m{i}", "n": None})
        live["counter"] = i
        shadow.record(live)
    for i, value in [(3, 1), (3, True), (3, 1.0), (50, 0.0), (50, -0.0), (79, False)]:
        live["messages"][i]["n"] = value
        ops = shadow.record(live)
        assert ops == [{"op": "replace", "path": f"/messages/{i}/n", "value": value}]
    live["messages"][10]["content"] = "edited"
    assert shadow.record(live) == [
        {"op": "replace", "path": "/messages/10/content", "value": "edited"}]
    assert shadow.record(live) == []


def test_numbers_in_every_message_are_checked_each_step() -> None:
    live: dict[str, Any] = {"messages": []}
    shadow = Shadow(live)
    for i in range(60):
        live["messages"].append({"content": f"m{i}", "usage": {"tokens": i, "cost": 0.5}})
        shadow.record(live)
    live["messages"][7]["usage"]["tokens"] = 7.0
    assert shadow.record(live) == [
        {"op": "replace", "path": "/messages/7/usage/tokens", "value": 7.0}]
    live["messages"][0]["usage"]["cost"] = 0.5  # same value, same type: nothing to record
    assert shadow.record(live) == []


def test_witness_never_trusts_a_list_changed_behind_it() -> None:
    """diff is a pure function: an ``old`` mutated between calls is still diffed exactly."""
    old = [{"k": "v", "n": None} for _ in range(50)]
    new = decoded(old)
    new.append("x")
    assert diff(old, new) == [{"op": "add", "path": "/-", "value": "x"}]  # witness made
    old[20]["n"] = 1  # now differs from the witness; new has None there
    new[20]["n"] = True
    assert_exact(old, new)
    assert diff(old, new) == [{"op": "replace", "path": "/20/n", "value": True},
                              {"op": "add", "path": "/-", "value": "x"}]


def test_many_lists_evict_witnesses_and_stay_exact() -> None:
    lists = [[f"{j}-{i}" for i in range(40)] for j in range(40)]
    for _ in range(2):
        for items in lists:
            assert diff(items, [*items, "more"]) == [{"op": "add", "path": "/-", "value": "more"}]
    assert len(_exact._witnesses) <= _exact._WITNESS_SLOTS


def test_a_fleet_of_conversations_keeps_its_witnesses() -> None:
    """One process diffing 64 agents' conversations in turn: each list still has its witness
    when its turn comes again (with 16 slots, every one was evicted and re-walked each step)."""
    lists = [[{"role": "user", "content": f"{j}-{i}"} for i in range(40)] for j in range(64)]
    shadows = [copy_containers(items) for items in lists]  # as a journal's shadow holds them
    for items, shadow in zip(lists, shadows, strict=True):
        assert diff(shadow, [*items, "more"]) == [{"op": "add", "path": "/-", "value": "more"}]
    assert all(_exact._witness_prefix(items, len(items)) == len(items) for items in shadows)


def test_a_short_conversation_gets_a_witness() -> None:
    items = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    shadow = copy_containers(items)
    diff(shadow, [*items, "more"])
    assert _exact._witness_prefix(shadow, len(shadow)) == len(shadow)


def test_the_shortcut_for_equal_strings_and_empty_containers_stays_exact() -> None:
    """Fields skipped without a walk (an equal string in another object, two empty lists or
    dicts) are exactly equal; an empty list becoming an empty dict is still a change."""
    text = "".join(["st", "atus"])  # equal to "status", another object
    old = {"a": [], "b": {}, "c": "status", "d": [], "e": {}, "f": 1, "g": 0.0}
    new = {"a": [], "b": {}, "c": text, "d": {}, "e": [], "f": True, "g": -0.0}
    assert new["c"] is not old["c"]
    assert diff(old, new) == [{"op": "replace", "path": "/d", "value": {}},
                              {"op": "replace", "path": "/e", "value": []},
                              {"op": "replace", "path": "/f", "value": True},
                              {"op": "replace", "path": "/g", "value": -0.0}]
    assert diff({"l": []}, {"l": []}) == [] and diff({"l": []}, {"l": ["x"]}) == [
        {"op": "add", "path": "/l/-", "value": "x"}]


# --------------------------------------------------------------------------- key order


def test_key_reorder_records_nothing() -> None:
    old = {"a": 1, "b": {"x": 1, "y": [1, 2]}, "c": None}
    new = {"c": None, "b": {"y": [1, 2], "x": 1}, "a": 1}
    assert diff(old, new) == []


def test_key_order_rule_of_apply() -> None:
    """Existing keys keep their place; keys added by a step come after, in the new order."""
    old = {"a": 1, "b": 2, "c": 3}
    new = {"z": 0, "c": 3, "b": 20, "y": 9}
    out = apply(old, diff(old, new))
    assert list(out) == ["b", "c", "z", "y"]
    assert canonical(out) == canonical(new)
    assert list(apply({}, diff({}, new))) == ["z", "c", "b", "y"]  # a whole new dict: its order


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH])
def test_within_the_limit_is_accepted_everywhere(depth: int) -> None:
    value = nest(depth)
    check_json(value)
    check_depth(value)
    assert canonical(copy_containers(value)) == canonical(value)
    assert_exact({}, value)
    assert_exact(value, nest(depth, leaf=True))  # a type-only change at the bottom
    assert_exact(value, decoded(value))
    assert_exact(nest(depth - 1), {"a": nest(depth - 1)} if depth % 2 else [nest(depth - 1)])


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, MAX_DEPTH + 2, 600, 10_000])
def test_beyond_the_limit_is_a_typed_error_everywhere(depth: int) -> None:
    value = nest(depth)
    calls = [
        lambda: check_json(value),
        lambda: check_depth(value),
        lambda: diff({}, value),
        lambda: diff(value, nest(depth)),  # equal, distinct: C-level == recursion, caught
        lambda: diff(value, nest(depth, leaf=2)),  # the old side is walked where compared
        lambda: diff({"k": [1]}, {"k": [nest(depth - 2)]}),
    ]
    for call in calls:
        with pytest.raises(LimitExceededError) as info:
            call()
        # The pointer names the first container past the limit: MAX_DEPTH tokens deep.
        assert info.value.path is not None
        assert len(delta.parse_pointer(info.value.path)) == MAX_DEPTH
        assert str(MAX_DEPTH) in info.value.message and info.value.hint
    # Parts of ``old`` that diff does not compare are not walked: replacing them is fine.
    assert diff(value, 5) == [{"op": "replace", "path": "", "value": 5}]
    with pytest.raises(LimitExceededError):
        copy_containers(nest(depth + 8))


def test_check_json_counts_the_path() -> None:
    value = nest(MAX_DEPTH - 2)
    check_json(value, "/a/b")
    with pytest.raises(LimitExceededError) as info:
        check_json(value, "/a/b/c")
    assert info.value.path is not None and info.value.path.startswith("/a/b/c/")
    with pytest.raises(LimitExceededError):
        check_depth(value, "/a/b/c")
    check_json(nest(MAX_DEPTH), "meta")  # a label, not a pointer: no levels


def test_check_json_reports_the_first_problem_with_its_class() -> None:
    with pytest.raises(NotJSONEncodableError):
        check_json({"a": object(), "b": nest(MAX_DEPTH + 5)})
    with pytest.raises(LimitExceededError):
        check_json({"b": nest(MAX_DEPTH + 5), "a": object()})


def test_apply_refuses_a_path_beyond_the_limit() -> None:
    doc = nest(MAX_DEPTH)
    tokens = ["0" if i % 2 else "a" for i in reversed(range(MAX_DEPTH))]  # outermost first
    ok = [{"op": "replace", "path": delta.pointer(tokens), "value": 2}]
    assert canonical(apply(doc, ok)) == canonical(nest(MAX_DEPTH, leaf=2))
    long = [{"op": "add", "path": "/x" * (MAX_DEPTH + 1), "value": 1}]
    for fn in (apply, apply_in_place):
        with pytest.raises(LimitExceededError):
            fn({}, long)


# --------------------------------------------------------------------------- big ints


def test_ints_up_to_the_digit_limit() -> None:
    big = 10**MAX_INT_DIGITS - 1
    for v in (big, -big):
        check_json({"n": v})
        assert msgspec.json.decode(msgspec.json.encode(v)) == v  # the reader takes it back
        assert_exact({"n": float(2**80)}, {"n": v})
    for v in (10**MAX_INT_DIGITS, -(10**MAX_INT_DIGITS), 10**5000):
        with pytest.raises(NotJSONEncodableError) as info:
            check_json({"n": [v]})
        assert info.value.path == "/n/0"
        with pytest.raises(NotJSONEncodableError):
            diff({}, {"n": v})


# --------------------------------------------------------------------------- properties

numbers = st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, -1.0, True, False, 2, 2.0, 2**70,
                           float(2**70)])
leaf = numbers | st.none() | st.text(max_size=3)
docs = st.recursive(
    leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from("abc"), c, max_size=3),
    max_leaves=12,
)


def _mutate(value: Any, data: st.DataObject) -> Any:
    """Change one leaf (often by type only), or reorder a dict's keys, somewhere inside."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        keys = list(value)
        if data.draw(st.booleans()):
            order = data.draw(st.permutations(keys))
            return {k: value[k] for k in order}
        k = data.draw(st.sampled_from(keys))
        return {**value, k: _mutate(value[k], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        return [*value[:i], _mutate(value[i], data), *value[i + 1:]]
    return data.draw(numbers | docs)


@settings(max_examples=400, deadline=None)
@given(docs, docs)
def test_any_two_documents_round_trip_exactly(a: Any, b: Any) -> None:
    assert_exact(a, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(docs, min_size=0, max_size=40), st.data())
def test_a_shadow_follows_type_only_edits_exactly(items: list[Any], data: st.DataObject) -> None:
    live: dict[str, Any] = {"items": items}
    shadow = Shadow(live)
    for _ in range(data.draw(st.integers(1, 6))):
        if items and data.draw(st.booleans()):  # edit an old item in place
            i = data.draw(st.integers(0, len(items) - 1))
            items[i] = _mutate(items[i], data)
        if data.draw(st.booleans()):
            items.append(data.draw(docs))
        shadow.record(live)


def test_numbers_inside_nested_lists_of_old_items() -> None:
    old = [{"n": 1, "tags": [str(i), [1, 2.0]]} for i in range(40)]
    new = decoded(old)
    new[30]["tags"][1][1] = 2
    assert diff(old, new) == [{"op": "replace", "path": "/30/tags/1/1", "value": 2}]
    new[30]["tags"][1][1] = 2.0
    new[31]["tags"][1][0] = True
    assert diff(old, new) == [{"op": "replace", "path": "/31/tags/1/0", "value": True}]


def test_too_deep_after_an_impure_item_of_a_long_list() -> None:
    # An int beyond 64 bits defeats the bulk comparison, so the items are walked.
    old = [{"n": 1}, {"big": 2**70}] + [nest(MAX_DEPTH) for _ in range(40)]  # one more level
    with pytest.raises(LimitExceededError):
        diff(old, [{"n": 1}, {"big": 2**70}] + [nest(MAX_DEPTH) for _ in range(40)])
    # Equal to an old value deeper than the limit, and proved equal by its encoding: no op.
    # (diff does not walk what equals old; the journal's old state is always within the limit.)
    assert diff([{"n": 1}, *old[2:]], [{"n": 1}, *decoded(old[2:])]) == []


def test_a_deep_caller_gets_its_own_recursion_error() -> None:
    """Shallow data and a caller near the recursion limit: not reported as a nesting problem."""
    def at_depth(n: int) -> None:
        if n:
            at_depth(n - 1)
        else:
            diff({"a": [nest(40)]}, {"a": [nest(40, leaf=2)]})

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        with pytest.raises(RecursionError):
            at_depth(150)
    finally:
        sys.setrecursionlimit(limit)


def test_edits_in_the_middle_of_a_witnessed_list() -> None:
    live: dict[str, Any] = {"messages": messages(100)}
    shadow = Shadow(live)
    shadow.record(live)  # the witness now covers every message
    msgs = live["messages"]
    msgs[50]["content"] = "edited"
    assert shadow.record(live) == [
        {"op": "replace", "path": "/messages/50/content", "value": "edited"}]
    msgs[0]["content"] = "first"
    msgs[99]["role"] = None
    msgs[60]["n"] = 1
    assert shadow.record(live) == [
        {"op": "replace", "path": "/messages/0/content", "value": "first"},
        {"op": "add", "path": "/messages/60/n", "value": 1},
        {"op": "replace", "path": "/messages/99/role", "value": None}]
    msgs[60]["n"] = True  # the list is no longer number-free: walked again
    assert shadow.record(live) == [
        {"op": "replace", "path": "/messages/60/n", "value": True}]
    del msgs[10]
    shadow.record(live)
    msgs.insert(3, {"role": "user", "content": "inserted"})
    shadow.record(live)


@pytest.mark.parametrize("odd", ["reorder", "big-int", "type-change", "zero-sign"])
def test_bulk_comparison_of_items_with_numbers_falls_back_to_the_walk(odd: str) -> None:
    """Runs of items with numbers are compared by their encoding first; anything it cannot
    prove (keys in another order, ints beyond 64 bits) is walked, and changes are found."""
    old = [{"i": str(i), "n": i, "x": 0.0} for i in range(50)]
    new = decoded(old)
    expect: list[delta.Op] = []
    if odd == "reorder":
        new[20] = {"x": 0.0, "n": 20, "i": "20"}
    elif odd == "big-int":
        old[30]["n"] = new[30]["n"] = 2**70
    elif odd == "type-change":
        new[40]["n"] = 40.0
        expect = [{"op": "replace", "path": "/40/n", "value": 40.0}]
    else:
        new[45]["x"] = -0.0
        expect = [{"op": "replace", "path": "/45/x", "value": -0.0}]
    assert _exact._same_bytes(old[1:], new[1:]) is False
    assert diff(old, new) == expect
    assert_exact(old, new)

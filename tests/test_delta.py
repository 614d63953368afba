"""Tests for agentjournal.delta: JSON Pointer helpers, diff, apply and JSON validation."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentjournal import Journal
from agentjournal.delta import (
    Op,
    apply,
    apply_in_place,
    check_json,
    copy_containers,
    diff,
    escape,
    parse_pointer,
    pointer,
    unescape,
)
from agentjournal.errors import InvalidPatchError, JournalError, NotJSONEncodableError


def deep_copy(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def roundtrip(old: Any, new: Any) -> list[Op]:
    """diff, then check both apply flavours reproduce ``new`` exactly (JSON text included)."""
    before = canonical(old)
    ops = diff(old, new)
    out = apply(old, ops)
    assert out == new
    assert canonical(out) == canonical(new)
    assert canonical(old) == before
    in_place = apply_in_place(deep_copy(old), deep_copy(ops))
    assert canonical(in_place) == canonical(new)
    return ops


# --------------------------------------------------------------------------- pointers


@pytest.mark.parametrize(
    ("token", "escaped"),
    [("a", "a"), ("a/b", "a~1b"), ("m~n", "m~0n"), ("~1", "~01"), ("/~", "~1~0"), ("", "")],
)
def test_escape_round_trips(token: str, escaped: str) -> None:
    assert escape(token) == escaped
    assert unescape(escaped) == token


def test_pointer_and_parse_pointer() -> None:
    assert pointer([]) == ""
    assert pointer(["a/b", 0, "m~n", ""]) == "/a~1b/0/m~0n/"
    assert parse_pointer("") == []
    assert parse_pointer("/") == [""]
    assert parse_pointer("/a~1b/0/m~0n/") == ["a/b", "0", "m~n", ""]


@pytest.mark.parametrize("bad", ["a", "a/b", "~1"])
def test_parse_pointer_requires_leading_slash(bad: str) -> None:
    with pytest.raises(InvalidPatchError) as info:
        parse_pointer(bad)
    assert info.value.path == bad


@pytest.mark.parametrize("bad", ["/~", "/a~2", "/~~1", "/x/~"])
def test_parse_pointer_rejects_bad_escapes(bad: str) -> None:
    with pytest.raises(InvalidPatchError, match="escape"):
        parse_pointer(bad)


# --------------------------------------------------------------------------- diff examples


def test_append_fast_path_emits_only_end_adds() -> None:
    old = {"list": [{"m": 1}, {"m": 2}], "n": 1}
    new = deep_copy(old)
    new["list"] += [{"m": 3}, "four", [5]]
    ops = roundtrip(old, new)
    assert ops == [
        {"op": "add", "path": "/list/-", "value": {"m": 3}},
        {"op": "add", "path": "/list/-", "value": "four"},
        {"op": "add", "path": "/list/-", "value": [5]},
    ]


def test_append_to_empty_list() -> None:
    ops = roundtrip({"l": []}, {"l": [1, 2]})
    assert [op["path"] for op in ops] == ["/l/-", "/l/-"]


def test_equal_documents_give_no_ops() -> None:
    doc = {"a": [1, {"b": "c"}], "d": None}
    assert diff(doc, doc) == []
    assert diff(doc, deep_copy(doc)) == []


def test_keys_with_slash_and_tilde() -> None:
    old = {"a/b": 1, "m~n": 2, "~1": {"/": 3}}
    new = {"a/b": 10, "m~n": 2, "~1": {"/": 4, "~": 5}, "x/~y": 6}
    ops = roundtrip(old, new)
    assert {op["path"] for op in ops} == {"/a~1b", "/~01/~1", "/~01/~0", "/x~1~0y"}


def test_unicode_keys_and_values() -> None:
    old = {"naïve": "café", "日本": ["🙂"]}
    new = {"naïve": "cafè", "日本": ["🙂", "ü"], "ключ": "значение"}
    ops = roundtrip(old, new)
    assert {"op": "add", "path": "/ключ", "value": "значение"} in ops
    assert {"op": "add", "path": "/日本/-", "value": "ü"} in ops


def test_big_ints() -> None:
    ops = roundtrip({"n": 2**70, "m": [-(2**80)]}, {"n": 2**70 + 1, "m": [-(2**80), 2**90]})
    assert {"op": "replace", "path": "/n", "value": 2**70 + 1} in ops


def test_nested_removes() -> None:
    old = {"a": {"b": {"c": 1, "d": 2}, "e": 3}, "f": 4}
    new = {"a": {"b": {"c": 1}}}
    ops = roundtrip(old, new)
    assert sorted(op["path"] for op in ops) == ["/a/b/d", "/a/e", "/f"]
    assert all(op["op"] == "remove" for op in ops)


@pytest.mark.parametrize(
    ("old", "new"),
    [({"a": 1}, [1]), ([1], {"0": 1}), (1, "1"), (None, {}), ("x", "y"), (1, 2.5)],
)
def test_root_replace(old: Any, new: Any) -> None:
    assert roundtrip(old, new) == [{"op": "replace", "path": "", "value": new}]


def test_shrink_list_removes_from_the_end() -> None:
    ops = roundtrip({"l": [0, 1, 2, 3, 4]}, {"l": [0, 1]})
    assert ops == [
        {"op": "remove", "path": "/l/4"},
        {"op": "remove", "path": "/l/3"},
        {"op": "remove", "path": "/l/2"},
    ]


def test_shrink_and_edit() -> None:
    roundtrip([{"a": 1}, {"b": 2}, {"c": 3}], [{"a": 2}, {"b": 2}])
    roundtrip([1, 2, 3], [])


def test_delete_from_middle_of_list() -> None:
    old = [{"id": i, "text": f"t{i}"} for i in range(6)]
    new = deep_copy(old)
    del new[2]
    roundtrip(old, new)


def test_edit_field_of_old_item_recurses() -> None:
    old = {"messages": [{"role": "user", "content": "hi"}, {"role": "ai", "content": "yo"}]}
    new = deep_copy(old)
    new["messages"][0]["content"] = "hello"
    ops = roundtrip(old, new)
    assert ops == [{"op": "replace", "path": "/messages/0/content", "value": "hello"}]


def test_edit_old_item_and_append() -> None:
    old = {"l": [{"x": 1}, {"x": 2}]}
    new = {"l": [{"x": 1}, {"x": 20}, {"x": 3}]}
    ops = roundtrip(old, new)
    assert ops == [
        {"op": "replace", "path": "/l/1/x", "value": 20},
        {"op": "add", "path": "/l/-", "value": {"x": 3}},
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [(1, True), (True, 1), (1, 1.0), (0, False), (0.0, -0.0), (-0.0, 0.0), (2.0, 2)],
)
def test_leaf_type_changes_are_replaced(old: Any, new: Any) -> None:
    assert roundtrip(old, new) == [{"op": "replace", "path": "", "value": new}]
    ops = roundtrip({"k": old, "z": 0}, {"k": new, "z": 1})
    assert {"op": "replace", "path": "/k", "value": new} in ops
    for old_list, new_list in [
        ([old, "a"], [new, "b"]),
        ([old, "a"], [new]),
        ([old, "a"], [new, "b", 1]),
    ]:
        ops = roundtrip(old_list, new_list)
        assert {"op": "replace", "path": "/0", "value": new} in ops


def test_container_type_change_is_replaced() -> None:
    ops = roundtrip({"a": [1]}, {"a": {"0": 1}})
    assert ops == [{"op": "replace", "path": "/a", "value": {"0": 1}}]


def test_diff_values_reference_new() -> None:
    item = {"big": "x" * 100}
    ops = diff({"l": []}, {"l": [item]})
    assert ops[0]["value"] is item


# --------------------------------------------------------------------------- apply


def test_apply_does_not_mutate_input() -> None:
    state = {"a": {"b": [1, 2, {"c": 3}]}, "untouched": {"x": [1]}, "l": [0]}
    before = deep_copy(state)
    ops: list[Op] = [
        {"op": "replace", "path": "/a/b/2/c", "value": 4},
        {"op": "add", "path": "/a/b/0", "value": "first"},
        {"op": "remove", "path": "/l/0"},
        {"op": "add", "path": "/a/new", "value": {"n": 1}},
        {"op": "add", "path": "/a/new/m", "value": 2},
    ]
    value = ops[3]["value"]
    out = apply(state, ops)
    assert state == before
    assert value == {"n": 1}
    assert out == {
        "a": {"b": ["first", 1, 2, {"c": 4}], "new": {"n": 1, "m": 2}},
        "untouched": {"x": [1]},
        "l": [],
    }
    assert out["untouched"] is state["untouched"]
    assert out["a"] is not state["a"]


def test_apply_in_place_mutates_and_returns_root() -> None:
    state = {"l": [1]}
    out = apply_in_place(state, [{"op": "add", "path": "/l/-", "value": 2}])
    assert out is state and state == {"l": [1, 2]}
    assert apply_in_place(state, [{"op": "replace", "path": "", "value": [9]}]) == [9]
    assert state == {"l": [1, 2]}


@pytest.mark.parametrize("fn", [apply, apply_in_place])
def test_apply_list_semantics(fn: Any) -> None:
    doc = {"l": [0, 1, 2]}
    assert fn(deep_copy(doc), [{"op": "add", "path": "/l/1", "value": "x"}]) == {
        "l": [0, "x", 1, 2]
    }
    assert fn(deep_copy(doc), [{"op": "add", "path": "/l/3", "value": "x"}]) == {
        "l": [0, 1, 2, "x"]
    }
    assert fn(deep_copy(doc), [{"op": "add", "path": "/l/-", "value": "x"}]) == {
        "l": [0, 1, 2, "x"]
    }
    assert fn(deep_copy(doc), [{"op": "remove", "path": "/l/0"}]) == {"l": [1, 2]}
    assert fn(deep_copy(doc), [{"op": "replace", "path": "/l/2", "value": None}]) == {
        "l": [0, 1, None]
    }
    assert fn(deep_copy(doc), [{"op": "add", "path": "/l", "value": 5}]) == {"l": 5}


@pytest.mark.parametrize("fn", [apply, apply_in_place])
@pytest.mark.parametrize(
    ("op", "match"),
    [
        ({"op": "move", "from": "/a", "path": "/b"}, "only 'add', 'remove' and 'replace'"),
        ({"op": "copy", "from": "/a", "path": "/b"}, "unsupported"),
        ({"op": "test", "path": "/a", "value": 1}, "unsupported"),
        ({"path": "/a", "value": 1}, "unsupported"),
        ({"op": "add", "value": 1}, "no 'path'"),
        ({"op": "add", "path": 3, "value": 1}, "non-string path"),
        ({"op": "add", "path": "/z"}, "no 'value'"),
        ({"op": "replace", "path": "/a"}, "no 'value'"),
        ({"op": "add", "path": "a", "value": 1}, "start with '/'"),
        ({"op": "add", "path": "/a~2", "value": 1}, "escape"),
        (["add", "/a", 1], "not an object"),
        ({"op": "remove", "path": "/missing"}, "no key 'missing'"),
        ({"op": "replace", "path": "/missing", "value": 1}, "no key 'missing'"),
        ({"op": "add", "path": "/missing/x", "value": 1}, "no key 'missing'"),
        ({"op": "add", "path": "/l/01", "value": 1}, "not a list index"),
        ({"op": "add", "path": "/l/-1", "value": 1}, "not a list index"),
        ({"op": "add", "path": "/l/x", "value": 1}, "not a list index"),
        ({"op": "add", "path": "/l/\u0661", "value": 1}, "not a list index"),
        ({"op": "add", "path": "/l/4", "value": 1}, "out of range"),
        ({"op": "remove", "path": "/l/3"}, "out of range"),
        ({"op": "replace", "path": "/l/3", "value": 1}, "out of range"),
        ({"op": "remove", "path": "/l/-"}, "'-'"),
        ({"op": "replace", "path": "/l/-/x", "value": 1}, "'-'"),
        ({"op": "add", "path": "/l/5/x", "value": 1}, "out of range"),
        ({"op": "add", "path": "/a/x", "value": 1}, "cannot add inside a int value"),
        ({"op": "add", "path": "/a/x/y", "value": 1}, "cannot descend into a int value"),
        ({"op": "remove", "path": ""}, "whole document"),
    ],
)
def test_bad_ops(fn: Any, op: Any, match: str) -> None:
    doc = {"a": 1, "l": [0, 1, 2]}
    ops = [{"op": "replace", "path": "/a", "value": 1}, op]
    with pytest.raises(InvalidPatchError, match=match) as info:
        fn(deep_copy(doc), ops)
    assert isinstance(info.value, ValueError) and isinstance(info.value, JournalError)
    assert "op 1" in info.value.message
    path = op.get("path") if isinstance(op, dict) else None
    if isinstance(path, str) and ("no key" in match or "range" in match):
        assert info.value.path == path
        assert repr(path) in info.value.message


def test_apply_ops_are_consumed_from_an_iterator() -> None:
    ops = iter([{"op": "add", "path": "/a", "value": 1}, {"op": "add", "path": "/b", "value": 2}])
    assert apply({}, ops) == {"a": 1, "b": 2}


def test_apply_does_not_mutate_op_values() -> None:
    value = {"inner": [1]}
    ops: list[Op] = [
        {"op": "add", "path": "/v", "value": value},
        {"op": "add", "path": "/v/inner/-", "value": 2},
        {"op": "replace", "path": "", "value": value},
        {"op": "add", "path": "/x", "value": 3},
    ]
    out = apply({}, ops)
    assert out == {"inner": [1], "x": 3}
    assert value == {"inner": [1]}


# --------------------------------------------------------------------------- validation


class Custom:
    pass


class Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"memory_contents": {"when": datetime.datetime(2024, 1, 1)}}, "/memory_contents/when"),
        ({"a": (1, 2)}, "/a"),
        ([0, 1, {2, 3}], "/2"),
        ({"b": b"bytes"}, "/b"),
        ({"b": [bytearray(b"x")]}, "/b/0"),
        ({"f": frozenset()}, "/f"),
        ({"d": decimal.Decimal("1.5")}, "/d"),
        ({"o": Custom()}, "/o"),
        ({"x": float("nan")}, "/x"),
        ({"x": [1.0, float("inf")]}, "/x/1"),
        ({"x": -float("inf")}, "/x"),
        ({"k": {1: "int key"}}, "/k"),
        ({"k": [{None: 1}]}, "/k/0"),
        ({"k": {("t",): 1}}, "/k"),
        ({"a/b": {"m~n": [None, set()]}}, "/a~1b/m~0n/1"),
        ({"s": "lone \ud800 surrogate"}, "/s"),
        ({"s": {"\udc00": 1}}, "/s"),
        ({"ok": 1, "bad": [[[object()]]]}, "/bad/0/0/0"),
        (object(), ""),
        ({"i": TypeError}, "/i"),
    ],
)
def test_check_json_names_the_bad_value(value: Any, where: str) -> None:
    with pytest.raises(NotJSONEncodableError) as info:
        check_json(value)
    assert info.value.path == where
    assert info.value.hint
    assert isinstance(info.value, TypeError)
    with pytest.raises(NotJSONEncodableError) as info:
        check_json(value, "/prefix")
    assert info.value.path == "/prefix" + where


def test_check_json_first_bad_value_in_order() -> None:
    with pytest.raises(NotJSONEncodableError) as info:
        check_json({"a": [1, (2,)], "b": set()})
    assert info.value.path == "/a/1"


def test_check_json_hint_for_types() -> None:
    with pytest.raises(NotJSONEncodableError) as info:
        check_json({"when": datetime.date(2024, 1, 1)})
    assert info.value.hint is not None and "convert it to a JSON type" in info.value.hint
    assert "date" in info.value.message


def test_check_json_accepts_json() -> None:
    check_json({"a": [None, True, 2**100, -1.5, "ü/~"], "": {}, "e": []})


@pytest.mark.parametrize(
    "value",
    [
        Level.LOW,
        type("S", (str,), {})("x"),
        type("F", (float,), {})(1.5),
        type("L", (list,), {})(),
        collections.OrderedDict(a=1),
    ],
    ids=["IntEnum", "str-subclass", "float-subclass", "list-subclass", "OrderedDict"],
)
def test_check_json_rejects_subclasses(value: Any) -> None:
    with pytest.raises(NotJSONEncodableError) as info:
        check_json({"v": value})
    assert info.value.path == "/v"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ({"a": 1}, {"a": {1, 2}}, "/a"),
        ({}, {"when": {"t": datetime.time()}}, "/when/t"),
        ({"l": [1, 2, 3]}, {"l": [1, 2, 3, {"x": (1,)}]}, "/l/3/x"),
        ({"l": [1, 2]}, {"l": [1, float("nan")]}, "/l/1"),
        ({"l": [1, 2, 3]}, {"l": [b"x"]}, "/l/0"),
        ({"d": {"x": 1}}, {"d": {"x": 1, 2: 3}}, "/d"),
        ({"d": {"x": 1}}, {"d": {2: 3}}, "/d"),
        (1, Custom(), ""),
        ([1], (1,), ""),
    ],
)
def test_diff_validates_changed_values(old: Any, new: Any, where: str) -> None:
    with pytest.raises(NotJSONEncodableError) as info:
        diff(old, new)
    assert info.value.path == where


# --------------------------------------------------------------------------- properties

# JSON text is UTF-8: no lone surrogates (check_json rejects them; a test below covers that).
chars = st.sampled_from("ab/~01") | st.characters(codec="utf-8")
key_text = st.text(chars, max_size=6)
any_text = st.text(chars, max_size=8)
floats = st.floats(allow_nan=False, allow_infinity=False)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**100).map(lambda i: i * (-1) ** (i & 1))
    | floats
    | any_text
)
# Leaves where Python's == agrees with JSON text: no 0/1 ints (== False/True), no integral floats
# (== ints, and -0.0 == 0.0). diff is exact on any leaves (tests/test_delta_exact.py); the
# strict ones keep these properties about the shape of the ops.
strict_leaves = (
    st.none()
    | st.booleans()
    | st.integers().filter(lambda i: i not in (0, 1))
    | floats.filter(lambda f: not f.is_integer())
    | any_text
)


def json_values(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(key_text, children, max_size=5)
        ),
        max_leaves=25,
    )


json_any = json_values(leaves)
json_strict = json_values(strict_leaves)


@settings(max_examples=300)
@given(json_any, json_any)
def test_diff_apply_round_trip(a: Any, b: Any) -> None:
    before = deep_copy(a)
    ops = diff(a, b)
    assert apply(a, ops) == b
    assert a == before
    assert apply_in_place(deep_copy(a), deep_copy(ops)) == b


@settings(max_examples=300)
@given(json_any, json_any)
def test_diff_apply_round_trip_canonical(a: Any, b: Any) -> None:
    roundtrip(a, b)


@given(json_strict, st.data())
def test_diff_of_a_derived_document(a: Any, data: st.DataObject) -> None:
    """b shares most of a (as consecutive agent states do), with a few edits deep inside."""
    b = deep_copy(a)
    for _ in range(data.draw(st.integers(0, 4))):
        node = b
        while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            k = data.draw(st.sampled_from(keys))
            if not isinstance(node[k], (dict, list)):
                node[k] = data.draw(json_strict)
                break
            node = node[k]
        else:
            if isinstance(node, dict):
                node[data.draw(key_text)] = data.draw(json_strict)
            elif isinstance(node, list):
                node.append(data.draw(json_strict))
    roundtrip(a, b)


@given(st.lists(json_any, max_size=6), st.lists(json_any, min_size=1, max_size=6))
def test_append_fast_path_property(items: list[Any], extra: list[Any]) -> None:
    a = {"l": items}
    b = {"l": deep_copy(items) + extra}
    ops = diff(a, b)
    assert ops == [{"op": "add", "path": "/l/-", "value": v} for v in extra]
    assert apply(a, ops) == b


def _containers(value: Any, out: set[int]) -> set[int]:
    if isinstance(value, (dict, list)):
        out.add(id(value))
        for v in value.values() if isinstance(value, dict) else value:
            _containers(v, out)
    return out


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool"]), "content": any_text},
    optional={"meta": json_strict},
)


@settings(max_examples=150)
@given(st.data())
def test_shadow_follows_live_state_through_in_place_mutations(data: st.DataObject) -> None:
    live: dict[str, Any] = data.draw(
        st.fixed_dictionaries(
            {"messages": st.lists(message, max_size=4), "notes": st.lists(strict_leaves)},
            optional={"step": strict_leaves},
        )
    )
    initial = deep_copy(live)
    shadow = deep_copy(live)
    recorded: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        lists = [k for k, v in live.items() if isinstance(v, list)]
        action = data.draw(
            st.sampled_from(["append", "edit", "delete", "replace", "add_key", "remove_key"])
        )
        if action == "append" and lists:
            key = data.draw(st.sampled_from(lists))
            live[key].append(data.draw(message if key == "messages" else strict_leaves))
        elif action == "edit" and isinstance(live.get("messages"), list) and live["messages"]:
            msgs = live["messages"]
            item = msgs[data.draw(st.integers(0, len(msgs) - 1))]
            if isinstance(item, dict):
                item[data.draw(st.sampled_from(["content", "meta", "role", "x/~"]))] = data.draw(
                    json_strict
                )
        elif action == "delete" and lists:
            seq = live[data.draw(st.sampled_from(lists))]
            if seq:
                del seq[data.draw(st.integers(0, len(seq) - 1))]
        elif action == "replace":
            live[data.draw(st.sampled_from([*live, "step"]))] = data.draw(json_strict)
        elif action == "add_key":
            live[data.draw(key_text)] = data.draw(json_strict)
        elif action == "remove_key" and live:
            del live[data.draw(st.sampled_from(sorted(live)))]
        # As the journal does: record the encoded ops, apply a decoded copy to the shadow (so
        # it never aliases the live state, nor the record, whose values it then owns).
        encoded = msgspec.json.encode(diff(shadow, live))
        recorded.append(encoded)
        shadow = apply_in_place(shadow, msgspec.json.decode(encoded))
        assert shadow == live
        assert canonical(shadow) == canonical(live)
        assert not _containers(shadow, set()) & _containers(live, set())
        assert diff(shadow, live) == []
    replayed = deep_copy(initial)
    for encoded in recorded:
        replayed = apply_in_place(replayed, msgspec.json.decode(encoded))
    assert canonical(replayed) == canonical(live)
    pure = initial
    initial_text = canonical(initial)
    for encoded in recorded:
        pure = apply(pure, msgspec.json.decode(encoded))
    assert canonical(pure) == canonical(live)
    assert canonical(initial) == initial_text


def test_sliding_window_removes_at_the_front() -> None:
    old = {"w": [{"m": i} for i in range(40)]}
    new = {"w": [{"m": i} for i in range(2, 43)]}
    ops = roundtrip(old, new)
    assert ops[:2] == [{"op": "remove", "path": "/w/0"}, {"op": "remove", "path": "/w/0"}]
    assert [op["op"] for op in ops[2:]] == ["add"] * 3
    assert len(ops) == 5


def test_insert_in_the_middle_is_an_insert() -> None:
    old = [1, 2, 3, 4]
    new = [1, 2, 9, 3, 4]
    assert roundtrip(old, new) == [{"op": "add", "path": "/2", "value": 9}]


def test_copy_containers_shares_only_leaves() -> None:
    v = {"a": [{"s": "text"}], "n": 1}
    c = copy_containers(v)
    assert c == v and c is not v and c["a"] is not v["a"] and c["a"][0] is not v["a"][0]
    assert c["a"][0]["s"] is v["a"][0]["s"]


@pytest.mark.parametrize("op", [
    {"op": ["add"], "path": "/a", "value": 1},
    {"op": {"add": 1}, "path": "/a", "value": 1},
    {"op": 1, "path": "/a", "value": 1},
    {"op": "add", "path": ["a"], "value": 1},
])
def test_an_op_of_the_wrong_type_is_a_typed_error(op: dict) -> None:
    """A list or dict where the op's name should be (a crafted record, a caller's bad op) is
    an InvalidPatchError naming the op, never a TypeError from hashing it."""
    for fn in (apply, apply_in_place):
        with pytest.raises(InvalidPatchError, match="op 0"):
            fn({}, [op])


def test_a_journal_refuses_an_op_of_the_wrong_type(tmp_path: Path) -> None:
    with Journal("t", tmp_path) as j:
        j.append({"a": 0})
        with pytest.raises(InvalidPatchError):
            j.append(ops=[{"op": ["replace"], "path": "/a", "value": 1}])
        assert j.last_seq == 1 and j.resume().state == {"a": 0}

"""agentjournal.delta against an independent RFC 6902 implementation (``jsonpatch``).

The JSON Patch community suite (json-patch/json-patch-tests: ``tests.json``,
``spec_tests.json``) is not shipped as data by any package on PyPI that we found (the
``jsonpatch`` 1.48 sdist carries only ``ext_tests.py``, the runner that reads those files from a
path; ``python-jsonpath`` 2.2.2 and ``pyjsonpatch`` 0.1.3 carry no copy), so this file is a
differential test instead, with ``jsonpatch`` (test extra) as the oracle:

* :func:`delta.apply` and ``jsonpatch.apply_patch`` agree on random documents and random
  ``add``/``remove``/``replace`` ops, valid or not (bad indices, ``-``, leading zeros, escapes,
  missing parents): both succeed with the same document (canonical JSON), or both refuse;
* every patch :func:`delta.diff` makes applies with ``jsonpatch`` to exactly the new document,
  type-only changes included: our patches are plain RFC 6902;
* patches ``jsonpatch.make_patch`` writes with only those three ops apply with ours to the same
  document as with ``jsonpatch``.

The RFC 6902 appendix A examples that use only these ops run as fixed cases.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentjournal import delta
from agentjournal.errors import InvalidPatchError


def canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def ours(doc: Any, ops: list[dict[str, Any]]) -> bytes | None:
    """Our result (canonical), or None when the patch is refused."""
    try:
        return canonical(delta.apply(doc, ops))
    except InvalidPatchError:
        return None


def theirs(doc: Any, ops: list[dict[str, Any]]) -> bytes | None:
    try:
        return canonical(jsonpatch.apply_patch(copy.deepcopy(doc), ops))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
        return None
    except (IndexError, KeyError, TypeError):  # jsonpatch lets a few of these through
        return None


# --------------------------------------------------------------------------- RFC 6902 appendix A

RFC_EXAMPLES = [  # (doc, patch, expected or None for an error), the add/remove/replace ones
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], None),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "replace", "path": "/~01", "value": 11}], {"/": 9, "~1": 11}),
    ({"foo": [1, 2]}, [{"op": "add", "path": "/foo/01", "value": 3}], None),
    ({"foo": [1, 2]}, [{"op": "add", "path": "/foo/3", "value": 3}], None),
    ({"foo": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), RFC_EXAMPLES)
def test_rfc6902_examples(doc: Any, patch: list[dict[str, Any]], expected: Any) -> None:
    want = None if expected is None else canonical(expected)
    assert ours(doc, patch) == want
    assert theirs(doc, patch) == want


# --------------------------------------------------------------------------- differential

numbers = st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 2.5, True, False, 2**70])
leaves = numbers | st.none() | st.text(max_size=3)
keys = st.sampled_from(["a", "b", "", "~", "/", "a/b", "m~n", "0", "-", "01"])
docs = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, [*prefix, k])
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, [*prefix, str(i)])
    return out


@st.composite
def patches(draw: st.DrawFn, doc: Any) -> list[dict[str, Any]]:
    """Ops aimed at the document: mostly at real paths, sometimes one token off."""
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        tokens = draw(st.sampled_from(_paths(doc, [])))
        twist = draw(st.sampled_from(["none", "none", "child", "end", "past", "zero", "key"]))
        if twist == "child":
            tokens = [*tokens, draw(keys)]
        elif twist == "end":
            tokens = [*tokens, "-"]
        elif twist == "past":
            tokens = [*tokens, str(draw(st.integers(0, 6)))]
        elif twist == "zero":
            tokens = [*tokens, "00"]
        elif twist == "key" and tokens:
            tokens = [*tokens[:-1], draw(keys)]
        name = draw(st.sampled_from(["add", "remove", "replace"]))
        op: dict[str, Any] = {"op": name, "path": delta.pointer(tokens)}
        if name != "remove":
            op["value"] = draw(docs)
        ops.append(op)
    return ops


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_apply_agrees_with_jsonpatch(data: st.DataObject) -> None:
    doc = data.draw(docs, label="doc")
    ops = data.draw(patches(doc), label="ops")
    if any(op["op"] == "remove" and op["path"] == "" for op in ops):
        # jsonpatch turns "remove the whole document" into None; we refuse it (a state is
        # never removed, only replaced).
        assert ours(doc, ops) is None
        return
    assert ours(doc, ops) == theirs(doc, ops), ops


@settings(max_examples=400, deadline=None)
@given(docs, docs)
def test_our_diffs_apply_with_jsonpatch(old: Any, new: Any) -> None:
    ops = delta.diff(old, new)
    assert canonical(jsonpatch.apply_patch(copy.deepcopy(old), ops)) == canonical(new)


@settings(max_examples=400, deadline=None)
@given(docs, docs)
def test_jsonpatch_diffs_apply_with_ours(old: Any, new: Any) -> None:
    ops = jsonpatch.make_patch(old, new).patch
    if any(op["op"] not in ("add", "remove", "replace") for op in ops):
        return  # move/copy/test: refused by design (see the delta module docstring)
    assert ours(old, ops) == theirs(old, ops)

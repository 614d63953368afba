"""touching and grep on real journals: prefix semantics, values, filters, order, errors."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.errors import InvalidExpressionError, InvalidPointerError
from agentjournal.query import grep, records_in_range, touching


def _seed(j: Journal, steps: int = 40) -> None:
    state: dict[str, Any] = {"conversation_history": [], "conversation_historyX": 0,
                             "tools": {}, "n": 0}
    for i in range(1, steps + 1):
        state["conversation_history"].append({"role": "user", "content": f'say "hi" {i}'})
        state["n"] = i
        if i % 10 == 0:
            state["conversation_historyX"] = i
            state["tools"][f"weather{i}"] = {"city": "Paris", "temp": i / 2, "ok": True}
        if i == 25:
            state["conversation_history"][3]["content"] = "edited at 25"
        j.append(state)


@pytest.fixture()
def journal(tmp_path: Path) -> Journal:
    with Journal("s", tmp_path, durability="none", snapshot_every=7) as j:
        _seed(j)
    return Journal("s", tmp_path, readonly=True)


def test_touching_is_a_token_prefix_match(journal: Journal) -> None:
    with journal as j:
        ms = list(touching(j, "/conversation_history"))
        assert [m.step for m in ms] == list(range(1, 41))
        assert all(p.startswith("/conversation_history") and not p.startswith(
            "/conversation_historyX") for m in ms for p in m.pointers)
        assert ms[1].pointers == ["/conversation_history/-"]
        edits = [m.step for m in touching(j, "/conversation_history/3")]
        assert edits == [25]  # appends are "/-": not matched by an index
        x = [m.step for m in touching(j, "/conversation_historyX")]
        assert x == [1, 10, 20, 30, 40]
        # an op on an ancestor counts when its value holds the path
        assert [m.step for m in touching(j, "/tools/weather10/city")] == [10]
        assert [m.step for m in touching(j, "/tools/weather10")] == [10]
        assert [m.step for m in touching(j, "/n")][:2] == [1, 2]  # step 1 adds the root keys
        assert len(list(touching(j, ""))) == 40


def test_touching_filters_and_order(journal: Journal) -> None:
    with journal as j:
        assert [m.step for m in touching(j, "/n", start=5, end=8)] == [5, 6, 7, 8]
        assert [m.step for m in touching(j, "/n", reverse=True, limit=3)] == [40, 39, 38]
        assert [m.step for m in touching(j, "/n", start=30, reverse=True, limit=20)
                ] == list(range(40, 29, -1))
        assert [m.step for m in touching(j, "/n", end=12, reverse=True, limit=2)] == [12, 11]
        assert [m.step for m in touching(j, "/n", limit=2)] == [1, 2]
        recs = list(j.records())
        t = recs[20].ts
        after = [m.seq for m in touching(j, "/n", since=t)]
        assert after and all(r.ts >= t for r in recs if r.seq in after)
        assert after[0] == min(r.seq for r in recs if r.ts >= t and r.kind == "step")
        before = [m.seq for m in touching(j, "/n", until=t)]
        assert before[-1] <= recs[20].seq + 1
        assert list(touching(j, "/n", since=time.time() + 3600)) == []
        with pytest.raises(ValueError):
            list(touching(j, "/n", start=5, end=4))


def test_grep_values_keys_and_scalars(journal: Journal) -> None:
    with journal as j:
        ms = list(grep(j, "edited at"))
        assert [(m.step, m.pointers) for m in ms] == [(25, ["/conversation_history/3/content"])]
        quoted = list(grep(j, 'say "hi" 12'))  # a pattern with characters JSON escapes
        assert [m.step for m in quoted] == [12]
        assert quoted[0].pointers == ["/conversation_history/-/content"]
        keys = [m.pointers for m in grep(j, "weather2")]
        assert keys == [["/tools/weather20"]]
        nums = [m.step for m in grep(j, "15.0")]
        assert nums == [30]
        assert [m.step for m in grep(j, "PARIS", ignore_case=True)] == [10, 20, 30, 40]
        assert [m.step for m in grep(j, "PARIS")] == []


def test_grep_regex_under_and_filters(journal: Journal) -> None:
    with journal as j:
        ms = list(grep(j, r"weather[13]0", regex=True))
        assert [m.step for m in ms] == [10, 30]
        under = list(grep(j, "Paris", under="/tools/weather20"))
        assert [(m.step, m.pointers) for m in under] == [(20, ["/tools/weather20/city"])]
        assert list(grep(j, "Paris", under="/conversation_history")) == []
        assert [m.step for m in grep(j, r"\d", regex=True, under="/n", start=3, end=5)] == [
            3, 4, 5]
        assert [m.step for m in grep(j, "say", reverse=True, limit=2)] == [40, 39]
        with pytest.raises(InvalidExpressionError, match="bad regular expression"):
            list(grep(j, "(", regex=True))
        with pytest.raises(InvalidPointerError):
            list(grep(j, "x", under="tools"))
        with pytest.raises(InvalidPointerError):
            list(touching(j, "no-slash"))


def test_grep_prefilter_never_drops_a_match(tmp_path: Path) -> None:
    texts = ["tab\there", "back\\slash", 'q"uote', "ünïcode ✓", "line\nbreak", "plain"]
    with Journal("u", tmp_path, durability="none") as j:
        for i, t in enumerate(texts):
            j.append({"v": t, "i": i})
    with Journal("u", tmp_path, readonly=True) as j:
        for i, t in enumerate(texts):
            assert [m.step for m in grep(j, t)] == [i + 1], t
            assert [m.step for m in grep(j, re.escape(t), regex=True)] == [i + 1], t


def test_empty_and_keyed_journals(tmp_path: Path) -> None:
    Journal("e", tmp_path).close()
    with Journal("e", tmp_path, readonly=True) as j:
        assert list(touching(j, "/x")) == []
        assert list(grep(j, "x", reverse=True)) == []
        assert list(records_in_range(j, reverse=True)) == []
    with Journal("k", tmp_path, key="s3cret", durability="none", snapshot_every=3) as j:
        _seed(j, 12)
    with Journal("k", tmp_path, key="s3cret", readonly=True) as j:
        assert [m.step for m in j.touching("/tools")] == [1, 10]
        assert [m.step for m in j.grep("edited")] == []
        assert [m.step for m in j.grep("hi\" 1", reverse=True)] == [12, 11, 10, 1]


def test_pruned_history_searches_what_is_retained(tmp_path: Path) -> None:
    with Journal("p", tmp_path, durability="none", snapshot_every=5) as j:
        _seed(j, 30)
        j.compact(keep_snapshots=2, prune=True)
    with Journal("p", tmp_path, readonly=True) as j:
        first = j.segment_seqs()[0]
        steps = [m.step for m in j.touching("/n")]
        assert steps and steps[-1] == 30 and steps[0] > 1
        assert all(m.seq >= first for m in j.touching("/n", reverse=True))
        kinds = {r.kind for r in records_in_range(j)}
        assert "anchor" in kinds


def test_grep_inside_ancestor_values_lists_and_scalars(tmp_path: Path) -> None:
    with Journal("g", tmp_path, durability="none") as j:
        j.append({"tools": {"a": {"x": "needle"}}, "n": 5, "l": [1, "two", [3.5, True]]})
        j.append(ops=[{"op": "replace", "path": "/tools",
                       "value": {"a": {"x": "needle 2"}, "b": {"x": "other"}}}])
        j.append(ops=[{"op": "replace", "path": "/n", "value": 55}])
        j.append(ops=[{"op": "remove", "path": "/tools/b"}])
    with Journal("g", tmp_path, readonly=True) as j:
        got = [(m.step, m.pointers) for m in grep(j, "needle", under="/tools/a")]
        assert got == [(1, ["/tools/a/x"]), (2, ["/tools/a/x"])]
        assert list(grep(j, "needle", under="/tools/c")) == []
        assert [(m.step, m.pointers) for m in grep(j, "5")] == [(1, ["/n", "/l/2/0"]),
                                                                 (3, ["/n"])]
        assert [m.pointers for m in grep(j, "true")] == [["/l/2/1"]]
        assert [m.pointers for m in grep(j, "two", under="/l")] == [["/l/1"]]
        assert [m.step for m in touching(j, "/tools/b")] == [2, 4]
        assert [m.step for m in touching(j, "/tools/b/x")] == [2, 4]

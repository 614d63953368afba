"""The predicate language and bisect: semantics, errors, modes and materialization counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.errors import InvalidExpressionError
from agentjournal.query import bisect, compile_predicate

STATE: dict[str, Any] = {
    "budget_spent_usd": 10.5, "status": "failed", "n": 3, "flag": True, "none": None,
    "conversation_history": [{"role": "user", "content": "error: timeout"}] * 4,
    "tool_results_cache": {"weather": {"temp": 3}}, "a/b": {"~x": 1}, "empty": "",
    "tags": ["x", 1, 2.0],
}


@pytest.mark.parametrize(("expr", "want"), [
    ("/budget_spent_usd > 10", True),
    ("/budget_spent_usd >= 10.5 and /budget_spent_usd <= 10.5", True),
    ("len(/conversation_history) >= 4", True),
    ("len(/conversation_history) > 4", False),
    ('/status == "failed"', True),
    ("/status == 'failed'", True),
    ('/status != "failed"', False),
    ("exists(/tool_results_cache/weather)", True),
    ("exists(/tool_results_cache/rain)", False),
    ("not exists(/tool_results_cache/rain)", True),
    ("!exists(/nope) && /n == 3", True),
    ("/nope == 1 || /n == 3.0", True),
    ("/nope != 1", False),  # a missing operand makes any comparison false
    ("/nope < 1", False),
    ("/flag", True),
    ("/none", False),
    ("/empty", False),
    ("/flag == true and /none == null", True),
    ("/flag == 1", False),  # booleans are not numbers
    ("/status > 'a'", True),
    ("/status > 1", False),
    ("/conversation_history/0/content contains 'timeout'", True),
    ("/conversation_history/0/content matches '^error: t.+'", True),
    ("/conversation_history/0/content matches 'ERROR'", False),
    ("/tags contains 2", True),
    ("/tags contains 'y'", False),
    ("/tool_results_cache contains 'weather'", True),
    ("type(/tags) == 'array' and type(/n) == 'number' and type(/none) == 'null'", True),
    ("type(/nope) == 'null'", False),
    ("len(/status) == 6", True),
    ("len(/n) == 1", False),
    ("`/a~1b/~0x` == 1", True),
    ("(/n == 1 or /n == 3) and not (/flag == false)", True),
    ("/n == -3 or /n >= 3e0", True),
    ("3 < /n or 4 <= len(/conversation_history)", True),
    ("/tags == [1]", None),
])
def test_predicate_semantics(expr: str, want: bool | None) -> None:
    if want is None:
        with pytest.raises(InvalidExpressionError):
            compile_predicate(expr)
        return
    assert compile_predicate(expr)(STATE) is want, expr


@pytest.mark.parametrize(("expr", "where"), [
    ("", 1), ("len(/x", 7), ("/a >", 5), ("foo == 1", 1), ("/a == 'x", 7), ("/a = 1", 4),
    ("/a == 1 /b", 9), ("exists(3)", 1), ("/a matches /b", 4), ("/a matches '('", 4),
    ("/a == 01", 7), ('"\\q"', 1), ("`/a", 1), ("/a~2", 1), ("(" * 100 + "/a" + ")" * 100, 66),
    ("/a & /b", 4),
])
def test_bad_expressions_say_where(expr: str, where: int) -> None:
    with pytest.raises(InvalidExpressionError) as e:
        compile_predicate(expr)
    assert e.value.position is not None and e.value.position + 1 == where, str(e.value)
    assert f"at character {where}" in str(e.value) and e.value.hint
    assert e.value.expression == expr


def test_monotone_hint() -> None:
    yes = ["/n > 1", "/n >= 1", "len(/a) >= 100", "10 < /budget", "3 <= len(/a)"]
    no = ["/n < 1", "/n == 3", "exists(/a)", "/n > 1 and /n < 5", "/a > 'x'", "len(/a) < 3"]
    assert all(compile_predicate(e).monotone_hint for e in yes)
    assert not any(compile_predicate(e).monotone_hint for e in no)
    assert compile_predicate("len(/a) > /b and exists(/c)").pointers == ("/a", "/b", "/c")


def _agent(tmp_path: Path, steps: int, **kw: Any) -> None:
    with Journal("b", tmp_path, durability="none", snapshot_every=10, **kw) as j:
        state: dict[str, Any] = {"messages": [], "spent": 0.0, "status": "running"}
        for i in range(1, steps + 1):
            state["messages"].append(f"m{i}")
            state["spent"] = round(i * 0.25, 2)
            state["status"] = "failed" if 40 <= i < 45 else "running"
            j.append(state)


def test_monotone_and_linear_agree_with_a_scan(tmp_path: Path) -> None:
    _agent(tmp_path, 120)
    with Journal("b", tmp_path, readonly=True) as j:
        states = {k: j.state_at(k) for k in range(1, 121)}
        for expr in ["len(/messages) >= 77", "/spent > 10", "/spent >= 30", "len(/messages) > 0",
                     "/spent > 1000"]:
            pred = compile_predicate(expr)
            want = next((k for k in range(1, 121) if pred(states[k])), None)
            for mono in (None, True, False):
                r = bisect(j, expr, monotone=mono)
                assert r.step == want, (expr, mono)
                assert r.mode == ("linear" if mono is False else "monotone")
                if want is not None:
                    rec = next(iter(j.records(r.seq, r.seq)))
                    assert (rec.kind, rec.step) == ("step", want) and r.ts == rec.ts
        failed = j.bisect('/status == "failed"')
        assert (failed.mode, failed.step, failed.materializations) == ("linear", 40, 1)
        assert failed.evaluations == 40
        calls: list[tuple[int, int]] = []
        late = j.bisect("/messages contains 'm119'")
        assert late.step == 119 and late.mode == "linear"
        never = j.bisect("/messages contains 'zzz'", progress=lambda d, t: calls.append((d, t)))
        assert never.step is None and calls[-1] == (j.last_seq, j.last_seq)
        assert j.bisect("/nope == 1").step is None


def test_empty_keyed_forked_and_pruned(tmp_path: Path) -> None:
    Journal("e", tmp_path).close()
    with Journal("e", tmp_path, readonly=True) as j:
        r = j.bisect("/x > 1")
        assert r.step is None and r.materializations == 0
        with pytest.raises(InvalidExpressionError):
            j.bisect("/x >")
    _agent(tmp_path / "k", 50, key=b"key")
    with Journal("b", tmp_path / "k", key=b"key", readonly=True) as j:
        assert j.bisect("len(/messages) >= 33").step == 33
        child = Journal("b", tmp_path / "k", key=b"key", readonly=True)
        with child:
            pass
    with Journal("b", tmp_path / "k", key=b"key") as j:
        fork = j.fork(20, "f", durability="none")
    with fork:
        for i in range(21, 31):
            fork.append({"messages": [f"x{k}" for k in range(i)], "spent": -1.0,
                         "status": "forked"})
    with Journal("f", tmp_path / "k", key=b"key", readonly=True) as f:
        assert f.bisect("len(/messages) >= 25").step == 25
        assert f.bisect("len(/messages) >= 5").step == 20  # true from the fork on
        assert f.bisect("/spent < 0", monotone=False).step == 21
    with Journal("b", tmp_path / "k", key=b"key") as j:
        j.compact(keep_snapshots=2, prune=True)
    with Journal("b", tmp_path / "k", key=b"key", readonly=True) as j:
        first = j.segment_seqs()[0]
        assert first > 1
        assert j.bisect("len(/messages) >= 45").step == 45
        early = j.bisect("len(/messages) >= 2")
        assert early.step == early.first_step > 2  # the oldest retained state already holds
        assert j.bisect("len(/messages) >= 2", monotone=False).step == early.step


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100k steps (durability none, a snapshot every 100 steps)."""
    root = tmp_path_factory.mktemp("big")
    with Journal("big", root, durability="none", snapshot_every=100) as j:
        j.append({"n": 0, "spent": 0.0})
        for i in range(1, 100_000):
            j.append(ops=[{"op": "replace", "path": "/n", "value": i},
                          {"op": "replace", "path": "/spent", "value": i / 100}])
    return root


@pytest.mark.parametrize("target", [1, 2, 777, 50_000, 99_999, 100_000])
def test_bisect_100k_steps_in_at_most_20_materializations(big: Path, target: int) -> None:
    with Journal("big", big, readonly=True) as j:
        r = j.bisect(f"/n >= {target - 1}")
        assert r.step == target and r.mode == "monotone"
        assert r.materializations <= 20, r
    with Journal("big", big, readonly=True) as j:
        assert j.bisect("/spent > 2000").materializations <= 20


def test_hostile_expressions_only_raise_the_typed_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    with pytest.raises(InvalidExpressionError, match="longer than"):
        compile_predicate("/a == 1 or " * 2000 + "/a == 1")
    alphabet = st.sampled_from(list("/()=!<>&|'\"`~ -.0123456789eanotrulsxyz") + [
        " and ", " or ", " not ", "len(", "exists(", "type(", " contains ", " matches "])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, max_size=40).map("".join))
    def check(text: str) -> None:
        try:
            pred = compile_predicate(text)
        except InvalidExpressionError as e:
            assert e.position is not None or not text.strip()
            return
        assert pred(STATE) in (True, False)
        assert pred({}) in (True, False)

    check()

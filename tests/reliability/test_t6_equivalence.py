"""T6 snapshot equivalence (property).

Random step sequences (nested dicts, lists, appends, removals, replacements, unicode keys with
``/`` and ``~``, big ints) under random snapshot intervals, explicit snapshots, reopenings and
compactions (``keep_snapshots``, ``prune``, ``compress_segments``), on the filesystem and the
in-memory backend. For every step k:

* ``state_at(k)`` (nearest snapshot + replay) equals the model's state after step k and, while
  the history starts at seq 1, replay from genesis (every step op of ``records()`` applied to
  ``{}``), compared on a canonical encoding (``json.dumps(sort_keys=True)``);
* a step removed by pruning raises :class:`StepPrunedError` (a :class:`StepNotFoundError`);
  nothing at or after the oldest kept snapshot is ever unavailable;
* ``resume()`` equals the model's last state and ``verify()`` passes.

Values include the ones Python's ``==`` mixes up (``0``/``False``/``0.0``/``-0.0``, ``1``/``True``/
``1.0``); the canonical encoding tells them apart. T15 is about exactly those changes.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from journal_helpers import SLOW_FACTOR, canonical, figures, genesis_states

from agentjournal import Journal, MemoryBackend, StepNotFoundError, StepPrunedError
from agentjournal.retention import snapshot_spacing, sparse_picks

AGENT = "t6-agent"
FIGS: dict[str, int] = {"sequences": 0, "steps": 0, "state_at_checks": 0, "pruned_checks": 0,
                        "snapshots": 0, "compactions": 0, "reopens": 0, "machines": 0}

# --------------------------------------------------------------------------- values

keys = st.one_of(
    st.sampled_from(["a", "b", "msgs", "a/b", "~", "~1", "c~0d", "", " ", "ключ", "名前", "🦉",
                     "tool/calls", "x.y", "-"]),
    st.text(min_size=0, max_size=6),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(min_value=-1e12, max_value=1e12),
    st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=6,
)


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _containers(v, out)
    elif isinstance(node, list):
        out.append(node)
        for v in node:
            _containers(v, out)
    return out


def mutate(data: st.DataObject, state: dict[str, Any]) -> None:
    """Apply 1-3 random edits to ``state`` in place (the model of one agent step)."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        conts = _containers(state, [])
        c = conts[data.draw(st.integers(0, len(conts) - 1), label="container")]
        kind = data.draw(st.sampled_from(["set", "set", "delete", "append", "remove",
                                          "replace", "new_list"]), label="edit")
        if isinstance(c, dict):
            if kind == "delete" and c:
                del c[data.draw(st.sampled_from(sorted(c)), label="del key")]
            elif kind == "new_list":
                c[data.draw(keys, label="key")] = data.draw(st.lists(values, max_size=3))
            else:
                c[data.draw(keys, label="key")] = data.draw(values, label="value")
        else:
            if kind in ("remove", "delete") and c:
                c.pop(data.draw(st.integers(0, len(c) - 1), label="pop"))
            elif kind == "replace" and c:
                c[data.draw(st.integers(0, len(c) - 1), label="idx")] = data.draw(values)
            elif kind == "set" and c:
                c.insert(data.draw(st.integers(0, len(c)), label="ins"), data.draw(values))
            else:
                c.append(data.draw(values, label="append"))


# --------------------------------------------------------------------------- the checks


def check_all_steps(j: Journal, model: list[dict[str, Any]]) -> None:
    """``model[k]`` is the state after step k (``model[0]`` = ``{}``)."""
    n = len(model) - 1
    assert canonical(j.resume().state) == canonical(model[n])
    recs = list(j.records())
    genesis: dict[int, Any] | None = None
    if recs and recs[0].seq == 1:
        by_seq = genesis_states(recs)
        genesis = {}
        for r in recs:
            genesis[r.step] = by_seq[r.seq]  # the last record of each step wins
    snaps = j.snapshot_seqs()
    oldest_snap_step = None
    if snaps:
        oldest_snap_step = j.load_snapshot(snaps[0]).step
    for k in range(1, n + 1):
        try:
            got = j.state_at(k)
        except StepPrunedError:
            assert genesis is None, f"step {k} reported pruned but history starts at seq 1"
            assert oldest_snap_step is not None and k < oldest_snap_step, (
                f"step {k} reported pruned; the oldest kept snapshot is at step "
                f"{oldest_snap_step}")
            FIGS["pruned_checks"] += 1
            continue
        assert canonical(got) == canonical(model[k]), f"state_at({k}) differs from the model"
        if genesis is not None:
            assert canonical(got) == canonical(genesis[k]), f"state_at({k}) != genesis replay"
        FIGS["state_at_checks"] += 1
    with pytest.raises(StepNotFoundError):
        j.state_at(n + 1)
    rep = j.verify()
    assert rep.ok, rep.problems


# --------------------------------------------------------------------------- property test

options = st.fixed_dictionaries({
    "snapshot_every": st.sampled_from([None, 1, 2, 3, 5]),
    "segment_max_records": st.sampled_from([0, 2, 3, 7]),
    "compress": st.booleans(),
    "keep_snapshots": st.sampled_from([None, 1, 2, 3]),
    "prune": st.booleans(),
    "compress_segments": st.booleans(),
})

EXAMPLES = 40
PROP = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _open(backend: Any, root: str | None, opts: dict[str, Any]) -> Journal:
    if backend is not None:
        return Journal(AGENT, backend=backend, durability="none", **opts)
    return Journal(AGENT, root, durability="none", **opts)  # type: ignore[arg-type]


def _sequence(data: st.DataObject, use_memory: bool) -> None:
    opts = data.draw(options, label="options")
    n = data.draw(st.integers(1, 14), label="steps")
    root = None if use_memory else tempfile.mkdtemp(prefix="aj-t6-")
    backend = MemoryBackend() if use_memory else None
    model: list[dict[str, Any]] = [{}]
    state: dict[str, Any] = {}
    j = _open(backend, root, opts)
    try:
        for _ in range(n):
            mutate(data, state)
            j.append(copy.deepcopy(state))
            model.append(copy.deepcopy(state))
            FIGS["steps"] += 1
            action = data.draw(st.sampled_from(["none", "none", "snapshot", "reopen",
                                                "compact"]), label="action")
            if action == "snapshot":
                j.snapshot()
                FIGS["snapshots"] += 1
            elif action == "reopen":
                j.close()
                j = _open(backend, root, opts)
                FIGS["reopens"] += 1
            elif action == "compact":
                j.compact(keep_snapshots=data.draw(st.integers(1, 3)),
                          prune=data.draw(st.booleans()),
                          compress_segments=data.draw(st.booleans()))
                FIGS["compactions"] += 1
        check_all_steps(j, model)
        j.close()
        with _open(backend, root, opts) as j2:  # and once more after a clean reopen
            check_all_steps(j2, model)
        FIGS["sequences"] += 1
    finally:
        j.close()
        if root:
            shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("use_memory", [False, True], ids=["filesystem", "memory"])
def test_t6_snapshot_equivalence(use_memory: bool) -> None:
    @PROP
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _sequence(data, use_memory)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("use_memory", [False, True], ids=["filesystem", "memory"])
def test_t6_snapshot_equivalence_slow(use_memory: bool) -> None:
    @settings(PROP, max_examples=EXAMPLES * SLOW_FACTOR)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _sequence(data, use_memory)

    run()


# --------------------------------------------------------------------------- stateful machine


class JournalMachine(RuleBasedStateMachine):
    """Journal + replay against an in-memory model: append / snapshot / reopen / compact,
    checking ``state_at`` for every step after every rule."""

    use_memory = False

    def __init__(self) -> None:
        super().__init__()
        self.root = None if self.use_memory else tempfile.mkdtemp(prefix="aj-t6m-")
        self.backend = MemoryBackend() if self.use_memory else None
        self.model: list[dict[str, Any]] = [{}]
        self.state: dict[str, Any] = {}
        self.opts: dict[str, Any] = {}
        self.j: Journal | None = None

    @initialize(opts=options)
    def open(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.j = _open(self.backend, self.root, opts)
        FIGS["machines"] += 1

    @rule(data=st.data(), n=st.integers(1, 4))
    def append(self, data: st.DataObject, n: int) -> None:
        assert self.j is not None
        for _ in range(n):
            mutate(data, self.state)
            app = self.j.append(copy.deepcopy(self.state))
            self.model.append(copy.deepcopy(self.state))
            assert app.step == len(self.model) - 1
            FIGS["steps"] += 1

    @precondition(lambda self: len(self.model) > 1)
    @rule()
    def snapshot(self) -> None:
        assert self.j is not None
        seq = self.j.snapshot()
        assert seq is not None and seq in self.j.snapshot_seqs()
        FIGS["snapshots"] += 1

    @rule()
    def reopen(self) -> None:
        assert self.j is not None
        self.j.close()
        self.j = _open(self.backend, self.root, self.opts)
        assert self.j.last_step == len(self.model) - 1
        FIGS["reopens"] += 1

    @rule(keep=st.integers(1, 3), prune=st.booleans(), compress_segments=st.booleans())
    def compact(self, keep: int, prune: bool, compress_segments: bool) -> None:
        assert self.j is not None
        before = list(self.j.snapshot_seqs())
        self.j.compact(keep_snapshots=keep, prune=prune, compress_segments=compress_segments)
        after = self.j.snapshot_seqs()
        # The newest `keep` stay, and so does the snapshot that replay of the oldest retained
        # record starts from (history pruned earlier starts right after it).
        segs = self.j.segment_seqs()
        needed = {segs[0] - 1} & set(before) if segs and segs[0] > 1 else set()
        # Where the old history stays, sparse old snapshots stay with it (10 intervals apart).
        every = self.opts.get("snapshot_every") or snapshot_spacing(self.j.records())
        picks = (sparse_picks(before, before[-min(keep, len(before))], 10 * every)
                 if every and not prune and before else set())
        assert after == sorted(set(before[-keep:]) | needed | picks) if before else after == []
        FIGS["compactions"] += 1

    @invariant()
    def every_step_replays(self) -> None:
        if self.j is not None and len(self.model) > 1:
            check_all_steps(self.j, self.model)

    def teardown(self) -> None:
        if self.j is not None:
            self.j.close()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)


MACHINE = settings(max_examples=25, stateful_step_count=20, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class FilesystemMachine(JournalMachine):
    use_memory = False


class MemoryMachine(JournalMachine):
    use_memory = True


TestFilesystemMachine = FilesystemMachine.TestCase
TestFilesystemMachine.settings = MACHINE
TestMemoryMachine = MemoryMachine.TestCase
TestMemoryMachine.settings = MACHINE


@pytest.mark.slow
@pytest.mark.parametrize("machine", [FilesystemMachine, MemoryMachine],
                         ids=["filesystem", "memory"])
def test_t6_machine_slow(machine: type[JournalMachine]) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=settings(
        MACHINE, max_examples=25 * SLOW_FACTOR))


def test_t6_zz_report() -> None:
    figures("T6", **FIGS, mismatches=0)

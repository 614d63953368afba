"""JournalSaver semantics the conformance suite does not check, against InMemorySaver."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT  # noqa: E402

from agentjournal import (  # noqa: E402
    FilesystemBackend,
    Journal,
    JournalLockedError,
    MemoryBackend,
    Step,
)
from agentjournal.integrations.langgraph import JournalSaver, thread_agent_id  # noqa: E402


def cfg(tid: str, ns: str = "", cid: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": tid, "checkpoint_ns": ns}
    if cid is not None:
        c["checkpoint_id"] = cid
    return {"configurable": c}


def cp(cid: str, values: dict[str, Any] | None = None, version: int = 1) -> dict[str, Any]:
    """A checkpoint whose channels are all at ``version`` (pass the same as new_versions)."""
    c = dict(empty_checkpoint())
    c["id"] = cid
    c["channel_values"] = values or {}
    c["channel_versions"] = {k: version for k in values or {}}
    return c


def both(tmp_path: Path) -> list[BaseCheckpointSaver[Any]]:
    return [InMemorySaver(), JournalSaver(tmp_path / "store")]


def test_latest_and_list_order_by_id_not_by_append_order(tmp_path: Path) -> None:
    ids = ["1f0-0003", "1f0-0001", "1f0-0002"]  # appended out of id order
    for reopen in (False, True):
        root = tmp_path / f"r{reopen}"
        s = JournalSaver(root)
        for i in ids:
            s.put(cfg("t"), cp(i, {"v": i}), {"source": "loop", "step": 0}, {"v": 1})
        if reopen:
            s.close()
            s = JournalSaver(root)
        latest = s.get_tuple(cfg("t"))
        assert latest is not None and latest.checkpoint["id"] == "1f0-0003"
        assert latest.checkpoint["channel_values"] == {"v": "1f0-0003"}
        assert [t.checkpoint["id"] for t in s.list(cfg("t"))] == sorted(ids, reverse=True)
        assert [t.checkpoint["id"] for t in s.list(cfg("t"), before=cfg("t", cid="1f0-0003"))] \
            == ["1f0-0002", "1f0-0001"]
        assert [t.checkpoint["channel_values"]["v"] for t in s.list(cfg("t"))] == \
            sorted(ids, reverse=True)
        s.close()


def _writes_script(s: BaseCheckpointSaver[Any]) -> list[Any]:
    c = s.put(cfg("w"), cp("c1"), {"source": "loop", "step": 1}, {})
    s.put_writes(c, [("b", 1), ("a", 2)], "task-z", task_path="~1")
    s.put_writes(c, [("x", 3)], "task-a", task_path="~0")
    s.put_writes(c, [("late", 4)], "task-b", task_path="")
    s.put_writes(c, [("b", 99)], "task-z", task_path="~1")  # regular, same idx: first kept
    s.put_writes(c, [(ERROR, "first"), (INTERRUPT, {"q": 1})], "task-a", task_path="~0")
    s.put_writes(c, [(ERROR, "second")], "task-a", task_path="~0")  # special: replaces
    t = s.get_tuple(c)
    assert t is not None
    return list(t.pending_writes or [])


def test_pending_writes_order_and_special_channel_replacement(tmp_path: Path) -> None:
    savers = both(tmp_path)
    ref, ours = (_writes_script(s) for s in savers)
    savers[1].close()  # type: ignore[attr-defined]
    assert ours == ref
    assert ("task-a", ERROR, "second") in ours and ("task-z", "b", 1) in ours
    assert ours[0] == ("task-b", "late", 4)  # no task path sorts first
    with JournalSaver(tmp_path / "store") as again:
        reopened = again.get_tuple(cfg("w", cid="c1"))
    assert reopened is not None and reopened.pending_writes == ref


def test_metadata_merge_with_run_id_and_types_intact(tmp_path: Path) -> None:
    config = {"configurable": {"thread_id": "m", "checkpoint_ns": "", "user_flag": 7,
                               "__private": "no"},
              "metadata": {"run_id": "run-1", "tenant": "acme"}}
    md = {"source": "loop", "step": 3, "parents": {}, "score": 1, "ratio": 0.5,
          "ok": True, "none": None, "nested": {"k": [1, "1"]}}
    got = []
    for s in both(tmp_path):
        s.put(config, cp("c1"), md, {})
        t = s.get_tuple(cfg("m"))
        assert t is not None
        got.append(t.metadata)
        assert [x.checkpoint["id"] for x in s.list(cfg("m"), filter={"score": 1})] == ["c1"]
        assert list(s.list(cfg("m"), filter={"score": "1"})) == []
        assert [x.checkpoint["id"] for x in s.list(cfg("m"), filter={"run_id": "run-1"})] \
            == ["c1"]
        if isinstance(s, JournalSaver):
            s.close()
    assert got[1] == got[0]
    assert got[1]["run_id"] == "run-1" and got[1]["user_flag"] == 7
    assert type(got[1]["ratio"]) is float and type(got[1]["ok"]) is bool
    assert "__private" not in got[1]


def test_values_round_trip_like_in_memory_saver(tmp_path: Path) -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.types import Send

    values = {"tuple": (1, 2), "bytes": b"\x00\xff", "set": {1, 2}, "nan": float("nan"),
              "keys": {1: "int key", "$lg:ext": "looks like ours"}, "none": None,
              "msgs": [HumanMessage("hi", id="1"), AIMessage("yo", id="2")],
              "send": Send("node", {"x": 1}), "text": "plain ✓"}
    got = []
    for s in both(tmp_path):
        s.put(cfg("v"), cp("c1", values), {"source": "loop", "step": 0},
              {k: 1 for k in values})
        t = s.get_tuple(cfg("v"))
        assert t is not None
        got.append(t.checkpoint["channel_values"])
        if isinstance(s, JournalSaver):
            s.close()
    ref, ours = got
    assert ours.keys() == ref.keys()
    for k in ref:
        if k == "nan":
            assert ours[k] != ours[k]
        else:
            assert ours[k] == ref[k] and type(ours[k]) is type(ref[k]), k


def test_a_new_message_is_one_add_op(tmp_path: Path) -> None:
    from langchain_core.messages import HumanMessage

    s = JournalSaver(tmp_path)
    msgs: list[Any] = []
    prev = None
    for i in range(5):
        msgs = [*msgs, HumanMessage(f"message {i}", id=str(i))]
        c = cp(f"c{i}", {"messages": msgs, "n": i}, i + 1)
        prev = s.put(prev or cfg("g"), c, {"source": "loop", "step": i},
                     {"messages": i + 1, "n": i + 1})
    s.close()
    with Journal(thread_agent_id("g"), tmp_path, readonly=True) as j:
        last = [r for r in j.records() if isinstance(r, Step)][-1]
        paths = sorted((op["op"], op["path"]) for op in last.ops)
        assert paths == [("add", "/ns//messages/-"), ("replace", "/ns//n")]
        assert last.meta is not None and last.meta["id"] == "c4"
        assert last.meta["parent"] == "c3"


def test_concurrent_put_and_put_writes_from_threads(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            parent = None
            for i in range(20):
                c = s.put(parent or cfg("shared", ns=f"ns{w}"),
                          cp(f"{w:02d}-{i:04d}", {"v": [w, i]}, i + 1),
                          {"source": "loop", "step": i}, {"v": i + 1})
                s.put_writes(c, [("out", i), ("log", f"w{w}")], f"task-{w}-{i}")
                parent = c
        except BaseException as e:  # reported below: a thread cannot fail the test itself
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s.close()
    s = JournalSaver(tmp_path)
    for w in range(6):
        tuples = list(s.list(cfg("shared", ns=f"ns{w}")))
        assert [t.checkpoint["channel_values"]["v"] for t in tuples] == \
            [[w, i] for i in reversed(range(20))]
        assert all(len(t.pending_writes or []) == 2 for t in tuples)
    s.close()
    with Journal(thread_agent_id("shared"), tmp_path, readonly=True) as j:
        assert j.verify().ok
        assert j.last_seq >= 6 * 20 * 2


def _files_contain(root: Path, needle: bytes) -> bool:
    import lz4.frame

    for dirpath, _, names in os.walk(root):
        for n in names:
            data = (Path(dirpath) / n).read_bytes()
            if n.endswith(".lz4"):
                data = lz4.frame.decompress(data)
            if needle in data:
                return True
    return False


def test_prune_keep_latest_removes_old_values_from_disk_and_verifies(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path, snapshot_every=3)
    prev = None
    for i in range(10):
        prev = s.put(prev or cfg("p"), cp(f"c{i:02d}", {"secret": f"SECRET-{i:02d}"}, i + 1),
                     {"source": "loop", "step": i}, {"secret": i + 1})
    s.put(cfg("p", ns="child:1"), cp("k1", {"x": "CHILD-OLD"}), {"step": 0}, {"x": 1})
    s.put(cfg("p", ns="child:1", cid="k1"), cp("k2", {"x": "CHILD-NEW"}, 2), {"step": 1}, {"x": 2})
    s.put_writes(prev, [("ch", "kept write")], "task")
    assert _files_contain(tmp_path, b"SECRET-03")
    s.prune(["p"], strategy="keep_latest")
    for reopen in (False, True):
        if reopen:
            s.close()
            s = JournalSaver(tmp_path)
        assert [t.checkpoint["id"] for t in s.list(cfg("p"))] == ["c09"]
        assert [t.checkpoint["id"] for t in s.list(cfg("p", ns="child:1"))] == ["k2"]
        t = s.get_tuple(cfg("p"))
        assert t is not None and t.checkpoint["channel_values"] == {"secret": "SECRET-09"}
        assert t.pending_writes == [("task", "ch", "kept write")]
    s.close()
    assert not _files_contain(tmp_path, b"SECRET-03")
    assert not _files_contain(tmp_path, b"CHILD-OLD")
    with Journal(thread_agent_id("p"), tmp_path, readonly=True) as j:
        assert j.verify().ok


def test_delete_for_runs_removes_the_run_from_disk(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    a = s.put(cfg("r"), cp("c1", {"v": "RUN-A-VALUE"}), {"run_id": "A", "step": 0}, {"v": 1})
    s.put_writes(a, [("ch", "RUN-A-WRITE")], "t1")
    s.put(cfg("r", cid="c1"), cp("c2", {"v": "RUN-B-VALUE"}, 2), {"run_id": "B", "step": 1},
          {"v": 2})
    s.delete_for_runs(["A"])
    assert [t.metadata["run_id"] for t in s.list(cfg("r"))] == ["B"]
    s.close()
    assert not _files_contain(tmp_path, b"RUN-A-VALUE")
    assert not _files_contain(tmp_path, b"RUN-A-WRITE")
    assert _files_contain(tmp_path, b"RUN-B-VALUE")
    s = JournalSaver(tmp_path)
    t = s.get_tuple(cfg("r"))
    assert t is not None and t.checkpoint["channel_values"] == {"v": "RUN-B-VALUE"}
    assert t.parent_config is not None  # its parent is gone; the link is kept as recorded
    assert s.get_tuple(t.parent_config) is None
    s.close()


def test_delete_thread_removes_the_directory(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    s.put(cfg("d"), cp("c1", {"v": 1}), {}, {"v": 1})
    s.put(cfg("d", ns="child:x"), cp("c2"), {}, {})
    s.put(cfg("keep"), cp("c1"), {}, {})
    s.delete_thread("d")
    assert not (tmp_path / thread_agent_id("d")).exists()
    assert s.get_tuple(cfg("d")) is None and s.get_tuple(cfg("d", ns="child:x")) is None
    assert s.get_tuple(cfg("keep")) is not None
    assert FilesystemBackend(tmp_path).list_agents() == [thread_agent_id("keep")]
    s.close()


@pytest.mark.parametrize("backend_kind", ["fs", "memory"])
def test_delete_agent_refuses_while_a_writer_holds_the_journal(
        tmp_path: Path, backend_kind: str) -> None:
    backend = FilesystemBackend(tmp_path) if backend_kind == "fs" else MemoryBackend()
    with Journal("busy", backend=backend) as j:
        j.append({"x": 1})
        with pytest.raises(JournalLockedError):
            backend.delete_agent("busy")  # type: ignore[attr-defined]
    assert backend.delete_agent("busy") is True  # type: ignore[attr-defined]
    assert not backend.exists("busy")
    assert backend.delete_agent("busy") is False  # type: ignore[attr-defined]


def test_copy_thread_keeps_ids_parents_values_and_writes(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    prev = None
    for i in range(4):
        prev = s.put(prev or cfg("src"), cp(f"c{i}", {"v": i}, i + 1), {"step": i}, {"v": i + 1})
    s.put_writes(prev, [("ch", "w")], "task", task_path="p")
    s.put(cfg("src", ns="child:1"), cp("k0", {"y": "child"}), {"step": 0}, {"y": 1})
    s.copy_thread("src", "dst")
    s.close()
    s = JournalSaver(tmp_path)
    for ns in ("", "child:1"):
        a = [(t.checkpoint, t.metadata, t.parent_config and t.parent_config["configurable"]
              ["checkpoint_id"], t.pending_writes) for t in s.list(cfg("src", ns=ns))]
        b = [(t.checkpoint, t.metadata, t.parent_config and t.parent_config["configurable"]
              ["checkpoint_id"], t.pending_writes) for t in s.list(cfg("dst", ns=ns))]
        assert a == b and a
    s.close()


def test_rewrite_cut_short_by_a_crash_keeps_the_old_checkpoints(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    prev = None
    for i in range(3):
        prev = s.put(prev or cfg("c"), cp(f"c{i}", {"v": i}, i + 1), {"step": i}, {"v": i + 1})
    s.close()
    # What a crash right after the start of a prune leaves: a reset record, no commit.
    with Journal(thread_agent_id("c"), tmp_path) as j:
        j.append(ops=[{"op": "replace", "path": "", "value": {"ns": {}}}],
                 meta={"lg": 1, "op": "reset"})
    s = JournalSaver(tmp_path)
    assert [t.checkpoint["id"] for t in s.list(cfg("c"))] == ["c2", "c1", "c0"]
    assert [t.checkpoint["channel_values"]["v"] for t in s.list(cfg("c"))] == [2, 1, 0]
    s.put(cfg("c", cid="c2"), cp("c3", {"v": 3}, 4), {"step": 3}, {"v": 4})
    s.close()
    s = JournalSaver(tmp_path)
    assert [t.checkpoint["id"] for t in s.list(cfg("c"))] == ["c3", "c2", "c1", "c0"]
    t = s.get_tuple(cfg("c"))
    assert t is not None and t.checkpoint["channel_values"] == {"v": 3}
    s.close()


@pytest.mark.parametrize("tid", ["plain", "a/b", "../x", "日本語 スレッド", "x" * 300, "",
                                 ".hidden", "lg-ab-0123456789abcdef"])
def test_any_thread_id_maps_to_its_own_valid_journal(tmp_path: Path, tid: str) -> None:
    from agentjournal._ids import validate_agent_id

    agent = thread_agent_id(tid)
    validate_agent_id(agent)
    assert agent != thread_agent_id(tid + "x")
    s = JournalSaver(tmp_path)
    s.put(cfg(tid), cp("c1", {"v": tid}), {}, {"v": 1})
    s.put(cfg("other"), cp("c1"), {}, {})
    assert sorted(t.config["configurable"]["thread_id"] for t in s.list(None)) == \
        sorted([tid, "other"])
    t = s.get_tuple(cfg(tid))
    assert t is not None and t.checkpoint["channel_values"] == {"v": tid}
    s.close()


def test_reads_do_not_create_journals(tmp_path: Path) -> None:
    s = JournalSaver(tmp_path)
    assert s.get_tuple(cfg("nobody")) is None
    assert list(s.list(cfg("nobody"))) == []
    s.prune(["nobody"])
    s.delete_thread("nobody")
    s.copy_thread("nobody", "else")
    assert FilesystemBackend(tmp_path).list_agents() == []
    with pytest.raises(ValueError, match="strategy"):
        s.prune(["nobody"], strategy="everything")


def test_delete_for_runs_leaves_threads_of_other_runs_unlocked(tmp_path: Path) -> None:
    """A thread another process is writing, with none of the runs, is not even opened."""
    with JournalSaver(tmp_path) as s:
        s.put(cfg("busy"), cp("c1", {"v": 1}), {"run_id": "other"}, {"v": 1})
        s.put(cfg("target"), cp("c1", {"v": 2}), {"run_id": "gone"}, {"v": 1})
    # Another process holds the writer lock meanwhile (in this process it would be shared).
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom agentjournal import Journal\n"
         "with Journal(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n"
         "    sys.stdin.read()\n", thread_agent_id("busy"), str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    try:
        with JournalSaver(tmp_path) as s:
            s.delete_for_runs(["gone"])
            assert s.get_tuple(cfg("target")) is None
            # Reading a thread another process writes needs no lock: a read-only view.
            t = s.get_tuple(cfg("busy"))
            assert t is not None and t.checkpoint["channel_values"] == {"v": 1}
            assert [x.checkpoint["id"] for x in s.list(cfg("busy"))] == ["c1"]
            with pytest.raises(JournalLockedError):
                s.put(cfg("busy"), cp("c2"), {}, {})
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()
    with JournalSaver(tmp_path) as s:
        t = s.get_tuple(cfg("busy"))
        assert t is not None and t.metadata["run_id"] == "other"


def test_keyed_threads_verify_with_the_key_only(tmp_path: Path) -> None:
    from agentjournal import TamperedError

    with JournalSaver(tmp_path, key=b"k" * 32) as s:
        s.put(cfg("sealed"), cp("c1", {"v": "x"}), {}, {"v": 1})
    with JournalSaver(tmp_path, key=b"k" * 32) as s:
        t = s.get_tuple(cfg("sealed"))
        assert t is not None and t.checkpoint["channel_values"] == {"v": "x"}
    with Journal(thread_agent_id("sealed"), tmp_path, readonly=True, key=b"k" * 32) as j:
        assert j.verify().ok
    with pytest.raises((TamperedError, ValueError)), JournalSaver(tmp_path) as s:
        s.get_tuple(cfg("sealed"))


class _NoDeleteBackend:
    """A backend without ``delete_agent``: the saver must empty the journal instead."""

    def __init__(self) -> None:
        self.inner = MemoryBackend()

    def agent(self, agent_id: str, *, create: bool) -> Any:
        return self.inner.agent(agent_id, create=create)

    def exists(self, agent_id: str) -> bool:
        return self.inner.exists(agent_id)

    def list_agents(self) -> list[str]:
        return self.inner.list_agents()

    def describe(self) -> str:
        return "no-delete"


def test_delete_thread_on_a_backend_without_delete_agent_empties_it() -> None:
    backend = _NoDeleteBackend()
    with JournalSaver(backend=backend) as s:  # type: ignore[arg-type]
        s.put(cfg("d"), cp("c1", {"v": "SECRET"}), {}, {"v": 1})
        s.put(cfg("d", ns="child:1"), cp("c2", {"v": "SECRET2"}), {}, {"v": 1})
        s.delete_thread("d")
        assert s.get_tuple(cfg("d")) is None and list(s.list(cfg("d"))) == []
    with JournalSaver(backend=backend) as s:  # type: ignore[arg-type]
        assert s.get_tuple(cfg("d")) is None and s.get_tuple(cfg("d", ns="child:1")) is None
    with Journal(thread_agent_id("d"), backend=backend, readonly=True) as j:  # type: ignore[arg-type]
        assert j.verify().ok
        assert all(b"SECRET" not in msgspec_dump(r) for r in j.records())


def msgspec_dump(rec: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(rec)

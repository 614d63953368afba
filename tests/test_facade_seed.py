"""The seed's everyday patterns on the facade: a second manager reading while the first lives,
one checkpoint per save, hooks calling back, the storage protocol, foreign backends, the
missing names, exit without close, and a fleet's saves leaving the event loop."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from agentjournal import (
    AgentState,
    CheckpointMetadata,
    CheckpointNotFoundError,
    FilesystemStorage,
    HookContext,
    HookEvent,
    HookManager,
    HookResult,
    Journal,
    JournalLockedError,
    StateManager,
    StateSnapshot,
    StorageBackend,
    UnsupportedOperationError,
)
from test_manager import save_steps, storage

SRC = str(Path(__file__).resolve().parents[1] / "src")


store = storage  # the same store the manager tests use (``tests/test_manager.py``)


# --- 1. reads never lock ----------------------------------------------------------------------
def test_a_second_manager_reads_while_the_first_is_alive(tmp_path: Path) -> None:
    async def main() -> None:
        writer = StateManager(store(tmp_path), checkpoint_frequency=2)  # never closed: the seed
        ids = await save_steps(writer, AgentState(agent_id="a"), range(1, 6))
        reader = StateManager(store(tmp_path))
        latest = await reader.resume_from_latest("a")
        assert latest is not None and latest.step_number == 5
        assert (await reader.load_checkpoint(ids[1])).step_number == 2
        assert [c.checkpoint_id for c in await reader.list_checkpoints("a")] == ids[::-1]
        assert (await reader.state_at("a", 3)).step_number == 3
        assert {e.step for e in await reader.history("a", 2, 3)} == {2, 3}
        assert await reader.diff("a", 4, 5)
        assert await reader.get_checkpoint_tree("a") == {}
        assert (await reader.verify("a")).ok
        # ... and the writer goes on saving after all that reading.
        await save_steps(writer, AgentState(agent_id="a"), range(6, 7))
        latest = await reader.resume_from_latest("a")
        assert latest is not None and latest.step_number == 6
        writer.close()
        reader.close()

    asyncio.run(main())


def test_a_parent_that_resumed_does_not_block_its_child_from_writing(tmp_path: Path) -> None:
    async def parent_part() -> StateManager:
        sm = StateManager(store(tmp_path))
        await save_steps(sm, AgentState(agent_id="a"), range(1, 3))
        sm.release("a")
        # Resuming to inspect takes no lock: the child below may write.
        assert (await sm.resume_from_latest("a")) is not None
        return sm

    sm = asyncio.run(parent_part())
    child = textwrap.dedent(f"""
        import asyncio
        from agentjournal import FilesystemStorage, StateManager
        async def main():
            sm = StateManager(FilesystemStorage({str(tmp_path / 'store')!r}, durability="none"))
            s = await sm.resume_from_latest("a")
            s.step_number = 3
            print(await sm.save_checkpoint(s))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         env={"PYTHONPATH": SRC}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("a@0000000003.")
    sm.close()


def test_a_live_writer_in_another_process_still_fails_fast(tmp_path: Path) -> None:
    holder = textwrap.dedent(f"""
        import asyncio, sys
        from agentjournal import AgentState, FilesystemStorage, StateManager
        async def main():
            sm = StateManager(FilesystemStorage({str(tmp_path / 'store')!r}, durability="none"))
            await sm.save_checkpoint(AgentState(agent_id="a"))
            print("ready", flush=True)
            sys.stdin.readline()
        asyncio.run(main())
    """)
    p = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": SRC})
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

        async def main() -> None:
            sm = StateManager(store(tmp_path))
            assert (await sm.resume_from_latest("a")) is not None  # reading is fine
            with pytest.raises(JournalLockedError):
                await sm.save_checkpoint(AgentState(agent_id="a", step_number=1))
            sm.close()

        asyncio.run(main())
    finally:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()


def test_two_managers_both_save_in_one_process(tmp_path: Path) -> None:
    async def main() -> None:
        one, two = StateManager(store(tmp_path)), StateManager(store(tmp_path))
        s = AgentState(agent_id="a")
        await save_steps(one, s, range(1, 2))
        await save_steps(two, s, range(2, 3))
        await save_steps(one, s, range(3, 4))
        latest = await StateManager(store(tmp_path)).resume_from_latest("a")
        assert latest is not None and latest.step_number == 3
        one.close()
        two.close()

    asyncio.run(main())


def test_a_manager_never_closed_releases_its_lock_and_loses_nothing_at_exit(
        tmp_path: Path) -> None:
    child = textwrap.dedent(f"""
        import asyncio
        from agentjournal import AgentState, FilesystemStorage, StateManager
        sm = StateManager(FilesystemStorage({str(tmp_path / 'store')!r}, durability="group",
                                            group_records=1000, group_ms=60000))
        async def main():
            s = AgentState(agent_id="a")
            for k in range(1, 8):
                s.step_number = k
                await sm.save_checkpoint(s)
        asyncio.run(main())
    """)  # no close(): the seed's API has none
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         env={"PYTHONPATH": SRC}, timeout=60)
    assert out.returncode == 0, out.stderr
    with Journal("a", tmp_path / "store") as j:  # the lock is free
        assert j.last_step == 7 and j.durable_seq == j.last_seq


# --- 3. every save is its own checkpoint ---------------------------------------------------
def test_two_saves_at_the_same_step_are_two_checkpoints(tmp_path: Path) -> None:
    async def main() -> None:
        async with StateManager(store(tmp_path)) as sm:
            s = AgentState(agent_id="a")  # step_number stays 0, as in code that never sets it
            s.memory_contents["v"] = 1
            first = await sm.save_checkpoint(s)
            s.memory_contents["v"] = 2
            second = await sm.save_checkpoint(s)
            assert first != second and sorted([second, first]) == [first, second]
            assert (await sm.load_checkpoint(first)).memory_contents == {"v": 1}
            assert (await sm.load_checkpoint(second)).memory_contents == {"v": 2}
            # The step-only id names the last save of the step.
            assert (await sm.load_checkpoint("a@0000000000")).memory_contents == {"v": 2}
            listed = await sm.list_checkpoints("a")
            assert [c.checkpoint_id for c in listed] == [second, first]
            with pytest.raises(CheckpointNotFoundError):
                await sm.load_checkpoint("a@0000000000.0000000099")
            with pytest.raises(CheckpointNotFoundError):
                await sm.load_checkpoint("a@0000000001.0000000001")  # seq 1 is at step 0

    asyncio.run(main())


# --- 4. hooks may call back into the manager ------------------------------------------------
def test_hooks_call_back_into_the_manager_without_waiting(tmp_path: Path) -> None:
    hm = HookManager(default_timeout=0.5)
    got: list[Any] = []

    async def post(ctx: HookContext) -> HookResult:
        # Called back from inside the save: with the save's lock held this would wait out the
        # hook's 0.5 s timeout and fail.
        loaded = await manager.load_checkpoint(ctx.data["checkpoint_id"])
        listed = await manager.list_checkpoints(ctx.agent_id)
        at = await manager.state_at(ctx.agent_id, ctx.data["step_number"])
        got.append((loaded.step_number, len(listed), at.step_number))
        return HookResult(success=True)

    async def pre(ctx: HookContext) -> HookResult:
        got.append(("pre", await manager.last_step(ctx.agent_id)))
        return HookResult(success=True)

    hm.register(HookEvent.POST_CHECKPOINT_SAVE, post)
    hm.register(HookEvent.PRE_CHECKPOINT_SAVE, pre)
    manager = StateManager(store(tmp_path), hook_manager=hm)
    results: list[list[HookResult]] = []

    async def main() -> None:
        s = AgentState(agent_id="a")
        await save_steps(manager, s, range(1, 4))
        results.append(await hm.trigger(HookEvent.POST_CHECKPOINT_SAVE, "a", {
            "checkpoint_id": s.checkpoint_id, "step_number": 3}))

    asyncio.run(main())
    manager.close()
    assert got == [("pre", None), (1, 1, 1), ("pre", 1), (2, 2, 2), ("pre", 2), (3, 3, 3),
                   (3, 3, 3)]
    assert all(r.success for r in results[0])
    stats = hm.get_stats()
    assert all(v.get("failures", 0) == 0 for v in stats.values()), stats


# --- 2. the storage protocol ------------------------------------------------------------------
def test_filesystem_storage_speaks_the_seed_protocol(tmp_path: Path) -> None:
    st = store(tmp_path)
    assert isinstance(st.base_dir, Path) and isinstance(st, StorageBackend)

    async def main() -> None:
        s = AgentState(agent_id="p", step_number=1)
        s.memory_contents["x"] = 1
        c1 = await st.save(s)
        assert s.checkpoint_id == c1
        s.step_number = 2
        s.memory_contents["x"] = 2
        c2 = await st.save(s)
        await st.save(AgentState(agent_id="q"))
        assert (await st.load(c1)).memory_contents == {"x": 1}
        assert await st.exists(c1) and await st.exists(c2)
        assert not await st.exists("p@0000000009.0000000009")
        assert not await st.exists("ckpt_123456789abc")
        listed = await st.list_checkpoints("p")
        assert [c.checkpoint_id for c in listed] == [c2, c1]
        assert {c.agent_id for c in await st.list_checkpoints()} == {"p", "q"}
        await st.delete(c1)
        assert not await st.exists(c1)
        with pytest.raises(FileNotFoundError):
            await st.load(c1)
        with pytest.raises(FileNotFoundError):
            await st.delete(c1)
        assert [c.checkpoint_id for c in await st.list_checkpoints("p")] == [c2]
        # A manager on the same store sees the deletion in its listing too; the journal kept
        # the record (append-only), so time travel still reaches it.
        st.close()
        async with StateManager(store(tmp_path)) as sm:
            assert [c.checkpoint_id for c in await sm.list_checkpoints("p")] == [c2]
            assert (await sm.load_checkpoint(c1)).memory_contents == {"x": 1}
        assert (await store(tmp_path).load(c2)).memory_contents == {"x": 2}

    asyncio.run(main())


class DictBackend:
    """A user's own backend written for the seed: whole states in a dict."""

    def __init__(self) -> None:
        self.states: dict[str, AgentState] = {}
        self.deleted: list[str] = []

    async def save(self, state: AgentState) -> str:
        self.states[state.checkpoint_id] = copy.deepcopy(state)
        return state.checkpoint_id

    async def load(self, checkpoint_id: str) -> AgentState:
        if checkpoint_id not in self.states:
            raise FileNotFoundError(checkpoint_id)
        return copy.deepcopy(self.states[checkpoint_id])

    async def list_checkpoints(self, agent_id: str | None = None) -> list[CheckpointMetadata]:
        out = [CheckpointMetadata(checkpoint_id=s.checkpoint_id, agent_id=s.agent_id,
                                  timestamp=s.timestamp, step_number=s.step_number,
                                  status=s.status, size_bytes=0,
                                  parent_checkpoint_id=s.parent_checkpoint_id)
               for s in self.states.values() if agent_id in (None, s.agent_id)]
        return sorted(out, key=lambda m: m.timestamp, reverse=True)

    async def delete(self, checkpoint_id: str) -> None:
        del self.states[checkpoint_id]
        self.deleted.append(checkpoint_id)

    async def exists(self, checkpoint_id: str) -> bool:
        return checkpoint_id in self.states


def test_a_users_seed_backend_keeps_working_with_full_state_semantics() -> None:
    be = DictBackend()
    sm = StateManager(storage=be, retention_count=2, checkpoint_frequency=3)
    with pytest.raises(TypeError):
        StateManager(storage=object())  # type: ignore[arg-type]

    async def main() -> None:
        ids = []
        for k in range(1, 5):
            s = AgentState(agent_id="u", step_number=k)  # new state, new id: the seed's way
            ids.append(await sm.save_checkpoint(s))
        assert be.deleted == ids[:2] and set(be.states) == set(ids[2:])
        latest = await sm.resume_from_latest("u")
        assert latest is not None and latest.step_number == 4
        assert (await sm.load_checkpoint(ids[2])).step_number == 3
        fork = await sm.fork_from_checkpoint(ids[3])
        assert fork.parent_checkpoint_id == ids[3]
        assert await sm.get_checkpoint_tree("u") == {ids[3]: [fork.checkpoint_id]}
        assert not sm.should_checkpoint("u", 5) and sm.should_checkpoint("u", 7)
        with pytest.raises(UnsupportedOperationError):
            await sm.state_at("u", 3)
        with pytest.raises(UnsupportedOperationError):
            await sm.history("u")

    asyncio.run(main())


# --- 5. the missing names --------------------------------------------------------------------
def test_snapshot_metadata_round_trip_and_hook_context_timestamp() -> None:
    sm = StateManager(store_root_free())
    s = AgentState(agent_id="a", step_number=3)
    s.conversation_history.append({"role": "user", "content": "hi"})
    snap = sm.create_snapshot(s, reason="debug")
    assert isinstance(snap, StateSnapshot) and snap.snapshot_reason == "debug"
    s.conversation_history.append({"role": "user", "content": "later"})
    assert len(snap.state.conversation_history) == 1  # a deep copy
    summary = snap.get_summary()
    assert summary["step_number"] == 3 and summary["conversation_turns"] == 1
    assert summary["snapshot_reason"] == "debug" and "created_at" in summary
    meta = CheckpointMetadata(checkpoint_id="a@0000000003.0000000004", agent_id="a",
                              timestamp=datetime(2025, 1, 2, tzinfo=timezone.utc),
                              step_number=3, status="running", size_bytes=10)
    d = meta.to_dict()
    assert CheckpointMetadata.from_dict(d) == meta and isinstance(d["timestamp"], str)
    with pytest.raises(TypeError):
        CheckpointMetadata.from_dict({"checkpoint_id": "x"})
    ctx = HookContext(event_type=HookEvent.PRE_RESUME, agent_id="a", timestamp=None, data={})
    assert isinstance(ctx.timestamp, float) and ctx.timestamp > 0


def store_root_free() -> FilesystemStorage:
    from agentjournal import MemoryBackend

    return FilesystemStorage(backend=MemoryBackend())


# --- 7. a fleet's syncs leave the loop, a lone agent's stay inline ------------------------------
def test_concurrent_sync_saves_of_many_agents_sync_in_worker_threads(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Several agents saving in ``sync`` at once: each save is recorded on the loop (no GIL
    hand-off for the Python part) and only its ``fdatasync`` runs in a worker thread, where
    the syncs of many agents overlap; the save returns once its sync did."""
    appends: list[tuple[str, int, bool]] = []
    syncs: list[tuple[str, int, int]] = []
    real_append, real_sync = Journal.append, Journal.sync

    def spy_append(self: Journal, *a: Any, **kw: Any) -> Any:
        appends.append((self.agent_id, threading.get_ident(), kw.get("sync", True)))
        return real_append(self, *a, **kw)

    def spy_sync(self: Journal) -> int:
        durable = real_sync(self)
        syncs.append((self.agent_id, threading.get_ident(), durable))
        return durable

    monkeypatch.setattr(Journal, "append", spy_append)
    monkeypatch.setattr(Journal, "sync", spy_sync)
    acked: list[tuple[str, int]] = []

    async def save_and_check(sm: StateManager, s: AgentState) -> None:
        for k in range(1, 4):
            s.step_number = k
            cid = await sm.save_checkpoint(s)
            seq = int(cid.rsplit(".", 1)[1])
            # Acknowledged means durable: this save's own sync has returned by now.
            assert any(a == s.agent_id and d >= seq for a, _, d in syncs), (cid, syncs)
            acked.append((s.agent_id, seq))

    async def main() -> int:
        async with StateManager(store(tmp_path, durability="sync"),
                                checkpoint_frequency=None, checkpoint_interval=None) as sm:
            await save_steps(sm, AgentState(agent_id="alone"), range(1, 4))
            fleet = [AgentState(agent_id=f"f{i}") for i in range(8)]
            for s in fleet:  # open the journals first: then only the saves are timed apart
                await sm.save_checkpoint(s)
            appends.clear()
            syncs.clear()
            await asyncio.gather(*(save_and_check(sm, s) for s in fleet))
        return threading.get_ident()

    loop_thread = run_loop(main)
    assert len(acked) == 24
    # Every save was recorded on the loop; most skipped the inline sync ...
    assert all(t == loop_thread for _, t, _ in appends) and len(appends) == 24
    assert sum(not synced for _, _, synced in appends) >= 20, appends
    # ... and was synced in a worker thread instead.
    assert len(syncs) >= 20 and all(t != loop_thread for _, t, _ in syncs), syncs


def test_a_lone_agents_sync_saves_stay_inline_after_its_first(
        tmp_path: Path, monkeypatch: Any) -> None:
    threads: list[tuple[int, bool]] = []
    real = Journal.append

    def spy(self: Journal, *a: Any, **kw: Any) -> Any:
        threads.append((threading.get_ident(), kw.get("sync", True)))
        return real(self, *a, **kw)

    monkeypatch.setattr(Journal, "append", spy)

    async def main() -> int:
        async with StateManager(store(tmp_path, durability="sync"),
                                checkpoint_frequency=None, checkpoint_interval=None) as sm:
            await save_steps(sm, AgentState(agent_id="alone"), range(1, 4))
        return threading.get_ident()

    loop_thread = run_loop(main)
    # The journal's first record creates its first segment (a file, two syncs): in a worker.
    assert threads[0][0] != loop_thread
    assert threads[1:] == [(loop_thread, True)] * 2  # then no thread hop, synced inline


def test_a_fleet_save_whose_sync_fails_is_not_acknowledged(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The deferred sync of a fleet save fails (EIO): that save raises, the next one reopens
    the journal, and everything acknowledged before is there."""
    import errno

    from agentjournal import _fs
    from agentjournal.errors import JournalPoisonedError

    real_fdatasync = _fs.ops.fdatasync
    fail = {"armed": False, "fired": False}

    def flaky(fd: int) -> None:
        if fail["armed"] and threading.current_thread() is not threading.main_thread():
            fail["armed"], fail["fired"] = False, True
            raise OSError(errno.EIO, "injected")
        real_fdatasync(fd)

    monkeypatch.setattr(_fs.ops, "fdatasync", flaky)
    acked: dict[str, int] = {}
    failed: list[str] = []

    async def run(sm: StateManager, s: AgentState) -> None:
        for k in range(1, 6):
            s.step_number = k
            before = s.checkpoint_id
            try:
                await sm.save_checkpoint(s)
            except JournalPoisonedError:
                failed.append(s.agent_id)
                assert s.checkpoint_id == before  # an unacknowledged save names no checkpoint
                continue
            acked[s.agent_id] = k
            if k == 2 and not fail["fired"]:
                fail["armed"] = True  # the next sync in a worker fails, whoever's it is

    async def main() -> None:
        async with StateManager(store(tmp_path, durability="sync"),
                                checkpoint_frequency=None, checkpoint_interval=None) as sm:
            fleet = [AgentState(agent_id=f"f{i}") for i in range(4)]
            for s in fleet:
                await sm.save_checkpoint(s)
            await asyncio.gather(*(run(sm, s) for s in fleet))

    run_loop(main)
    assert len(failed) == 1 and fail["fired"], failed
    assert acked[failed[0]] == 5  # its next save reopened the journal
    for agent_id, step in acked.items():
        with Journal(agent_id, tmp_path / "store", readonly=True) as r:
            assert r.last_step >= step and r.verify().ok


def test_cancelling_fleet_saves_leaves_every_journal_whole(tmp_path: Path) -> None:
    """Tasks of a fleet cancelled at random points, some while their save's sync is pending in
    a worker: nothing acknowledged is lost, every journal verifies, and the agents' next saves
    (a new task each) go on from where they were."""
    acked: dict[str, int] = {}

    async def run(sm: StateManager, s: AgentState, steps: range) -> None:
        for k in steps:
            s.step_number = k
            await sm.save_checkpoint(s)
            acked[s.agent_id] = k

    async def main() -> None:
        async with StateManager(store(tmp_path, durability="sync"),
                                checkpoint_frequency=None, checkpoint_interval=None) as sm:
            fleet = [AgentState(agent_id=f"c{i}") for i in range(8)]
            for s in fleet:
                await sm.save_checkpoint(s)
            for round_ in range(5):
                tasks = [asyncio.create_task(run(sm, s, range(round_ * 10 + 1,
                                                              round_ * 10 + 11)))
                         for s in fleet]
                for _ in range(3 + round_):
                    await asyncio.sleep(0)
                for t in tasks[::2]:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for s in fleet:  # every agent saves again after its task was cancelled
                    s.step_number = round_ * 10 + 10
                    await sm.save_checkpoint(s)
                    acked[s.agent_id] = s.step_number

    run_loop(main)
    for agent_id, step in acked.items():
        with Journal(agent_id, tmp_path / "store", readonly=True) as r:
            assert r.last_step == step == 50 and r.verify().ok


def test_a_fresh_managers_resume_runs_inline_once_the_agent_is_known_small(
        tmp_path: Path, monkeypatch: Any) -> None:
    where: list[int] = []
    real = Journal.resume

    def spy(self: Journal) -> Any:
        where.append(threading.get_ident())
        return real(self)

    monkeypatch.setattr(Journal, "resume", spy)

    async def main() -> int:
        async with StateManager(store(tmp_path)) as sm:
            await save_steps(sm, AgentState(agent_id="small"), range(1, 4))
        for offload in ("auto", "auto", "always", "never"):
            fresh = StateManager(store(tmp_path), offload=offload)  # type: ignore[arg-type]
            got = await fresh.resume_from_latest("small")
            assert got is not None and got.step_number == 3
            fresh.close()
        return threading.get_ident()

    loop_thread = run_loop(main)
    # Unknown size: the pool; known small: on the loop; "always"/"never" as they say.
    assert [t == loop_thread for t in where] == [False, True, False, True]


def run_loop(fn: Any) -> Any:
    return asyncio.run(fn())


# --- the engine's trigger query the facade relies on (Journal.snapshot_base / snapshot_due) --
def test_snapshot_base_and_due_for_writers_and_readers(tmp_path: Path) -> None:
    root = tmp_path / "j"
    with Journal("t", root, durability="none", snapshot_every=3) as w:
        assert w.snapshot_base()[0] == 0 and not w.snapshot_due(1)
        for k in range(1, 5):
            w.append({"k": k}, step=k)  # snapshot at step 3
        assert w.snapshot_base()[0] == 3
        assert not w.snapshot_due(5) and w.snapshot_due(6)
        assert w.snapshot_due() is False  # the next step, 5
    with Journal("t", root, readonly=True, snapshot_every=3, snapshot_seconds=3600) as r:
        assert r.snapshot_base()[0] == 3 and r.snapshot_due(6) and not r.snapshot_due(5)
        assert r.snapshot_due(5, now=r.snapshot_base()[1] + 3600)
    for snap in (root / "t" / "snapshots").iterdir():  # a damaged snapshot is passed over
        snap.write_bytes(b"garbage")
    with Journal("t", root, readonly=True, snapshot_every=3) as r:
        assert r.snapshot_base()[0] == 0
    with Journal("u", root, durability="none", snapshot_every=None,
                 snapshot_seconds=None) as empty:
        assert not empty.snapshot_due(10**6)


def test_a_cancelled_save_holds_the_agent_until_its_thread_is_done(
        tmp_path: Path, monkeypatch: Any) -> None:
    real = Journal.append
    inside = threading.Event()
    release = threading.Event()
    overlaps: list[bool] = []
    busy = threading.Lock()

    def slow(self: Journal, *a: Any, **kw: Any) -> Any:
        if not busy.acquire(blocking=False):
            overlaps.append(True)  # two appends on one journal at once
            return real(self, *a, **kw)
        try:
            if kw.get("snapshot"):
                inside.set()
                release.wait(10)
            return real(self, *a, **kw)
        finally:
            busy.release()

    monkeypatch.setattr(Journal, "append", slow)

    async def main() -> None:
        async with StateManager(store(tmp_path)) as sm:
            s = AgentState(agent_id="a")
            task = asyncio.ensure_future(sm.save_checkpoint(s, force=True))  # in the pool
            await asyncio.to_thread(inside.wait, 10)
            task.cancel()
            await asyncio.sleep(0.05)
            assert not task.done()  # still waiting for its thread
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            s.step_number = 1
            await sm.save_checkpoint(s)

    asyncio.run(main())
    assert overlaps == []

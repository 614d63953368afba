"""The facade's worker pool and the hang that kept CI from finishing.

The hang: a :class:`~agentjournal.Journal` dropped without ``close()`` inside a reference cycle
is freed by the cyclic garbage collector, which runs its finalizer (releasing the shared writer
core) in whatever thread allocates at that moment. When that thread was itself inside the
engine's registry of shared cores (opening a writable journal: a pool worker serving a first
save), the finalizer waited for a lock its own thread held: the worker never finished, the save
never returned, and the cancellation of the timed-out test waited for the worker forever.

The scenarios that could hang run in a child process (or a thread with its own event loop)
under a timeout, so a regression fails the test instead of stopping the suite.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import agentjournal
from agentjournal import _workers
from agentjournal._workers import Pool, run_blocking

SRC = str(Path(agentjournal.__file__).resolve().parent.parent)


def run_script(code: str, tmp_path: Path, timeout: float = 60.0) -> str:
    """Run ``code`` in a fresh interpreter; its output (a hang fails, with every stack)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    head = ("import faulthandler, sys\n"
            f"faulthandler.dump_traceback_later({timeout - 10}, exit=True)\n")
    try:
        done = subprocess.run([sys.executable, "-c", head + textwrap.dedent(code), str(tmp_path)],
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # pragma: no cover - only on a regression
        pytest.fail(f"the child process hung: {e.stdout!r} {e.stderr!r}")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def in_own_loop(make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 20.0) -> Any:
    """Run a coroutine under ``asyncio.run`` in a daemon thread: a hang there fails this test
    (the thread is left behind) instead of hanging the suite's own thread."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(make())
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the event loop hung"
    if "error" in out:
        raise out["error"]
    return out["value"]


# --- the CI hang: a finalizer inside the registry of shared writers ------------------------------
# Where the garbage collector runs cannot be chosen without help: these make it run at a point
# inside the registry section (building a new core), as any allocation there may.
_COLLECT_WHILE_OPENING = """
    import gc
    from agentjournal.replay import core as core_mod
    _init = core_mod.Core.__init__
    def init(self, *a, **kw):
        gc.collect()  # the collector runs here, as any allocation may make it
        _init(self, *a, **kw)
    core_mod.Core.__init__ = init
"""


def test_a_dropped_journal_collected_while_another_opens(tmp_path: Path) -> None:
    out = run_script(_COLLECT_WHILE_OPENING + """
    import threading
    from agentjournal import Journal
    root = sys.argv[1]
    j = Journal("dropped", root=root)
    j.append({"x": 1})
    j.me = j  # a cycle: only the cyclic collector frees it
    del j
    def other_thread():  # a pool worker opening a writer, as a first save does
        k = Journal("fresh", root=root)
        k.append({"y": 1})
        k.close()
    t = threading.Thread(target=other_thread, daemon=True)
    t.start()
    t.join(20)
    print("hung" if t.is_alive() else "done")
    # The dropped journal was released: its lock is free for a new writer.
    Journal("dropped", root=root).close()
    print("reopened")
    """, tmp_path)
    assert out.split() == ["done", "reopened"]


def test_a_first_save_while_the_collector_frees_a_dropped_journal(tmp_path: Path) -> None:
    # The shape of the CI hang: StateManager opens the new agent's writer in the pool.
    out = run_script(_COLLECT_WHILE_OPENING + """
    import asyncio
    from agentjournal import AgentState, FilesystemStorage, Journal, StateManager
    root = sys.argv[1]
    j = Journal("dropped", root=root)
    j.me = j
    del j
    async def main():
        sm = StateManager(FilesystemStorage(base_dir=root))
        cid = await asyncio.wait_for(sm.save_checkpoint(AgentState(agent_id="agent1")), 20)
        await sm.aclose()
        return cid
    print(asyncio.run(main()))
    """, tmp_path)
    assert out.startswith("agent1@")


def test_journals_dropped_in_cycles_while_others_open(tmp_path: Path) -> None:
    # No help: the collector runs where allocations make it run (before the fix this hung
    # within a few dozen opens).
    out = run_script("""
    import gc, threading
    from agentjournal import Journal
    root = sys.argv[1]
    gc.set_threshold(50)  # collect often, wherever it falls
    def churn(t):
        for i in range(150):
            j = Journal(f"a{t}-{i % 10}", root=root, durability="none")
            j.me = j  # dropped in a cycle, never closed
            del j
    ts = [threading.Thread(target=churn, args=(t,), daemon=True) for t in range(2)]
    for t in ts: t.start()
    for t in ts: t.join(40)
    print("hung" if any(t.is_alive() for t in ts) else "done")
    """, tmp_path)
    assert out.split() == ["done"]


def test_a_release_inside_a_registry_section_waits_for_its_end(tmp_path: Path) -> None:
    # What the collector does when it frees a journal while this thread opens another one,
    # made deterministic: the release comes from inside a registry section of the same thread.
    from agentjournal import Journal
    from agentjournal.replay import core as core_mod

    j = Journal("inner", root=tmp_path)
    j.append({"x": 1})
    core = j._core
    with core_mod._registry():
        j.close()  # waiting for the registry lock here would wait for this thread itself
        assert not core.closed and core in core_mod._deferred
    assert core.closed and core not in core_mod._deferred
    Journal("inner", root=tmp_path).close()  # its lock was released


def test_a_deferred_release_that_fails_is_logged(tmp_path: Path, monkeypatch: Any,
                                                caplog: Any) -> None:
    from agentjournal import Journal
    from agentjournal.replay import core as core_mod

    j = Journal("failing", root=tmp_path)
    core = j._core

    def broken() -> None:
        raise OSError("disk gone")

    with core_mod._registry():
        j.close()
        monkeypatch.setattr(core, "close", broken)
    assert "closing the dropped journal of failing failed" in caplog.text
    monkeypatch.undo()
    core.close()


# --- the pool: results are always handed back -----------------------------------------------
def test_a_batch_with_a_result_a_future_refuses_completes_every_future() -> None:
    def stop() -> None:
        raise StopIteration  # a future refuses it (TypeError): it must not cost the others

    async def main() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        t1 = asyncio.ensure_future(run_blocking(stop))
        t2 = asyncio.ensure_future(run_blocking(lambda: 42))
        await asyncio.sleep(0)  # both submitted
        # Hold the loop until both results wait in one batch.
        deadline = time.monotonic() + 10
        while len(_workers._POOL._done.get(loop, ())) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        done, _ = await asyncio.wait({t1, t2}, timeout=10)
        assert done == {t1, t2}, "a result of the batch was dropped"
        return t1.exception(), t2.result()

    err, value = in_own_loop(main)
    assert value == 42
    assert isinstance(err, RuntimeError) and isinstance(err.__cause__, StopIteration)


def test_a_call_not_started_is_withdrawn_on_cancellation() -> None:
    pool = Pool(max_workers=1)
    gate = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        busy = asyncio.ensure_future(pool.run(gate.wait, 10))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(pool.run(ran.append, "queued"))
        await asyncio.sleep(0.05)
        queued.cancel()
        # The only thread is busy: the cancellation goes through without waiting for it.
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 5)
        gate.set()
        assert await busy is True
        assert await pool.run(lambda: "next") == "next"

    in_own_loop(main)
    assert ran == []  # the withdrawn call never ran
    assert (pool._idle, pool._backlog, len(pool._threads)) == (1, 0, 1)


def test_a_running_call_ends_before_its_cancellation_goes_through() -> None:
    pool = Pool(max_workers=2)
    started, gate = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> None:
        started.set()
        gate.wait(10)
        finished.append(True)

    async def main() -> None:
        task = asyncio.ensure_future(pool.run(work))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for the call, which holds the caller's lock
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == [True]

    in_own_loop(main)


def test_more_calls_than_threads_all_complete_and_the_count_stays_exact() -> None:
    pool = Pool(max_workers=2)

    def slow_id(k: int) -> int:
        time.sleep(0.005)
        return k

    async def main() -> list[int]:
        return list(await asyncio.gather(*(pool.run(slow_id, k) for k in range(9))))

    assert in_own_loop(main) == list(range(9))
    # Every thread is idle again, and none is counted twice.
    assert (pool._idle, pool._backlog, len(pool._threads)) == (2, 0, 2)


def test_a_result_for_a_closed_loop_is_dropped() -> None:
    pool = Pool(max_workers=1)
    gate = threading.Event()
    loop = asyncio.new_event_loop()
    pool._submit(_workers._Job(loop, loop.create_future(), gate.wait, (10,)))
    loop.close()  # before the call ends: its result has nobody to go to
    gate.set()
    deadline = time.monotonic() + 5
    while pool._idle == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert pool._idle == 1 and pool._done == {}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_gets_a_pool_of_its_own(tmp_path: Path) -> None:
    out = run_script("""
    import asyncio, os, warnings
    warnings.simplefilter("ignore")  # fork() of a process with threads
    from agentjournal._workers import run_blocking
    async def call():
        return await run_blocking(os.getpid)
    parent = asyncio.run(call())  # the pool has a thread now, idle
    pid = os.fork()
    if pid == 0:
        try:
            ok = asyncio.run(asyncio.wait_for(call(), 10)) == os.getpid()
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print("child ok" if os.waitstatus_to_exitcode(status) == 0 else "child failed")
    """, tmp_path)
    assert out.split() == ["child", "ok"]

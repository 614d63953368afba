"""Worker threads for the facade's blocking work, handing results back to the loop in batches.

``loop.run_in_executor`` wakes the event loop once per finished call (a write to its self-pipe
and a callback each). A fleet of agents saving in ``sync`` finishes thousands of small calls a
second, and those wake-ups cost about as much CPU as the saves themselves. Here a worker that
finishes a call queues the result and wakes the loop only if no wake-up is pending; the loop
then completes every queued future at once.

The threads are daemons started on demand (up to :data:`MAX_WORKERS`) and shared by every loop
of the process. At interpreter exit the journals are closed by ``_saves``'s exit hook, which
waits on each journal's writer lock, so no worker is cut off inside a write it could still
finish.

Cancellation: a call that has not started when its awaiting task is cancelled is withdrawn
(no thread will run it) and the cancellation goes through at once. A call already running
runs to its end, and the cancellation reaches the task only then: callers hold an agent's lock
around the call, which must not be released while the call still touches the journal. A second
cancellation stops that wait (the call still finishes in its thread).

What cannot happen here, whatever the calls do: a result that is never handed back (every
queued result is delivered even when one of them cannot be set, e.g. a ``StopIteration``,
which a future refuses), or a call that is queued but no thread will ever take (the count of
idle threads is exact, and a child process made by ``os.fork()`` starts with a pool of its own).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_WORKERS", "Pool", "run_blocking"]

T = TypeVar("T")

MAX_WORKERS = 64  # enough for a fleet's concurrent fdatasync calls (they release the GIL)

_QUEUED, _RUNNING, _WITHDRAWN, _DONE = 0, 1, 2, 3


class _Job:
    __slots__ = ("loop", "fut", "fn", "args", "state", "result", "error", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any],
                 fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.loop = loop
        self.fut = fut
        self.fn: Callable[..., Any] | None = fn
        self.args: tuple[Any, ...] | None = args
        self.state = _QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # a cancelled caller waits on it


def _settle(job: _Job) -> None:
    """Hand a finished call's outcome to its caller; never raises (the other results of a
    batch must still be set)."""
    waiter, fut, error = job.waiter, job.fut, job.error
    if waiter is not None:  # the caller was cancelled while the call ran: it ended now
        if not waiter.done():
            waiter.set_result(None)
        return
    if fut.done():  # cancelled: nobody wants the result
        return
    try:
        if error is None:
            fut.set_result(job.result)
        else:
            fut.set_exception(error)
    except BaseException as e:  # noqa: BLE001 - e.g. TypeError for a StopIteration
        if not fut.done():
            wrapped = RuntimeError(f"the call raised {type(error).__name__}: {error}")
            wrapped.__cause__ = error if error is not None else e
            fut.set_exception(wrapped)


class Pool:
    """Daemon worker threads shared by every event loop of the process.

    Args:
        max_workers: at most this many threads; more calls wait in the queue for a free one.
    """

    def __init__(self, max_workers: int = MAX_WORKERS) -> None:
        self.max_workers = max_workers
        self._reset()

    def _reset(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job that no submitted job has counted on yet
        self._backlog = 0  # jobs submitted when no thread was idle and none could be started
        self._done: dict[asyncio.AbstractEventLoop, list[_Job]] = {}

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            jobs = self._done.pop(loop, [])
        for job in jobs:
            _settle(job)

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            with self._lock:
                withdrawn = job.state == _WITHDRAWN
                job.state = _RUNNING
            if not withdrawn:
                try:
                    job.result = job.fn(*job.args)  # type: ignore[misc]
                except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
                    job.error = e
            job.fn = job.args = None  # drop references early
            loop = job.loop
            with self._lock:
                job.state = _DONE
                if self._backlog > 0:
                    self._backlog -= 1  # a waiting job is this thread's next one
                else:
                    self._idle += 1
                wake = False
                if not withdrawn and not loop.is_closed():
                    pending = self._done.setdefault(loop, [])
                    pending.append(job)
                    wake = len(pending) == 1
            if wake:
                try:
                    loop.call_soon_threadsafe(self._drain, loop)
                except RuntimeError:  # the loop closed: nobody awaits these any more
                    with self._lock:
                        self._done.pop(loop, None)

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that thread takes this job
            elif len(self._threads) < self.max_workers:
                t = threading.Thread(target=self._worker, daemon=True,
                                     name=f"agentjournal-{len(self._threads)}")
                self._threads.append(t)
                t.start()
            else:
                self._backlog += 1  # every thread is busy: the first one free takes it
        self._jobs.put(job)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; its result (or exception) once it finished."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        job = _Job(loop, fut, fn, args)
        self._submit(job)
        try:
            return await fut
        except asyncio.CancelledError:
            with self._lock:
                if job.state == _QUEUED:
                    job.state = _WITHDRAWN  # no thread will run it
                    raise
                if job.state == _DONE:
                    raise
                # Running: it goes on in its thread, and the caller's lock must stay held
                # until it ends (the drain sets the waiter). A second cancellation ends this.
                waiter: asyncio.Future[None] = loop.create_future()
                job.waiter = waiter
            await waiter
            raise


_POOL = Pool()


run_blocking = _POOL.run
"""``await run_blocking(fn, *args)``: :meth:`Pool.run` on the process's pool."""


def _after_fork_in_child() -> None:
    # The parent's threads do not exist in the child, and the lock may have been held by one
    # of them at fork time: jobs submitted here would wait for threads that never come.
    _POOL._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

"""Worker threads for the facade's blocking work, handing results back to the loop in batches.

``loop.run_in_executor`` wakes the event loop once per finished call (a write to its self-pipe
and a callback each). A fleet of agents saving in ``sync`` finishes thousands of small calls a
second, and those wake-ups cost about as much CPU as the saves themselves. Here a worker that
finishes a call queues the result and wakes the loop only if no wake-up is pending; the loop
then completes every queued future at once.

The threads are daemons started on demand (up to :data:`MAX_WORKERS`) and shared by every loop
of the process. A call still running when its awaiting task is cancelled runs to its end, and
the cancellation reaches the task only then (so a lock held around the call is not released
while the call still runs). At interpreter exit the journals are closed by ``_saves``'s exit
hook, which waits on each journal's writer lock, so no worker is cut off inside a write it could
still finish.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_WORKERS", "run_blocking"]

T = TypeVar("T")

MAX_WORKERS = 64  # enough for a fleet's concurrent fdatasync calls (they release the GIL)

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]

_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_lock = threading.Lock()
_threads: list[threading.Thread] = []
_idle = 0  # threads waiting for a job and not yet promised one
_Result = tuple["asyncio.Future[Any]", Any, "BaseException | None"]
_done: dict[asyncio.AbstractEventLoop, list[_Result]] = {}


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        items = _done.pop(loop, [])
    for fut, result, error in items:
        if fut.cancelled():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


def _worker() -> None:
    global _idle
    while True:
        loop, fut, fn, args = _jobs.get()
        try:
            result, error = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, e
        with _lock:
            pending = _done.setdefault(loop, [])
            pending.append((fut, result, error))
            wake = len(pending) == 1
            _idle += 1
        if wake:
            try:
                loop.call_soon_threadsafe(_drain, loop)
            except RuntimeError:  # the loop is closed: nobody awaits these any more
                with _lock:
                    _done.pop(loop, None)


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread; its result (or exception) once it finished."""
    global _idle
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    with _lock:
        if _idle > 0:
            _idle -= 1  # promised to this job
        elif len(_threads) < MAX_WORKERS:
            t = threading.Thread(target=_worker, name=f"agentjournal-{len(_threads)}",
                                 daemon=True)
            _threads.append(t)
            t.start()
        # else: every thread is busy; the job waits in the queue for the first one free
    _jobs.put((loop, fut, fn, args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        # The call goes on in its thread. Callers hold an agent's lock around it: releasing
        # that lock now would let the next save touch the journal while this one still does.
        if not fut.done():
            await asyncio.wait({fut})
        raise

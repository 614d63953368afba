"""The live tail: new records of an agent as server-sent events.

Each event is one JSON step-list row (``event: record``, ``id:`` its seq), so a browser's
``EventSource`` that reconnects sends ``Last-Event-ID`` and resumes after the last row it got.
The stream ends by itself after ``max_seconds`` (the browser reconnects at once), which bounds
what one forgotten tab can hold on the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import JournalError
from .engine import LiveTail
from .model import Viewer
from .rows import row_of

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0


def _event(name: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(viewer: Viewer, request: Request, agent_id: str, from_seq: int,
                 max_seconds: float) -> AsyncIterator[bytes]:
    """Yield SSE frames for the records of ``agent_id`` from ``from_seq`` on."""
    tail = await run_in_threadpool(LiveTail, viewer.backend, agent_id, viewer.key,
                                   from_seq=from_seq)
    try:
        yield b"retry: 1000\n\n"
        started = last_beat = time.monotonic()
        prev_ts: float | None = None
        while True:
            try:
                recs = await run_in_threadpool(tail.poll)
            except (JournalError, OSError) as e:
                yield _event("problem", {"message": str(e)})
                return
            for rec in recs:
                yield _event("record", row_of(rec, prev_ts), rec.seq)
                prev_ts = rec.ts
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                last_beat = now
            if (now - started >= max_seconds or viewer.closing.is_set()
                    or await request.is_disconnected()):
                return
            if tail.wakes:  # woken by the store (e.g. LISTEN/NOTIFY) or after the same time
                await run_in_threadpool(tail.wait, POLL_SECONDS)
            else:
                await anyio.sleep(POLL_SECONDS)
    finally:
        tail.close()

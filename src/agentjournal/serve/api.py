"""The JSON endpoints under ``/api``: thin wrappers that parse parameters, call
:class:`~agentjournal.serve.model.Viewer` in a worker thread, and map errors to statuses.

Every error is a JSON object ``{"error": kind, "message": ..., "hint": ...}`` with a 4xx status;
an unexpected one is a 500 with no traceback in the body (it goes to the server log).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import delta
from ..errors import (
    BadRequestError,
    CorruptRecordError,
    ForbiddenRequestError,
    InvalidAgentIdError,
    InvalidPatchError,
    InvalidPointerError,
    JournalError,
    JournalExistsError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
    NotJSONEncodableError,
    PathNotFoundError,
    QueryError,
    StepNotFoundError,
    StepPrunedError,
)
from ..exchange import export_journal
from . import events, search
from .model import Viewer, is_key_needed

log = logging.getLogger("agentjournal.serve")

Handler = Callable[[Request], Awaitable[Response]]

_STATUS: list[tuple[type[BaseException], int, str]] = [
    (InvalidAgentIdError, 400, "bad_agent_id"),
    (InvalidPatchError, 400, "bad_path"),
    (InvalidPointerError, 400, "bad_path"),
    (QueryError, 400, "bad_request"),
    (BadRequestError, 400, "bad_request"),
    (NotJSONEncodableError, 400, "bad_state"),
    (ForbiddenRequestError, 403, "forbidden"),
    (StepPrunedError, 410, "pruned"),
    (JournalNotFoundError, 404, "not_found"),
    (StepNotFoundError, 404, "not_found"),
    (PathNotFoundError, 404, "not_found"),
    (JournalExistsError, 409, "exists"),
    (JournalLockedError, 409, "locked"),
    (LimitExceededError, 413, "too_large"),
    (CorruptRecordError, 409, "damaged"),
]


def error_response(e: BaseException) -> JSONResponse:
    """The JSON error of ``e`` (400 for plain ``ValueError`` s of bad parameters)."""
    for cls, status, kind in _STATUS:
        if isinstance(e, cls):
            if kind == "damaged" and is_key_needed(e):
                status, kind = 403, "key_needed"
            hint = e.hint if isinstance(e, JournalError) else None
            message = e.message if isinstance(e, JournalError) else str(e)
            return JSONResponse({"error": kind, "message": message, "hint": hint},
                                status_code=status)
    if isinstance(e, (JournalError, ValueError)):
        return JSONResponse({"error": "bad_request", "message": str(e), "hint": None},
                            status_code=400)
    log.exception("internal error in the viewer", exc_info=e)
    return JSONResponse({"error": "internal", "message": "internal error (see the server log)",
                         "hint": None}, status_code=500)


def _int(request: Request, name: str, default: int | None = None, *, lo: int = 0
         ) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, not {raw[:40]!r}") from None
    if value < lo:
        raise BadRequestError(f"{name} must be >= {lo}")
    return value


def _need_int(request: Request, name: str, *, lo: int = 0) -> int:
    value = _int(request, name, lo=lo)
    if value is None:
        raise BadRequestError(f"parameter {name} is required")
    return value


def _agent(request: Request) -> str:
    return str(request.path_params["agent_id"])


def _json(data: Any) -> Response:
    return Response(msgspec.json.encode(data), media_type="application/json")


def _raw(data: bytes) -> Response:
    return Response(data, media_type="application/json")


def endpoint(fn: Callable[[Viewer, Request], Any]) -> Callable[[Viewer], Handler]:
    """Turn ``fn(viewer, request) -> data`` (run in a thread) into a Starlette handler."""
    def bind(viewer: Viewer) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                if request.method == "POST":
                    request.state.body = await request.body()
                out = await run_in_threadpool(fn, viewer, request)
            except Exception as e:  # the boundary: every failure becomes a JSON error
                return error_response(e)
            if isinstance(out, Response):
                return out
            return _raw(out) if isinstance(out, bytes) else _json(out)
        return handler
    return bind


@endpoint
def agents(v: Viewer, r: Request) -> Any:
    return {"agents": v.agents(r.query_params.get("q", ""))}


@endpoint
def agent(v: Viewer, r: Request) -> Any:
    return v.agent(_agent(r))


def _filters(r: Request) -> search.Filters:
    q = r.query_params
    kinds = frozenset(k for k in q.get("kind", "").split(",") if k)
    touching = q.get("touching")
    return search.Filters(touching=touching if touching else None, text=q.get("text") or None,
                          regex=q.get("regex") in ("1", "true"), kinds=kinds,
                          since=search.parse_time(q.get("since"), "since"),
                          until=search.parse_time(q.get("until"), "until"))


@endpoint
def steps(v: Viewer, r: Request) -> Any:
    agent_id = _agent(r)
    limit = _int(r, "limit", 200, lo=1) or 200
    before, after = _int(r, "before", lo=1), _int(r, "after", lo=1)
    f = _filters(r)
    if f.active:
        with v.journal(agent_id) as j:
            return search.search(j, f, before=before, limit=limit)
    around = _int(r, "around_step", lo=0)
    if around is not None:
        seq = v.seq_of_step(agent_id, around)
        page = v.rows(agent_id, before=seq + limit // 2 + 1, limit=limit)
        page["around_seq"] = seq
        return page
    return v.rows(agent_id, before=before, after=after, limit=limit)


@endpoint
def state(v: Viewer, r: Request) -> Any:
    agent_id, step = _agent(r), _need_int(r, "step")
    path = r.query_params.get("path", "")
    data = v.state(agent_id, step, path)
    if r.query_params.get("download"):
        return Response(msgspec.json.format(msgspec.json.encode(
            msgspec.json.decode(data)["state"]), indent=2), media_type="application/json",
            headers={"Content-Disposition":
                     f'attachment; filename="{agent_id}-step-{step}.json"'})
    return data


@endpoint
def changes(v: Viewer, r: Request) -> Any:
    return v.changes(_agent(r), _need_int(r, "step"))


@endpoint
def compare(v: Viewer, r: Request) -> Any:
    other = r.query_params.get("a_agent") or None
    return v.compare(_agent(r), _need_int(r, "a"), _need_int(r, "b"), other)


@endpoint
def blame(v: Viewer, r: Request) -> Any:
    path = r.query_params.get("path")
    if path is None:
        raise BadRequestError("parameter path is required", hint="a JSON Pointer like /a/0")
    with v.journal(_agent(r)) as j:
        return search.blame(j, path, all_changes=r.query_params.get("all") in ("1", "true"))


@endpoint
def verify(v: Viewer, r: Request) -> Any:
    return v.verify(_agent(r), _int(r, "from", lo=1), _int(r, "to", lo=1))


@endpoint
def integrity(v: Viewer, r: Request) -> Any:
    return v.integrity(_agent(r))


@endpoint
def export(v: Viewer, r: Request) -> Any:
    """The journal, or the steps ``from_step..to_step`` of it, in the export format of
    ``agentjournal export`` (``import`` verifies and imports either)."""
    agent_id = _agent(r)
    lo, hi = _int(r, "from_step"), _int(r, "to_step")
    if lo is not None and hi is not None and hi < lo:
        raise BadRequestError(f"to_step {hi} is before from_step {lo}")
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - streamed below
    try:
        with v.journal(agent_id) as j:
            export_journal(j, out, from_step=lo, to_step=hi)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    name = (f"{agent_id}.export.jsonl" if lo is None and hi is None else
            f"{agent_id}.steps-{lo if lo is not None else 'start'}-"
            f"{hi if hi is not None else 'end'}.export.jsonl")
    return StreamingResponse(_chunks(out), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _chunks(f: Any) -> Iterator[bytes]:
    try:
        while chunk := f.read(1 << 16):
            yield chunk
    finally:
        f.close()


def make_fork(allowed: bool) -> Callable[[Viewer], Handler]:
    """``POST /api/agents/{id}/fork`` with ``{"at_step", "new_id", "state"?}``."""
    @endpoint
    def fork(v: Viewer, r: Request) -> Any:
        if not allowed:
            raise ForbiddenRequestError("forking is off", hint="start the server with "
                                        "'agentjournal serve --allow-fork'")
        body = getattr(r.state, "body", b"")
        try:
            doc = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            raise BadRequestError("the request body is not JSON") from None
        if not isinstance(doc, dict):
            raise BadRequestError("the request body must be a JSON object")
        at, new_id = doc.get("at_step"), doc.get("new_id")
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise BadRequestError("at_step must be a step number")
        if not isinstance(new_id, str):
            raise BadRequestError("new_id must be a string (the new agent's id)")
        parent = v.strict(_agent(r))
        try:
            with parent.fork(at, new_id, snapshot_every=None) as child:
                if "state" in doc:
                    delta.check_json(doc["state"])
                    child.append(doc["state"], meta={"edited_in": "agentjournal serve"})
                step, seq = child.last_step, child.last_seq
        finally:
            parent.close()
        root = v.backend.describe()
        return {"agent_id": new_id, "parent": _agent(r), "at_step": at, "step": step,
                "seq": seq, "resume": {
                    "python": f"Journal({new_id!r}, root={root!r}).resume()",
                    "cli": f"agentjournal --root {root} log {new_id}"}}
    return fork


def stream_handler(viewer: Viewer) -> Handler:
    """``GET /api/agents/{id}/events?from_seq=N``: the live tail (see :mod:`.events`)."""
    async def handler(request: Request) -> Response:
        try:
            agent_id = _agent(request)
            last = request.headers.get("last-event-id", "")
            from_seq = (int(last) + 1 if last.isdigit()
                        else _int(request, "from_seq", 1, lo=1) or 1)
            max_seconds = float(_int(request, "max_seconds", 25, lo=1) or 25)
            await run_in_threadpool(viewer.backend.agent(agent_id, create=False).close)
        except Exception as e:  # the boundary: a bad request is a JSON error
            return error_response(e)
        return StreamingResponse(
            events.stream(viewer, request, agent_id, from_seq, min(max_seconds, 300.0)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    return handler


def routes(viewer: Viewer, *, allow_fork: bool) -> list[Route]:
    """Every ``/api`` route."""
    a = "/api/agents/{agent_id}"
    return [
        Route("/api/agents", agents(viewer)),
        Route(a, agent(viewer)),
        Route(a + "/steps", steps(viewer)),
        Route(a + "/state", state(viewer)),
        Route(a + "/changes", changes(viewer)),
        Route(a + "/compare", compare(viewer)),
        Route(a + "/blame", blame(viewer)),
        Route(a + "/verify", verify(viewer)),
        Route(a + "/integrity", integrity(viewer)),
        Route(a + "/export", export(viewer)),
        Route(a + "/events", stream_handler(viewer)),
        Route(a + "/fork", make_fork(allow_fork)(viewer), methods=["POST"]),
    ]


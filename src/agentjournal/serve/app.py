"""The viewer's ASGI application: routes, static files and the security rules.

Security model (see ``docs/viewer.md``):

- The server is read-only: every method but ``GET``/``HEAD`` is refused, except the fork
  endpoint when the app was created with ``allow_fork=True``.
- A state-changing request must come from the page itself: its ``Origin`` must equal the
  server's own origin, ``Sec-Fetch-Site`` (when the browser sends it) must be ``same-origin``,
  and its body must be ``application/json`` (which an HTML form cannot send).
- The ``Host`` header must name an allowed host (loopback by default), so a web page that
  points its own domain name at 127.0.0.1 (DNS rebinding) cannot read the journals.
- Every response carries a strict Content-Security-Policy: scripts, styles and connections
  only from this server, no inline script, no frames. The page renders every value with
  ``textContent``, never as HTML.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..backends.base import Backend
from . import api
from .model import Viewer

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

STATIC = resources.files("agentjournal.serve") / "static"


def _host_of(value: str) -> str:
    """``[::1]:8765`` -> ``::1``; ``localhost:8765`` -> ``localhost``."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware enforcing the security rules above on every HTTP request."""

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str] | None, allow_fork: bool) -> None:
        self.app = app
        self.hosts = None if hosts is None else {h.lower() for h in hosts}
        self.allow_fork = allow_fork

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._check(scope)
        if problem is not None:
            status, kind, message = problem
            resp = JSONResponse({"error": kind, "message": message, "hint": None},
                                status_code=status)
            await self._send_secured(resp, scope, receive, send)
            return

        started = time.perf_counter()

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Server-Timing: what the browser's devtools (and benchmarks/bench_serve.py)
                # show as this server's own time for the request, without the network.
                took = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS,
                                      (b"server-timing", took)]
            await send(message)

        await self.app(scope, receive, secured)

    async def _send_secured(self, resp: Response, scope: Scope, receive: Receive,
                            send: Send) -> None:
        resp.headers.update({k.decode(): v.decode() for k, v in SECURITY_HEADERS})
        await resp(scope, receive, send)

    def _check(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.hosts is not None and _host_of(host).lower() not in self.hosts:
            return 421, "bad_host", f"host {host[:80]!r} is not served here"
        method = scope["method"]
        if method in ("GET", "HEAD"):
            return None
        if not (self.allow_fork and method == "POST" and scope["path"].endswith("/fork")):
            return 405, "read_only", "this viewer is read-only" + (
                "" if self.allow_fork else " (start it with --allow-fork to fork)")
        origin = headers.get("origin")
        scheme = scope.get("scheme", "http")
        if origin is None or origin != f"{scheme}://{host}":
            return 403, "cross_origin", "cross-origin requests may not change anything"
        if headers.get("sec-fetch-site", "same-origin") != "same-origin":
            return 403, "cross_origin", "cross-site requests may not change anything"
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 415, "bad_content_type", "send the request body as application/json"
        return None


def create_app(backend: Backend, key: bytes | str | None = None, allow_fork: bool = False,
               *, hosts: Iterable[str] | None = LOOPBACK_HOSTS,
               witnesses: Iterable[str] = ()) -> Starlette:
    """The viewer over ``backend``.

    Args:
        backend: the store to show (any backend).
        key: the chain key of keyed journals.
        allow_fork: accept ``POST .../fork`` (from the page's own origin only).
        hosts: the ``Host`` names accepted (None: any; for a server bound beyond loopback).
        witnesses: witness files, or directories of them, to check each agent's history
            against (heads written by ``agentjournal anchor --witness``).

    Example::

        import uvicorn
        from agentjournal.backends import FilesystemBackend
        from agentjournal.serve import create_app

        uvicorn.run(create_app(FilesystemBackend(".agentjournal")), port=8765)
    """
    viewer = Viewer(backend, key, witnesses)
    config = {"version": __version__, "allow_fork": allow_fork, "store": backend.describe(),
              "witnesses": viewer.witnesses.paths}

    async def index(_request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def config_endpoint(_request: Request) -> Response:
        return Response(json.dumps(config), media_type="application/json")

    async def not_found(_request: Request) -> Response:
        return JSONResponse({"error": "not_found", "message": "no such endpoint",
                             "hint": None}, status_code=404)

    routes: list[Any] = [
        Route("/", index),
        Route("/agents/{agent_id}", index),
        Route("/api/config", config_endpoint),
        *api.routes(viewer, allow_fork=allow_fork),
        Route("/api/{rest:path}", not_found, methods=["GET", "HEAD", "POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        viewer.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.viewer = viewer
    app.add_middleware(Guard, hosts=hosts, allow_fork=allow_fork)
    return app

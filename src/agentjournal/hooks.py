"""Hooks around checkpoint saves and resumes, with the seed system's names.

``HookManager.register(event, handler, priority)`` takes a sync or async callable (or an object
with an async ``handle(context)`` method, like the seed's ``BaseHook``) and returns a function
that unregisters it. Handlers run in priority order (lower first; registration order within a
priority), each under a timeout. A handler that raises, returns a failed
:class:`HookResult` or times out is logged and reported in the results; it never breaks or
loses a save.

Sync handlers run in a daemon thread so that their timeout can be enforced without blocking the
event loop; a hung sync handler is abandoned (its thread is left to finish on its own).

Redactors are different: they scrub a state *before* anything is encoded, so they run inline,
in order, and a redactor that fails stops the save with :class:`~agentjournal.RedactionError`
rather than write what it should have scrubbed.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BaseHook",
    "HookContext",
    "HookEvent",
    "HookHandler",
    "HookManager",
    "HookPriority",
    "HookResult",
    "Redactor",
    "apply_redactor",
]

log = logging.getLogger("agentjournal.hooks")


class HookEvent(enum.Enum):
    """Points where hooks run. The checkpoint and resume events are fired by the
    ``StateManager``; the agent-loop events by ``BaseAutonomousAgent``; the others exist for
    seed compatibility and are fired only by user code through :meth:`HookManager.trigger`."""

    PRE_TOOL_USE = "pre_tool_use"
    POST_TOOL_USE = "post_tool_use"
    PRE_AGENT_LOOP = "pre_agent_loop"
    POST_AGENT_LOOP = "post_agent_loop"
    PRE_SPECIALIST_INVOKE = "pre_specialist_invoke"
    POST_SPECIALIST_INVOKE = "post_specialist_invoke"
    PRE_PERMISSION_CHECK = "pre_permission_check"
    POST_PERMISSION_CHECK = "post_permission_check"
    PRE_CHECKPOINT_SAVE = "pre_checkpoint_save"
    POST_CHECKPOINT_SAVE = "post_checkpoint_save"
    PRE_RESUME = "pre_resume"
    POST_RESUME = "post_resume"
    PRE_INTERRUPT = "pre_interrupt"
    POST_INTERRUPT = "post_interrupt"
    PRE_PLAN_GENERATION = "pre_plan_generation"
    POST_PLAN_GENERATION = "post_plan_generation"
    PRE_MEMORY_SAVE = "pre_memory_save"
    POST_MEMORY_SAVE = "post_memory_save"
    PRE_MEMORY_LOAD = "pre_memory_load"
    POST_MEMORY_LOAD = "post_memory_load"


class HookPriority(enum.IntEnum):
    """Execution order: lower runs first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


@dataclass
class HookContext:
    """What a handler receives.

    Attributes:
        event_type: the event.
        agent_id: the agent it concerns.
        timestamp: when the event fired (seconds since the epoch; ``None`` is replaced by
            the time the context is created, as in the seed).
        data: event data; for checkpoint saves ``agent_id``, ``step_number``, ``status``,
            ``timestamp`` and, after the save, ``checkpoint_id``, ``seq`` and ``snapshot``.
        metadata: extra caller data.
        trace_id: one id per trigger, shared by every handler it runs.
    """

    event_type: HookEvent
    agent_id: str
    timestamp: float | None
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None

    def __post_init__(self) -> None:
        # The seed lets callers pass timestamp=None and fills in the time of creation.
        if self.timestamp is None:
            self.timestamp = time.time()


@dataclass
class HookResult:
    """What a handler returns (``None`` counts as success).

    Raises:
        ValueError: ``success=False`` without an ``error`` message.
    """

    success: bool
    data: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.success and self.error is None:
            raise ValueError("an unsuccessful HookResult needs an error message")


@runtime_checkable
class HookHandler(Protocol):
    """An object hook: ``async def handle(self, context) -> HookResult``."""

    async def handle(self, context: HookContext) -> HookResult: ...


class BaseHook:
    """Base class for object hooks (seed compatible): override :meth:`handle`.

    Args:
        name: used in logs and statistics.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(self, context: HookContext) -> HookResult:
        raise NotImplementedError(f"{type(self).__name__}.handle() must be implemented")

    async def on_error(self, error: BaseException, context: HookContext) -> None:
        """Called when :meth:`handle` raised; the default does nothing."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


HandlerFn = Callable[[HookContext], HookResult | None | Awaitable[HookResult | None]]
Redactor = Callable[[dict[str, Any]], dict[str, Any] | None]
"""Takes the state document about to be recorded; returns a scrubbed one (or ``None`` after
scrubbing in place). Replace the fields you scrub rather than editing nested values in place:
the document's lists and dicts are the live state's."""


@dataclass
class _Entry:
    priority: int
    order: int
    handler: Any
    name: str
    timeout: float | None
    is_async: bool


def _name(handler: Any) -> str:
    name = getattr(handler, "name", None)
    if isinstance(name, str):
        return name
    return str(getattr(handler, "__qualname__", type(handler).__name__))


def _is_async(handler: Any) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class HookManager:
    """Registry and runner of hooks.

    Args:
        default_timeout: seconds each handler may take unless registered with its own
            ``timeout`` (default 0.5, as the seed's).
    """

    def __init__(self, default_timeout: float = 0.5) -> None:
        if default_timeout <= 0:
            raise ValueError("default_timeout must be > 0")
        self.default_timeout = default_timeout
        self._hooks: dict[HookEvent, list[_Entry]] = {}
        self._redactors: list[_Entry] = []
        self._order = 0
        self._stats: dict[str, dict[str, Any]] = {}

    # --- registration ----------------------------------------------------------------------
    def register(
        self,
        event_type: HookEvent | str,
        handler: HandlerFn | HookHandler,
        priority: HookPriority | int = HookPriority.NORMAL,
        *,
        timeout: float | None = None,
        name: str | None = None,
    ) -> Callable[[], None]:
        """Run ``handler`` whenever ``event_type`` fires; returns a function that unregisters it.

        Args:
            event_type: a :class:`HookEvent` or its value (``"pre_checkpoint_save"``).
            handler: a sync or async callable taking a :class:`HookContext`, or an object with
                an async ``handle(context)``.
            priority: lower runs first.
            timeout: seconds this handler may take (default: the manager's).
            name: for logs and :meth:`get_stats` (default: the handler's name).

        Raises:
            ValueError: unknown event, or a non-positive timeout.
            TypeError: ``handler`` is not callable and has no ``handle``.
        """
        event = _event(event_type)
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be > 0")
        if isinstance(handler, HookHandler) and not callable(handler):
            target: Any = handler
            is_async = True
        elif callable(handler):
            target = handler
            is_async = _is_async(handler)
        else:
            raise TypeError(f"a hook handler must be callable, not {type(handler).__name__}")
        self._order += 1
        entry = _Entry(int(priority), self._order, target, name or _name(handler), timeout,
                       is_async)
        entries = self._hooks.setdefault(event, [])
        entries.append(entry)
        entries.sort(key=lambda e: (e.priority, e.order))

        def unregister() -> None:
            current = self._hooks.get(event, [])
            if entry in current:
                current.remove(entry)

        return unregister

    def register_hook(self, hook: Any, priority: HookPriority | int = HookPriority.NORMAL
                      ) -> Callable[[], None]:
        """Register an object hook for every event in its ``events`` attribute.

        Returns a function that unregisters it from all of them.

        Raises:
            ValueError: the hook has no ``events`` attribute.
        """
        events = getattr(hook, "events", None)
        if events is None:
            raise ValueError(f"hook {type(hook).__name__} has no 'events' attribute")
        if not isinstance(events, (list, tuple, set)):
            events = [events]
        undo = [self.register(e, hook, priority) for e in events]

        def unregister() -> None:
            for u in undo:
                u()

        return unregister

    def unregister(self, event_type: HookEvent | str, handler: Any = None) -> int:
        """Remove ``handler`` (or every handler when None) from ``event_type``; returns how many."""
        event = _event(event_type)
        current = self._hooks.get(event, [])
        if handler is None:
            self._hooks[event] = []
            return len(current)
        keep = [e for e in current if e.handler is not handler and e.handler != handler]
        self._hooks[event] = keep
        return len(current) - len(keep)

    def register_redactor(self, redactor: Redactor,
                          priority: HookPriority | int = HookPriority.NORMAL
                          ) -> Callable[[], None]:
        """Scrub every state with ``redactor`` before it is encoded; returns an unregister function.

        See :data:`Redactor`. Redactors are sync and run on the saving thread, in priority order.
        """
        if not callable(redactor):
            raise TypeError("a redactor must be callable")
        self._order += 1
        entry = _Entry(int(priority), self._order, redactor, _name(redactor), None, False)
        self._redactors.append(entry)
        self._redactors.sort(key=lambda e: (e.priority, e.order))

        def unregister() -> None:
            if entry in self._redactors:
                self._redactors.remove(entry)

        return unregister

    def has_handlers(self, event_type: HookEvent) -> bool:
        """Whether anything is registered for ``event_type`` (lets callers skip building data)."""
        return bool(self._hooks.get(event_type))

    @property
    def redactors(self) -> list[Redactor]:
        """The registered redactors, in the order they run."""
        return [e.handler for e in self._redactors]

    def registered_hook_names(self) -> set[str]:
        """Names of every registered handler."""
        return {e.name for entries in self._hooks.values() for e in entries}

    def get_stats(self) -> dict[str, dict[str, Any]]:
        """Per handler name: calls, successes, failures, timeouts, total and max duration (ms)."""
        return {k: dict(v) for k, v in self._stats.items()}

    # --- running ---------------------------------------------------------------------------
    async def trigger(
        self,
        event_type: HookEvent | str,
        agent_id: str,
        data: dict[str, Any],
        timeout: float | None = None,
        metadata: dict[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> list[HookResult]:
        """Run every handler of ``event_type`` in order; never raises for a handler's failure.

        Args:
            event_type: the event.
            agent_id: the agent it concerns.
            data: event data, shared by all handlers (one may see another's additions).
            timeout: overrides every handler's timeout for this call.
            metadata: extra data for :attr:`HookContext.metadata`.
            trace_id: default: a fresh uuid.

        Returns:
            One :class:`HookResult` per handler, in the order they ran.
        """
        event = _event(event_type)
        entries = list(self._hooks.get(event, ()))
        if not entries:
            return []
        ctx = HookContext(event_type=event, agent_id=agent_id, timestamp=time.time(),
                          data=data, metadata=metadata or {},
                          trace_id=trace_id or uuid.uuid4().hex)
        results = []
        for e in entries:
            results.append(await self._run(e, ctx, timeout))
        return results

    async def _run(self, e: _Entry, ctx: HookContext, timeout: float | None) -> HookResult:
        limit = timeout if timeout is not None else (e.timeout or self.default_timeout)
        start = time.perf_counter()
        try:
            if not callable(e.handler):  # an object hook
                out = await asyncio.wait_for(e.handler.handle(ctx), limit)
            elif e.is_async:
                out = await asyncio.wait_for(e.handler(ctx), limit)
            else:
                out = await asyncio.wait_for(_in_daemon_thread(e.handler, ctx), limit)
                if inspect.isawaitable(out):
                    out = await asyncio.wait_for(out, limit)
        except asyncio.TimeoutError:
            ms = (time.perf_counter() - start) * 1000
            msg = f"hook {e.name} timed out after {limit:g}s on {ctx.event_type.value}"
            log.error(msg)
            self._stat(e.name, ms, ok=False, timed_out=True)
            return HookResult(success=False, error=msg, duration_ms=ms)
        except Exception as exc:  # noqa: BLE001 - hook isolation: user code must not break a save
            ms = (time.perf_counter() - start) * 1000
            msg = f"hook {e.name} failed on {ctx.event_type.value}: {type(exc).__name__}: {exc}"
            log.error(msg)
            self._stat(e.name, ms, ok=False)
            on_error = getattr(e.handler, "on_error", None)
            if on_error is not None:
                try:
                    res = on_error(exc, ctx)
                    if inspect.isawaitable(res):
                        await asyncio.wait_for(res, limit)
                except Exception as err:  # noqa: BLE001 - same isolation for the error handler
                    log.error("error handler of hook %s failed: %s", e.name, err)
            return HookResult(success=False, error=msg, duration_ms=ms)
        ms = (time.perf_counter() - start) * 1000
        if out is None:
            out = HookResult(success=True)
        elif not isinstance(out, HookResult):
            out = HookResult(success=True, data={"value": out})
        out.duration_ms = ms
        if not out.success:
            log.warning("hook %s reported failure on %s: %s", e.name, ctx.event_type.value,
                        out.error)
        self._stat(e.name, ms, ok=out.success)
        return out

    def redact(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Run the redactors over a state document; returns the (possibly new) document.

        Raises:
            RedactionError: a redactor raised or returned something other than a dict or None.
        """
        for e in self._redactors:
            doc = apply_redactor(e.handler, doc, e.name)
        return doc

    def _stat(self, name: str, ms: float, *, ok: bool, timed_out: bool = False) -> None:
        s = self._stats.setdefault(name, {"call_count": 0, "success_count": 0,
                                          "failure_count": 0, "timeout_count": 0,
                                          "total_duration_ms": 0.0, "max_duration_ms": 0.0})
        s["call_count"] += 1
        s["success_count" if ok else "failure_count"] += 1
        if timed_out:
            s["timeout_count"] += 1
        s["total_duration_ms"] += ms
        s["max_duration_ms"] = max(s["max_duration_ms"], ms)


def apply_redactor(redactor: Redactor, doc: dict[str, Any], name: str | None = None
                   ) -> dict[str, Any]:
    """Run one redactor over a state document; returns the document to record.

    Raises:
        RedactionError: the redactor raised or returned something other than a dict or None.
    """
    from .errors import RedactionError

    name = name or _name(redactor)
    try:
        out = redactor(doc)
    except Exception as exc:
        raise RedactionError(f"redactor {name} failed: {type(exc).__name__}: {exc}",
                             hint="the state was not recorded; fix the redactor") from exc
    if out is None:
        return doc
    if not isinstance(out, dict):
        raise RedactionError(f"redactor {name} returned {type(out).__name__}, not a dict or None")
    return out


def _event(event_type: HookEvent | str) -> HookEvent:
    if isinstance(event_type, HookEvent):
        return event_type
    try:
        return HookEvent(event_type)
    except ValueError:
        raise ValueError(f"unknown hook event {event_type!r}") from None


def _in_daemon_thread(fn: Callable[[HookContext], Any], ctx: HookContext) -> asyncio.Future[Any]:
    """Run ``fn(ctx)`` in a daemon thread; the future resolves on the loop.

    Not the default executor: a hung hook there would block ``asyncio.run`` from exiting.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def done(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def work() -> None:
        try:
            value = fn(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            ok, value = False, exc
        else:
            ok = True
        try:
            loop.call_soon_threadsafe(done, ok, value)
        except RuntimeError:
            pass  # the loop closed while the hook ran: nobody is waiting for it any more

    threading.Thread(target=work, daemon=True, name="agentjournal-hook").start()
    return fut

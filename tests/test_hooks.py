"""Hooks: order, payloads, failing and hanging hooks, unregister, redaction."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from agentjournal import (
    AgentState,
    BaseHook,
    FilesystemStorage,
    HookContext,
    HookEvent,
    HookManager,
    HookPriority,
    HookResult,
    Journal,
    RedactionError,
    StateManager,
)


def manager(tmp_path: Any, hm: HookManager, **kw: Any) -> StateManager:
    kw.setdefault("checkpoint_frequency", 2)
    kw.setdefault("checkpoint_interval", None)
    return StateManager(FilesystemStorage(tmp_path / "store", durability="none"),
                        hook_manager=hm, **kw)


async def save_steps(sm: StateManager, s: AgentState, steps: range) -> None:
    for k in steps:
        s.step_number = k
        s.conversation_history.append({"role": "user", "content": f"m{k}"})
        await sm.save_checkpoint(s)


def test_save_hooks_fire_around_every_save_with_payloads(tmp_path: Any) -> None:
    hm = HookManager()
    seen: list[tuple[str, dict[str, Any]]] = []

    async def pre(ctx: HookContext) -> HookResult:
        seen.append(("pre", dict(ctx.data)))
        return HookResult(success=True)

    def post(ctx: HookContext) -> None:  # a sync handler, returning None
        seen.append(("post", dict(ctx.data)))

    hm.register(HookEvent.PRE_CHECKPOINT_SAVE, pre)
    hm.register("post_checkpoint_save", post)

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            await save_steps(sm, AgentState(agent_id="a"), range(1, 4))

    asyncio.run(main())
    assert [k for k, _ in seen] == ["pre", "post"] * 3
    pre1, post1 = seen[0][1], seen[1][1]
    assert pre1["agent_id"] == "a" and pre1["step_number"] == 1
    assert pre1["status"] == "running" and isinstance(pre1["timestamp"], float)
    assert "checkpoint_id" not in pre1
    assert post1["checkpoint_id"] == "a@0000000001.0000000001" and post1["step_number"] == 1
    assert [d["snapshot"] for k, d in seen if k == "post"] == [False, True, False]
    assert all(d["seq"] > 0 for k, d in seen if k == "post")


def test_priority_then_registration_order(tmp_path: Any) -> None:
    hm = HookManager()
    order: list[str] = []
    for name, prio in (("normal-1", HookPriority.NORMAL), ("low", HookPriority.LOW),
                       ("critical", HookPriority.CRITICAL), ("normal-2", HookPriority.NORMAL)):
        hm.register(HookEvent.POST_CHECKPOINT_SAVE,
                    lambda ctx, n=name: order.append(n), prio)

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            await save_steps(sm, AgentState(agent_id="a"), range(1, 2))

    asyncio.run(main())
    assert order == ["critical", "normal-1", "normal-2", "low"]


def test_a_raising_hook_is_logged_and_the_save_happens(tmp_path: Any,
                                                       caplog: Any) -> None:
    hm = HookManager()
    after: list[int] = []

    async def boom(ctx: HookContext) -> HookResult:
        raise RuntimeError("hook exploded")

    def sync_boom(ctx: HookContext) -> None:
        raise KeyError("sync hook exploded")

    hm.register(HookEvent.PRE_CHECKPOINT_SAVE, boom)
    hm.register(HookEvent.PRE_CHECKPOINT_SAVE, sync_boom)
    hm.register(HookEvent.POST_CHECKPOINT_SAVE, lambda ctx: after.append(ctx.data["seq"]))

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            await save_steps(sm, AgentState(agent_id="a"), range(1, 3))

    with caplog.at_level(logging.ERROR, logger="agentjournal.hooks"):
        asyncio.run(main())
    assert "hook exploded" in caplog.text and "sync hook exploded" in caplog.text
    assert len(after) == 2
    with Journal("a", tmp_path / "store", readonly=True) as j:
        assert j.last_step == 2
    stats = hm.get_stats()
    assert stats["test_a_raising_hook_is_logged_and_the_save_happens.<locals>.boom"][
        "failure_count"] == 2


def test_hanging_hooks_time_out(tmp_path: Any, caplog: Any) -> None:
    hm = HookManager(default_timeout=0.1)
    release = threading.Event()

    async def slow_async(ctx: HookContext) -> None:
        await asyncio.sleep(30)

    def slow_sync(ctx: HookContext) -> None:
        release.wait(30)

    hm.register(HookEvent.PRE_CHECKPOINT_SAVE, slow_async)
    hm.register(HookEvent.POST_CHECKPOINT_SAVE, slow_sync, timeout=0.1)

    async def main() -> list[HookResult]:
        async with manager(tmp_path, hm) as sm:
            await save_steps(sm, AgentState(agent_id="a"), range(1, 3))
            return await hm.trigger(HookEvent.PRE_CHECKPOINT_SAVE, "a", {})

    with caplog.at_level(logging.ERROR, logger="agentjournal.hooks"):
        results = asyncio.run(main())
    release.set()
    assert not results[0].success and "timed out" in (results[0].error or "")
    assert "timed out" in caplog.text
    with Journal("a", tmp_path / "store", readonly=True) as j:
        assert j.last_step == 2


def test_unregister(tmp_path: Any) -> None:
    hm = HookManager()
    calls: list[str] = []
    undo_a = hm.register(HookEvent.POST_CHECKPOINT_SAVE, lambda ctx: calls.append("a"))
    hm.register(HookEvent.POST_CHECKPOINT_SAVE, lambda ctx: calls.append("b"))

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            s = AgentState(agent_id="a")
            await save_steps(sm, s, range(1, 2))
            undo_a()
            undo_a()  # idempotent
            await save_steps(sm, s, range(2, 3))
            assert hm.unregister(HookEvent.POST_CHECKPOINT_SAVE) == 1
            await save_steps(sm, s, range(3, 4))

    asyncio.run(main())
    assert calls == ["a", "b", "b"]


def test_object_hooks_and_seed_style_results() -> None:
    class Audit(BaseHook):
        events = [HookEvent.PRE_RESUME, HookEvent.POST_RESUME]

        def __init__(self) -> None:
            super().__init__("audit")
            self.seen: list[str] = []
            self.errors: list[str] = []

        async def handle(self, context: HookContext) -> HookResult:
            self.seen.append(context.event_type.value)
            if context.data.get("fail"):
                raise ValueError("bad")
            return HookResult(success=True, data={"ok": 1})

        async def on_error(self, error: BaseException, context: HookContext) -> None:
            self.errors.append(str(error))

    hm = HookManager()
    hook = Audit()
    undo = hm.register_hook(hook)
    assert hm.registered_hook_names() == {"audit"}

    async def main() -> None:
        r = await hm.trigger(HookEvent.PRE_RESUME, "a", {})
        assert r[0].success and r[0].data == {"ok": 1}
        r = await hm.trigger(HookEvent.POST_RESUME, "a", {"fail": True})
        assert not r[0].success

    asyncio.run(main())
    assert hook.seen == ["pre_resume", "post_resume"] and hook.errors == ["bad"]
    undo()
    assert hm.registered_hook_names() == set()
    with pytest.raises(ValueError):
        HookResult(success=False)
    with pytest.raises(ValueError):
        hm.register("no_such_event", lambda ctx: None)


def test_resume_hooks(tmp_path: Any) -> None:
    hm = HookManager()
    seen: list[tuple[str, dict[str, Any]]] = []
    hm.register(HookEvent.PRE_RESUME, lambda ctx: seen.append(("pre", dict(ctx.data))))
    hm.register(HookEvent.POST_RESUME, lambda ctx: seen.append(("post", dict(ctx.data))))

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            await save_steps(sm, AgentState(agent_id="a"), range(1, 4))
        async with manager(tmp_path, hm) as sm:
            await sm.resume_from_latest("a")
            await sm.resume_from_latest("nobody")

    asyncio.run(main())
    assert [k for k, _ in seen] == ["pre", "post", "pre", "post"]
    assert seen[1][1]["found"] and seen[1][1]["step_number"] == 3
    assert seen[1][1]["checkpoint_id"] == "a@0000000003.0000000004"
    assert not seen[3][1]["found"]


def test_redaction_scrubs_before_anything_is_encoded(tmp_path: Any) -> None:
    hm = HookManager()

    def scrub(doc: dict[str, Any]) -> dict[str, Any]:
        doc["memory_contents"] = {k: ("[redacted]" if k == "api_key" else v)
                                  for k, v in doc["memory_contents"].items()}
        return doc

    hm.register_redactor(scrub)

    async def main() -> AgentState:
        async with manager(tmp_path, hm, checkpoint_frequency=1,
                           redact=lambda d: None) as sm:
            s = AgentState(agent_id="a")
            s.memory_contents["api_key"] = "sk-SECRET-123"
            await save_steps(sm, s, range(1, 3))
            assert s.memory_contents["api_key"] == "sk-SECRET-123"  # live state untouched
            return await sm.load_checkpoint("a@0000000002")

    loaded = asyncio.run(main())
    assert loaded.memory_contents == {"api_key": "[redacted]"}
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store" / "a").rglob("*") if p.is_file())
    assert b"SECRET" not in raw
    # Snapshots are lz4 frames; decode them to be sure.
    with Journal("a", tmp_path / "store", readonly=True) as j:
        for seq in j.snapshot_seqs():
            assert "SECRET" not in repr(j.load_snapshot(seq).state)


def test_a_failing_redactor_stops_the_save(tmp_path: Any) -> None:
    hm = HookManager()

    def broken(doc: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("cannot scrub")

    undo = hm.register_redactor(broken)

    async def main() -> None:
        async with manager(tmp_path, hm) as sm:
            s = AgentState(agent_id="a")
            s.memory_contents["api_key"] = "sk-SECRET-123"
            with pytest.raises(RedactionError, match="cannot scrub"):
                await sm.save_checkpoint(s)
            undo()
            hm.register_redactor(lambda d: "not a dict")  # type: ignore[arg-type,return-value]
            with pytest.raises(RedactionError, match="not a dict"):
                await sm.save_checkpoint(s)

    asyncio.run(main())
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert b"SECRET" not in raw

"""A :class:`~agentjournal.StateManager` over a user's own seed storage backend.

The seed documented a ``StorageBackend`` protocol (async ``save``, ``load``,
``list_checkpoints``, ``delete``, ``exists``) for custom backends. Such a backend stores whole
states under ids it chooses, so the manager keeps the seed's semantics with it: each save calls
``save(state)``, retention lists and deletes beyond ``retention_count`` after every save,
``resume_from_latest`` loads the newest listed checkpoint, and the snapshot question
(``should_checkpoint``) counts from the last save. Time travel, history, diff and verify need a
journal and raise :class:`~agentjournal.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from .hooks import HookEvent
from .state import AgentState, CheckpointMetadata

if TYPE_CHECKING:
    from .manager import StateManager

__all__ = ["FullStateStore", "is_seed_backend"]

log = logging.getLogger("agentjournal")

_METHODS = ("save", "load", "list_checkpoints", "delete", "exists")


def is_seed_backend(obj: Any) -> bool:
    """Whether ``obj`` has the seed protocol's five async methods."""
    return all(inspect.iscoroutinefunction(getattr(obj, m, None)) for m in _METHODS)


class FullStateStore:
    """The seed's manager logic over a full-state backend (see the module docstring)."""

    def __init__(self, backend: Any, manager: StateManager) -> None:
        self.backend = backend
        self.manager = manager
        self._last: dict[str, tuple[int, float]] = {}

    def should_checkpoint(self, agent_id: str, current_step: int, now: float) -> bool:
        m = self.manager
        step, ts = self._last.get(agent_id, (0, 0.0))
        if m.checkpoint_frequency is not None and current_step - step >= m.checkpoint_frequency:
            return True
        return m.checkpoint_interval is not None and now - ts >= m.checkpoint_interval

    async def save_checkpoint(self, state: AgentState, force: bool) -> str:
        from ._saves import check_state

        agent_id = check_state(state)
        now = time.time()
        self._last[agent_id] = (state.step_number, now)
        hm = self.manager.hook_manager
        if hm is not None and hm.has_handlers(HookEvent.PRE_CHECKPOINT_SAVE):
            await hm.trigger(HookEvent.PRE_CHECKPOINT_SAVE, agent_id, {
                "agent_id": agent_id, "step_number": state.step_number,
                "status": state.status, "timestamp": now}, metadata={"state": state})
        cid = str(await self.backend.save(state))
        if hm is not None and hm.has_handlers(HookEvent.POST_CHECKPOINT_SAVE):
            await hm.trigger(HookEvent.POST_CHECKPOINT_SAVE, agent_id, {
                "agent_id": agent_id, "checkpoint_id": cid, "step_number": state.step_number,
                "status": state.status, "timestamp": now}, metadata={"state": state})
        try:
            await self.cleanup_old_checkpoints(agent_id)
        except Exception as e:  # noqa: BLE001 - the seed: cleanup never fails a save
            log.warning("checkpoint cleanup for %s failed: %s", agent_id, e)
        return cid

    async def cleanup_old_checkpoints(self, agent_id: str) -> int:
        keep = self.manager.retention_count
        if keep is None:
            return 0
        listed = await self.backend.list_checkpoints(agent_id=agent_id)
        deleted = 0
        for meta in listed[keep:]:
            try:
                await self.backend.delete(meta.checkpoint_id)
                deleted += 1
            except Exception as e:  # noqa: BLE001 - the seed logs and goes on
                log.error("could not delete checkpoint %s: %s", meta.checkpoint_id, e)
        return deleted

    async def load_checkpoint(self, checkpoint_id: str) -> AgentState:
        state: AgentState = await self.backend.load(checkpoint_id)
        return state

    async def latest(self, agent_id: str) -> AgentState | None:
        listed = await self.backend.list_checkpoints(agent_id=agent_id)
        if not listed:
            return None
        return await self.load_checkpoint(listed[0].checkpoint_id)

    async def list_checkpoints(self, agent_id: str | None) -> list[CheckpointMetadata]:
        listed: list[CheckpointMetadata] = await self.backend.list_checkpoints(agent_id=agent_id)
        return listed

    async def fork_from_checkpoint(self, checkpoint_id: str,
                                   new_agent_id: str | None) -> AgentState:
        forked = copy.deepcopy(await self.backend.load(checkpoint_id))
        forked.checkpoint_id = f"ckpt_{uuid.uuid4().hex[:12]}"
        forked.parent_checkpoint_id = checkpoint_id
        if new_agent_id is not None:
            forked.agent_id = new_agent_id
        await self.backend.save(forked)
        return forked  # type: ignore[no-any-return]

    async def get_checkpoint_tree(self, agent_id: str) -> dict[str, list[str]]:
        tree: dict[str, list[str]] = {}
        for meta in await self.backend.list_checkpoints(agent_id=agent_id):
            if meta.parent_checkpoint_id:
                tree.setdefault(meta.parent_checkpoint_id, []).append(meta.checkpoint_id)
        return tree

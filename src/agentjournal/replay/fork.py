"""Forking: a new journal that starts from another one's state at a step, linked to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend
from ..errors import JournalExistsError
from ..snapshot.store import state_copy

if TYPE_CHECKING:
    from .journal import Journal


def _has_journal(backend: Backend, agent_id: str) -> bool:
    if not backend.exists(agent_id):
        return False
    store = backend.agent(agent_id, create=False)
    try:
        return bool(store.list_segments())
    finally:
        store.close()


def fork_journal(parent: Journal, at_step: int, new_agent_id: str,
                 open_journal: Callable[..., Journal], **options: Any) -> Journal:
    """See :meth:`Journal.fork`; ``open_journal`` is the :class:`Journal` class."""
    seq = parent.seq_of_step(at_step)
    state, seq, step, doc = parent.materialize(seq)
    if doc is not None and doc.seq == seq:
        parent_hash = doc.chain_hash  # the record itself may have been pruned
    else:
        parent_hash = next(iter(parent.records(seq, seq))).h
    if _has_journal(parent.backend, new_agent_id):
        raise JournalExistsError(f"agent {new_agent_id!r} already has a journal",
                                 hint="choose another id for the fork")
    options.setdefault("key", parent.key)
    options.setdefault("compress", parent.compress)
    new = open_journal(new_agent_id, backend=parent.backend, **options)
    try:
        core = new._core
        with core.lock:
            w = core.check_writable()
            if w.last_seq != 0:
                # Checked again under the new journal's writer lock: another process forked
                # to the same id between the first check and our open.
                raise JournalExistsError(f"agent {new_agent_id!r} already has a journal",
                                         hint="choose another id for the fork")
            core.ensure_shadow()
            w.append_fork([{"op": "replace", "path": "", "value": state}], step=step,
                          parent=parent.agent_id, parent_seq=seq, parent_step=step,
                          parent_hash=parent_hash)
            core.shadow, core.shadow_seq = state_copy(state), w.last_seq
            new.snapshot()
    except BaseException:
        new.close()
        raise
    return new

"""Forking: a new journal that starts from another one's state at a step, linked to it.

The fork record sets the whole state in one ``replace`` op. A state too big for one record
(legal: built from small steps, it can outgrow :data:`~agentjournal.journal.reader.
MAX_RECORD_BYTES`) goes into the new journal's first snapshot instead, and the fork record
says so (``in_snapshot``). A fork that fails leaves no target behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend
from ..errors import JournalExistsError, LimitExceededError, StepNotFoundError
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
        rec = next(iter(parent.records(seq, seq)), None)
        if rec is None:  # pruned or cut between the lookup and this read
            raise StepNotFoundError(f"record {seq} of {parent.agent_id!r} (step {at_step}) is "
                                    "no longer in the journal", seq=seq,
                                    hint="fork from a later step")
        parent_hash = rec.h
    backend = parent.backend
    if _has_journal(backend, new_agent_id):
        raise JournalExistsError(f"agent {new_agent_id!r} already has a journal",
                                 hint="choose another id for the fork")
    created = not backend.exists(new_agent_id)
    options.setdefault("key", parent.key)
    options.setdefault("compress", parent.compress)
    new = open_journal(new_agent_id, backend=backend, **options)
    wrote = False
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
            def fork_record(ops: list[dict[str, Any]], in_snapshot: bool) -> None:
                w.append_fork(ops, step=step, parent=parent.agent_id, parent_seq=seq,
                              parent_step=step, parent_hash=parent_hash,
                              in_snapshot=in_snapshot)

            try:
                fork_record([{"op": "replace", "path": "", "value": state}], False)
            except LimitExceededError:
                # Too big for one record (nothing was written): the state goes into the
                # snapshot written next, which becomes part of the history.
                fork_record([], True)
            wrote = True
            core.set_shadow(state_copy(state), w.last_seq)
            new.snapshot()
    except BaseException:
        new.close()
        if wrote or created:
            _discard(backend, new_agent_id, wrote)
        raise
    return new


def _discard(backend: Backend, agent_id: str, wrote: bool) -> None:
    """Remove what a failed fork wrote (best effort: the fork already failed)."""
    if wrote:
        try:
            store = backend.agent(agent_id, create=False)
        except OSError:
            return
        try:
            store.lock()  # another writer may have taken it once ours was released
            for snap in store.list_snapshots():
                store.delete_snapshot(snap)
            for first, _ in store.list_segments():
                store.delete_segment(first)
        except OSError:
            return
        finally:
            store.close()
    discard = getattr(backend, "discard_empty", None)
    if discard is not None:
        with contextlib.suppress(OSError):
            discard(agent_id)

"""The viewer's only contact with engine pieces that are not (yet) on the ``Journal`` facade.

Everything else in :mod:`agentjournal.serve` uses the public :class:`~agentjournal.Journal`
API. Three things are needed that it does not offer yet, and they live here so that they move
in one place when the engine's structure changes:

- the incremental follower of ``agentjournal log --follow`` (:class:`LiveTail`);
- which agents have a writer now (``writer_pids``, read once per listing);
- the stored size of each snapshot.
"""

from __future__ import annotations

import os
from typing import Protocol

from ..backends.base import Backend
from ..cli.follow import Tail
from ..events import AnyRecord


class _WriterPids(Protocol):
    def writer_pids(self, agent_ids: list[str] | None = None) -> dict[str, int]: ...


def writer_pids(backend: Backend, agent_ids: list[str]) -> dict[str, int]:
    """Agents whose writer lock is held now, with the holder's pid (one look for all)."""
    probe = getattr(backend, "writer_pids", None)
    if probe is None:
        return {}
    return dict(probe(agent_ids))


def snapshot_sizes(backend: Backend, agent_id: str, seqs: list[int]) -> dict[int, int | None]:
    """Bytes each snapshot takes in the store (None when unknown or gone).

    A filesystem store reports file sizes without reading the files; other backends are
    asked for nothing (reading every snapshot of an agent to measure it would be the slow
    path the viewer must not take).
    """
    store = backend.agent(agent_id, create=False)
    try:
        out: dict[int, int | None] = {}
        for seq in seqs:
            where = store.location("snapshot", seq)
            size: int | None = None
            if os.path.isabs(where):
                try:
                    size = os.stat(where, follow_symlinks=False).st_size
                except OSError:
                    pass
            out[seq] = size
        return out
    finally:
        store.close()


class LiveTail:
    """New records of one agent as a writer in any process appends them.

    Args:
        backend: the store.
        agent_id: the agent to follow.
        key: its chain key, for a keyed journal.
        from_seq: the first seq wanted.

    Only whole, chain-verified records come out, in seq order, each once.
    """

    def __init__(self, backend: Backend, agent_id: str, key: bytes | None, *,
                 from_seq: int) -> None:
        self._store = backend.agent(agent_id, create=False)
        self._tail = Tail(self._store, key, from_seq=from_seq)

    @property
    def next_seq(self) -> int:
        """The seq the next record returned will have."""
        return self._tail.next_seq

    def poll(self) -> list[AnyRecord]:
        """Records written since the last call (maybe none)."""
        return self._tail.poll()

    def close(self) -> None:
        """Release the store handle."""
        self._store.close()

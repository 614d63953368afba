"""The viewer's contact with engine pieces below the ``Journal`` facade, in one place.

Everything else in :mod:`agentjournal.serve` uses the public :class:`~agentjournal.Journal`
API. Four things come from the backend and the journal layer:

- the incremental follower of ``agentjournal log --follow`` (:class:`LiveTail`, over
  :class:`agentjournal.journal.follow.Tail`);
- which agents have a writer now (``backend.lock_holders()``, read once per listing);
- the stored size of each snapshot (``store.snapshot_bytes``);
- which directory holds an agent's journal (to notice one removed and made again).
"""

from __future__ import annotations

import os

from ..backends.base import Backend
from ..backends.filesystem import FilesystemBackend
from ..events import AnyRecord
from ..journal.follow import Tail


def writer_pids(backend: Backend, agent_ids: list[str]) -> dict[str, int]:
    """Agents (of ``agent_ids``) whose writer lock is held now, with the holder's pid."""
    held = backend.lock_holders()  # one look for the whole store
    return {a: held[a] for a in agent_ids if a in held}


def store_identity(backend: Backend, agent_id: str) -> tuple[int, int] | None:
    """What tells one journal of ``agent_id`` from another made later under the same id
    (the agent's directory, for the filesystem backend); None when unknown or absent.

    A journal removed and recorded again (a demo run twice, an import after ``rm -r``)
    must not be shown through handles and caches of the one before.
    """
    if not isinstance(backend, FilesystemBackend):
        return None
    try:
        st = os.stat(os.path.join(backend.root, agent_id))
    except OSError:
        return None
    return st.st_dev, st.st_ino


def snapshot_sizes(backend: Backend, agent_id: str, seqs: list[int]) -> dict[int, int | None]:
    """Bytes each snapshot takes in the store (None when unknown or gone).

    Sizes come from the store's metadata; no snapshot is read to measure it.
    """
    store = backend.agent(agent_id, create=False)
    try:
        out: dict[int, int | None] = {}
        for seq in seqs:
            try:
                out[seq] = store.snapshot_bytes(seq)
            except OSError:
                out[seq] = None
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

    @property
    def wakes(self) -> bool:
        """Whether the store offers wake-ups (see :meth:`Tail.wait`)."""
        return self._tail.wakes

    def wait(self, timeout: float) -> bool:
        """Wait for a wake-up of the store or ``timeout`` seconds (poll next either way)."""
        return self._tail.wait(timeout)

    def close(self) -> None:
        """Release the store handle."""
        self._store.close()

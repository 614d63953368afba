"""The one check of a snapshot against the journal's chain.

A snapshot is a cache, never the truth: it may be used only when it is the snapshot of this
agent at this seq, its ``chain_hash`` is the hash of record ``seq`` in the journal, and (when
the journal recorded one) the digest of its content equals the one in the ``snapshot`` record
written right after it. Replay, retention and verify all ask this one function.
"""

from __future__ import annotations

from .store import SnapshotDoc


def snapshot_mismatch(doc: SnapshotDoc, *, agent_id: str, seq: int, chain_at: str | None,
                      digest: str | None = None, recorded_digest: str | None = None
                      ) -> str | None:
    """Why the snapshot ``doc`` stored at ``seq`` may not be used, or None when it may.

    Args:
        doc: the decoded snapshot.
        agent_id: the journal's agent.
        seq: the seq the snapshot is stored under.
        chain_at: the hash of record ``seq`` as the journal has it (the record's own ``h``, or
            the ``prev`` of the record after it when the record itself was pruned); None when
            the journal holds neither.
        digest: the digest of the snapshot's content, when it was computed.
        recorded_digest: the digest the journal's ``snapshot`` record gives, when there is one.
    """
    if doc.seq != seq or doc.agent_id != agent_id:
        return f"snapshot holds agent {doc.agent_id!r} seq {doc.seq}"
    if chain_at is None:
        return f"snapshot refers to record {seq}, which is not in the journal"
    if chain_at != doc.chain_hash:
        return f"snapshot chain hash does not match record {seq}"
    if digest is not None and recorded_digest is not None and digest != recorded_digest:
        return "snapshot content differs from the digest recorded in the journal"
    return None

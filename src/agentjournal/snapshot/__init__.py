"""Full-state snapshots: a cache that bounds replay, never the source of truth."""

from .store import SnapshotDoc, decode_snapshot, encode_snapshot

__all__ = ["SnapshotDoc", "decode_snapshot", "encode_snapshot"]

"""Resume, time travel and verification over an agent's journal."""

from .journal import Appended, Journal, Resumed, SnapshotSkippedWarning

__all__ = ["Appended", "Journal", "Resumed", "SnapshotSkippedWarning"]

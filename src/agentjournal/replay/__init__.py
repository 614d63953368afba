"""Resume, time travel and verification over an agent's journal."""

from .journal import Journal
from .results import Appended, Resumed, SnapshotSkippedWarning

__all__ = ["Appended", "Journal", "Resumed", "SnapshotSkippedWarning"]

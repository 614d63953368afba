"""Resume, time travel and verification over an agent's journal."""

from .journal import Journal
from .results import Appended, Head, Resumed, SnapshotSkippedWarning

__all__ = ["Appended", "Head", "Journal", "Resumed", "SnapshotSkippedWarning"]

"""Ask the history: ``blame``, ``touching``, ``grep``, ``state_at_time`` and ``bisect``.

Queries over one agent's journal, built on the public :class:`~agentjournal.Journal` API only
(records, segments, ``state_at``). The journal is passed in: this package imports the replay
layer for type checking only (a forked journal's parent is opened as ``type(journal)(...)``), so
it depends on nothing above ``errors``, ``events`` and ``delta`` and may sit below ``replay``,
which then delegates to it without an upward import.

``touching`` and ``grep`` stream the records without replaying any state; ``blame`` replays
segment by segment from the newest; ``bisect`` binary-searches the steps for a monotone
predicate. The same functions are methods of :class:`~agentjournal.Journal`
(``journal.blame(...)`` ...) and commands of the CLI.
"""

from .bisect import BisectResult, bisect
from .blame import Blame, HistoryStart, Write, blame
from .pointers import MISSING
from .predicate import Predicate, compile_predicate
from .search import Match, grep, records_in_range, touching
from .timetravel import When, parse_time, record_at_time, state_at_time, to_epoch

__all__ = [
    "MISSING",
    "BisectResult",
    "Blame",
    "HistoryStart",
    "Match",
    "Predicate",
    "When",
    "Write",
    "bisect",
    "blame",
    "compile_predicate",
    "grep",
    "parse_time",
    "record_at_time",
    "records_in_range",
    "state_at_time",
    "to_epoch",
    "touching",
]

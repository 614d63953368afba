"""The history queries as methods of :class:`~agentjournal.Journal` (thin wrappers).

:mod:`agentjournal.query` sits in a layer below ``replay`` and uses only the public methods of
the journal it is handed; this mixin gives ``Journal`` its query methods without the facade
module growing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from .. import query as _query
from ..query import BisectResult, Blame, Match, When
from .results import Head

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["QueryMethods"]


class QueryMethods:
    """``check_head``, ``blame``, ``touching``, ``grep``, ``state_at_time`` and ``bisect`` on a
    journal."""

    def _as_journal(self) -> Journal:
        return cast("Journal", self)  # mixed into Journal only

    def check_head(self, head: Head) -> str | None:
        """Why this journal does not reach or match ``head`` (None when it does)."""
        j = self._as_journal()
        if head.agent_id != j.agent_id:
            return f"the head is of agent {head.agent_id!r}, not {j.agent_id!r}"
        if head.seq <= 0:
            return None
        last = j.last_seq
        if last < head.seq:
            return (f"the journal ends at seq {last}, before the anchored head at seq "
                    f"{head.seq}: records were cut off or the store was rolled back")
        rec = next(iter(j.records(head.seq, head.seq)), None)
        if rec is None:
            return (f"record {head.seq} of the anchored head was pruned, so the head cannot be "
                    "checked: anchor again after compaction")
        if rec.h != head.hash:
            return (f"record {head.seq} is not the one anchored (another hash): the history "
                    "was rewritten")
        return None

    def blame(self, pointer: str, *, all: bool = False, children: bool = True) -> Blame:
        """Which step last wrote ``pointer`` (see :func:`agentjournal.query.blame`)."""
        return _query.blame(self._as_journal(), pointer, all=all, children=children)

    def touching(self, prefix: str, *, start: int | None = None, end: int | None = None,
                 since: When | None = None, until: When | None = None,
                 limit: int | None = None, reverse: bool = False) -> Iterator[Match]:
        """Records with an op at, under or above ``prefix``
        (see :func:`agentjournal.query.touching`)."""
        return _query.touching(self._as_journal(), prefix, start=start, end=end,
                               since=since, until=until, limit=limit, reverse=reverse)

    def grep(self, pattern: str, *, regex: bool = False, ignore_case: bool = False,
             under: str | None = None, start: int | None = None, end: int | None = None,
             since: When | None = None, until: When | None = None, limit: int | None = None,
             reverse: bool = False) -> Iterator[Match]:
        """Records whose op values hold ``pattern`` (see :func:`agentjournal.query.grep`)."""
        return _query.grep(self._as_journal(), pattern, regex=regex,
                           ignore_case=ignore_case, under=under, start=start, end=end,
                           since=since, until=until, limit=limit, reverse=reverse)

    def state_at_time(self, when: When) -> tuple[int, Any]:
        """``(step, state)`` as of a wall-clock time
        (see :func:`agentjournal.query.state_at_time`)."""
        return _query.state_at_time(self._as_journal(), when)

    def bisect(self, expr: str, *, monotone: bool | None = None,
               progress: Callable[[int, int], None] | None = None) -> BisectResult:
        """The first step at which a predicate holds (see :func:`agentjournal.query.bisect`)."""
        return _query.bisect(self._as_journal(), expr, monotone=monotone,
                             progress=progress)

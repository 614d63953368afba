"""One-line summaries of what a record changed (``agentjournal log``, history entries, the demo).

Seed-style agent states (``conversation_history``, ``budget_spent_usd``, ``status``,
``memory_contents``, ``pending_actions``/``completed_actions``, ``tool_usage_counts`` ...) get
readable phrases such as ``+1 message (assistant), budget 0.12→0.15``; any other change is
listed generically as ``2 ops: /a, /b/c``. Old values (and the names of removed items) come
from the state before the record, when it is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import delta
from .errors import InvalidPatchError
from .events import Anchor, AnyRecord, Cut, Fork, SnapshotMark, Step

_UNKNOWN: Any = object()
UNKNOWN: Any = _UNKNOWN
"""Pass as ``before`` when the state before a record is not known (old values are omitted)."""

_MESSAGE_LISTS = ("conversation_history", "messages")
_ACTION_LISTS = {"pending_actions": "pending action", "completed_actions": "completed action"}
_SCALARS = {"budget_spent_usd": "budget", "status": "status", "model": "model"}
_QUIET = frozenset({"step_number", "checkpoint_id", "timestamp", "updated_at", "last_updated"})
"""Fields that change every step: mentioned only when nothing else changed."""
_MAX_NAMES = 3


def _lookup(state: Any, tokens: list[str]) -> Any:
    cur = state
    for t in tokens:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            return _UNKNOWN
    return cur


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return f"{round(value, 6):g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _short(value)
    return "{…}" if isinstance(value, dict) else "[…]"


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _listing(names: list[str]) -> str:
    return ", ".join(names[:_MAX_NAMES]) + ("…" if len(names) > _MAX_NAMES else "")


def _name_of(item: Any) -> str | None:
    if isinstance(item, str):
        return _short(item)
    if isinstance(item, dict):
        for k in ("name", "action", "tool", "title", "type", "id"):
            v = item.get(k)
            if isinstance(v, str):
                return _short(v)
    return None


def _role_of(item: Any) -> str | None:
    r = item.get("role") if isinstance(item, dict) else None
    return r if isinstance(r, str) else None


class _ListChange:
    """Adds, removes and edits of one list-valued field, replayed on a shallow copy."""

    def __init__(self, before: Any) -> None:
        # Copied only when an item is removed or inserted: appending to a long conversation
        # must not cost its length.
        self._before: list[Any] | None = before if isinstance(before, list) else None
        self._items: list[Any] | None = None
        self.added: list[Any] = []
        self.removed: list[Any] = []
        self.edited: list[str] = []
        self.replaced: Any = _UNKNOWN
        self._appended: list[Any] = []

    def _take_appended(self) -> list[Any]:
        out, self._appended = self._appended, []
        return out

    @property
    def items(self) -> list[Any] | None:
        """The field's items as the ops so far left them (None when unknown)."""
        if self._items is None and self._before is not None:
            self._items = list(self._before)
        return self._items

    @items.setter
    def items(self, value: list[Any] | None) -> None:
        self._items, self._before = value, None

    def apply(self, name: str, tokens: list[str], value: Any) -> None:
        """Account for one op on this field (``tokens`` start with the field)."""
        if len(tokens) == 1:
            if name == "remove":
                self.removed.extend(self.items or [])
                self.items = []
            elif self.items is None and isinstance(value, list):
                self.added.extend(value)  # the field is new: its items are added
                self.items = list(value)
            else:
                self.replaced, self.items = value, (list(value) if isinstance(value, list)
                                                    else None)
            return
        idx = tokens[1]
        if len(tokens) == 2 and name == "add":
            self.added.append(value)
            if self._items is None and self._before is not None and idx == "-":
                self._appended.append(value)  # kept aside: no copy of the list yet
            elif self.items is not None:
                self.items.extend(self._take_appended())
                if idx == "-" or not idx.isdigit():
                    self.items.append(value)
                else:
                    self.items.insert(min(int(idx), len(self.items)), value)
            return
        if len(tokens) == 2 and name == "remove":
            item = _UNKNOWN
            items = self.items
            if items is not None:
                items.extend(self._take_appended())
            if items is not None and idx.isdigit() and int(idx) < len(items):
                item = items.pop(int(idx))
            self.removed.append(item)
            return
        self.edited.append(idx)

    def phrases(self, word: str, describe: Callable[[Any], str | None]) -> list[str]:
        """``+2 messages (user, assistant)``-style phrases; ``describe`` names an item."""
        out = []
        if self.replaced is not _UNKNOWN:
            n = len(self.replaced) if isinstance(self.replaced, (list, dict)) else 0
            out.append(f"{word}s replaced ({_plural(n, word)})")
        for sign, items in (("+", self.added), ("-", self.removed)):
            if items:
                names: list[str] = []
                for i in items:
                    d = describe(i) if i is not _UNKNOWN else None
                    if d and d not in names:
                        names.append(d)
                extra = f" ({_listing(names)})" if names else ""
                out.append(f"{sign}{_plural(len(items), word)}{extra}")
        if self.edited:
            idx = sorted(set(self.edited), key=lambda s: (len(s), s))
            out.append(f"edited {word} {_listing(idx)}")
        return out


def _initial(ops: list[dict[str, Any]], before: Any) -> str | None:
    """``initial state (N fields)`` for the first record of a journal."""
    if before != {} or not ops:
        return None
    for op in ops:
        path = str(op.get("path", ""))
        if op.get("op") != "add" or path.count("/") != 1:
            return None
    return f"initial state ({_plural(len(ops), 'field')})"


def summarize_ops(ops: list[dict[str, Any]], before: Any = _UNKNOWN) -> str:
    """Describe ``ops`` in one line; ``before`` is the state they apply to, if known."""
    if not ops:
        return "no change"
    first = _initial(ops, before)
    if first is not None:
        return first
    lists: dict[str, _ListChange] = {}
    phrases: list[str] = []
    quiet: list[str] = []
    generic: list[str] = []
    memory: dict[str, int] = {"+": 0, "-": 0, "~": 0}
    memory_keys: list[str] = []
    tools: dict[str, str] = {}
    for op in ops:
        path, name, value = str(op.get("path", "")), str(op.get("op")), op.get("value")
        try:
            tokens = delta.parse_pointer(path)
        except InvalidPatchError:
            generic.append(path)
            continue
        if not tokens:
            n = len(value) if isinstance(value, (dict, list)) else 0
            phrases.append(f"state replaced ({_plural(n, 'field')})")
            continue
        top = tokens[0]
        if top in _MESSAGE_LISTS or top in _ACTION_LISTS:
            if top not in lists:
                lists[top] = _ListChange(_lookup(before, [top]))
            lists[top].apply(name, tokens, value)
        elif top == "memory_contents" and len(tokens) == 1:
            n = len(value) if isinstance(value, (dict, list)) else 1
            if name == "remove":
                phrases.append("memory cleared")
            elif n or _lookup(before, tokens) is not _UNKNOWN:
                phrases.append(f"memory set ({_plural(n, 'entry')})")
        elif top == "memory_contents":
            sign = {"add": "+", "remove": "-"}.get(name, "~") if len(tokens) == 2 else "~"
            memory[sign] += 1
            if tokens[1] not in memory_keys:
                memory_keys.append(tokens[1])
        elif top == "tool_usage_counts" and len(tokens) == 2:
            old = _lookup(before, tokens)
            if isinstance(value, int) and isinstance(old, int) and old <= value:
                tools[tokens[1]] = f"{tokens[1]} +{value - old}"
            elif isinstance(value, int) and old is _UNKNOWN and name == "add":
                tools[tokens[1]] = f"{tokens[1]} +{value}"
            else:
                tools[tokens[1]] = tokens[1]
        elif len(tokens) == 1 and (top in _SCALARS or top in _QUIET):
            label = _SCALARS.get(top, top)
            old = _lookup(before, tokens)
            if name == "remove":
                text = f"{label} removed"
            elif old is _UNKNOWN or name == "add":
                text = f"{label} {_fmt(value)}"
            else:
                text = f"{label} {_fmt(old)}→{_fmt(value)}"
            (quiet if top in _QUIET else phrases).append(text)
        else:
            generic.append(path)

    for top, c in lists.items():
        if top in _MESSAGE_LISTS:
            phrases[:0] = c.phrases("message", _role_of)
        else:
            phrases.extend(c.phrases(_ACTION_LISTS[top], _name_of))
    if any(memory.values()):
        parts = " ".join(f"{s}{n}" for s, n in memory.items() if n)
        phrases.append(f"memory {parts} ({_listing(memory_keys)})")
    if tools:
        phrases.append(f"tools {_listing(list(tools.values()))}")
    if generic:
        label = "other op" if phrases else "op"
        phrases.append(f"{'+' if phrases else ''}{_plural(len(generic), label)}: "
                       f"{_listing(generic)}")
    return ", ".join(phrases or quiet)


def summarize(rec: AnyRecord, before: Any = _UNKNOWN) -> str:
    """Describe what one record is or changed, in one line."""
    if isinstance(rec, Step):
        return summarize_ops(rec.ops, before)
    if isinstance(rec, Fork):
        return f"forked from {rec.parent} at step {rec.parent_step} (seq {rec.parent_seq})"
    if isinstance(rec, SnapshotMark):
        return f"snapshot of the state after seq {rec.at}"
    if isinstance(rec, Anchor):
        return (f"history before seq {rec.first_seq} pruned "
                f"({_plural(len(rec.removed), 'segment')} removed)")
    if isinstance(rec, Cut):
        what = "a torn tail" if rec.reason == "torn_tail" else "damage (repair)"
        return (f"recovery cut {what} of {_plural(rec.size, 'byte')} at byte {rec.offset} "
                f"of segment {rec.segment}; kept in quarantine/{rec.quarantine}")
    return ""  # pragma: no cover - every record kind is handled above

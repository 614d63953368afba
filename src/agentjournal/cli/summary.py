"""One-line summaries of what a record changed, for ``agentjournal log``.

Seed-style agent states (``conversation_history``, ``budget_spent_usd``, ``status``,
``memory_contents``, ``pending_actions``/``completed_actions`` ...) get readable phrases such as
``+1 message (assistant), budget 0.12→0.15``; any other change is listed generically as
``2 ops: /a, /b/c``. Old values come from the state before the record when it is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import delta
from ..errors import InvalidPatchError
from ..events import Anchor, AnyRecord, Fork, SnapshotMark, Step

_UNKNOWN = object()

_MESSAGE_LISTS = ("conversation_history", "messages")
_SCALARS = {"budget_spent_usd": "budget", "status": "status", "current_plan": "plan",
            "plan": "plan"}
_QUIET = frozenset({"step_number", "updated_at", "timestamp", "last_updated"})
"""Fields that change every step: mentioned only when nothing else changed."""
_ACTION_LISTS = {"pending_actions": "pending action", "completed_actions": "completed action"}
_MAX_PATHS = 3


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


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return f"{round(value, 6):g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= 24 else value[:23] + "…"
    return "{…}" if isinstance(value, dict) else "[…]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _name_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item if len(item) <= 24 else item[:23] + "…"
    if isinstance(item, dict):
        for k in ("name", "action", "tool", "type", "id"):
            v = item.get(k)
            if isinstance(v, str):
                return v if len(v) <= 24 else v[:23] + "…"
    return None


class _Counter:
    """Adds and removes of items in one list-valued field."""

    def __init__(self) -> None:
        self.added: list[Any] = []
        self.removed = 0
        self.edited: list[str] = []
        self.replaced: Any = _UNKNOWN


def _list_phrases(word: str, c: _Counter, describe: Callable[[list[Any]], str]) -> list[str]:
    out = []
    if c.replaced is not _UNKNOWN:
        n = len(c.replaced) if isinstance(c.replaced, (list, dict)) else 0
        out.append(f"{word}s replaced ({_plural(n, word)})")
    if c.added:
        extra = describe(c.added)
        out.append(f"+{_plural(len(c.added), word)}" + (f" ({extra})" if extra else ""))
    if c.removed:
        out.append(f"-{_plural(c.removed, word)}")
    if c.edited:
        idx = sorted(set(c.edited), key=lambda s: (len(s), s))
        out.append(f"edited {word} {', '.join(idx[:_MAX_PATHS])}"
                   + ("…" if len(idx) > _MAX_PATHS else ""))
    return out


def _roles(items: list[Any]) -> str:
    roles: list[str] = []
    for m in items:
        r = m.get("role") if isinstance(m, dict) else None
        if isinstance(r, str) and r not in roles:
            roles.append(r)
    return ", ".join(roles)


def _names(items: list[Any]) -> str:
    names = [n for n in (_name_of(i) for i in items) if n]
    return ", ".join(names[:_MAX_PATHS]) + ("…" if len(names) > _MAX_PATHS else "")


def summarize_ops(ops: list[dict[str, Any]], before: Any = _UNKNOWN) -> str:
    """Describe ``ops`` in one line; ``before`` is the state they apply to, if known."""
    if not ops:
        return "no change"
    lists: dict[str, _Counter] = {}
    phrases: list[str] = []
    quiet: list[str] = []
    generic: list[str] = []
    memory: dict[str, int] = {"+": 0, "-": 0, "~": 0}
    memory_keys: list[str] = []
    for op in ops:
        path = str(op.get("path", ""))
        name = op.get("op")
        try:
            tokens = delta.parse_pointer(path)
        except InvalidPatchError:
            generic.append(path)
            continue
        if not tokens:
            value = op.get("value")
            n = len(value) if isinstance(value, (dict, list)) else 0
            phrases.append(f"state replaced ({_plural(n, 'field')})")
            continue
        top = tokens[0]
        if top in _MESSAGE_LISTS or top in _ACTION_LISTS:
            c = lists.setdefault(top, _Counter())
            if len(tokens) == 1:
                value = op.get("value")
                old = _lookup(before, tokens)
                if name == "add" and isinstance(value, list) and old is _UNKNOWN:
                    c.added.extend(value)
                elif name == "remove":
                    c.removed += len(old) if isinstance(old, list) else 1
                else:
                    c.replaced = value
            elif len(tokens) == 2 and name == "add":
                c.added.append(op.get("value"))
            elif len(tokens) == 2 and name == "remove":
                c.removed += 1
            else:
                c.edited.append(tokens[1])
            continue
        if top == "memory_contents":
            if len(tokens) == 1:
                value = op.get("value")
                n = len(value) if isinstance(value, (dict, list)) else 1
                if name == "remove":
                    phrases.append("memory cleared")
                elif n or _lookup(before, tokens) is not _UNKNOWN:
                    phrases.append(f"memory set ({n} {'entry' if n == 1 else 'entries'})")
            else:
                sign = {"add": "+", "remove": "-"}.get(str(name), "~")
                if len(tokens) > 2:
                    sign = "~"
                memory[sign] += 1
                if tokens[1] not in memory_keys:
                    memory_keys.append(tokens[1])
            continue
        if len(tokens) == 1 and (top in _SCALARS or top in _QUIET):
            label = _SCALARS.get(top, top)
            old = _lookup(before, tokens)
            if name == "remove":
                text = f"{label} removed"
            elif old is _UNKNOWN or name == "add":
                text = f"{label} {_fmt(op.get('value'))}"
            else:
                text = f"{label} {_fmt(old)}→{_fmt(op.get('value'))}"
            (quiet if top in _QUIET else phrases).append(text)
            continue
        generic.append(path)

    for top, c in lists.items():
        if top in _MESSAGE_LISTS:
            phrases[:0] = _list_phrases("message", c, _roles)
        else:
            phrases.extend(_list_phrases(_ACTION_LISTS[top], c, _names))
    if any(memory.values()):
        parts = [f"{s}{n}" for s, n in memory.items() if n]
        keys = ", ".join(memory_keys[:_MAX_PATHS]) + ("…" if len(memory_keys) > _MAX_PATHS
                                                      else "")
        phrases.append(f"memory {' '.join(parts)} ({keys})")
    if generic:
        shown = ", ".join(generic[:_MAX_PATHS]) + ("…" if len(generic) > _MAX_PATHS else "")
        if phrases:
            phrases.append(f"+{_plural(len(generic), 'other op')}: {shown}")
        else:
            phrases.append(f"{_plural(len(generic), 'op')}: {shown}")
    if not phrases:
        phrases = quiet
    return ", ".join(phrases)


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
    return ""  # pragma: no cover - every record kind is handled above


UNKNOWN = _UNKNOWN
"""Pass as ``before`` when the state before a record is not known (old values are omitted)."""

"""Ask the history from the terminal: ``blame``, ``grep`` and ``bisect``.

Thin commands over :mod:`agentjournal.query`; ``log --touching/--since/--until`` and
``show --at-time`` use the same functions. Times: local in a terminal, ISO 8601 UTC in JSON.
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from .. import delta
from ..errors import InvalidTimeError
from ..query import (
    MISSING,
    Blame,
    Match,
    Write,
    bisect,
    blame,
    compile_predicate,
    grep,
    parse_time,
)
from ..query.pointers import lookup
from . import schemas
from ._app import (
    get_settings,
    iso_utc,
    json_option,
    local_time,
    plural,
    short_json,
    store_options,
)

# --- shared options ------------------------------------------------------------------------


class TimeParam(click.ParamType):  # type: ignore[type-arg]
    """A point in time on the command line: ISO 8601 (``2026-11-26T10:00Z``, with an offset,
    or local without one) or Unix seconds."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_time(str(value))
        except InvalidTimeError as e:
            self.fail(f"{e.message} ({e.hint})" if e.hint else e.message, param, ctx)


TIME = TimeParam()


def _write_out(w: Write) -> schemas.WriteOut:
    return {"agent_id": w.agent_id, "seq": w.seq, "step": w.step, "ts": w.ts,
            "time": iso_utc(w.ts), "kind": "fork" if w.kind == "fork" else "step",
            "op_index": w.op_index, "op": w.op,  # type: ignore[typeddict-item]
            "path": w.path, "relation": w.relation,
            "value": None if w.value is MISSING else w.value, "has_value": w.value is not MISSING,
            "previous": None if w.previous is MISSING else w.previous,
            "had_previous": w.previous is not MISSING}


def _start_out(b: Blame) -> schemas.HistoryStartOut | None:
    h = b.history_starts_at
    return None if h is None else {"agent_id": h.agent_id, "seq": h.seq, "step": h.step}


def blame_out(b: Blame) -> schemas.BlameOut:
    """The ``blame --json`` document of ``b``."""
    return {"agent_id": b.agent_id, "pointer": b.pointer, "exists": b.exists,
            "value": None if b.value is MISSING else b.value,
            "last": _write_out(b.last) if b.last else None,
            "earlier": [_write_out(w) for w in b.earlier],
            "children": [{"pointer": c.pointer, "last": _write_out(c.last) if c.last else None,
                          "history_starts_at": _start_out(c)} for c in b.children],
            "history_starts_at": _start_out(b), "forks": list(b.forks)}


def _change(w: Write, limit: int | None = 60) -> str:
    new = "(removed)" if w.value is MISSING else short_json(w.value, limit)
    if w.previous is MISSING:
        return new
    return f"{short_json(w.previous, limit)} → {new}"


def _where(w: Write, agent: str) -> str:
    return (f"step {w.step} (#{w.seq}, {local_time(w.ts)})"
            + ("" if w.agent_id == agent else f" in {w.agent_id}"))


# --- blame -----------------------------------------------------------------------------------


@click.command("blame", epilog="""
\b
Examples:
  $ agentjournal blame researcher /budget_spent_usd
  $ agentjournal blame researcher /conversation_history/20/content
  $ agentjournal blame researcher /memory_contents --json
  $ agentjournal blame researcher /status --all
""")
@click.argument("agent")
@click.argument("pointer", metavar="PATH")
@click.option("--all", "every", is_flag=True,
              help="Every write, newest first, not only the last (replays the whole history).")
@click.option("--no-children", is_flag=True,
              help="For an object or array, skip the blame of each member.")
@store_options
@json_option
def blame_cmd(agent: str, pointer: str, every: bool, no_children: bool, as_json: bool) -> None:
    """Which step last wrote PATH (a JSON Pointer) in AGENT's state, with the op and the
    value it replaced.

    Appends (/list/-) and inserts or removals that move list items are resolved, so
    /conversation_history/41/content is blamed on the step that appended message 41. For an
    object or array, each member's last write is listed too. A value that came in with a
    fork is blamed in the parent journal; in a pruned history the output says where the
    retained history starts.
    """
    s = get_settings()
    with s.journal(agent) as j:
        b = blame(j, pointer, all=every, children=not no_children)
    if as_json:
        s.emit_json(blame_out(b))
        return
    head = Text(b.pointer or "(the whole state)", style="bold")
    head.append(" = " + short_json(b.value, 80) if b.exists else "  (not in the latest state)")
    s.out.print(head)
    writes = [w for w in [b.last, *b.earlier] if w is not None]
    if b.last is None:
        s.out.print(Text("  not written in the retained history", style="dim"))
    elif not every:
        w = b.last
        s.out.print(Text(f"  last written at {_where(w, agent)}: {w.op} {w.path}"
                         + (f" ({w.relation})" if w.relation != "self" else "")))
        s.out.print(Text(f"  {_change(w, 100)}", style="dim"))
    else:
        s.out.print(Text(f"  {plural(len(writes), 'write')}, newest first:"))
        s.table([("STEP", "right"), ("SEQ", "right"), ("TIME", "left"), ("OP", "left"),
                 ("PATH", "left"), ("CHANGE", "left")],
                [[str(w.step), f"#{w.seq}", local_time(w.ts), w.op, w.path, _change(w)]
                 for w in writes])
    for agent_id in b.forks:
        s.note(f"followed the fork into {agent_id}")
    if b.history_starts_at is not None:
        h = b.history_starts_at
        s.note(f"history of {h.agent_id} starts at step {h.step} (#{h.seq}): earlier steps "
               "were pruned")
    if b.children:
        s.out.print(Text(f"  {plural(len(b.children), 'member')}:"))
        s.table([("MEMBER", "left"), ("STEP", "right"), ("SEQ", "right"), ("TIME", "left"),
                 ("OP", "left")],
                [[c.pointer, str(c.last.step), f"#{c.last.seq}", local_time(c.last.ts),
                  f"{c.last.op} {c.last.path}"] if c.last else
                 [c.pointer, "-", "-", "-", "before the retained history"]
                 for c in b.children])


# --- grep ------------------------------------------------------------------------------------


def grep_entry(agent_id: str, m: Match) -> schemas.GrepMatch:
    """The ``grep --json`` object of one match."""
    return {"agent_id": agent_id, "seq": m.seq, "step": m.step, "ts": m.ts,
            "time": iso_utc(m.ts), "kind": m.kind,  # type: ignore[typeddict-item]
            "pointers": list(m.pointers), "ops": m.ops}


def _value_at(m: Match, pointer: str) -> Any:
    """The value a match points at, read from the op that holds it (MISSING if none)."""
    for op in m.ops:
        path = str(op.get("path", ""))
        if "value" not in op:
            continue
        if pointer == path:
            return op["value"]
        if pointer.startswith(path + "/"):
            rest = pointer[len(path):]
            return lookup(op["value"], [delta.unescape(t) for t in rest[1:].split("/")])
    return MISSING


@click.command("grep", epilog="""
\b
Examples:
  $ agentjournal grep researcher "message 12"
  $ agentjournal grep researcher "task\\d+" --regex --under /pending_actions
  $ agentjournal grep researcher learned --reverse --limit 2 --json
""")
@click.argument("agent")
@click.argument("pattern")
@click.option("-E", "--regex", is_flag=True, help="PATTERN is a Python regular expression.")
@click.option("-i", "--ignore-case", is_flag=True, help="Ignore case.")
@click.option("--under", metavar="PATH", help="Only values at or under this JSON Pointer.")
@click.option("--from", "start", type=click.IntRange(min=0), metavar="STEP",
              help="First agent step to search.")
@click.option("--to", "end", type=click.IntRange(min=0), metavar="STEP",
              help="Last agent step to search.")
@click.option("--since", type=TIME, metavar="TIME", help="Only records written at or after TIME.")
@click.option("--until", type=TIME, metavar="TIME", help="Only records written at or before TIME.")
@click.option("-n", "--limit", type=click.IntRange(min=1), metavar="N",
              help="At most N matches (the first N; with --reverse the newest N).")
@click.option("-r", "--reverse", is_flag=True, help="Newest first.")
@store_options
@json_option
def grep_cmd(agent: str, pattern: str, regex: bool, ignore_case: bool, under: str | None,
             start: int | None, end: int | None, since: float | None, until: float | None,
             limit: int | None, reverse: bool, as_json: bool) -> None:
    """Steps of AGENT whose changes hold PATTERN: in a string, an object key, or the text of a
    number, true, false or null.

    Only the records' ops are read (no state is rebuilt), so it streams over any history
    length. Each line gives the step, seq, time and where the match is: the op's path followed
    by the path inside its value (an append's index shows as -).
    """
    s = get_settings()
    if start is not None and end is not None and end < start:
        raise click.UsageError(f"--to {end} is before --from {start}")
    n = 0
    with s.journal(agent) as j:
        for m in grep(j, pattern, regex=regex, ignore_case=ignore_case, under=under,
                      start=start, end=end, since=since, until=until, limit=limit,
                      reverse=reverse):
            n += 1
            if as_json:
                s.emit_json(grep_entry(agent, m), indent=None)
                continue
            where = ", ".join(m.pointers[:3]) + (f" (+{len(m.pointers) - 3})"
                                                 if len(m.pointers) > 3 else "")
            found = _value_at(m, m.pointers[0]) if m.pointers else MISSING
            shown = "" if found is MISSING else "  " + short_json(found, 80)
            line = f"{m.step:>6} #{m.seq:<6} {local_time(m.ts)}  {where}{shown}"
            if s.tty:
                t = Text.assemble((f"{m.step:>6}", "bold yellow"), " ", (f"#{m.seq:<6}", "dim"),
                                  " ", (local_time(m.ts), "green"), "  ", where,
                                  (shown, "dim"))
                t.truncate(s.out.width, overflow="ellipsis")
                s.out.print(t)
            else:
                click.echo(line)
    if n == 0 and not as_json:
        s.note("no matches")


# --- bisect ----------------------------------------------------------------------------------


@click.command("bisect", epilog="""
\b
Examples:
  $ agentjournal bisect researcher --where "len(/conversation_history) >= 17"
  $ agentjournal bisect researcher --where "/budget_spent_usd > 0.5" --json
  $ agentjournal bisect researcher --where '/status == "completed"'
  $ agentjournal bisect researcher --where "exists(/memory_contents/fact15)" --linear
""")
@click.argument("agent")
@click.option("-w", "--where", "expr", required=True, metavar="EXPR",
              help="A predicate over the state, e.g. 'len(/conversation_history) >= 100'.")
@click.option("--monotone/--linear", default=None,
              help="Binary search (once true, stays true) or scan every step. Default: "
                   "monotone for counter comparisons (P > n, P >= n, len(P) >= n), else linear.")
@store_options
@json_option
def bisect_cmd(agent: str, expr: str, monotone: bool | None, as_json: bool) -> None:
    """The first step of AGENT at which EXPR holds for the state after it.

    \b
    EXPR compares paths (JSON Pointers), len(PATH), type(PATH) and exists(PATH) with
    numbers, "strings", true, false and null: == != < <= > >= contains matches, combined
    with and, or, not and parentheses. A missing path makes a comparison false.
    A monotone search rebuilds about log2(steps) states (19 for 100k steps); a linear one
    replays the history once, with a progress bar.
    """
    s = get_settings()
    pred = compile_predicate(expr)  # a bad expression fails before the journal is opened
    linear = not (pred.monotone_hint if monotone is None else monotone)
    with s.journal(agent) as j:
        if linear:
            with s.progress("scanning", "records") as update:
                r = bisect(j, pred, monotone=False, progress=update)
        else:
            r = bisect(j, pred, monotone=True)
    if as_json:
        doc: schemas.BisectOut = {
            "agent_id": agent, "where": expr, "found": r.found, "step": r.step, "seq": r.seq,
            "ts": r.ts, "time": iso_utc(r.ts) if r.ts is not None else None, "mode": r.mode,
            "materializations": r.materializations, "evaluations": r.evaluations,
            "first_step": r.first_step, "last_step": r.last_step}
        s.emit_json(doc)
        return
    how = (f"{r.mode} search, {plural(r.materializations, 'state')} rebuilt, "
           f"{plural(r.evaluations, 'test')}")
    if r.step is None or r.ts is None:
        s.out.print(Text(f"never holds in steps {r.first_step}..{r.last_step}"))
    else:
        s.out.print(Text.assemble(("first step: ", ""), (str(r.step), "bold yellow"),
                                  f" (#{r.seq}, {local_time(r.ts)})"))
    s.note(how)

"""Read-only commands: ``ls``, ``show``, ``diff`` and ``stats``.

They open journals read-only: no lock is taken, so they work on a journal that a running
agent is writing, and they never repair anything.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, cast

import click
import msgspec
from rich.json import JSON
from rich.text import Text

from .. import delta, status
from ..errors import JournalError, PathNotFoundError, StepNotFoundError
from ..events import Step
from ..journal.reader import TornTailWarning
from ..query import record_at_time
from ..replay.journal import Journal
from . import schemas
from ._app import (
    Settings,
    get_settings,
    human_bytes,
    iso_utc,
    json_option,
    local_time,
    plural,
    short_json,
    store_options,
)
from .log import OP_STYLE
from .query import TIME

# --------------------------------------------------------------------------------- ls


def ls_row(summary: status.AgentSummary) -> schemas.LsAgent:
    """The ``ls --json`` object of one agent's summary."""
    return {
        "agent_id": summary.agent_id, "steps": summary.steps, "records": summary.records,
        "last_ts": summary.last_ts,
        "last_time": iso_utc(summary.last_ts) if summary.last_ts is not None else None,
        "status": summary.status, "writer_pid": summary.writer_pid,
        "snapshots": summary.snapshots, "segments": summary.segments,
        "bytes": summary.bytes, "health": summary.health, "problem": summary.problem,
        "quarantined": summary.quarantined}


def summarize_agent(s: Settings, agent_id: str, *, full: bool = False,
                    writer: int | None = None) -> status.AgentSummary:
    """Open ``agent_id`` read-only and summarize it (an agent that cannot be opened is a
    row with its health, not an error)."""
    try:
        j = s.journal(agent_id)
    except (JournalError, OSError) as e:
        return status.failed_summary(agent_id, e, keyed=s.key is not None, writer_pid=writer)
    with j, warnings.catch_warnings():
        # The summary's health says "torn tail" already (with the place, in ``problem``).
        warnings.simplefilter("ignore", TornTailWarning)
        return status.agent_summary(j, full=full, writer_pid=writer)


HEALTH_STYLE: dict[status.Health, str] = {
    "ok": "green", "empty": "dim", "torn_tail": "yellow", "key_needed": "bold yellow",
    "wrong_key": "bold red", "wrong_agent": "bold red", "corrupt": "bold red",
    "unreadable": "bold red"}

NARROW = 100
"""Terminals narrower than this get the short time format in ``ls``."""


@click.command("ls", epilog="""
\b
Examples:
  $ agentjournal ls
  $ agentjournal ls --verify --json
""")
@click.option("--verify", "full", is_flag=True,
              help="Verify every journal completely (slower) instead of a quick check.")
@store_options
@json_option
def ls_cmd(full: bool, as_json: bool) -> None:
    """The agents under the store root: steps, last step time, status, snapshots, size and
    health.

    Health is a quick check of the newest segment (ok, empty, torn tail, key needed, wrong
    key, wrong agent, corrupt, unreadable); --verify checks every record and snapshot.
    STATUS is the state's own "status" field; "writing" means a process holds the agent's
    writer lock now.
    """
    s = get_settings()
    backend = s.backend()
    holders = backend.lock_holders()  # one look-up for the whole store, not one per agent
    rows = [ls_row(summarize_agent(s, a, full=full, writer=holders.get(a)))
            for a in backend.list_agents()]
    if as_json:
        doc: schemas.LsOut = {"root": s.where, "agents": rows}
        s.emit_json(doc)
        return
    if not rows:
        s.note(f"no agents under {s.where}")
        return
    narrow = s.tty and s.out.width < NARROW
    cols = [("AGENT", "left"), ("STEPS", "right"), ("LAST STEP", "left"),
            ("STATUS", "left"), ("SNAPSHOTS", "right"), ("SIZE", "right"), ("HEALTH", "left")]
    cells: list[list[str | Text]] = []
    for r in rows:
        state = r["status"] or "-"
        if r["writer_pid"] is not None:
            state = f"writing (pid {r['writer_pid']})" + ("" if state == "-" else f", {state}")
        when = "-" if r["last_ts"] is None else local_time(
            r["last_ts"], "%m-%d %H:%M" if narrow else "%Y-%m-%d %H:%M:%S")
        cells.append([
            Text(r["agent_id"], style="bold"), str(r["steps"]), when, state,
            str(r["snapshots"]), human_bytes(r["bytes"]),
            Text(r["health"].replace("_", " "), style=HEALTH_STYLE[r["health"]])])
    s.table(cols, cells, wrap=(0, 3))
    for r in rows:
        if r["problem"]:
            s.warn(f"{r['agent_id']}: {r['problem']}")
        if r["quarantined"]:
            s.note(f"{r['agent_id']}: recovery cut bytes off this journal "
                   f"{plural(r['quarantined'], 'time')}; they are kept in its quarantine/ "
                   "directory ('agentjournal verify' lists them)", style="yellow")


# --------------------------------------------------------------------------------- show


def resolve_pointer(state: Any, pointer: str) -> Any:
    """The value at JSON Pointer ``pointer`` in ``state``.

    Raises:
        PathNotFoundError: no such path (the hint lists what exists where it stopped).
        click.BadParameter: not a JSON Pointer.
    """
    try:
        tokens = delta.parse_pointer(pointer)
    except JournalError as e:
        raise click.BadParameter(e.message + (f" ({e.hint})" if e.hint else ""),
                                 param_hint="'--path'") from None
    cur = state
    for depth, t in enumerate(tokens):
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
            continue
        if isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
            continue
        here = delta.pointer(tokens[:depth]) or "the root"
        if isinstance(cur, dict):
            keys = ", ".join(sorted(cur)[:10]) + ("…" if len(cur) > 10 else "")
            hint = f"keys at {here}: {keys}" if cur else f"{here} is an empty object"
        elif isinstance(cur, list):
            hint = f"{here} is a list of {len(cur)} items (indexes 0..{len(cur) - 1})"
        else:
            hint = f"{here} is a {type(cur).__name__}, not an object or a list"
        raise PathNotFoundError(f"no {pointer} in the state", hint=hint)
    return cur


def _record_step(j: Journal, seq: int) -> int:
    if seq == 0:
        return 0
    rec = next(iter(j.records(seq, seq)), None)
    if rec is None:
        raise StepNotFoundError(f"seq {seq} is not in the journal", seq=seq)
    return rec.step


class StepOrId(click.ParamType):  # type: ignore[type-arg]
    """``--at``: an agent step (a number), or the ``id`` in a step record's ``meta``."""

    name = "STEP|ID"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        if isinstance(value, int):
            return value
        text = str(value)
        if text.isdigit():
            return int(text)
        if not text or text.startswith("-"):
            self.fail(f"{text!r} is neither a step (0 or more) nor a checkpoint id", param, ctx)
        return text


def seq_of_id(j: Journal, ident: str) -> int:
    """Seq of the last step record whose ``meta.id`` is ``ident`` (a LangGraph checkpoint id).

    Raises:
        StepNotFoundError: no record has that id.
    """
    found = None
    for rec in j.records():
        if isinstance(rec, Step) and rec.meta and rec.meta.get("id") == ident:
            found = rec.seq
    if found is None:
        raise StepNotFoundError(f"no step record has id {ident!r}",
                                hint="ids are listed by 'agentjournal log AGENT'")
    return found


def state_for(j: Journal, step: int | str | None, seq: int | None) -> tuple[Any, int, int]:
    """``(state, step, seq)`` at a step, a checkpoint id, a seq, or (none) the latest."""
    if isinstance(step, str):
        seq, step = seq_of_id(j, step), None
    if seq is not None:
        state = j.state_at_seq(seq)
        return state, _record_step(j, seq), seq
    if step is not None:
        seq = j.seq_of_step(step)
        return j.state_at_seq(seq), _record_step(j, seq), seq
    r = status.latest(j)
    return r.state, r.step, r.seq


def print_json(s: Settings, value: Any, *, compact: bool = False) -> None:
    """Pretty JSON on stdout: highlighted in a terminal, plain when piped."""
    text = msgspec.json.encode(value).decode() if compact else msgspec.json.format(
        msgspec.json.encode(value), indent=2).decode()
    if s.tty and not compact:
        s.out.print(JSON(text))
    else:
        click.echo(text)


@click.command("show", epilog="""
\b
Examples:
  $ agentjournal show researcher
  $ agentjournal show researcher --at 12 --path /budget_spent_usd
  $ agentjournal show researcher --at 12 --path /conversation_history/0 --json
  $ agentjournal show researcher --at-time 2030-01-01T00:00Z --path /status
""")
@click.argument("agent")
@click.option("--at", "step", type=StepOrId(), metavar="STEP|ID",
              help="Agent step, or the id a step record's meta carries (a LangGraph "
                   "checkpoint id); default: the latest.")
@click.option("--seq", type=click.IntRange(min=0), help="A record seq instead of a step.")
@click.option("--at-time", "at_time", type=TIME, metavar="TIME",
              help="The state as of a time: after the last step written at or before it "
                   "(ISO 8601, e.g. 2026-11-26T10:00Z; local time without a zone).")
@click.option("--path", "pointer", default="", metavar="POINTER",
              help="JSON Pointer to one part of the state, e.g. /conversation_history/0.")
@click.option("--compact", is_flag=True, help="JSON on one line.")
@store_options
@json_option
def show_cmd(agent: str, step: int | str | None, seq: int | None, at_time: float | None,
             pointer: str, compact: bool, as_json: bool) -> None:
    """The full state of AGENT after a step (default: the latest), or one part of it.

    The state is rebuilt from the nearest snapshot and the records after it. Without --json
    the value itself is printed as JSON, so it can be piped to jq; --json wraps it with the
    agent, step, seq and path.
    """
    s = get_settings()
    if sum(x is not None for x in (step, seq, at_time)) > 1:
        raise click.UsageError("give one of --at, --seq and --at-time")
    with s.journal(agent) as j:
        if at_time is not None:
            rec = record_at_time(j, at_time)
            state, at_step, at_seq = j.state_at_seq(rec.seq), rec.step, rec.seq
        else:
            state, at_step, at_seq = state_for(j, step, seq)
    value = resolve_pointer(state, pointer)
    if as_json:
        doc: schemas.ShowOut = {"agent_id": agent, "step": at_step, "seq": at_seq,
                                "path": pointer, "value": value}
        s.emit_json(doc, indent=None if compact else 2)
        return
    if s.tty:
        s.note(f"{agent} · step {at_step} · seq {at_seq}" + (f" · {pointer}" if pointer else ""))
    print_json(s, value, compact=compact)


# --------------------------------------------------------------------------------- diff


def old_values(old: Any, ops: list[delta.Op]) -> list[Any]:
    """The value each op replaces or removes, in the state as the ops before it left it.

    A patch's paths refer to the document after the previous ops (two removes at
    ``/list/4`` remove two different items), so the old values are read from a copy of the
    old state that the ops are applied to one by one. ``None`` for an op with no old value.
    """
    state = delta.copy_containers(old)
    out: list[Any] = []
    for op in ops:
        value = None
        if op.get("op") in ("remove", "replace"):
            try:
                value = resolve_pointer(state, str(op["path"]))
            except (PathNotFoundError, click.BadParameter):
                value = None
        out.append(value)
        # A copy of the op: applying shares its value with the state, which later ops change.
        state = delta.apply_in_place(state, [delta.copy_containers(op)])
    return out


@click.command("diff", epilog="""
\b
Examples:
  $ agentjournal diff researcher 11 12
  $ agentjournal diff researcher 12
  $ agentjournal diff researcher 1 12 --json
""")
@click.argument("agent")
@click.argument("a", type=click.IntRange(min=0), metavar="A")
@click.argument("b", type=click.IntRange(min=0), metavar="[B]", required=False)
@click.option("--full", is_flag=True, help="Do not shorten long values.")
@store_options
@json_option
def diff_cmd(agent: str, a: int, b: int | None, full: bool, as_json: bool) -> None:
    """What changed in AGENT's state between step A and step B.

    With one step, what that step changed (from the state before its first record). --json
    prints the change as an RFC 6902 JSON Patch that turns the state at A into the state at
    B: any JSON Patch tool can apply it.
    """
    s = get_settings()
    with s.journal(agent) as j:
        if b is None:
            seq_b = j.seq_of_step(a)
            first = next(iter(j.history(a, a)), None)
            seq_a = first.seq - 1 if first is not None else seq_b
            label_a, label_b = f"before step {a}", f"step {a}"
        else:
            seq_a, seq_b = j.seq_of_step(a), j.seq_of_step(b)
            label_a, label_b = f"step {a}", f"step {b}"
        old, new = j.state_at_seq(seq_a), j.state_at_seq(seq_b)
    ops = delta.diff(old, new)
    if as_json:
        s.emit_json(ops)
        return
    s.out.print(Text.assemble(("--- ", "red"), (f"{agent} {label_a} (seq {seq_a})", "bold")))
    s.out.print(Text.assemble(("+++ ", "green"), (f"{agent} {label_b} (seq {seq_b})", "bold")))
    if not ops:
        s.out.print(Text("no differences", style="dim"))
        return
    limit = None if full else 100
    width = min(max(len(str(op["path"])) for op in ops), 40)
    for op, was in zip(ops, old_values(old, ops), strict=True):
        name, path = str(op["op"]), str(op["path"])
        sign, style = OP_STYLE.get(name, ("?", ""))
        line = Text(f"{sign} {path:<{width}}  ", style=style)
        if name == "remove":
            line.append(f"(was {short_json(was, limit)})", style="dim")
        elif name == "replace":
            line.append(short_json(was, limit), style="red")
            line.append(" → ")
            line.append(short_json(op.get("value"), limit), style="green")
        else:
            line.append(short_json(op.get("value"), limit))
        s.out.print(line)


# --------------------------------------------------------------------------------- stats


def stats_out(st: status.JournalStats) -> schemas.StatsOut:
    """The ``stats --json`` document of one journal's stats."""
    doc = dataclasses.asdict(st)
    return cast(schemas.StatsOut, doc)


@click.command("stats", epilog="""
\b
Examples:
  $ agentjournal stats researcher
  $ agentjournal stats researcher --json
""")
@click.argument("agent")
@store_options
@json_option
def stats_cmd(agent: str, as_json: bool) -> None:
    """Size and shape of AGENT's journal, and what resuming it costs.

    Shows bytes on disk (journal and snapshots), records by kind, the mean number of steps
    between snapshots, bytes per step, the size of the latest state, and the resume cost:
    the newest snapshot plus the records replayed after it (and one measured resume).
    """
    s = get_settings()
    with s.journal(agent) as j:
        st = stats_out(status.journal_stats(j))
    if as_json:
        s.emit_json(st)
        return
    rs = st["resume"]
    rows = [
        ("agent", st["agent_id"]),
        ("steps", f"{st['steps']} (steps {st['first_step']}..{st['last_step']})"),
        ("records", f"{st['records']} ("
         + ", ".join(f"{n} {k}" for k, n in st["records_by_kind"].items()) + ")"),
        ("time span", f"{local_time(st['first_ts'])} → {local_time(st['last_ts'])}"
         if st["first_ts"] is not None and st["last_ts"] is not None else "-"),
        ("on disk", f"{human_bytes(st['bytes'])} (journal {human_bytes(st['segment_bytes'])}"
         f" in {plural(st['segments'], 'segment')}, {st['sealed_segments']} compressed; "
         f"snapshots {human_bytes(st['snapshot_bytes'])} in {st['snapshots']})"),
        ("bytes per step", human_bytes(st["bytes_per_step"])
         if st["bytes_per_step"] is not None else "-"),
        ("snapshot every", f"{st['snapshot_interval']:.1f} steps"
         if st["snapshot_interval"] is not None else "-"),
        ("latest state", human_bytes(st["state_bytes"])),
        ("resume", (f"snapshot at seq {rs['snapshot_seq']} ({human_bytes(rs['snapshot_bytes'])})"
                    if rs["snapshot_seq"] is not None else "no snapshot")
         + f" + {plural(rs['replay_records'], 'record')} replayed; measured "
         f"{rs['measured_ms']:.2f} ms"),
    ]
    s.table([("", "left"), ("", "left")],
            [[Text(k, style="bold"), v] for k, v in rows], header=False, wrap=(1,))

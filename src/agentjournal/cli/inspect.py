"""Read-only commands: ``ls``, ``show``, ``diff`` and ``stats``.

They open journals read-only: no lock is taken, so they work on a journal that a running
agent is writing, and they never repair anything.
"""

from __future__ import annotations

import collections
import itertools
import os
import time
from typing import Any

import click
import msgspec
from rich.json import JSON
from rich.text import Text

from .. import delta
from ..backends.filesystem import FilesystemBackend
from ..errors import JournalError, PathNotFoundError, StepNotFoundError
from ..events import SnapshotMark
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
from .log import OP_STYLE, kind_of
from .query import TIME

# --------------------------------------------------------------------------------- ls


def writer_pid(root: str, agent_id: str) -> int | None:
    """Pid of the process holding the agent's writer lock now, from ``/proc/locks``.

    Reading ``/proc/locks`` never touches the lock itself, so a writer starting at the same
    moment is not disturbed. Returns None when unlocked or on systems without it.
    """
    try:
        st = os.stat(os.path.join(root, agent_id, "LOCK"))
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] not in ("FLOCK", "OFDLCK", "POSIX"):
            continue
        if parts[5] == want and parts[4].isdigit():
            return int(parts[4])
    return None


def agent_summary(s: Settings, agent_id: str, *, full: bool = False) -> schemas.LsAgent:
    """The ``ls`` row of one agent (``full``: run the complete verification for health)."""
    row: schemas.LsAgent = {
        "agent_id": agent_id, "steps": 0, "records": 0, "last_ts": None, "last_time": None,
        "status": None, "writer_pid": writer_pid(s.root, agent_id), "snapshots": 0,
        "segments": 0, "bytes": 0, "health": "empty", "problem": None}
    try:
        j = s.journal(agent_id)
    except (JournalError, OSError) as e:
        row["health"], row["problem"] = "unreadable", str(e)
        return row
    with j:
        try:
            segs = j.segment_seqs()
            row["segments"], row["snapshots"] = len(segs), len(j.snapshot_seqs())
            row["bytes"] = j.disk_usage()
            for k, first in enumerate(reversed(segs)):
                sc = j.reader.read(first)
                if k == 0 and sc.error is not None:
                    row["health"] = "torn_tail" if sc.tail else "corrupt"
                    row["problem"] = str(sc.error)
                if sc.records:
                    last = sc.records[-1]
                    row["steps"], row["records"] = last.step, last.seq
                    row["last_ts"], row["last_time"] = last.ts, iso_utc(last.ts)
                    break
            if full:
                rep = j.verify()
                if rep.problems:
                    p = rep.problems[0]
                    row["health"] = "torn_tail" if p.kind == "torn_tail" else "corrupt"
                    row["problem"] = f"{p.message} ({p.path}" + (
                        f", byte {p.offset})" if p.offset is not None else ")")
            if row["records"]:
                state = j.resume().state
                status = state.get("status") if isinstance(state, dict) else None
                row["status"] = status if isinstance(status, str) else None
                if row["health"] == "empty":
                    row["health"] = "ok"
        except (JournalError, OSError) as e:
            row["health"] = "corrupt" if isinstance(e, JournalError) else "unreadable"
            row["problem"] = str(e)
    return row


HEALTH_STYLE = {"ok": "green", "empty": "dim", "torn_tail": "yellow", "corrupt": "bold red",
                "unreadable": "bold red"}


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

    Health is a quick check of the newest segment (ok, empty, torn_tail, corrupt,
    unreadable); --verify checks every record and snapshot. STATUS is the state's own
    "status" field; "writing" means a process holds the agent's writer lock now.
    """
    s = get_settings()
    backend = FilesystemBackend(s.root)
    rows = [agent_summary(s, a, full=full) for a in backend.list_agents()]
    if as_json:
        doc: schemas.LsOut = {"root": backend.root, "agents": rows}
        s.emit_json(doc)
        return
    if not rows:
        s.note(f"no agents under {backend.root}"
               + ("" if os.path.isdir(backend.root) else " (it does not exist)"))
        return
    cols = [("AGENT", "left"), ("STEPS", "right"), ("LAST STEP", "left"),
            ("STATUS", "left"), ("SNAPSHOTS", "right"), ("SIZE", "right"), ("HEALTH", "left")]
    cells: list[list[str | Text]] = []
    for r in rows:
        status = r["status"] or "-"
        if r["writer_pid"] is not None:
            status = f"writing (pid {r['writer_pid']})" + ("" if status == "-" else
                                                            f", {status}")
        cells.append([
            Text(r["agent_id"], style="bold"), str(r["steps"]),
            local_time(r["last_ts"]) if r["last_ts"] is not None else "-", status,
            str(r["snapshots"]), human_bytes(r["bytes"]),
            Text(r["health"].replace("_", " "), style=HEALTH_STYLE[r["health"]])])
    s.table(cols, cells)
    for r in rows:
        if r["problem"]:
            s.warn(f"{r['agent_id']}: {r['problem']}")


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


def state_for(j: Journal, step: int | None, seq: int | None) -> tuple[Any, int, int]:
    """``(state, step, seq)`` at a step, at a seq, or (neither) the latest."""
    if seq is not None:
        state = j.state_at_seq(seq)
        return state, _record_step(j, seq), seq
    if step is not None:
        seq = j.seq_of_step(step)
        return j.state_at_seq(seq), _record_step(j, seq), seq
    r = j.resume()
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
@click.option("--at", "step", type=click.IntRange(min=0), metavar="STEP",
              help="Agent step (default: the latest).")
@click.option("--seq", type=click.IntRange(min=0), help="A record seq instead of a step.")
@click.option("--at-time", "at_time", type=TIME, metavar="TIME",
              help="The state as of a time: after the last step written at or before it "
                   "(ISO 8601, e.g. 2026-11-26T10:00Z; local time without a zone).")
@click.option("--path", "pointer", default="", metavar="POINTER",
              help="JSON Pointer to one part of the state, e.g. /conversation_history/0.")
@click.option("--compact", is_flag=True, help="JSON on one line.")
@store_options
@json_option
def show_cmd(agent: str, step: int | None, seq: int | None, at_time: float | None,
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


def _old_value(state: Any, path: str) -> Any:
    try:
        return resolve_pointer(state, path)
    except (PathNotFoundError, click.BadParameter):
        return None


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
    for op in ops:
        name, path = str(op["op"]), str(op["path"])
        sign, style = OP_STYLE.get(name, ("?", ""))
        line = Text(f"{sign} {path:<{width}}  ", style=style)
        if name == "remove":
            line.append(f"(was {short_json(_old_value(old, path), limit)})", style="dim")
        elif name == "replace":
            line.append(short_json(_old_value(old, path), limit), style="red")
            line.append(" → ")
            line.append(short_json(op.get("value"), limit), style="green")
        else:
            line.append(short_json(op.get("value"), limit))
        s.out.print(line)


# --------------------------------------------------------------------------------- stats


def _file_size(j: Journal, kind: str, seq: int) -> int:
    try:
        return os.path.getsize(j.store.location(kind, seq))
    except OSError:
        return 0


def journal_stats(j: Journal) -> schemas.StatsOut:
    """Sizes, counts, snapshot interval and resume cost of one journal."""
    segs = j.store.list_segments()
    snaps = j.snapshot_seqs()
    snap_bytes = sum(_file_size(j, "snapshot", q) for q in snaps)
    disk = j.disk_usage()
    kinds: collections.Counter[str] = collections.Counter()
    mark_steps: list[int] = []
    first = last = None
    for rec in j.records():
        kinds[kind_of(rec)] += 1
        if isinstance(rec, SnapshotMark):
            mark_steps.append(rec.step)
        if first is None:
            first = rec
        last = rec
    t0 = time.perf_counter()
    r = j.resume()
    ms = (time.perf_counter() - t0) * 1000
    newest = max((q for q in snaps if q <= r.seq), default=None)
    base = newest if newest is not None else (first.seq - 1 if first is not None else 0)
    gaps = [b - a for a, b in itertools.pairwise(mark_steps)]
    steps = kinds.get("step", 0)
    return {
        "agent_id": j.agent_id, "bytes": disk, "segment_bytes": max(disk - snap_bytes, 0),
        "snapshot_bytes": snap_bytes, "segments": len(segs),
        "sealed_segments": sum(1 for _, sealed in segs if sealed), "snapshots": len(snaps),
        "records": sum(kinds.values()), "records_by_kind": dict(sorted(kinds.items())),
        "steps": steps, "first_step": first.step if first else 0,
        "last_step": last.step if last else 0, "first_ts": first.ts if first else None,
        "last_ts": last.ts if last else None,
        "snapshot_interval": sum(gaps) / len(gaps) if gaps else None,
        "bytes_per_step": (disk - snap_bytes) / steps if steps else None,
        "state_bytes": len(msgspec.json.encode(r.state)),
        "resume": {"snapshot_seq": newest,
                   "snapshot_bytes": _file_size(j, "snapshot", newest) if newest else 0,
                   "replay_records": r.seq - base, "measured_ms": round(ms, 3)},
    }


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
        st = journal_stats(j)
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
            [[Text(k, style="bold"), v] for k, v in rows], header=False)

"""``agentjournal log``: one line per record, optionally following a live journal."""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click
import msgspec
from rich.text import Text

from .. import delta
from ..errors import InvalidPatchError, JournalNotFoundError, StepNotFoundError
from ..events import Anchor, AnyRecord, Cut, Fork, SnapshotMark, Step
from ..journal.follow import Tail
from ..query import records_in_range, touching
from ..replay.journal import Journal
from ..status import record_kind
from ..summary import UNKNOWN, summarize
from . import schemas
from ._app import (
    Settings,
    get_settings,
    iso_utc,
    json_option,
    local_time,
    short_json,
    store_options,
)
from .query import TIME

KIND_STYLE = {"step": "cyan", "snapshot": "magenta", "fork": "bold green", "anchor": "red",
              "cut": "bold red"}
OP_STYLE = {"add": ("+", "green"), "remove": ("-", "red"), "replace": ("~", "yellow")}


kind_of = record_kind
"""The record's kind as written in the journal (``step``, ``snapshot`` ...)."""


def meta_hint(meta: dict[str, Any]) -> str:
    """A few words about a step's ``meta``: its ``op``, ``ns`` and ``id`` when it has them
    (what an integration such as the LangGraph saver records), else its start as JSON."""
    named = [f"{k}={short_json(meta[k], 40)}" for k in ("ns", "id", "task") if k in meta]
    if "op" in meta or named:
        return " ".join([str(meta.get("op", "meta")), *named])
    return "meta " + short_json(meta, 60)


def _details(rec: AnyRecord) -> dict[str, Any]:
    if isinstance(rec, Step) and rec.meta is not None:
        return {"meta": rec.meta}
    if isinstance(rec, SnapshotMark):
        return {"at": rec.at, "digest": rec.digest}
    if isinstance(rec, Fork):
        return {"parent": rec.parent, "parent_seq": rec.parent_seq,
                "parent_step": rec.parent_step, "parent_hash": rec.parent_hash}
    if isinstance(rec, Anchor):
        return {"first_seq": rec.first_seq, "first_prev": rec.first_prev,
                "removed": list(rec.removed)}
    if isinstance(rec, Cut):
        return {"reason": rec.reason, "segment": rec.segment, "offset": rec.offset,
                "size": rec.size, "digest": rec.digest, "quarantine": rec.quarantine,
                "cut_seq": rec.cut_seq, "lines_after": rec.lines_after}
    return {}


def log_entry(agent_id: str, rec: AnyRecord, summary: str) -> schemas.LogEntry:
    """The ``log --json`` object of one record."""
    ops = rec.ops if isinstance(rec, (Step, Fork)) else None
    return {"agent_id": agent_id, "seq": rec.seq, "step": rec.step, "ts": rec.ts,
            "time": iso_utc(rec.ts), "kind": kind_of(rec), "summary": summary, "ops": ops,
            "details": _details(rec), "prev": rec.prev, "h": rec.h}


class Annotator:
    """Summaries of consecutive records, tracking the state so old values can be shown.

    The state before the first record is loaded from the journal (nearest snapshot + replay);
    after that each record's ops are applied to a private copy, at the cost of the change.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.state: Any = None
        self.started = False

    def _before(self, seq: int) -> Any:
        if seq <= 1:
            return {}
        try:
            return self.journal.state_at_seq(seq - 1)
        except StepNotFoundError:  # pruned away: summaries without old values
            return UNKNOWN

    def __call__(self, rec: AnyRecord) -> str:
        if not self.started:
            self.started = True
            self.state = self._before(rec.seq)
        text = summarize(rec, self.state)
        if isinstance(rec, Step) and rec.meta:
            text = f"[{meta_hint(rec.meta)}] {text}"
        if isinstance(rec, (Step, Fork)) and self.state is not UNKNOWN:
            try:
                # The record's own op values must stay untouched: apply a copy.
                ops = msgspec.json.decode(msgspec.json.encode(rec.ops))
                self.state = delta.apply_in_place(self.state, ops)
            except InvalidPatchError:
                self.state = UNKNOWN
        return text


class Printer:
    """Prints records as lines (rich in a terminal) or as JSON Lines."""

    def __init__(self, settings: Settings, agent_id: str, *, as_json: bool, patch: bool) -> None:
        self.s = settings
        self.agent_id = agent_id
        self.as_json = as_json
        self.patch = patch
        self.count = 0

    def __call__(self, rec: AnyRecord, summary: str) -> None:
        self.count += 1
        if self.as_json:
            self.s.emit_json(log_entry(self.agent_id, rec, summary), indent=None)
            return
        kind = kind_of(rec)
        if not self.s.tty:
            # Piped: plain text, without the cost of rich per line.
            click.echo(f"{rec.step:>6} #{rec.seq:<6} {local_time(rec.ts)}  {kind:<8}  {summary}")
            if self.patch and isinstance(rec, (Step, Fork)):
                for op in rec.ops:
                    sign = OP_STYLE.get(str(op.get("op")), ("?", ""))[0]
                    value = ("  " + msgspec.json.encode(op["value"]).decode()
                             if "value" in op else "")
                    click.echo(f"{'':>15}{sign} {op.get('path')}{value}")
            return
        line = Text.assemble(
            (f"{rec.step:>6}", "bold yellow"), " ", (f"#{rec.seq:<6}", "dim"), " ",
            (local_time(rec.ts), "green"), "  ", (f"{kind:<8}", KIND_STYLE[kind]), "  ",
            (summary, "dim" if kind == "snapshot" else ""))
        if self.s.tty:
            line.truncate(self.s.out.width, overflow="ellipsis")  # one screen line per record
        self.s.out.print(line)
        if self.patch and isinstance(rec, (Step, Fork)):
            for op in rec.ops:
                sign, style = OP_STYLE.get(str(op.get("op")), ("?", ""))
                text = Text(f"{'':>15}{sign} {op.get('path')}", style=style)
                if "value" in op:
                    text.append("  " + msgspec.json.encode(op["value"]).decode())
                self.s.out.print(text)

    def flush(self) -> None:
        """Push what was printed to the reader (a pipe is block-buffered)."""
        self.s.out.file.flush()


def _start_seq(j: Journal, start: int | None) -> int:
    """A seq at or before the first record whose step is >= ``start``."""
    if start is None:
        return 1
    first = 1
    for seg in j.segment_seqs():
        if j.first_step_of_segment(seg) >= start:
            break
        first = seg
    return first


def _select(recs: Iterable[AnyRecord], start: int | None, limit: int | None
            ) -> Iterable[AnyRecord]:
    """``--limit``: the first N after ``--from``, otherwise the newest N."""
    if limit is None:
        return recs
    if start is not None:
        return itertools.islice(recs, limit)
    return collections.deque(recs, maxlen=limit)


EXAMPLES = """
\b
Examples:
  $ agentjournal log researcher
  $ agentjournal log researcher --from 10 --to 14 --patch
  $ agentjournal log researcher --reverse --limit 5
  $ agentjournal log researcher --json --limit 2
  $ agentjournal log researcher --follow --timeout 0.5
  $ agentjournal log researcher --touching /memory_contents
  $ agentjournal log researcher --since 2026-11-26T10:00Z --limit 3
"""


@click.command("log", epilog=EXAMPLES)
@click.argument("agent")
@click.option("--from", "start", type=click.IntRange(min=0), metavar="STEP",
              help="First agent step to show.")
@click.option("--to", "end", type=click.IntRange(min=0), metavar="STEP",
              help="Last agent step to show (--follow stops after it).")
@click.option("-n", "--limit", type=click.IntRange(min=1), metavar="N",
              help="At most N records: the first N from --from, otherwise the newest N.")
@click.option("-r", "--reverse", is_flag=True, help="Newest first.")
@click.option("-p", "--patch", is_flag=True, help="Show each record's JSON Patch ops too.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing records as another process appends them (Ctrl-C stops).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="With --follow: stop after SECONDS without a new record.")
@click.option("--max-records", type=click.IntRange(min=1), metavar="N",
              help="Stop after printing N records.")
@click.option("--interval", type=click.FloatRange(min=0.001), default=0.2, show_default=True,
              metavar="SECONDS", help="With --follow: how often to look for new records.")
@click.option("--touching", metavar="PATH",
              help="Only records with an op at, under or above this JSON Pointer "
                   "(/conversation_history matches its appends).")
@click.option("--since", type=TIME, metavar="TIME",
              help="Only records written at or after TIME (ISO 8601, e.g. 2026-11-26T10:00Z).")
@click.option("--until", type=TIME, metavar="TIME",
              help="Only records written at or before TIME.")
@store_options
@json_option
def log_cmd(agent: str, start: int | None, end: int | None, limit: int | None, reverse: bool,
            patch: bool, follow: bool, timeout: float | None, max_records: int | None,
            interval: float, touching: str | None, since: float | None, until: float | None,
            as_json: bool) -> None:
    """One line per record of AGENT: step, seq, time, kind and what changed.

    A step's summary names what changed in seed-style states (messages with their roles,
    budget, status, memory, actions) and lists the changed paths otherwise. --json prints
    one JSON object per line (JSON Lines). --follow tails a journal that another process is
    writing: a record is printed only once it is completely written and verified.
    """
    s = get_settings()
    if follow and reverse:
        raise click.UsageError("--follow and --reverse cannot be combined")
    if timeout is not None and not follow:
        raise click.UsageError("--timeout needs --follow")
    if start is not None and end is not None and end < start:
        raise click.UsageError(f"--to {end} is before --from {start}")
    if follow and (touching is not None or since is not None or until is not None):
        raise click.UsageError("--follow cannot be combined with --touching, --since or --until")
    printer = Printer(s, agent, as_json=as_json, patch=patch)
    if touching is not None:
        _log_touching(s, agent, printer, touching, start=start, end=end, since=since,
                      until=until, limit=limit, reverse=reverse, max_records=max_records)
        return
    if follow:
        _follow(s, agent, printer, start=start, end=end, limit=limit, timeout=timeout,
                max_records=max_records, interval=interval)
        return
    with s.journal(agent) as j:
        ann = Annotator(j)
        if since is None and until is None:
            chosen = _select(j.history(start, end), start, limit)
        else:
            chosen = _select(records_in_range(j, start=start, end=end, since=since,
                                              until=until), 0 if since is not None else start,
                             limit)
        entries: Iterator[tuple[AnyRecord, str]] = ((r, ann(r)) for r in chosen)
        if reverse:
            entries = reversed(list(entries))
        for rec, summary in entries:
            printer(rec, summary)
            if max_records is not None and printer.count >= max_records:
                break
    if printer.count == 0 and not as_json:
        s.note("no records" + (" in that range" if start is not None or end is not None
                               else ""))


def _log_touching(s: Settings, agent: str, printer: Printer, prefix: str, *,
                  start: int | None, end: int | None, since: float | None,
                  until: float | None, limit: int | None, reverse: bool,
                  max_records: int | None) -> None:
    """``log --touching``: the records whose ops touch ``prefix``, streamed (no replay), so
    their summaries carry no old values."""
    with s.journal(agent) as j:
        if limit is not None and start is None and since is None:
            # The newest N, like log --limit: read from the end, print in the order asked.
            found = list(touching(j, prefix, end=end, until=until, limit=limit,
                                  reverse=True))
            recs: Iterable[AnyRecord] = [m.record for m in (found if reverse
                                                            else reversed(found))
                                         if m.record is not None]
        else:
            recs = (m.record for m in touching(j, prefix, start=start, end=end, since=since,
                                               until=until, limit=limit, reverse=reverse)
                    if m.record is not None)
        for rec in recs:
            printer(rec, summarize(rec))
            if max_records is not None and printer.count >= max_records:
                break
    if printer.count == 0 and not printer.as_json:
        s.note(f"no records touching {prefix}")


def _follow(s: Settings, agent: str, printer: Printer, *, start: int | None, end: int | None,
            limit: int | None, timeout: float | None, max_records: int | None,
            interval: float) -> None:
    last_news = time.monotonic()

    def idle() -> bool:
        return timeout is not None and time.monotonic() - last_news >= timeout

    try:
        j = _wait_for(s, agent, idle, interval)
        if j is None:
            return
        with j:
            tail = Tail(j.store, j.key, from_seq=_start_seq(j, start))
            ann = Annotator(j)
            first = True
            while True:
                recs: Iterable[AnyRecord] = [
                    r for r in tail.poll() if start is None or r.step >= start]
                if first:
                    recs = _select(recs, start, limit)
                    first = False
                for rec in recs:
                    last_news = time.monotonic()
                    if end is not None and rec.step > end:
                        return
                    printer(rec, ann(rec))
                    if max_records is not None and printer.count >= max_records:
                        return
                printer.flush()
                if idle():
                    return
                tail.wait(interval)  # a store's wake-up, or a sleep: poll again either way
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow normally ends
    finally:
        printer.flush()


def _wait_for(s: Settings, agent: str, idle: Callable[[], bool], interval: float
              ) -> Journal | None:
    """Open the agent's journal, waiting for it to appear (like ``tail -F``)."""
    told = False
    while True:
        try:
            return s.journal(agent)
        except JournalNotFoundError:
            if not told:
                s.note(f"waiting for agent {agent!r} to appear under {s.where} (Ctrl-C stops)")
                told = True
            if idle():
                return None
            time.sleep(interval)

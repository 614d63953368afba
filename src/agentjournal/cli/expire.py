"""``agentjournal expire``: age-based expiry of a whole store (:mod:`agentjournal.expiry`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click
from rich.text import Text

from ..errors import InvalidTimeError
from ..expiry import AgentExpiry, ExpiryReport, expire
from ..query.timetravel import parse_time
from . import schemas
from ._app import (
    EXIT_LOCKED,
    EXIT_NOT_FOUND,
    EXIT_PROBLEMS,
    Settings,
    get_settings,
    human_bytes,
    iso_utc,
    json_option,
    plural,
    store_options,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhdw])$")


class AgeParam(click.ParamType):  # type: ignore[type-arg]
    """An age (``30d``, ``12h``, ``90m``, ``2w``, ``45s``) or a moment (ISO 8601 or Unix
    seconds, as ``log --since``)."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> timedelta | float:
        if isinstance(value, (timedelta, float)):
            return value
        text = str(value).strip()
        m = _AGE.match(text)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        try:
            return parse_time(text)
        except InvalidTimeError as e:
            self.fail(f"{text!r} is neither an age (30d, 12h, 90m, 2w, 45s) nor a time "
                      f"({e.message})", param, ctx)


AGE = AgeParam()


@click.command("expire", epilog="""
\b
Examples:
  $ agentjournal expire --older-than 30d --dry-run
  $ agentjournal expire --older-than 30d --drop-idle 90d
  $ agentjournal expire --older-than 2026-11-01T00:00Z researcher --json
""")
@click.argument("agents", nargs=-1, metavar="[AGENT]...")
@click.option("--older-than", "older_than", type=AGE, required=True, metavar="AGE",
              help="Prune the history older than AGE (30d, 12h, 2w, ...) or than a time "
              "(ISO 8601): segments before the newest snapshot older than it.")
@click.option("--drop-idle", "drop_idle", type=AGE, default=None, metavar="AGE",
              help="Also delete whole agents whose last step is older than AGE.")
@click.option("--dry-run", is_flag=True,
              help="Only show what would be pruned or dropped (takes no lock).")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True,
              metavar="N", help="Agents per batch (one look at the live writers each).")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              metavar="N", help="Agents processed at once (threads; for a shared store).")
@store_options
@json_option
def expire_cmd(agents: tuple[str, ...], older_than: timedelta | float,
               drop_idle: timedelta | float | None, dry_run: bool, batch: int, workers: int,
               as_json: bool) -> None:
    """Expire old history across the store (or the AGENTs given).

    For each agent, deletes the segments whose records are all older than --older-than and
    lie before the newest snapshot older than it (an anchor record keeps the chain
    verifiable), so every step recorded since can still be shown; it never writes a
    snapshot, and keeps the history of an agent with no snapshot that old. Agents whose
    writer runs elsewhere are skipped and listed. With --drop-idle, whole agents idle for
    longer are deleted. On a store partitioned by time (PostgreSQL, partition=time), whole
    partitions whose rows every agent has pruned are then dropped.
    """
    s = get_settings()
    backend = s.backend()
    with s.progress("expiring", "agents") as update:
        rep = expire(backend, older_than=older_than, agents=list(agents) or None,
                     drop_idle_agents=drop_idle, key=s.key_bytes(), batch=batch,
                     workers=workers, dry_run=dry_run, progress=update)
    doc = _doc(rep)
    if as_json:
        s.emit_json(doc)
    else:
        _print(s, doc)
    if agents and any(e.detail.startswith("not found") for e in rep.errors):
        raise click.exceptions.Exit(EXIT_NOT_FOUND)
    if rep.errors:
        raise click.exceptions.Exit(EXIT_PROBLEMS)
    if agents and rep.skipped:
        raise click.exceptions.Exit(EXIT_LOCKED)  # an agent asked for by name was not done


def _agent(a: AgentExpiry) -> schemas.ExpireAgent:
    return {"agent_id": a.agent_id, "action": a.action, "detail": a.detail,
            "segments_deleted": a.segments_deleted, "snapshots_deleted": a.snapshots_deleted,
            "bytes_saved": a.bytes_saved, "anchor_seq": a.anchor_seq,
            "last_active": a.last_active}


def _doc(rep: ExpiryReport) -> schemas.ExpireOut:
    return {"dry_run": rep.dry_run, "cutoff": rep.cutoff, "cutoff_time": iso_utc(rep.cutoff),
            "drop_cutoff": rep.drop_cutoff, "agents_seen": rep.agents_seen,
            "unchanged": rep.unchanged, "segments_deleted": rep.segments_deleted,
            "snapshots_deleted": rep.snapshots_deleted, "bytes_saved": rep.bytes_saved,
            "pruned": [_agent(a) for a in rep.pruned],
            "dropped": [_agent(a) for a in rep.dropped],
            "skipped": [_agent(a) for a in rep.skipped],
            "errors": [_agent(a) for a in rep.errors],
            "partitions": [_partition(p) for p in rep.partitions]}


def _partition(p: dict[str, Any]) -> schemas.ExpirePartition:
    return {"name": p["name"], "start": p["start"], "end": p["end"], "bytes": p["bytes"],
            "dropped": p["dropped"], "pinned_by": list(p["pinned_by"])}


def _print(s: Settings, d: schemas.ExpireOut) -> None:
    would = "would " if d["dry_run"] else ""
    head = Text.assemble(("expire", "bold"), (" (dry run)" if d["dry_run"] else "", "yellow"),
                         f": history before {d['cutoff_time']}, "
                         f"{plural(d['agents_seen'], 'agent')} looked at")
    s.out.print(head)
    if d["pruned"]:
        s.out.print(f"  {would}prune {plural(len(d['pruned']), 'agent')}: "
                    f"{plural(d['segments_deleted'], 'segment')}, "
                    f"{plural(d['snapshots_deleted'], 'snapshot')}, "
                    f"{human_bytes(d['bytes_saved'])}")
    if d["dropped"]:
        names = ", ".join(a["agent_id"] for a in d["dropped"][:8])
        more = f" … ({len(d['dropped'])} in all)" if len(d["dropped"]) > 8 else ""
        s.out.print(f"  {would}drop {plural(len(d['dropped']), 'idle agent')}: {names}{more}")
    gone = [p for p in d["partitions"] if p["dropped"]]
    if gone:
        s.out.print(f"  {would}drop {plural(len(gone), 'time partition')} "
                    f"({gone[0]['start']} to {gone[-1]['end']}): "
                    f"{human_bytes(sum(p['bytes'] for p in gone))}")
    pinned = [p for p in d["partitions"] if not p["dropped"]]
    if pinned:
        who = ", ".join(pinned[0]["pinned_by"][:3])
        s.out.print(f"  {plural(len(pinned), 'older time partition')} kept: agents still "
                    f"see rows in them (the oldest: {who})")
    s.out.print(f"  unchanged: {d['unchanged']}")
    for a in d["skipped"]:
        s.warn(f"skipped {a['agent_id']}: {a['detail']}")
    for a in d["errors"]:
        s.err.print(Text.assemble(("error: ", "bold red"), f"{a['agent_id']}: {a['detail']}"))

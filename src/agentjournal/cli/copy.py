"""``agentjournal copy``: move journals between stores (a directory, PostgreSQL), verified."""

from __future__ import annotations

import click
from rich.text import Text

from .. import exchange
from ..backends import describe_store
from ..backends.base import Backend
from . import schemas
from ._app import (
    COLOR_CHOICE,
    COLOR_HELP,
    close_store,
    get_settings,
    human_bytes,
    json_option,
    key_options,
    plural,
    set_color,
)


@click.command("copy", epilog="""
\b
Examples:
  $ agentjournal copy .agentjournal ./copy-store researcher
  $ agentjournal copy ./copy-store memory: --json
  agentjournal copy .agentjournal postgresql://app@db.internal/agents
  agentjournal copy postgresql://app@db.internal/agents ./back researcher
""")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
@click.argument("agents", nargs=-1, metavar="[AGENT]...")
@click.option("--no-snapshots", is_flag=True,
              help="Leave snapshots out (a pruned journal still keeps the one it needs).")
@key_options
@click.option("--color", type=COLOR_CHOICE, default=None, expose_value=False,
              callback=set_color, help=COLOR_HELP + " [default: auto]")
@json_option
def copy_cmd(source: str, target: str, agents: tuple[str, ...], no_snapshots: bool,
             as_json: bool) -> None:
    """Copy journals from the store SRC to the store DST (each a directory,
    postgresql://USER@HOST/DB or memory:): the AGENTs named, or every agent of SRC.

    Each journal is exported, verified, imported into DST, verified there, and checked against
    its source (same last record and hash, same resumed state), byte for byte the same chain.
    An agent that already has a journal in DST is refused before anything is copied (exit 6).
    SRC is only read: it may be in use.
    """
    s = get_settings()
    src = s.open_store(source)
    try:
        dst = s.open_store(target, must_exist=False)
        try:
            _copy(source, target, src, dst, agents, no_snapshots, as_json)
        finally:
            close_store(dst)
    finally:
        close_store(src)


def _copy(source: str, target: str, src: Backend, dst: Backend, agents: tuple[str, ...],
          no_snapshots: bool, as_json: bool) -> None:
    s = get_settings()
    if src.identity() == dst.identity():
        raise click.UsageError(f"SRC and DST are the same store ({describe_store(source)})")
    names = list(agents) if agents else src.list_agents()
    exchange.check_targets(dst, names)
    results: list[schemas.CopyAgent] = []
    for name in names:
        with s.progress(f"copying {name}", "percent") as update:
            rep = exchange.copy_journal(src, dst, name, key=s.key_bytes(),
                                        snapshots=not no_snapshots, progress=update)
        results.append({
            "agent_id": rep.agent_id, "records": rep.records, "segments": rep.segments,
            "snapshots": rep.snapshots, "bytes": rep.bytes, "first_seq": rep.first_seq,
            "last_seq": rep.last_seq, "last_step": rep.last_step, "last_hash": rep.last_hash,
            "keyed": rep.keyed, "verified": rep.verified})
        if not as_json:
            s.out.print(Text.assemble(
                "copied ", (name, "bold"), f": {plural(rep.records, 'record')} (steps up to "
                f"{rep.last_step}), {plural(rep.snapshots, 'snapshot')}, "
                f"{human_bytes(rep.bytes)} → {describe_store(target)} ", ("(verified)", "green")))
    if as_json:
        doc: schemas.CopyOut = {"source": describe_store(source),
                                "target": describe_store(target), "agents": results}
        s.emit_json(doc)
    elif not names:
        s.note(f"no agents in {describe_store(source)}")

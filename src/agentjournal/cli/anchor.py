"""``agentjournal anchor``: print a journal's head, or append it to a witness file off the store."""

from __future__ import annotations

import os

import click

from ..witness import append_head
from . import schemas
from ._app import get_settings, json_option, store_options


@click.command("anchor", epilog="""
\b
Examples:
  $ agentjournal anchor researcher
  $ agentjournal anchor researcher --witness heads.jsonl
  $ agentjournal verify researcher --against heads.jsonl
""")
@click.argument("agent")
@click.option("--witness", metavar="FILE",
              help="Append the head to this witness file (JSON Lines, created 0600, fsynced; "
              "MAC'd with the key when the journal is keyed). It must not be inside the store: "
              "a head kept with the store rolls back with it.")
@store_options
@json_option
def anchor_cmd(agent: str, witness: str | None, as_json: bool) -> None:
    """Print AGENT's head (its last record's seq and hash), or append it to a witness file.

    A hash chain inside the store shows edits, but not records cut off the end nor the whole
    store put back to an older copy. A head kept somewhere else shows both: 'verify --against
    WITNESS' (and Journal(..., expect_head=...)) fail when the journal no longer reaches the
    anchored head or holds another record there.
    """
    s = get_settings()
    if witness is not None and s.on_filesystem:
        root = os.path.realpath(s.where)
        where = os.path.realpath(witness)
        if where == root or where.startswith(root + os.sep):
            raise click.UsageError(f"the witness file {witness} is inside the store {s.where}: "
                                   "it would roll back with the store; keep it elsewhere")
    with s.journal(agent) as j:
        head = j.head()
    mac = False
    if witness is not None:
        mac = bool(append_head(witness, head, s.key_bytes()).mac)
    doc: schemas.AnchorOut = {"agent_id": agent, "seq": head.seq, "hash": head.hash,
                              "witness": witness, "mac": mac}
    if as_json:
        s.emit_json(doc)
        return
    click.echo(f"{agent} {head.seq} {head.hash}")
    if witness is not None:
        s.note(f"appended to {witness}" + (" (with a MAC)" if mac else ""))

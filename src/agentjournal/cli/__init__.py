"""The ``agentjournal`` command: audit, time travel and maintenance from the terminal.

A thin layer over the Python API (:class:`agentjournal.Journal`,
:mod:`agentjournal.exchange`); every command is documented in ``docs/cli.md``.
"""

from __future__ import annotations

import logging

import click

from .._version import __version__
from ._app import (
    COLOR_CHOICE,
    COLOR_HELP,
    ENV_KEY,
    ENV_ROOT,
    ENV_STORE,
    EXIT_CORRUPT,
    EXIT_EXISTS,
    EXIT_LOCKED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    ROOT_HELP,
    STORE_HELP,
    Group,
    Settings,
    key_options,
    set_color,
    set_root,
    set_store,
)
from .anchor import anchor_cmd
from .copy import copy_cmd
from .expire import expire_cmd
from .inspect import diff_cmd, ls_cmd, show_cmd, stats_cmd
from .log import log_cmd
from .maintain import (
    compact_cmd,
    demo_cmd,
    export_cmd,
    fork_cmd,
    import_cmd,
    schema_cmd,
    verify_cmd,
)
from .query import bisect_cmd, blame_cmd, grep_cmd
from .repair import repair_cmd
from .serve import serve_cmd

__all__ = [
    "EXIT_CORRUPT",
    "EXIT_EXISTS",
    "EXIT_LOCKED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "cli",
    "main",
]

EPILOG = f"""
\b
Examples:
  $ agentjournal demo
  $ agentjournal ls
  $ agentjournal log researcher --limit 5
  $ agentjournal show researcher --at 12 --path /status
  $ agentjournal diff researcher 11 12
  $ agentjournal blame researcher /budget_spent_usd

\b
Environment:
  {ENV_ROOT}   the store root (default ./.agentjournal)
  {ENV_STORE}  the store: a root, postgresql://USER@HOST/DB or memory:
                      (--store SPEC; --root and --store beat the environment)
  {ENV_KEY}    the key of keyed hash chains (or --key-file PATH;
                      --key on the command line is seen by other users)

\b
Exit status:
  0  ok
  1  problems found (verify, repair), or an operation failed
  2  usage error (bad option or value, invalid agent id)
  3  not found (store, agent, step or --path)
  4  journal locked by a running writer
  5  corrupt, tampered or unreadable journal, snapshot or export file
  6  already exists (fork target, import target, export file)
"""


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", expose_value=False, callback=set_root, help=ROOT_HELP)
@click.option("--store", metavar="SPEC", expose_value=False, callback=set_store,
              help=STORE_HELP)
@key_options
@click.option("--color", type=COLOR_CHOICE, default=None, expose_value=False,
              callback=set_color, help=COLOR_HELP + "  [default: auto]")
@click.version_option(__version__, "-V", "--version", prog_name="agentjournal")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Audit, time-travel and maintain agentjournal journals.

    Every step of an agent is a record in its journal: list the agents, read their history
    step by step, see the state at any step, diff two steps, fork a new run from a step,
    verify, repair, compact, export and import. Read-only commands never lock a journal, so they
    work while the agent runs.
    """
    ctx.ensure_object(Settings)


for _cmd in (ls_cmd, log_cmd, show_cmd, diff_cmd, stats_cmd, verify_cmd, repair_cmd, fork_cmd,
             compact_cmd, export_cmd, import_cmd, copy_cmd, demo_cmd, schema_cmd,
             blame_cmd, grep_cmd, bisect_cmd, anchor_cmd, serve_cmd, expire_cmd):
    cli.add_command(_cmd)


def main() -> None:
    """Console-script entry point."""
    # The engine both logs and warns about recoveries and skipped snapshots; the commands
    # show the warnings, so keep the log records from being printed a second time.
    logging.getLogger("agentjournal").addHandler(logging.NullHandler())
    cli(prog_name="agentjournal")

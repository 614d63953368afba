"""What every command shares: the store options, output, progress, and errors as exit codes.

Domain errors never reach the user as a traceback: :class:`Group` catches them, prints the
message, where it happened and what to do, and exits with the documented code.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn, TypeVar

import click
import msgspec
from rich.console import Console
from rich.text import Text

from ..backends.filesystem import DEFAULT_ROOT
from ..errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    InvalidAgentIdError,
    InvalidPatchError,
    JournalError,
    JournalExistsError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
    PathNotFoundError,
    QueryError,
    StepNotFoundError,
    UnsafePathError,
)
from ..replay.journal import Journal

EXIT_OK = 0
EXIT_PROBLEMS = 1
"""``verify`` found damage, or an operation failed (an I/O error)."""
EXIT_USAGE = 2
"""Bad command line: unknown option, bad value, invalid agent id (click's own code)."""
EXIT_NOT_FOUND = 3
"""No such store, agent, step or JSON Pointer path."""
EXIT_LOCKED = 4
"""Another process holds the agent's writer lock."""
EXIT_CORRUPT = 5
"""A journal, snapshot or export file is damaged, tampered, unreadable or unsafe."""
EXIT_EXISTS = 6
"""The target of ``fork``, ``import`` or ``export -o`` already exists."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (``log --follow`` exits 0 on Ctrl-C: stopping is how it ends)."""

ENV_ROOT = "AGENTJOURNAL_ROOT"
ENV_KEY = "AGENTJOURNAL_KEY"

F = TypeVar("F", bound=Callable[..., Any])


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit with status 1 here; let the command group end quietly instead.
        raise BrokenPipeError


@dataclass
class Settings:
    """The options every command shares, resolved from the group, the command and the env."""

    root: str = field(default_factory=lambda: os.environ.get(ENV_ROOT) or DEFAULT_ROOT)
    key: str | None = field(default_factory=lambda: os.environ.get(ENV_KEY) or None)
    color: str = "auto"
    _out: Console | None = None
    _err: Console | None = None

    # --- output ------------------------------------------------------------------------
    def _console(self, stderr: bool) -> Console:
        c = _Console(stderr=stderr, highlight=False, soft_wrap=True,
                    force_terminal=True if self.color == "always" else None,
                    no_color=self.color == "never" or None)
        if not c.is_terminal:
            c.width = 1000  # piped: never wrap or cut a table row
        return c

    @property
    def out(self) -> Console:
        """stdout: rich in a terminal, plain text when piped."""
        if self._out is None or self._out.file is not sys.stdout:
            self._out = self._console(False)
        return self._out

    @property
    def err(self) -> Console:
        """stderr: messages, warnings and progress bars."""
        if self._err is None or self._err.file is not sys.stderr:
            self._err = self._console(True)
        return self._err

    @property
    def tty(self) -> bool:
        """Whether stdout is a terminal (or --color always): tables, colour, cut lines."""
        return self.out.is_terminal

    def note(self, message: str, style: str = "dim") -> None:
        """A message on stderr."""
        self.err.print(Text(message, style=style))

    def warn(self, message: str) -> None:
        """``warning: message`` on stderr."""
        self.err.print(Text("warning: ", style="bold yellow") + Text(message))

    def table(self, columns: list[tuple[str, str]], rows: list[list[str | Text]], *,
              header: bool = True) -> None:
        """A table: rich in a terminal; plain aligned columns (no trailing blanks) when piped.

        ``columns`` are ``(title, justify)`` with justify ``left`` or ``right``.
        """
        if self.tty:
            from rich import box
            from rich.table import Table

            t = Table(box=box.SIMPLE_HEAD if header else None, show_header=header,
                      header_style="bold", pad_edge=False)
            for title, justify in columns:
                t.add_column(title, justify="right" if justify == "right" else "left",
                             no_wrap=True)
            for row in rows:
                t.add_row(*row)
            self.out.print(t)
            return
        cells = [[str(c) for c in row] for row in rows]
        if header:
            cells.insert(0, [title for title, _ in columns])
        widths = [max((len(r[i]) for r in cells), default=0) for i in range(len(columns))]
        for r in cells:
            parts = [c.rjust(w) if j == "right" else c.ljust(w)
                     for c, w, (_, j) in zip(r, widths, columns, strict=True)]
            click.echo("  ".join(parts).rstrip())

    def emit_json(self, doc: Any, *, indent: int | None = 2) -> None:
        """Print one JSON document on stdout (never styled)."""
        if indent is None:
            click.echo(msgspec.json.encode(doc).decode())
        else:
            click.echo(json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False))

    # --- journals ------------------------------------------------------------------------
    def key_bytes(self) -> bytes | None:
        """The chain key as bytes (None: unkeyed)."""
        return self.key.encode() if self.key else None

    def journal(self, agent_id: str, *, readonly: bool = True, repair: bool = False) -> Journal:
        """Open an existing agent's journal (read-only unless asked: no lock is taken).

        Opening for writing recovers the journal; damage the writer refuses to cut without
        ``repair`` is reported with a pointer to ``agentjournal repair``.
        """
        try:
            return Journal(agent_id, self.root, key=self.key_bytes(), readonly=readonly,
                           create=False, snapshot_every=None, repair=repair)
        except CorruptRecordError as e:
            if not readonly and not repair:
                e.hint = ((e.hint + "; ") if e.hint else "") + (
                    f"'agentjournal repair {agent_id} --dry-run' shows whether a repair can "
                    "cut the damage off")
            raise

    # --- progress --------------------------------------------------------------------------
    @contextlib.contextmanager
    def progress(self, description: str, unit: str = "") -> Iterator[Callable[[int, int], None]]:
        """A progress bar on stderr (shown only in a terminal); yields ``update(done, total)``."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        bar = Progress(TextColumn("{task.description}"), BarColumn(), count,
                       TimeRemainingColumn(), console=self.err, transient=True,
                       disable=not self.err.is_terminal)
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with bar:
            yield update


def get_settings() -> Settings:
    """The current command's :class:`Settings`."""
    return click.get_current_context().ensure_object(Settings)


def _set_root(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Settings).root = value


def _set_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Settings).key = value or None


def root_option(f: F) -> F:
    """``--root`` on a command (it may also be given before the command)."""
    return click.option("--root", metavar="DIR", default=None, expose_value=False,
                        callback=_set_root,
                        help=f"Store root [env: {ENV_ROOT}; default: {DEFAULT_ROOT}].")(f)


def store_options(f: F) -> F:
    """``--root`` and ``--key`` on a command (they may also be given before it)."""
    f = click.option("--key", metavar="SECRET", default=None, expose_value=False,
                     callback=_set_key,
                     help=f"Key of a keyed hash chain [env: {ENV_KEY}].")(f)
    return root_option(f)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print data as JSON (schema: 'agentjournal schema COMMAND').")


# --- errors ------------------------------------------------------------------------------


def exit_code_for(e: BaseException) -> int:
    """The documented exit code for a domain error."""
    if isinstance(e, JournalLockedError):
        return EXIT_LOCKED
    if isinstance(e, JournalExistsError):
        return EXIT_EXISTS
    if isinstance(e, (JournalNotFoundError, StepNotFoundError, PathNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(e, (InvalidAgentIdError, QueryError)):
        return EXIT_USAGE
    if isinstance(e, (CorruptRecordError, CorruptSnapshotError, LimitExceededError,
                      InvalidPatchError, UnsafePathError)):
        return EXIT_CORRUPT
    return EXIT_PROBLEMS


def fail(settings: Settings, e: JournalError | OSError) -> NoReturn:
    """Print ``e`` as an error with where and what to do, and exit with its code."""
    if isinstance(e, JournalError):
        line = Text("error: ", style="bold red") + Text(e.message)
        where = []
        if e.path is not None:
            where.append(str(e.path))
        if e.offset is not None:
            where.append(f"byte {e.offset}")
        if e.seq is not None:
            where.append(f"seq {e.seq}")
        settings.err.print(line)
        if where:
            settings.err.print(Text("  at: ", style="dim") + Text(", ".join(where)))
        if e.hint:
            settings.err.print(Text("  hint: ", style="cyan") + Text(e.hint))
        code = exit_code_for(e)
    else:
        settings.err.print(Text("error: ", style="bold red") + Text(str(e)))
        code = EXIT_PROBLEMS
    raise click.exceptions.Exit(code)


class Group(click.Group):
    """The command group: maps domain errors to messages and exit codes, shows warnings."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; domain errors become a message and their exit code."""
        settings = ctx.ensure_object(Settings)
        with warnings.catch_warnings(record=True) as caught:
            # The engine reports recoveries and skipped snapshots as warnings: show them as
            # notes rather than as Python warning lines (or as errors under -W error).
            warnings.simplefilter("always")
            try:
                return super().invoke(ctx)
            except JournalError as e:
                _show_warnings(settings, caught)
                fail(settings, e)
            except BrokenPipeError:
                # The reader went away (| head): stop quietly, as git log does.
                with contextlib.suppress(OSError):
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                raise click.exceptions.Exit(EXIT_OK) from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except OSError as e:
                _show_warnings(settings, caught)
                fail(settings, e)
            except KeyboardInterrupt:
                settings.note("interrupted")
                raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
            finally:
                _show_warnings(settings, caught)


def _show_warnings(settings: Settings, caught: list[warnings.WarningMessage]) -> None:
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            settings.warn(msg)
    caught.clear()


# --- formatting --------------------------------------------------------------------------


def iso_utc(ts: float) -> str:
    """``2026-11-26T16:52:07.123+00:00``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def local_time(ts: float) -> str:
    """``2026-11-26 16:52:07`` in the local time zone."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def human_bytes(n: int | float) -> str:
    """``532 B``, ``12.3 KiB``, ``4.0 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def plural(n: int, word: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def short_json(value: Any, limit: int | None = 100) -> str:
    """Compact JSON of ``value``, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def usage_error(message: str) -> NoReturn:
    """Stop with a usage error (exit 2)."""
    raise click.UsageError(message)

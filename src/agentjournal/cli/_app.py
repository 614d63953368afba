"""What every command shares: the store options, output, progress, and errors as exit codes.

Domain errors never reach the user as a traceback: :class:`Group` catches them, prints the
message, where it happened and what to do, and exits with the documented code.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import click
import msgspec
from rich.console import Console
from rich.text import Text

from .. import status
from .._time import format_ts
from ..backends import describe_store, filesystem_root, open_backend, store_kind
from ..backends.base import Backend
from ..backends.filesystem import DEFAULT_ROOT, FilesystemBackend
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
ENV_STORE = "AGENTJOURNAL_STORE"
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
    store: str | None = field(default_factory=lambda: os.environ.get(ENV_STORE) or None)
    """``--store`` or ``AGENTJOURNAL_STORE``: a filesystem root, ``postgresql://…`` or
    ``memory:`` (see :func:`agentjournal.backends.open_backend`)."""
    root_given: bool = False
    """``--root`` was on the command line (it then wins over ``AGENTJOURNAL_STORE``)."""
    store_given: bool = False
    """``--store`` was on the command line."""
    key: str | None = field(default_factory=lambda: os.environ.get(ENV_KEY) or None)
    color: str = "auto"
    warned_key: bool = False
    _backend: Backend | None = None
    _backend_root: str | None = None
    _out: Console | None = None
    _err: Console | None = None

    # --- output ------------------------------------------------------------------------
    def _console(self, stderr: bool) -> Console:
        # "never" is plain text even in a terminal: no colour, no bold or dim, no progress
        # bar (rich's no_color alone keeps bold and dim).
        never = self.color == "never"
        c = _Console(stderr=stderr, highlight=False, soft_wrap=True,
                    force_terminal=True if self.color == "always" else False if never else None,
                    color_system=None if never else "auto", no_color=never or None)
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
        self.err.print(Text.assemble(("warning: ", "bold yellow"), message))

    def table(self, columns: list[tuple[str, str]], rows: list[list[str | Text]], *,
              header: bool = True, wrap: tuple[int, ...] = ()) -> None:
        """A table: rich in a terminal; plain aligned columns (no trailing blanks) when piped.

        ``columns`` are ``(title, justify)`` with justify ``left`` or ``right``. In a terminal
        narrower than the table, the columns numbered in ``wrap`` fold onto more lines; the
        others (numbers, times, health) are never cut.
        """
        if self.tty:
            from rich import box
            from rich.table import Table

            t = Table(box=box.SIMPLE_HEAD if header else None, show_header=header,
                      header_style="bold", pad_edge=False, collapse_padding=True)
            for i, (title, justify) in enumerate(columns):
                folds = i in wrap
                t.add_column(title, justify="right" if justify == "right" else "left",
                             no_wrap=not folds, overflow="fold" if folds else "ellipsis",
                             min_width=None if folds else len(title))
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

    # --- the store -----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The store the command works on, as a string: ``--store``, ``--root``,
        ``AGENTJOURNAL_STORE``, ``AGENTJOURNAL_ROOT``, ``./.agentjournal`` (the command line
        wins over the environment; both kinds at one level is a usage error)."""
        if self.store_given:
            assert self.store is not None
            return self.store
        if self.root_given:
            return self.root
        if self.store is not None:
            if os.environ.get(ENV_ROOT):
                usage_error(f"{ENV_STORE} and {ENV_ROOT} are both set; unset one of them "
                            "(or give --store or --root)")
            return self.store
        return self.root

    @property
    def on_filesystem(self) -> bool:
        """Whether the store is a directory (a root) rather than a database or memory."""
        return store_kind(self.spec) == "filesystem"

    @property
    def where(self) -> str:
        """The store for messages and ``--json``: a root's absolute path, a URL without its
        password."""
        return describe_store(self.spec)

    def python_store(self) -> str:
        """How Python code opens this store, for hints: ``root='…'`` or
        ``backend=open_backend('…')`` (without a password)."""
        if self.on_filesystem:
            return f"root={filesystem_root(self.spec)!r}"
        return f"backend=open_backend({self.where!r})"

    # --- journals ------------------------------------------------------------------------
    def key_bytes(self) -> bytes | None:
        """The chain key as bytes (None: unkeyed)."""
        return self.key.encode() if self.key else None

    def check_root(self, *, must_exist: bool = True, spec: str | None = None) -> None:
        """Refuse a root that cannot be a store, the same way for every command.

        A root that is not a directory, or (``must_exist``) one that does not exist or that
        is one agent's directory rather than the store holding it, is
        :class:`JournalNotFoundError` (exit 3) with what to do; a symlink is
        :class:`UnsafePathError` (exit 5). Permissions and ownership are the backend's to
        check. A store that is not a directory (``--store postgresql://…``) is the backend's
        to check when it is opened.
        """
        spec = self.spec if spec is None else spec
        if store_kind(spec) != "filesystem":
            return
        root = os.path.abspath(filesystem_root(spec))
        if os.path.islink(root):
            # The engine refuses it too, but only once a journal is opened: refuse it here so
            # that ls and verify --all say so instead of listing every agent as unreadable.
            raise UnsafePathError(
                f"store root {root} is a symlink; agentjournal never follows links", path=root,
                hint=f"point --root at the real directory: --root {os.path.realpath(root)}")
        if os.path.lexists(root) and not os.path.isdir(root):
            raise JournalNotFoundError(
                f"store root {root} is a file, not a directory", path=root,
                hint=f"point --root (or {ENV_ROOT}) at the store's directory")
        if not must_exist:
            return
        if not os.path.lexists(root):
            raise JournalNotFoundError(
                f"no store at {root}: the directory does not exist", path=root,
                hint=f"check --root (or {ENV_ROOT}); a store is created when an agent "
                "records its first step, e.g. Journal('bot', root=...).append(state)")
        if (os.path.isdir(os.path.join(root, "segments"))
                and not os.path.isdir(os.path.join(root, "segments", "segments"))):
            raise JournalNotFoundError(
                f"{root} is the journal directory of agent {os.path.basename(root)!r}, not a "
                "store root", path=root,
                hint=f"use its parent as the root: --root {os.path.dirname(root)}")

    def backend(self, *, must_exist: bool = True) -> Backend:
        """The store the commands work on (the one place that chooses it); a root must be an
        existing store (:meth:`check_root`) unless ``must_exist`` is false (commands that
        create journals)."""
        spec = self.spec
        if self._backend is None or self._backend_root != spec:
            self._backend, self._backend_root = self.open_store(spec, must_exist), spec
        return self._backend

    def close_backend(self) -> None:
        """Close the store's connections (a database backend's pool), if it has any."""
        backend, self._backend, self._backend_root = self._backend, None, None
        close_store(backend)

    def open_store(self, spec: str, must_exist: bool = True) -> Backend:
        """The backend of a store given as a string (``copy``'s SRC and DST), a root checked
        as by :meth:`check_root`."""
        self.check_root(must_exist=must_exist, spec=spec)
        if store_kind(spec) == "filesystem":
            return FilesystemBackend(filesystem_root(spec))
        try:
            return open_backend(spec)
        except ValueError as e:  # a bad ?schema= or ?lease=
            if isinstance(e, JournalError):
                raise
            raise click.BadParameter(str(e), param_hint="the store") from None

    def journal(self, agent_id: str, *, readonly: bool = True, repair: bool = False) -> Journal:
        """Open an existing agent's journal (read-only unless asked: no lock is taken).

        Opening for writing recovers the journal; damage the writer refuses to cut without
        ``repair`` is reported with a pointer to ``agentjournal repair``.
        """
        try:
            return Journal(agent_id, backend=self.backend(), key=self.key_bytes(),
                           readonly=readonly,
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
        """A progress bar on stderr (shown only in a terminal); yields ``update(done, total)``
        (``unit``: ``"bytes"``, ``"percent"`` or items)."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        count: ProgressColumn = (DownloadColumn() if unit == "bytes" else TaskProgressColumn()
                                 if unit == "percent" else MofNCompleteColumn())
        bar = Progress(TextColumn("{task.description}"), BarColumn(), count,
                       TimeRemainingColumn(), console=self.err, transient=True,
                       disable=not self.err.is_terminal)
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with bar:
            yield update


def close_store(backend: Backend | None) -> None:
    """Close a backend that holds connections (PostgreSQL's pool); others have nothing to."""
    close = getattr(backend, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):  # the command's outcome is already decided
            close()


def get_settings() -> Settings:
    """The current command's :class:`Settings`."""
    return click.get_current_context().ensure_object(Settings)


def set_root(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--root DIR`` before or after the command; refused next to ``--store``."""
    if value is None:
        return
    settings = ctx.ensure_object(Settings)
    if settings.store_given:
        raise click.UsageError("give the store with --store or --root, not both")
    settings.root, settings.root_given = value, True


def set_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--store SPEC`` before or after the command; refused next to ``--root``."""
    if value is None:
        return
    settings = ctx.ensure_object(Settings)
    if settings.root_given:
        raise click.UsageError("give the store with --store or --root, not both")
    if not value:
        raise click.BadParameter("the store is empty", param_hint="'--store'")
    settings.store, settings.store_given = value, True


STORE_HELP = (f"The store: a directory, postgresql://USER@HOST/DB[?schema=NAME] or memory: "
              f"[env: {ENV_STORE}].")
ROOT_HELP = f"Store root directory [env: {ENV_ROOT}; default: {DEFAULT_ROOT}]."


KEY_WARNING = (f"a key given with --key is visible to other local users (ps, /proc) and kept "
               f"in shell history; use {ENV_KEY} or --key-file PATH instead")


def set_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--key SECRET``: works, with a warning that steers to the safer ways."""
    if value is None:
        return
    settings = ctx.ensure_object(Settings)
    settings.key = value or None
    if not settings.warned_key:
        settings.warned_key = True
        settings.warn(KEY_WARNING)


def read_key_file(path: str, settings: Settings) -> str:
    """The key in ``path``: read once, one trailing newline stripped; a file that group or
    others can read is used with a warning."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(1 << 16)
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}",
                                 param_hint="'--key-file'") from None
    if mode & 0o077:
        settings.warn(f"key file {path} can be read by other users (mode "
                      f"{stat.S_IMODE(mode):04o}); restrict it: chmod 600 {path}")
    text = data.decode("utf-8", errors="surrogateescape")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise click.BadParameter(f"{path} holds no key", param_hint="'--key-file'")
    return text


def set_key_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--key-file PATH``: the key from a file, kept off the command line."""
    if value is not None:
        settings = ctx.ensure_object(Settings)
        settings.key = read_key_file(value, settings)


def set_color(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--color`` before or after the command."""
    if value is not None:
        ctx.ensure_object(Settings).color = value


COLOR_CHOICE = click.Choice(["auto", "always", "never"])
COLOR_HELP = "Colour and tables: in a terminal (auto), always, never."
KEY_HELP = f"Key of a keyed hash chain (prefer {ENV_KEY} or --key-file: see docs/cli.md)."
KEY_FILE_HELP = "Read the key from this file (one trailing newline is ignored; chmod 600)."


def root_option(f: F) -> F:
    """``--root``, ``--store`` and ``--color`` on a command (they may also be given before it)."""
    f = click.option("--color", type=COLOR_CHOICE, default=None, expose_value=False,
                     callback=set_color, help=COLOR_HELP + " [default: auto]")(f)
    f = click.option("--store", metavar="SPEC", default=None, expose_value=False,
                     callback=set_store, help=STORE_HELP)(f)
    return click.option("--root", metavar="DIR", default=None, expose_value=False,
                        callback=set_root, help=ROOT_HELP)(f)


def key_options(f: F) -> F:
    """``--key`` and ``--key-file``."""
    f = click.option("--key-file", metavar="PATH", default=None, expose_value=False,
                     callback=set_key_file, help=KEY_FILE_HELP)(f)
    return click.option("--key", metavar="SECRET", default=None, expose_value=False,
                        callback=set_key, help=KEY_HELP + f" [env: {ENV_KEY}]")(f)


def store_options(f: F) -> F:
    """``--root``, ``--store``, ``--key``, ``--key-file`` and ``--color`` on a command (they
    may also be given before it)."""
    return root_option(key_options(f))


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
        line = Text.assemble(("error: ", "bold red"), e.message)
        where = []
        if e.path is not None:
            where.append(str(e.path))
        if e.offset is not None:
            where.append(f"byte {e.offset}")
        if e.seq is not None:
            where.append(f"seq {e.seq}")
        settings.err.print(line)
        if where:
            settings.err.print(Text.assemble(("  at: ", "dim"), ", ".join(where)))
        if e.hint:
            settings.err.print(Text.assemble(("  hint: ", "cyan"), e.hint))
        code = exit_code_for(e)
    else:
        settings.err.print(Text.assemble(("error: ", "bold red"), str(e)))
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
                fail(settings, _explain(settings, e))
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
                settings.close_backend()
                _show_warnings(settings, caught)


_WHAT_TO_DO: dict[str, str] = {
    "key_needed": f"give the key with {ENV_KEY} or --key-file PATH",
    "wrong_key": f"check the key ({ENV_KEY} or --key-file PATH): it is not the one the journal "
                 "was written with, or the journal is not keyed",
    "wrong_agent": "an agent's directory copied under another id does not open: give a journal "
                   "a new id with 'agentjournal fork' or 'export' and 'import'",
}


def _explain(settings: Settings, e: JournalError) -> JournalError:
    """Add the command line's way out to an error whose class the status module knows."""
    todo = _WHAT_TO_DO.get(status.classify(e, keyed=settings.key is not None))
    if todo and todo not in (e.hint or ""):
        e.hint = f"{e.hint}; {todo}" if e.hint else todo
    return e


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
    return format_ts(ts)


def local_time(ts: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """``2026-11-26 16:52:07`` in the local time zone."""
    return format_ts(ts, fmt, local=True)


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

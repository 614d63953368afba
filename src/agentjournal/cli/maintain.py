"""Commands that check, branch, shrink and move journals: ``verify``, ``fork``, ``compact``,
``export``, ``import``, plus ``demo`` and ``schema``."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.text import Text

from .. import exchange
from ..backends import filesystem_root
from ..errors import JournalExistsError
from ..replay.verify import VerifyReport
from ..witness import latest_head
from . import schemas
from ._app import (
    EXIT_PROBLEMS,
    Settings,
    get_settings,
    human_bytes,
    iso_utc,
    json_option,
    plural,
    root_option,
    store_options,
)

# --------------------------------------------------------------------------------- verify


def verify_out(rep: VerifyReport) -> schemas.VerifyAgent:
    """The ``verify --json`` object of one agent's report."""
    return {
        "agent_id": rep.agent_id, "ok": rep.ok, "records": rep.records,
        "segments": rep.segments, "snapshots": rep.snapshots, "first_seq": rep.first_seq,
        "last_seq": rep.last_seq, "last_step": rep.last_step, "last_hash": rep.last_hash,
        "quarantined": list(rep.quarantined),
        "cuts": [{"seq": c.seq, "time": iso_utc(c.ts),
                  "reason": "damage" if c.reason == "damage" else "torn_tail",
                  "segment": c.segment, "offset": c.offset, "size": c.size,
                  "digest": c.digest, "quarantine": c.quarantine, "kept": c.kept}
                 for c in rep.cuts],
        "chain_ok": rep.chain_ok,
        "snapshots_ok": rep.snapshots_ok,
        "problems": [{"kind": p.kind, "message": p.message, "path": p.path,
                      "offset": p.offset, "seq": p.seq} for p in rep.problems],
    }


def _print_report(s: Settings, r: schemas.VerifyAgent) -> None:
    counts = (f"{plural(r['records'], 'record')} in {plural(r['segments'], 'segment')}, "
              f"{plural(r['snapshots'], 'snapshot')}")
    recorded = {c["quarantine"] for c in r["cuts"]}
    for c in r["cuts"]:
        kept = ("kept in quarantine/" + c["quarantine"] if c["kept"]
                else f"quarantine/{c['quarantine']} is gone")
        s.note(f"{r['agent_id']}: seq {c['seq']} records that recovery cut "
               f"{plural(c['size'], 'byte')} ({c['reason'].replace('_', ' ')}) at byte "
               f"{c['offset']} of segment {c['segment']} on {c['time']}; {kept}",
               style="yellow")
    for q in r["quarantined"]:
        if q.rsplit("/", 1)[-1] not in recorded:
            s.note(f"{r['agent_id']}: recovery cut bytes off this journal, kept in {q}",
                   style="yellow")
    if r["ok"]:
        s.out.print(Text.assemble(("ok  ", "bold green"), (r["agent_id"], "bold"),
                                  f"  {counts}, steps up to {r['last_step']}"))
        return
    n = len(r["problems"])
    s.out.print(Text.assemble(("BAD ", "bold red"), (r["agent_id"], "bold"),
                              f"  {counts}: {plural(n, 'problem')}"))
    for p in r["problems"]:
        where = p["path"] or "?"
        if p["offset"] is not None:
            where += f":{p['offset']}"
        line = Text.assemble(("    ", ""), (f"{p['kind']:<15}", "yellow"), (where, "cyan"))
        if p["seq"] is not None:
            line.append(f" (seq {p['seq']})", style="dim")
        s.out.print(line)
        s.out.print(Text("      " + p["message"]))


@click.command("verify", epilog="""
\b
Examples:
  $ agentjournal verify researcher
  $ agentjournal verify --all --json
  $ agentjournal verify researcher --against heads.jsonl
""")
@click.argument("agents", nargs=-1, metavar="[AGENT]...")
@click.option("--all", "all_agents", is_flag=True, help="Verify every agent under the root.")
@click.option("--against", "witness", metavar="WITNESS",
              help="Also check each journal against its newest head in this witness file "
              "(written by 'agentjournal anchor'): catches records cut off the end and a "
              "store rolled back to an older copy.")
@store_options
@json_option
def verify_cmd(agents: tuple[str, ...], all_agents: bool, witness: str | None,
               as_json: bool) -> None:
    """Check every record, the chain across segments and every snapshot.

    Each problem is printed with its kind, the file and the byte offset (as FILE:OFFSET).
    Exit status 1 when anything is wrong, 0 when all is well. A progress bar shows on large
    journals when stderr is a terminal.
    """
    s = get_settings()
    if all_agents and agents:
        raise click.UsageError("give agents or --all, not both")
    if not all_agents and not agents:
        raise click.UsageError("name an agent to verify, or use --all")
    names = s.backend().list_agents() if all_agents else list(agents)
    results: list[schemas.VerifyAgent] = []
    for name in names:
        head = latest_head(witness, name, s.key_bytes()) if witness else None
        with s.journal(name) as j, s.progress(f"verifying {name}") as update:
            results.append(verify_out(j.verify(progress=update, against=head)))
        if not as_json:
            _print_report(s, results[-1])
    ok = all(r["ok"] for r in results)
    if as_json:
        doc: schemas.VerifyOut = {"ok": ok, "agents": results}
        s.emit_json(doc)
    elif not names:
        s.note(f"no agents under {s.where}")
    if not ok:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


# --------------------------------------------------------------------------------- fork


@click.command("fork", epilog="""
\b
Examples:
  $ agentjournal fork researcher --at 11 --to researcher-retry
""")
@click.argument("agent")
@click.option("--at", "step", type=click.IntRange(min=0), required=True, metavar="STEP",
              help="The step of AGENT to start from.")
@click.option("--to", "new_agent", required=True, metavar="NEW_AGENT",
              help="Id of the new agent (must not exist).")
@store_options
@json_option
def fork_cmd(agent: str, step: int, new_agent: str, as_json: bool) -> None:
    """Start NEW_AGENT from AGENT's state at STEP, linked to its parent.

    The new journal's first record is a fork record naming the parent, its step, seq and
    chain hash; a snapshot follows, so the new agent resumes at once. AGENT is only read
    (it may be running).
    """
    s = get_settings()
    with s.journal(agent) as j:
        parent_seq = j.seq_of_step(step)
        new = j.fork(step, new_agent)
        with new:
            doc: schemas.ForkOut = {
                "parent": agent, "parent_step": step, "parent_seq": parent_seq,
                "agent_id": new_agent, "step": new.last_step, "seq": new.last_seq}
    if as_json:
        s.emit_json(doc)
        return
    s.out.print(Text.assemble(
        "forked ", (agent, "bold"), f" at step {doc['parent_step']} (seq {doc['parent_seq']})"
        " → ", (new_agent, "bold green")))
    s.note(f"continue it with Journal({new_agent!r}, {s.python_store()}) or inspect it with "
           f"'agentjournal log {new_agent}'")


# --------------------------------------------------------------------------------- compact


@click.command("compact", epilog="""
\b
Examples:
  $ agentjournal compact researcher --dry-run
  $ agentjournal compact researcher --keep 2 --compress-segments
""")
@click.argument("agent")
@click.option("--keep", type=click.IntRange(min=1), default=10, show_default=True,
              metavar="N", help="Keep the newest N snapshots.")
@click.option("--prune", is_flag=True,
              help="Delete segments older than the oldest kept snapshot (an anchor record "
              "keeps the chain verifiable). Steps before it can no longer be shown.")
@click.option("--compress-segments", is_flag=True,
              help="lz4-compress segments older than the oldest kept snapshot instead.")
@click.option("--dry-run", is_flag=True,
              help="Only show what would be removed or compressed (works on a live journal).")
@store_options
@json_option
def compact_cmd(agent: str, keep: int, prune: bool, compress_segments: bool, dry_run: bool,
                as_json: bool) -> None:
    """Apply retention to AGENT: delete old snapshots, then keep, compress or prune the
    segments that only they needed.

    It never deletes the newest snapshot or anything needed to replay after the oldest kept
    one, and writes new files durably before it removes old ones. It takes the agent's
    writer lock (exit 4 while the agent runs), except with --dry-run.
    """
    s = get_settings()
    if prune and compress_segments:
        raise click.UsageError("--prune and --compress-segments cannot be combined")
    with s.journal(agent, readonly=dry_run) as j, s.progress(f"compacting {agent}"):
        rep = j.compact(keep_snapshots=keep, prune=prune,
                        compress_segments=compress_segments, dry_run=dry_run)
    doc: schemas.CompactOut = {
        "agent_id": agent, "dry_run": dry_run, "keep_snapshots": keep, "prune": prune,
        "compress_segments": compress_segments,
        "snapshots_deleted": list(rep.snapshots_deleted),
        "segments_deleted": list(rep.segments_deleted),
        "segments_compressed": list(rep.segments_compressed),
        "bytes_before": rep.bytes_before, "bytes_saved": rep.bytes_saved,
        "anchor_seq": rep.anchor_seq, "errors": list(rep.errors)}
    if as_json:
        s.emit_json(doc)
    else:
        _print_compact(s, doc)
    if rep.errors:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _seqs(seqs: list[int]) -> str:
    shown = ", ".join(str(q) for q in seqs[:8])
    return shown + (f", … ({len(seqs)} in all)" if len(seqs) > 8 else "")


def _print_compact(s: Settings, d: schemas.CompactOut) -> None:
    would = "would " if d["dry_run"] else ""
    lines = []
    if d["snapshots_deleted"]:
        lines.append(f"{would}delete {plural(len(d['snapshots_deleted']), 'snapshot')} "
                     f"(seq {_seqs(d['snapshots_deleted'])})")
    if d["segments_deleted"]:
        lines.append(f"{would}prune {plural(len(d['segments_deleted']), 'segment')} "
                     f"(first seq {_seqs(d['segments_deleted'])})")
    if d["segments_compressed"]:
        lines.append(f"{would}compress {plural(len(d['segments_compressed']), 'segment')} "
                     f"(first seq {_seqs(d['segments_compressed'])})")
    head = Text.assemble(("compact ", ""), (d["agent_id"], "bold"),
                         (" (dry run)" if d["dry_run"] else "", "yellow"), ": ")
    if not lines:
        s.out.print(head + Text(f"nothing to do (keeping the newest {d['keep_snapshots']} "
                                "snapshots)"))
        return
    saved = human_bytes(d["bytes_saved"])
    s.out.print(head + Text(f"{'would save' if d['dry_run'] else 'saved'} {saved} of "
                            f"{human_bytes(d['bytes_before'])}", style="bold"))
    for line in lines:
        s.out.print("  " + line)
    if d["anchor_seq"] is not None:
        s.out.print(f"  anchor record written at seq {d['anchor_seq']}")
    for e in d["errors"]:
        s.warn(e)


# --------------------------------------------------------------------------------- export


@click.command("export", epilog="""
\b
Examples:
  $ agentjournal export researcher -o researcher.journal.jsonl
  $ agentjournal export researcher > researcher-copy.jsonl
  $ agentjournal export researcher --from 12 --to 20 -o steps-12-20.jsonl
""")
@click.argument("agent")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Where to write ('-': stdout).")
@click.option("--no-snapshots", is_flag=True,
              help="Leave snapshots out (a pruned journal still keeps the one it needs).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--from", "from_step", type=click.IntRange(min=0), metavar="STEP",
              help="Export only from STEP on (the file starts at the snapshot before it).")
@click.option("--to", "to_step", type=click.IntRange(min=0), metavar="STEP",
              help="Export only up to STEP (its last record).")
@store_options
@json_option
def export_cmd(agent: str, output: str, no_snapshots: bool, force: bool,
               from_step: int | None, to_step: int | None, as_json: bool) -> None:
    """Write AGENT's journal to one self-contained, verifiable JSONL file.

    The file holds a manifest line, the journal's lines byte for byte (hash chain included)
    and its snapshots, so 'agentjournal import' can verify it completely. A live journal is
    exported up to its last complete record.

    With --from/--to, only a range of steps: the journal's lines from the snapshot at or
    before --from up to --to, byte for byte, plus an anchor record that says the earlier
    records were left out; it imports and verifies like a whole export.
    """
    s = get_settings()
    if from_step is not None and to_step is not None and to_step < from_step:
        raise click.BadParameter(f"--to {to_step} is before --from {from_step}",
                                 param_hint="--to")
    to_stdout = output == "-"
    if to_stdout and as_json:
        raise click.UsageError("--json needs --output FILE (stdout carries the export)")
    if to_stdout and sys.stdout.isatty():
        raise click.UsageError("refusing to write an export to a terminal; use -o FILE or "
                               "redirect stdout")
    if not to_stdout and os.path.exists(output) and not force:
        raise JournalExistsError(f"{output} already exists", path=output,
                                 hint="choose another file or pass --force")
    with s.journal(agent) as j, s.progress(f"exporting {agent}", "bytes") as update:
        if to_stdout:
            out = click.get_binary_stream("stdout")
            rep = exchange.export_journal(j, out, snapshots=not no_snapshots, progress=update,
                                          from_step=from_step, to_step=to_step)
            out.flush()
        else:
            with _atomic_output(output) as f:
                rep = exchange.export_journal(j, f, snapshots=not no_snapshots,
                                              progress=update, from_step=from_step,
                                              to_step=to_step)
    doc: schemas.ExportOut = {
        "agent_id": rep.agent_id, "path": output, "records": rep.records,
        "segments": rep.segments, "snapshots": rep.snapshots, "bytes": rep.bytes,
        "first_seq": rep.first_seq, "last_seq": rep.last_seq, "last_step": rep.last_step,
        "last_hash": rep.last_hash, "keyed": rep.keyed, "range": _range_out(rep.range),
        "skipped": [{"seq": k["seq"], "reason": k["reason"]} for k in rep.skipped]}
    if as_json:
        s.emit_json(doc)
        return
    for k in rep.skipped:
        s.warn(f"snapshot {k['seq']} left out (the journal does not use it): {k['reason']}")
    r = rep.range
    steps = (f"steps {r['first_step']}..{r['to_step']}" if r is not None
             else f"steps up to {rep.last_step}")
    msg = (f"exported {agent}: {plural(rep.records, 'record')} ({steps}), "
           f"{plural(rep.snapshots, 'snapshot')}, {human_bytes(rep.bytes)}")
    if to_stdout:
        s.note(msg)
    else:
        s.out.print(msg + f" → {output}")


def _range_out(r: dict[str, Any] | None) -> schemas.ExportRange | None:
    """The ``range`` of ``export``/``import --json``."""
    if r is None:
        return None
    return {"from_step": r["from_step"], "to_step": r["to_step"],
            "first_step": r["first_step"], "base_seq": r["base_seq"], "end_seq": r["end_seq"],
            "anchor_seq": r["anchor_seq"]}


@contextlib.contextmanager
def _atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A temp file next to ``path``, fsynced and renamed over it on success."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".agentjournal-export-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------- import


@click.command("import", epilog="""
\b
Examples:
  $ agentjournal import researcher.journal.jsonl --dry-run
  $ agentjournal --root ./restored import researcher.journal.jsonl
""")
@click.argument("file", metavar="FILE")
@click.option("--dry-run", is_flag=True, help="Only verify the file; write nothing.")
@store_options
@json_option
def import_cmd(file: str, dry_run: bool, as_json: bool) -> None:
    """Import an export FILE ('-': stdin) as a new journal under the root.

    The whole file is verified first (every record hash, the chain, the manifest, every
    snapshot) and refused, with the byte offset of the problem, if anything does not check
    out; nothing is written then. An agent that already has a journal is never overwritten.
    """
    s = get_settings()
    s.check_root(must_exist=False)  # a new store is made; a file in its place is refused
    with _seekable(file) as src, s.progress("importing", "bytes") as update:
        if dry_run:
            size = os.fstat(src.fileno()).st_size if src.seekable() else 0
            rep = exchange.verify_export(src, key=s.key_bytes(), where=file, progress=update,
                                         total=size)
        else:
            rep = exchange.import_journal(src, backend=s.backend(must_exist=False),
                                          key=s.key_bytes(), where=file,
                                          progress=update)
    doc: schemas.ImportOut = {
        "agent_id": rep.agent_id, "root": s.where, "path": file,
        "written": rep.written, "records": rep.records, "segments": rep.segments,
        "snapshots": rep.snapshots, "bytes": rep.bytes, "first_seq": rep.first_seq,
        "last_seq": rep.last_seq, "last_step": rep.last_step, "last_hash": rep.last_hash,
        "keyed": rep.keyed, "range": _range_out(rep.range)}
    if as_json:
        s.emit_json(doc)
        return
    r = rep.range
    steps = (f"steps {r['first_step']}..{r['to_step']} of the journal" if r is not None
             else f"steps up to {rep.last_step}")
    what = f"{plural(rep.records, 'record')} ({steps}), {plural(rep.snapshots, 'snapshot')}"
    if dry_run:
        s.out.print(Text.assemble(("ok ", "bold green"), f"{file}: agent ",
                                  (rep.agent_id, "bold"), f", {what}; verified, not imported"))
    else:
        s.out.print(Text.assemble("imported ", (rep.agent_id, "bold"), f": {what} into "
                                  f"{s.where} (verified)"))


@contextlib.contextmanager
def _seekable(file: str) -> Iterator[IO[bytes]]:
    """The file opened for binary reading; stdin ('-') is spooled to a temp file first."""
    if file != "-":
        try:
            f = open(file, "rb")
        except FileNotFoundError:
            raise click.BadParameter(f"{file} does not exist", param_hint="FILE") from None
        with f:
            yield f
        return
    with tempfile.TemporaryFile() as tmp:
        shutil.copyfileobj(click.get_binary_stream("stdin"), tmp)
        tmp.seek(0)
        yield tmp


# --------------------------------------------------------------------------------- demo


@click.command("demo", epilog="""
\b
Examples:
  $ agentjournal demo
  $ agentjournal --root ./demo-store demo --steps 20 --crash-at 9
""")
@click.option("--steps", type=click.IntRange(min=1), default=12, show_default=True,
              help="Steps the demo agent runs.")
@click.option("--crash-at", type=click.IntRange(min=1), default=7, show_default=True,
              help="Step at which the demo agent 'crashes' before resuming.")
@root_option
def demo_cmd(steps: int, crash_at: int) -> None:
    """Run a small agent that journals its steps, crashes midway, resumes from its last step
    and shows its history: the quick start, in one command.
    """
    s = get_settings()
    try:
        from ..demo import run_demo
    except ImportError:  # the facade's demo is not installed in this build
        raise click.ClickException("the demo is not available in this build") from None
    if not s.on_filesystem:
        raise click.UsageError(f"the demo runs on a store directory, not on {s.where}; give "
                               "it one with --root DIR")
    s.check_root(must_exist=False)
    try:
        run_demo(filesystem_root(s.spec), echo=click.echo, steps=steps, crash_at=crash_at)
    except ValueError as e:  # steps / crash-at out of range
        raise click.UsageError(str(e)) from None
    except RuntimeError as e:  # the demo's child agent did not behave
        raise click.ClickException(str(e)) from None


# --------------------------------------------------------------------------------- schema


@click.command("schema", epilog="""
\b
Examples:
  $ agentjournal schema log
""")
@click.argument("command", type=click.Choice(sorted(schemas.SCHEMAS)))
def schema_cmd(command: str) -> None:
    """Print the JSON Schema of COMMAND's --json output (one stable schema per command;
    for log, the schema of each line)."""
    doc: dict[str, Any] = schemas.json_schema(command)
    get_settings().emit_json(doc)

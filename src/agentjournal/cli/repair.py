"""``agentjournal repair``: cut damage off the end of a journal so that it opens for writing.

A crash can leave the end of the last segment damaged: a torn tail (every writer cuts it off
on open), or — after an out-of-order power loss in ``group``/``none`` mode — a damaged line
followed by intact records, which the writer refuses to cut without ``Journal(...,
repair=True)``. This command opens the journal that way, reports what was cut (the bytes are
kept in ``<agent>/quarantine/``) and verifies the result. ``--dry-run`` only reads.
"""

from __future__ import annotations

import os
import re
import warnings

import click
from rich.text import Text

from ..backends.base import SEGMENT_SUFFIX
from ..errors import CorruptRecordError
from ..journal.recovery import plan_recovery, verified_lines_after
from ..journal.writer import RecoveryWarning
from ..replay.journal import Journal
from . import schemas
from ._app import EXIT_PROBLEMS, Settings, get_settings, json_option, plural, store_options
from .maintain import _print_report as print_report
from .maintain import verify_out

_QUARANTINE_NAME = re.compile(rf"^(\d+){re.escape(SEGMENT_SUFFIX)}\.(\d+)\.\d+$")
"""``quarantine/<segment>.<offset>.<ns>`` (docs/format.md)."""


def _prefix_hint(agent: str) -> str:
    return ("a repair only cuts damage off the end of the journal's last segment; to go on, fork "
            f"a new agent from a step that can still be rebuilt ('agentjournal fork {agent} --at "
            f"STEP --to NEW_AGENT'), or read what is intact with Journal({agent!r}, root, "
            "readonly=True, valid_prefix=True)")


def plan_repair(j: Journal) -> tuple[list[schemas.RepairCut], int, int]:
    """What ``Journal(..., repair=True)`` would cut (the engine's recovery plan), read-only.

    Returns the cuts and the seq and step the journal would end at: recovery records each
    cut in the chain (a ``cut`` record), so that is one seq past the last record kept per
    cut. Damage that a repair may not cut (a wrong key) is shown as a cut with no verified
    record after it, which :func:`_check_safe` refuses.
    """
    plan = plan_recovery(j.store, j.key, repair=True)
    cuts: list[schemas.RepairCut] = [{
        "kind": "damage" if c.kind == "damage" else "torn_tail", "segment": c.where,
        "offset": c.offset, "bytes": len(c.data), "seq": c.seq,
        "records_after": c.records_after, "message": c.message, "quarantine": None}
        for c in plan.cuts if c.kind != "empty_segment"]
    err = plan.refused
    if err is not None and not plan.tail_sealed:
        cuts.append({"kind": "damage", "segment": err.path or "", "offset": err.offset or 0,
                     "bytes": 0, "seq": err.seq or 0, "records_after": 0,
                     "message": err.message, "quarantine": None})
    last = plan.tail.records[-1] if plan.tail is not None and plan.tail.records else None
    recorded = len(cuts) if err is None else 0
    return cuts, (last.seq if last else 0) + recorded, (last.step if last else 0)


def _check_safe(agent: str, cuts: list[schemas.RepairCut]) -> None:
    """Refuse to cut damage when nothing after it verifies with the key given.

    Intact records after the damage is what a power loss leaves, and they verify. Records that
    only decode mean a wrong or missing key (every hash fails): cutting there would throw the
    whole segment away.
    """
    for c in cuts:
        if c["kind"] == "damage" and c["records_after"] == 0:
            raise CorruptRecordError(
                f"refusing to repair: {c['message']}, and no record after it verifies with "
                "the key given", path=c["segment"], offset=c["offset"],
                hint="pass the key the journal was written with (--key or AGENTJOURNAL_KEY); "
                "if that is right, the records after the damage are damaged too: cut them "
                f"with Journal({agent!r}, root, repair=True) once you have a copy")


def _covered(p: schemas.ProblemOut, cuts: list[schemas.RepairCut]) -> bool:
    return p["kind"] in ("torn_tail", "corrupt") and any(
        p["path"] == c["segment"] and p["offset"] == c["offset"] for c in cuts)


def _actual_cuts(j: Journal, quarantined: list[str],
                 planned: list[schemas.RepairCut]) -> list[schemas.RepairCut]:
    """The cuts the writer made, from the files it quarantined (named after segment and
    offset), described as planned when the plan saw them."""
    out: list[schemas.RepairCut] = []
    for path in quarantined:
        m = _QUARANTINE_NAME.match(os.path.basename(path))
        first, offset = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        segment = j.store.location("segment", first)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        cut: schemas.RepairCut
        match = [c for c in planned if c["segment"] == segment and c["offset"] == offset]
        if match:
            cut = {**match[0], "quarantine": path}
        else:  # the journal changed between the plan and taking the lock
            after = verified_lines_after(data, j.key)
            cut = {"kind": "damage" if after else "torn_tail", "segment": segment,
                   "offset": offset, "bytes": len(data), "seq": j.last_seq + 1,
                   "records_after": after, "message": "cut on opening for writing",
                   "quarantine": path}
        if data:
            cut["bytes"] = len(data)
        out.append(cut)
    return out


@click.command("repair", epilog="""
\b
Examples:
  $ agentjournal repair researcher --dry-run
  $ agentjournal repair researcher
""")
@click.argument("agent")
@click.option("--dry-run", is_flag=True,
              help="Only show what a repair would cut and what it cannot fix; takes no lock "
              "and changes nothing (works on a running agent).")
@store_options
@json_option
def repair_cmd(agent: str, dry_run: bool, as_json: bool) -> None:
    """Cut damage off the end of AGENT's journal so that it opens for writing again.

    A torn tail (a write cut short by a crash), or a damaged record followed by intact ones
    (what a power loss can leave in group or none durability mode), is cut off the last
    segment; the cut bytes are kept in the agent's quarantine/ directory. Then the journal is
    verified. Damage anywhere else cannot be cut: it is reported, with what can still be read.
    Exit status 0 when the journal verifies afterwards (with --dry-run: when there is nothing
    to do), 1 otherwise. It takes the agent's writer lock (exit 4 while the agent runs),
    except with --dry-run. It refuses (exit 5, nothing changed) when no record after the
    damage verifies with the key given: that is a missing or wrong --key, not damage.
    """
    s = get_settings()
    with s.journal(agent) as ro:
        planned, end_seq, end_step = plan_repair(ro)
        if dry_run:
            with s.progress(f"verifying {agent}") as update:
                report = verify_out(ro.verify(progress=update))
    if dry_run:
        unsafe = any(c["kind"] == "damage" and not c["records_after"] for c in planned)
        if unsafe:  # the repair refuses: it would cut nothing
            planned, end_seq, end_step = [], report["last_seq"], report["last_step"]
        cannot = [p for p in report["problems"] if not _covered(p, planned)]
        doc: schemas.RepairOut = {
            "agent_id": agent, "dry_run": True, "repaired": False, "cuts": planned,
            "cannot_fix": cannot, "removed_temps": [], "last_seq": end_seq,
            "last_step": end_step, "ok": not planned and not cannot, "verify": report}
        if as_json:
            s.emit_json(doc)
        else:
            _print_repair(s, doc)
            if unsafe:
                s.err.print(Text("  hint: ", style="cyan") + Text(
                    "the damage is followed by records that do not verify with the key given, "
                    "so a repair would refuse: check --key / AGENTJOURNAL_KEY"))
            elif cannot:
                s.err.print(Text("  hint: ", style="cyan") + Text(_prefix_hint(agent)))
            pid = s.backend().lock_holders().get(agent)
            if pid is not None and any(c["kind"] == "torn_tail" for c in planned):
                s.note(f"  the agent is running (pid {pid}): the torn tail may be a record "
                       "being written right now")
        if not doc["ok"]:
            raise click.exceptions.Exit(EXIT_PROBLEMS)
        return

    _check_safe(agent, planned)
    try:
        with warnings.catch_warnings():
            # This command reports the cuts itself; the engine's warning would say it twice.
            warnings.filterwarnings("ignore", category=RecoveryWarning)
            j = s.journal(agent, readonly=False, repair=True)
    except CorruptRecordError as e:
        e.hint = ((e.hint + "; ") if e.hint else "") + _prefix_hint(agent)
        raise
    with j, s.progress(f"verifying {agent}") as update:
        rec = j.writer.recovery if j.writer is not None else None
        cuts = _actual_cuts(j, rec.quarantined if rec else [], planned)
        report = verify_out(j.verify(progress=update))
        doc = {
            "agent_id": agent, "dry_run": False, "repaired": bool(cuts), "cuts": cuts,
            "cannot_fix": report["problems"],
            "removed_temps": list(rec.removed_temps) if rec else [],
            "last_seq": j.last_seq, "last_step": j.last_step, "ok": report["ok"],
            "verify": report}
    if as_json:
        s.emit_json(doc)
    else:
        _print_repair(s, doc)
        if not doc["ok"]:
            s.err.print(Text("  hint: ", style="cyan") + Text(_prefix_hint(agent)))
    if not doc["ok"]:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _print_repair(s: Settings, d: schemas.RepairOut) -> None:
    dry = d["dry_run"]
    head = Text.assemble(("repair ", ""), (d["agent_id"], "bold"),
                         (" (dry run)" if dry else "", "yellow"), ": ")
    which = ""
    if any(c["bytes"] for c in d["cuts"]):
        which = ", the record of the cut" if len(d["cuts"]) == 1 else ", the records of the cuts"
    end = f"step {d['last_step']} (seq {d['last_seq']}{which})"
    if not d["cuts"]:
        what = "nothing to repair" if d["ok"] else "nothing a repair can cut"
        s.out.print(head + Text(f"{what}; the journal ends at {end}"))
    else:
        total = sum(c["bytes"] for c in d["cuts"])
        s.out.print(head + Text(f"{'would cut' if dry else 'cut'} {plural(total, 'byte')}",
                                style="bold"))
        for c in d["cuts"]:
            if c["kind"] == "damage":
                what = (f"damaged record at seq {c['seq']} and the "
                        f"{plural(c['records_after'], 'intact record')} after it")
            else:
                what = f"torn tail at seq {c['seq']}"
            s.out.print(Text.assemble("  ", (f"{c['kind']:<10}", "yellow"),
                                      (f"{c['segment']}:{c['offset']}", "cyan"),
                                      f"  {plural(c['bytes'], 'byte')}: {what}"))
            s.out.print(Text("      " + c["message"]))
            if c["quarantine"] is not None:
                s.out.print(Text("      kept in " + c["quarantine"], style="dim"))
        s.out.print(f"  the journal {'would end' if dry else 'now ends'} at {end}")
    for t in d["removed_temps"]:
        s.out.print(Text(f"  removed temp file {t}", style="dim"))
    if dry:
        for p in d["cannot_fix"]:
            where = (p["path"] or "?") + (f":{p['offset']}" if p["offset"] is not None else "")
            s.out.print(Text.assemble("  ", ("cannot fix ", "red"), (p["kind"], "yellow"),
                                      " ", (where, "cyan")))
            s.out.print(Text("      " + p["message"]))
        return
    print_report(s, d["verify"])

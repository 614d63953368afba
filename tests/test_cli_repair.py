"""``agentjournal repair``: cutting damage off the end of a journal, on journals damaged the way
a crash or an out-of-order power loss in ``none`` mode leaves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentjournal import CorruptRecordError, Cut, Journal
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.cli.schemas import validate
from test_cli_support import make_agent, run, run_json, segment_files, writer_in_another_process

AGENT = "crashed"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "store"
    # Written in `none` mode; a snapshot at step 10 starts the last segment, which holds the
    # snapshot record and the records of steps 11..16.
    make_agent(r, AGENT, 16, snapshot_every=10, finished=False, keep_states=False)
    return r


def _lines(seg: Path) -> list[bytes]:
    return seg.read_bytes().splitlines(keepends=True)


def _seq(line: bytes) -> int:
    seq: int = json.loads(line)["seq"]
    return seq


AFTER = 4
"""Records after the damaged one in the last segment (steps 13..16 are seqs 14..17)."""


def damage_middle(root: Path) -> tuple[Path, int, int, bytes]:
    """Zero bytes inside one record of the last segment, the records after it intact.

    Returns the segment, the damaged line's offset, its seq and the bytes from it on."""
    seg = segment_files(root, AGENT)[-1]
    lines = _lines(seg)
    i = 3  # header, snapshot record, seq 12, then the record of seq 13
    assert len(lines) == i + 1 + AFTER
    seq = _seq(lines[i])
    line = bytearray(lines[i])
    line[30:60] = b"\x00" * 30
    lines[i] = bytes(line)
    seg.write_bytes(b"".join(lines))
    offset = sum(len(x) for x in lines[:i])
    return seg, offset, seq, seg.read_bytes()[offset:]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / AGENT).rglob("*")) if p.is_file() and p.name != "LOCK"}


def _repair_json(root: Path, *args: str, code: int) -> dict[str, Any]:
    doc: dict[str, Any] = run_json("repair", AGENT, *args, root=root, code=code)
    return doc


# --------------------------------------------------------------------------- damage mid-segment


def test_dry_run_reports_the_damage_and_changes_nothing(root: Path) -> None:
    seg, offset, seq, cut = damage_middle(root)
    before = _tree(root)
    res = run("repair", AGENT, "--dry-run", root=root)
    assert res.exit_code == 1, res.stderr
    assert "would cut" in res.stdout and f"{seg}:{offset}" in res.stdout
    assert f"damaged record at seq {seq} and the {AFTER} intact records after it" in res.stdout
    # Records up to seq - 1 are kept; the record of the cut takes seq `seq`.
    assert f"would end at step {seq - 2} (seq {seq}, the record of the cut)" in res.stdout
    doc = _repair_json(root, "--dry-run", code=1)
    assert doc["dry_run"] and not doc["repaired"] and not doc["ok"]
    assert doc["cuts"] == [{
        "kind": "damage", "segment": str(seg), "offset": offset, "bytes": len(cut), "seq": seq,
        "records_after": AFTER, "message": doc["cuts"][0]["message"], "quarantine": None}]
    assert doc["cannot_fix"] == []
    assert doc["last_seq"] == seq
    assert not doc["verify"]["ok"] and doc["verify"]["problems"][0]["offset"] == offset
    assert _tree(root) == before, "a dry run changes nothing"
    assert not (root / AGENT / "quarantine").exists()


def test_repair_cuts_the_damage_and_the_journal_goes_on(root: Path) -> None:
    seg, offset, seq, cut = damage_middle(root)
    with pytest.raises(CorruptRecordError):
        Journal(AGENT, root)  # the writer refuses such a journal without a repair
    res = run("compact", AGENT, root=root)  # a command that opens it for writing says what to do
    assert res.exit_code == 5 and f"agentjournal repair {AGENT}" in res.stderr

    res = run("repair", AGENT, root=root)
    assert res.exit_code == 0, res.stderr
    assert "cut" in res.stdout and f"{seg}:{offset}" in res.stdout
    assert f"now ends at step {seq - 2} (seq {seq}, the record of the cut)" in res.stdout
    assert f"ok  {AGENT}" in res.stdout  # verified afterwards
    assert "warning: cut" not in res.stderr  # reported once, not also as the engine's warning
    quarantined = list((root / AGENT / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == cut
    assert str(quarantined[0]) in res.stdout
    assert seg.stat().st_size == offset

    with Journal(AGENT, root) as j:
        cut_rec = list(j.records())[-1]
        assert isinstance(cut_rec, Cut) and cut_rec.seq == seq and cut_rec.reason == "damage"
        assert (cut_rec.offset, cut_rec.size, cut_rec.lines_after) == (offset, len(cut), AFTER)
        assert cut_rec.quarantine == quarantined[0].name
        j.append({"after": "repair"})
        assert j.last_seq == seq + 1 and j.verify().ok
    assert run("verify", AGENT, root=root).exit_code == 0
    assert run_json("repair", AGENT, root=root)["cuts"] == []  # nothing left to do


def test_repair_json(root: Path) -> None:
    seg, offset, seq, cut = damage_middle(root)
    doc = _repair_json(root, code=0)
    assert doc["repaired"] and doc["ok"] and not doc["dry_run"]
    [c] = doc["cuts"]
    assert (c["kind"], c["segment"], c["offset"], c["bytes"], c["seq"], c["records_after"]) == (
        "damage", str(seg), offset, len(cut), seq, AFTER)
    assert Path(c["quarantine"]).read_bytes() == cut
    assert (doc["last_seq"], doc["last_step"]) == (seq, seq - 2)  # seq: the record of the cut
    assert doc["verify"]["ok"] and doc["verify"]["last_seq"] == seq
    [recorded] = doc["verify"]["cuts"]
    assert (recorded["seq"], recorded["reason"], recorded["offset"], recorded["size"]) == (
        seq, "damage", offset, len(cut))
    assert recorded["kept"] and recorded["quarantine"] == Path(c["quarantine"]).name
    assert doc["cannot_fix"] == []


# --------------------------------------------------------------------------- torn tail


def test_torn_tail_is_repaired(root: Path) -> None:
    seg = segment_files(root, AGENT)[-1]
    data = seg.read_bytes()
    last_line = data.rindex(b"\n", 0, len(data) - 1) + 1
    last_seq = _seq(data[last_line:])
    seg.write_bytes(data[:-10])
    doc = _repair_json(root, "--dry-run", code=1)
    [c] = doc["cuts"]
    assert (c["kind"], c["offset"], c["seq"], c["records_after"]) == (
        "torn_tail", last_line, last_seq, 0)
    res = run("repair", AGENT, root=root)
    assert res.exit_code == 0, res.stderr
    assert "torn_tail" in res.stdout and f"{seg}:{last_line}" in res.stdout
    # The segment ends where the tail was cut; the record of the cut starts a new one.
    assert seg.stat().st_size == last_line
    with Journal(AGENT, root, readonly=True) as j:
        assert j.last_seq == last_seq and j.verify().ok
        assert isinstance(list(j.records())[-1], Cut)


# --------------------------------------------------------------------------- nothing to do


def test_healthy_journal_needs_no_repair(root: Path) -> None:
    before = _tree(root)
    for args in ((), ("--dry-run",)):
        res = run("repair", AGENT, *args, root=root)
        assert res.exit_code == 0, res.stderr
        assert "nothing to repair" in res.stdout
        doc = _repair_json(root, *args, code=0)
        assert doc["ok"] and not doc["repaired"] and doc["cuts"] == [] == doc["cannot_fix"]
        assert doc["last_seq"] == 17 and doc["last_step"] == 16
    assert _tree(root) == before
    assert run("repair", "nobody", root=root).exit_code == 3


# --------------------------------------------------------------------------- refusals


def test_a_running_writer_means_locked(root: Path) -> None:
    with writer_in_another_process(root, AGENT):
        res = run("repair", AGENT, root=root)
        assert res.exit_code == 4
        assert "locked" in res.stderr and "hint:" in res.stderr
        assert run("repair", AGENT, "--dry-run", root=root).exit_code == 0  # takes no lock
    # Damaged, and the lock held: nothing is cut.
    damage_middle(root)
    before = _tree(root)
    store = FilesystemBackend(root).agent(AGENT, create=False)
    store.lock()
    try:
        res = run("repair", AGENT, root=root)
        assert res.exit_code == 4 and "Traceback" not in res.stderr
    finally:
        store.close()
    assert _tree(root) == before


def test_damage_in_an_earlier_segment_cannot_be_repaired(root: Path) -> None:
    seg = segment_files(root, AGENT)[0]
    lines = _lines(seg)
    line = bytearray(lines[2])
    line[30:60] = b"\x00" * 30
    lines[2] = bytes(line)
    seg.write_bytes(b"".join(lines))
    offset = sum(len(x) for x in lines[:2])
    doc = _repair_json(root, "--dry-run", code=1)
    assert doc["cuts"] == []
    assert [(p["kind"], p["path"], p["offset"]) for p in doc["cannot_fix"]] == [
        ("corrupt", str(seg), offset)]
    res = run("repair", AGENT, root=root)
    assert res.exit_code == 1
    assert "nothing a repair can cut" in res.stdout and "BAD" in res.stdout
    assert "valid_prefix=True" in res.stderr and f"agentjournal fork {AGENT}" in res.stderr
    doc = _repair_json(root, code=1)
    assert not doc["ok"] and not doc["repaired"] and doc["cannot_fix"][0]["offset"] == offset


def test_a_missing_or_wrong_key_is_never_repaired_away(tmp_path: Path) -> None:
    # Without the right key every hash fails while the records still decode: that is not
    # damage to cut (cutting would throw the whole segment away).
    root = tmp_path / "store"
    make_agent(root, AGENT, 5, snapshot_every=None, key=b"secret")
    before = _tree(root)
    for key in (None, "wrong"):
        env = {"AGENTJOURNAL_KEY": key}
        res = run("repair", AGENT, "--dry-run", root=root, env=env)
        assert res.exit_code == 1 and "key" in res.stderr
        res = run("repair", AGENT, root=root, env=env)
        assert res.exit_code == 5, res.stdout
        assert "refusing to repair" in res.stderr and "AGENTJOURNAL_KEY" in res.stderr
    assert _tree(root) == before
    assert not (root / AGENT / "quarantine").exists()
    res = run("repair", AGENT, root=root, env={"AGENTJOURNAL_KEY": "secret"})
    assert res.exit_code == 0 and "nothing to repair" in res.stdout


def test_schema_lists_repair() -> None:
    res = run("schema", "repair")
    assert res.exit_code == 0
    props = json.loads(res.stdout)["properties"]
    assert {"cuts", "cannot_fix", "verify", "ok", "repaired"} <= set(props)
    with pytest.raises(ValueError):
        validate("repair", {"agent_id": "x"})

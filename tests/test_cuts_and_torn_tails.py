"""Issue 10, "tampering told apart from crashes", items 2 and 3: every cut recovery makes is
recorded in the chain (a ``cut`` record, format 3), and read-only readers say when they pass a
torn tail (``TornTailWarning``) instead of passing over it.

Each test failed on the engine before this change: there was no ``cut`` record (the only trace
of a cut was a file in ``quarantine/``, which can be emptied), and a read-only reader read the
valid prefix of a torn journal without a word.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest

from agentjournal import Cut, Journal, RecoveryWarning, TornTailWarning
from agentjournal.cli.log import log_entry
from agentjournal.errors import CorruptRecordError
from agentjournal.journal import reader as reader_mod
from agentjournal.serve.rows import row_of
from test_cli_support import assert_clean_stderr, run, run_json, writer_in_another_process

AGENT = "cutter"
TORN = b'{"kind":"step","seq":4,"ts":1'
"""A write cut short by a crash: the start of record 4, no newline."""


def _journal(root: Path, key: bytes | None = None, steps: int = 3) -> Path:
    with Journal(AGENT, root, key=key, snapshot_every=None) as j:
        for i in range(steps):
            j.append({"i": i})
    return sorted((root / AGENT / "segments").glob("*.jsonl"))[-1]


def _tear(root: Path, key: bytes | None = None) -> tuple[Path, int]:
    """A journal of 3 steps whose last segment ends in a torn record; (segment, its size)."""
    seg = _journal(root, key)
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(TORN)
    return seg, size


def _recover(root: Path, key: bytes | None = None) -> None:
    with pytest.warns(RecoveryWarning, match="cut a torn tail"):
        Journal(AGENT, root, key=key).close()


# --------------------------------------------------------------------------- the cut record


@pytest.mark.parametrize("key", [None, b"cut-key"], ids=["unkeyed", "keyed"])
def test_a_recovery_cut_is_recorded_in_the_chain(tmp_path: Path, key: bytes | None) -> None:
    seg, offset = _tear(tmp_path, key)
    _recover(tmp_path, key)
    [qfile] = (tmp_path / AGENT / "quarantine").iterdir()
    assert qfile.read_bytes() == TORN
    with Journal(AGENT, tmp_path, key=key) as j:
        recs = list(j.records())
        cut = recs[-1]
        assert [r.seq for r in recs] == [1, 2, 3, 4]
        assert isinstance(cut, Cut) and cut.kind == "cut"
        assert (cut.reason, cut.segment, cut.offset, cut.size, cut.cut_seq) == (
            "torn_tail", 1, offset, len(TORN), 4)
        assert cut.digest == hashlib.blake2b(TORN, digest_size=32).hexdigest()
        assert cut.quarantine == qfile.name and "/" not in cut.quarantine
        assert (cut.prev, cut.step) == (recs[2].h, recs[2].step)
        assert j.resume().state == {"i": 2}  # a cut record changes no state
        rep = j.verify()
        assert rep.ok and [c.seq for c in rep.cuts] == [4] and rep.cuts[0].kept
        app = j.append({"i": 3})
        assert app.seq == 5
    # The record outlives the quarantine file: emptying quarantine/ no longer hides a cut.
    qfile.unlink()
    with Journal(AGENT, tmp_path, key=key, readonly=True) as r:
        rep = r.verify()
        assert rep.ok and rep.quarantined == [] and not rep.cuts[0].kept
    # Reopening after the cut recorded it cuts nothing and records nothing more.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal(AGENT, tmp_path, key=key) as j:
            assert sum(isinstance(r, Cut) for r in j.records()) == 1


def test_the_cut_record_starts_a_format_3_segment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A new record kind goes only into a segment whose header says it may be there, so an
    agentjournal of format 2 refuses the journal instead of misreading it (docs/format.md)."""
    seg, _ = _tear(tmp_path)
    _recover(tmp_path)
    segs = sorted((tmp_path / AGENT / "segments").glob("*.jsonl"))
    assert [s.name[:20] for s in segs] == [f"{1:020d}", f"{4:020d}"]
    header = json.loads(segs[1].read_bytes().split(b"\n")[0])
    first = json.loads(segs[1].read_bytes().split(b"\n")[1])
    assert header["format"] == 3 and first["kind"] == "cut"
    monkeypatch.setattr(reader_mod, "FORMAT_VERSION", 2)
    with Journal(AGENT, tmp_path, readonly=True) as r, pytest.raises(CorruptRecordError,
                                                                    match="newer"):
        list(r.records())


def test_hiding_a_cut_breaks_the_chain(tmp_path: Path) -> None:
    """Deleting the cut record (with its quarantine file) to hide a cut is detected once
    anything was recorded after it; keyed, the record cannot be rewritten either."""
    key = b"cut-key"
    _tear(tmp_path, key)
    _recover(tmp_path, key)
    with Journal(AGENT, tmp_path, key=key) as j:
        j.append({"i": 9})
    seg = sorted((tmp_path / AGENT / "segments").glob("*.jsonl"))[-1]
    lines = seg.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[1])["kind"] == "cut"
    seg.write_bytes(lines[0] + lines[2])
    for q in (tmp_path / AGENT / "quarantine").iterdir():
        q.unlink()
    with Journal(AGENT, tmp_path, key=key, readonly=True) as r:
        assert not r.verify().ok


def test_log_and_the_viewer_show_the_cut(tmp_path: Path) -> None:
    _, offset = _tear(tmp_path)
    _recover(tmp_path)
    lines = [json.loads(x) for x in run("log", AGENT, "--json", root=tmp_path).stdout.splitlines()]
    cut = lines[-1]
    assert cut["kind"] == "cut" and cut["details"]["offset"] == offset
    assert cut["details"]["size"] == len(TORN) and cut["details"]["reason"] == "torn_tail"
    text = run("log", AGENT, root=tmp_path)
    assert text.exit_code == 0 and "recovery cut a torn tail of 29 bytes" in text.stdout
    res = run("verify", AGENT, root=tmp_path)
    assert res.exit_code == 0 and "seq 4 records that recovery cut 29 bytes" in res.stderr
    doc = run_json("verify", AGENT, root=tmp_path)
    [c] = doc["agents"][0]["cuts"]
    assert (c["seq"], c["reason"], c["offset"], c["size"], c["kept"]) == (
        4, "torn_tail", offset, len(TORN), True)
    with Journal(AGENT, tmp_path, readonly=True) as r:
        rec = list(r.records())[-1]
    row = row_of(rec, None)
    assert row["kind"] == "cut" and row["cut"]["quarantine"] == rec.quarantine  # type: ignore[union-attr]
    assert "recovery cut" in row["summary"]
    assert log_entry(AGENT, rec, "")["kind"] == "cut"


def test_repair_records_the_damage_it_cuts(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        for i in range(6):
            j.append({"i": i})
    seg = sorted((tmp_path / AGENT / "segments").glob("*.jsonl"))[-1]
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4][:20] + b"\x00" * (len(lines[4]) - 21) + b"\n"  # record 4; 5, 6 intact
    seg.write_bytes(b"".join(lines))
    with pytest.warns(RecoveryWarning):
        Journal(AGENT, tmp_path, repair=True).close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        cut = list(r.records())[-1]
        assert isinstance(cut, Cut) and (cut.seq, cut.reason, cut.lines_after) == (4, "damage", 2)
        assert cut.size == len(b"".join(lines[4:]))


# --------------------------------------------------------------------------- read-only readers


@pytest.mark.parametrize("read", ["records", "resume", "history", "state_at_last", "last_to_end"])
def test_read_only_reads_warn_about_a_torn_tail(tmp_path: Path, read: str) -> None:
    seg, offset = _tear(tmp_path)
    with Journal(AGENT, tmp_path, readonly=True) as r:
        with pytest.warns(TornTailWarning, match=rf"{len(TORN)} bytes at byte {offset} of "
                          rf".*{seg.name}.*stopped after seq 3") as caught:
            if read == "records":
                assert [x.seq for x in r.records()] == [1, 2, 3]
            elif read == "resume":
                assert r.resume().state == {"i": 2}
            elif read == "history":
                assert len(list(r.history())) == 3
            elif read == "state_at_last":
                assert r.state_at(3) == {"i": 2}
            else:
                assert [x.seq for x in r.records(2)] == [2, 3]
            # Once per journal opened, however many reads pass the same tail.
            list(r.records())
            r.resume()
        assert len([w for w in caught if w.category is TornTailWarning]) == 1
        assert not r.verify().ok  # verify reports it as a problem, as before


def test_damage_at_the_tail_warns_too(tmp_path: Path) -> None:
    seg = _journal(tmp_path)
    with open(seg, "ab") as f:
        f.write(b"\x00" * 64 + b"\n")  # what a power loss can leave
    with Journal(AGENT, tmp_path, readonly=True) as r, pytest.warns(TornTailWarning,
                                                                   match="malformed"):
        assert r.resume().state == {"i": 2}


def test_an_unfinished_line_under_a_live_writer_is_not_a_torn_tail(tmp_path: Path) -> None:
    """While a writer runs, an incomplete last line is a record being written: no warning
    (pytest turns any warning into an error). Once the writer is gone, it is a torn tail."""
    seg = _journal(tmp_path)
    with writer_in_another_process(tmp_path, AGENT):
        with open(seg, "ab") as f:
            f.write(TORN)
        with Journal(AGENT, tmp_path, readonly=True) as r:
            assert r.resume().state == {"i": 2} and len(list(r.records())) == 3
    with Journal(AGENT, tmp_path, readonly=True) as r, pytest.warns(TornTailWarning,
                                                                   match="no writer"):
        assert r.resume().state == {"i": 2}


def test_a_healthy_journal_reads_without_a_warning(tmp_path: Path) -> None:
    _journal(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal(AGENT, tmp_path, readonly=True) as r:
            assert r.resume().state == {"i": 2} and r.verify().ok


def test_the_cli_shows_the_torn_tail_as_a_note(tmp_path: Path) -> None:
    """The CLI never prints a Python warning: the library's warning becomes one ``warning:``
    line on stderr, stdout (and ``--json``) stay what they are."""
    _tear(tmp_path)
    res = run("show", AGENT, root=tmp_path)
    assert res.exit_code == 0 and json.loads(res.stdout) == {"i": 2}
    assert_clean_stderr(res, r"^warning: torn tail: 29 bytes at byte \d+ of ")
    assert res.stderr.count("torn tail") == 1
    doc = run_json("show", AGENT, root=tmp_path)
    assert doc["value"] == {"i": 2} and doc["seq"] == 3
    for cmd in (["log", AGENT], ["stats", AGENT]):
        res = run(*cmd, root=tmp_path)
        assert res.exit_code == 0 and res.stderr.count("warning: torn tail") == 1, res.stderr
    # ls says it in its HEALTH column; no second warning line for the same tail.
    res = run("ls", root=tmp_path)
    assert res.exit_code == 0 and "torn tail" in res.stdout
    assert "warning: torn tail" not in res.stderr

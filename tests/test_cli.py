"""Every command of the ``agentjournal`` CLI, in-process, on real journals made by the engine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal, delta
from agentjournal.cli import cli
from agentjournal.cli.schemas import SCHEMAS, validate
from test_cli_support import (
    assert_clean_stderr,
    make_agent,
    run,
    run_json,
    writer_in_another_process,
)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def states(root: Path) -> list[dict[str, Any]]:
    return make_agent(root)


# --------------------------------------------------------------------------- general


def test_every_command_has_help_with_an_example() -> None:
    for name, cmd in cli.commands.items():
        res = run(name, "--help")
        assert res.exit_code == 0, name
        assert f"$ agentjournal {name}" in res.stdout, name
        assert cmd.help, name
    top = run("--help")
    assert top.exit_code == 0
    for word in ("Exit status", "AGENTJOURNAL_ROOT", "AGENTJOURNAL_KEY"):
        assert word in top.stdout


def test_version() -> None:
    from agentjournal import __version__

    res = run("--version")
    assert res.exit_code == 0
    assert __version__ in res.stdout


def test_root_from_environment_and_from_either_position(root: Path,
                                                        states: list[Any]) -> None:
    del states
    by_env = run("ls", "--json", env={"AGENTJOURNAL_ROOT": str(root)})
    after = run("ls", "--json", "--root", str(root))
    before = run("--root", str(root), "ls", "--json")
    docs = [json.loads(r.stdout) for r in (by_env, after, before)]
    assert [d["agents"][0]["agent_id"] for d in docs] == ["researcher"] * 3


def test_unknown_agent_and_invalid_id_exit_codes(root: Path, states: list[Any]) -> None:
    del states
    res = run("log", "nobody", root=root)
    assert res.exit_code == 3
    assert "no journal for agent 'nobody'" in res.stderr
    assert "agentjournal ls" in res.stderr  # says what to do
    assert "Traceback" not in res.stderr
    res = run("show", "../etc", root=root)
    assert res.exit_code == 2
    assert "invalid agent id" in res.stderr
    res = run("show", "researcher", root=root / "missing")
    assert res.exit_code == 3
    assert "no store" in res.stderr


def test_schema_command_prints_json_schema_for_every_command() -> None:
    for name in SCHEMAS:
        res = run("schema", name)
        assert res.exit_code == 0
        doc = json.loads(res.stdout)
        assert doc["$schema"].startswith("https://json-schema.org/")
    assert run("schema", "nope").exit_code == 2


# --------------------------------------------------------------------------- ls


def test_ls_table_and_json(root: Path, states: list[Any]) -> None:
    del states
    make_agent(root, "helper", 4, snapshot_every=None, finished=False)
    res = run("ls", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["AGENT", "STEPS"]
    assert lines[1].split()[0] == "helper" and lines[2].split()[0] == "researcher"
    assert "completed" in lines[2] and lines[2].rstrip().endswith("ok")
    doc = run_json("ls", root=root)
    rows = {a["agent_id"]: a for a in doc["agents"]}
    with Journal("researcher", root, readonly=True) as j:
        assert rows["researcher"]["records"] == j.last_seq
        assert rows["researcher"]["snapshots"] == len(j.snapshot_seqs())
        assert rows["researcher"]["bytes"] == j.disk_usage()
    assert rows["researcher"]["steps"] == 30
    assert rows["researcher"]["status"] == "completed"
    assert rows["helper"]["status"] == "running"
    assert rows["researcher"]["health"] == "ok"
    assert rows["researcher"]["writer_pid"] is None
    assert run_json("ls", "--verify", root=root)["agents"][1]["health"] == "ok"


def test_ls_empty_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = run("ls", root=tmp_path / "empty")
    assert res.exit_code == 0
    assert "no agents" in res.stderr
    assert run_json("ls", root=tmp_path / "empty")["agents"] == []
    res = run("ls", root=tmp_path / "none")  # a mistyped root is not an empty store
    assert res.exit_code == 3
    assert "does not exist" in res.stderr


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs /proc/locks")
def test_ls_shows_the_running_writer(root: Path, states: list[Any]) -> None:
    del states
    with writer_in_another_process(root, "researcher") as pid:
        doc = run_json("ls", root=root)
        assert doc["agents"][0]["writer_pid"] == pid
        assert "writing (pid" in run("ls", root=root).stdout
    assert run_json("ls", root=root)["agents"][0]["writer_pid"] is None


# --------------------------------------------------------------------------- log


def _log_lines(*args: str, root: Path) -> list[str]:
    res = run("log", "researcher", *args, root=root)
    assert res.exit_code == 0, res.stderr
    assert_clean_stderr(res, r"^no records in that range$")
    return res.stdout.splitlines()


def test_log_one_line_per_record_with_summaries(root: Path, states: list[Any]) -> None:
    del states
    lines = _log_lines(root=root)
    with Journal("researcher", root, readonly=True) as j:
        assert len(lines) == j.last_seq
    step2 = next(line for line in lines if line.split()[:2] == ["2", "#2"])
    assert "step" in step2
    assert step2.endswith("+1 message (assistant), budget 0.03→0.06")
    step1 = lines[0]
    assert step1.endswith("initial state (7 fields)")
    assert any("snapshot of the state after seq" in line for line in lines)
    assert "status running→completed" in lines[-2]
    assert lines[-1].split()[2:3] == [lines[-2].split()[2]]  # same date column layout
    step4 = next(line for line in lines if line.split()[:2] == ["4", "#4"])
    assert "-1 pending action (task3), +1 completed action (task3)" in step4


def test_log_json_lines_validate_and_match_the_journal(root: Path, states: list[Any]) -> None:
    del states
    res = run("log", "researcher", "--json", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    entries = [json.loads(line) for line in res.stdout.splitlines()]
    for e in entries:
        validate("log", e)
    with Journal("researcher", root, readonly=True) as j:
        recs = list(j.records())
    assert [e["seq"] for e in entries] == [r.seq for r in recs]
    assert [e["h"] for e in entries] == [r.h for r in recs]
    assert entries[1]["ops"] == recs[1].ops  # type: ignore[union-attr]
    marks = [e for e in entries if e["kind"] == "snapshot"]
    assert marks and marks[0]["ops"] is None and "at" in marks[0]["details"]


def test_log_ranges_limit_reverse_patch(root: Path, states: list[Any]) -> None:
    del states
    steps = [int(line.split()[0]) for line in _log_lines("--from", "5", "--to", "8", root=root)]
    assert set(steps) == {5, 6, 7, 8}
    newest = _log_lines("--limit", "3", root=root)
    assert [int(line.split()[0]) for line in newest][-1] == 30 and len(newest) == 3
    first = _log_lines("--from", "5", "--limit", "2", root=root)
    assert [int(line.split()[0]) for line in first] == [5, 6]
    rev = _log_lines("--reverse", "--limit", "3", root=root)
    assert rev == list(reversed(newest))
    patch = _log_lines("--from", "2", "--to", "2", "--patch", root=root)
    assert any("+ /conversation_history/-" in line for line in patch)
    assert any("~ /budget_spent_usd" in line for line in patch)
    assert _log_lines("--from", "500", root=root) == []
    assert len(_log_lines("--max-records", "4", root=root)) == 4


def test_log_usage_errors(root: Path, states: list[Any]) -> None:
    del states
    for args in (["--from", "9", "--to", "3"], ["--timeout", "1"], ["--follow", "--reverse"],
                 ["--from", "x"], ["--limit", "0"]):
        res = run("log", "researcher", *args, root=root)
        assert res.exit_code == 2, args


def test_log_follow_stops_on_timeout_after_the_backlog(root: Path, states: list[Any]) -> None:
    del states
    res = run("log", "researcher", "--follow", "--timeout", "0.05", "--interval", "0.01",
              "--json", root=root)
    assert res.exit_code == 0
    with Journal("researcher", root, readonly=True) as j:
        assert len(res.stdout.splitlines()) == j.last_seq
    res = run("log", "researcher", "--follow", "--limit", "2", "--timeout", "0", root=root)
    lines = res.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == [30, 30]  # the step and its snapshot
    assert "snapshot" in lines[1]


def test_log_follow_waits_for_a_missing_agent_until_timeout(root: Path) -> None:
    res = run("log", "later", "--follow", "--timeout", "0.05", "--interval", "0.01",
              root=root)
    assert res.exit_code == 0
    assert "waiting for agent 'later'" in res.stderr


def test_log_generic_summary_for_other_states(tmp_path: Path) -> None:
    with Journal("plain", tmp_path, durability="none") as j:
        j.append({"a": 1, "b": {"c": 2}})
        j.append({"a": 2, "b": {"c": 3}, "d": [1]})
    lines = run("log", "plain", root=tmp_path).stdout.splitlines()
    assert lines[1].endswith("3 ops: /a, /b/c, /d")


# --------------------------------------------------------------------------- show


def test_show_latest_step_seq_and_path(root: Path, states: list[Any]) -> None:
    res = run("show", "researcher", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    assert json.loads(res.stdout) == states[30]
    assert json.loads(run("show", "researcher", "--at", "12", root=root).stdout) == states[12]
    res = run("show", "researcher", "--at", "12", "--path", "/conversation_history/11/role",
              root=root)
    assert json.loads(res.stdout) == "assistant"
    assert json.loads(run("show", "researcher", "--seq", "1", "--compact",
                          root=root).stdout) == states[1]
    doc = run_json("show", "researcher", "--at", "7", "--path", "/budget_spent_usd", root=root)
    assert doc == {"agent_id": "researcher", "step": 7, "seq": 7, "path": "/budget_spent_usd",
                   "value": 0.21}


def test_show_errors_say_what_exists(root: Path, states: list[Any]) -> None:
    del states
    res = run("show", "researcher", "--at", "99", root=root)
    assert res.exit_code == 3 and "after the last recorded step 30" in res.stderr
    res = run("show", "researcher", "--path", "/conversation_history/77", root=root)
    assert res.exit_code == 3 and "indexes 0..29" in res.stderr
    res = run("show", "researcher", "--path", "/nope", root=root)
    assert res.exit_code == 3 and "budget_spent_usd" in res.stderr
    assert run("show", "researcher", "--path", "nope", root=root).exit_code == 2
    assert run("show", "researcher", "--at", "1", "--seq", "1", root=root).exit_code == 2
    assert run("show", "researcher", "--at", "-1", root=root).exit_code == 2


# --------------------------------------------------------------------------- diff


def test_diff_json_is_an_rfc6902_patch_between_the_states(root: Path,
                                                           states: list[Any]) -> None:
    ops = run_json("diff", "researcher", "11", "20", root=root)
    assert delta.apply(states[11], ops) == states[20]
    one = run_json("diff", "researcher", "12", root=root)
    assert delta.apply(states[11], one) == states[12]
    assert run_json("diff", "researcher", "5", "5", root=root) == []


def test_diff_readable_output(root: Path, states: list[Any]) -> None:
    del states
    res = run("diff", "researcher", "11", "12", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("--- researcher step 11") and lines[1].startswith("+++")
    assert any(line.startswith("+ /conversation_history/-") for line in lines)
    budget = next(line for line in lines if line.startswith("~ /budget_spent_usd"))
    assert budget.split()[-3:] == ["0.33", "→", "0.36"]
    assert "no differences" in run("diff", "researcher", "3", "3", root=root).stdout
    assert run("diff", "researcher", "3", "99", root=root).exit_code == 3


# --------------------------------------------------------------------------- stats


def test_stats(root: Path, states: list[Any]) -> None:
    del states
    doc = run_json("stats", "researcher", root=root)
    with Journal("researcher", root, readonly=True) as j:
        assert doc["records"] == j.last_seq
        assert doc["bytes"] == j.disk_usage()
        snaps = j.snapshot_seqs()
    assert doc["steps"] == 30 and doc["records_by_kind"]["snapshot"] == 3
    assert doc["snapshot_interval"] == 10.0
    assert doc["resume"]["snapshot_seq"] == snaps[-1]
    assert doc["resume"]["replay_records"] == doc["records"] - snaps[-1]
    res = run("stats", "researcher", root=root)
    assert res.exit_code == 0 and "snapshot every  10.0 steps" in res.stdout
    assert_clean_stderr(res)


# --------------------------------------------------------------------------- fork


def test_fork_starts_a_linked_journal_from_a_step(root: Path, states: list[Any]) -> None:
    doc = run_json("fork", "researcher", "--at", "11", "--to", "retry", root=root)
    assert doc["parent"] == "researcher" and doc["parent_step"] == 11
    assert doc["agent_id"] == "retry" and doc["step"] == 11
    assert json.loads(run("show", "retry", root=root).stdout) == states[11]
    first = run("log", "retry", root=root).stdout.splitlines()[0]
    assert "fork" in first and "forked from researcher at step 11" in first
    assert run("verify", "retry", root=root).exit_code == 0
    res = run("fork", "researcher", "--at", "3", "--to", "retry", root=root)
    assert res.exit_code == 6 and "already has a journal" in res.stderr
    assert run("fork", "researcher", "--at", "99", "--to", "x", root=root).exit_code == 3
    assert run("fork", "researcher", "--to", "x", root=root).exit_code == 2


# --------------------------------------------------------------------------- compact


def test_compact_dry_run_then_real(root: Path, states: list[Any]) -> None:
    del states
    with Journal("researcher", root, readonly=True) as j:
        before = j.snapshot_seqs()
        usage = j.disk_usage()
    dry = run_json("compact", "researcher", "--keep", "1", "--compress-segments", "--dry-run",
                   root=root)
    # The old segments stay, so the oldest snapshot stays too, as a sparse old snapshot for
    # time travel (retention.sparse_picks, at the journal's own snapshot spacing).
    assert len(before) >= 3
    assert dry["dry_run"] and dry["snapshots_deleted"] == before[1:-1]
    assert dry["segments_compressed"] and dry["bytes_saved"] > 0
    with Journal("researcher", root, readonly=True) as j:
        assert j.snapshot_seqs() == before and j.disk_usage() == usage
    res = run("compact", "researcher", "--keep", "1", "--compress-segments", root=root)
    assert res.exit_code == 0 and "saved" in res.stdout
    assert_clean_stderr(res)
    with Journal("researcher", root, readonly=True) as j:
        assert j.snapshot_seqs() == [before[0], before[-1]]
        assert j.disk_usage() < usage
    assert run("verify", "researcher", root=root).exit_code == 0
    again = run_json("compact", "researcher", "--keep", "1", root=root)
    assert again["snapshots_deleted"] == [] and again["bytes_saved"] == 0


def test_compact_prune_keeps_the_chain_verifiable(root: Path, states: list[Any]) -> None:
    doc = run_json("compact", "researcher", "--keep", "1", "--prune", root=root)
    assert doc["segments_deleted"] and doc["anchor_seq"] is not None
    assert run("verify", "researcher", root=root).exit_code == 0
    res = run("show", "researcher", "--at", "2", root=root)
    assert res.exit_code == 3 and "pruned" in res.stderr
    assert json.loads(run("show", "researcher", root=root).stdout) == states[30]
    assert "pruned" in run("log", "researcher", root=root).stdout


def test_compact_of_a_running_agent_is_refused_as_locked(root: Path, states: list[Any]) -> None:
    del states
    with writer_in_another_process(root, "researcher"):
        res = run("compact", "researcher", root=root)
        assert res.exit_code == 4
        assert "locked" in res.stderr and "hint:" in res.stderr
        assert run("compact", "researcher", "--dry-run", root=root).exit_code == 0
    assert run("compact", "researcher", "--prune", "--compress-segments",
               root=root).exit_code == 2


# --------------------------------------------------------------------------- verify


def test_verify_ok_and_json(root: Path, states: list[Any]) -> None:
    del states
    make_agent(root, "helper", 3)
    res = run("verify", "researcher", root=root)
    assert res.exit_code == 0 and res.stdout.startswith("ok  researcher")
    assert_clean_stderr(res)
    doc = run_json("verify", "--all", root=root)
    assert doc["ok"] and [a["agent_id"] for a in doc["agents"]] == ["helper", "researcher"]
    assert run("verify", root=root).exit_code == 2
    assert run("verify", "researcher", "--all", root=root).exit_code == 2


# --------------------------------------------------------------------------- warnings


def test_a_damaged_snapshot_is_a_warning_not_a_failure(root: Path,
                                                       states: list[Any]) -> None:
    with Journal("researcher", root, readonly=True) as j:
        newest = j.snapshot_seqs()[-1]
    snap = next((root / "researcher" / "snapshots").glob(f"{newest:020d}*"))
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snap.write_bytes(bytes(data))
    res = run("show", "researcher", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res, r"^warning: snapshot at seq \d+ not used: ")
    assert json.loads(res.stdout) == states[30]
    assert "warning:" in res.stderr and f"seq {newest}" in res.stderr
    bad = run("verify", "researcher", "--json", root=root)
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["agents"][0]["problems"][0]["kind"] == "snapshot"


# --------------------------------------------------------------------------- demo


def test_demo(tmp_path: Path) -> None:
    pytest.importorskip("agentjournal.demo", reason="the facade's demo is not in this tree yet")
    res = run("demo", root=tmp_path / "demo")
    assert res.exit_code == 0, res.stderr
    assert_clean_stderr(res)
    assert res.stdout.strip()
    doc = run_json("ls", root=tmp_path / "demo")
    assert doc["agents"]
    assert run("verify", "--all", root=tmp_path / "demo").exit_code == 0


# --------------------------------------------------------------------------- terminal output


def test_terminal_output_has_colour_and_tables(root: Path, states: list[Any]) -> None:
    del states
    for args in (["ls"], ["log", "researcher", "--limit", "3", "--patch"],
                 ["show", "researcher", "--at", "3"], ["diff", "researcher", "2", "3"],
                 ["stats", "researcher"], ["verify", "researcher"],
                 ["compact", "researcher", "--dry-run"]):
        res = run("--color", "always", *args, root=root)
        assert res.exit_code == 0, (args, res.stderr)
        assert "\x1b[" in res.stdout, args
    table = run("--color", "always", "ls", root=root).stdout
    assert "─" in table  # a rich table rule
    plain = run("--color", "never", "log", "researcher", root=root).stdout
    assert "\x1b[" not in plain


def test_timestamps_no_date_can_hold_are_shown_not_crashed_on(tmp_path: Path) -> None:
    """A record stamped in milliseconds (another writer of the format): ls, log and stats
    still work (issue 10, item 20)."""
    import msgspec

    from agentjournal import _codec

    with Journal("ms", tmp_path, snapshot_every=None) as j:
        j.append({"x": 1})
        j.append({"x": 2})
    seg = sorted((tmp_path / "ms" / "segments").glob("*.jsonl"))[0]
    lines = seg.read_bytes().split(b"\n")
    out, prev = [lines[0]], ""
    for line in lines[1:]:
        if not line:
            continue
        d = msgspec.json.decode(line)
        d.pop("h")
        d["ts"], d["prev"] = d["ts"] * 1000, prev
        sealed, prev = _codec.seal_line(msgspec.json.encode(d), None)
        out.append(sealed.rstrip(b"\n"))
    seg.write_bytes(b"\n".join(out) + b"\n")
    for args in (("ls",), ("log", "ms"), ("stats", "ms"), ("log", "ms", "--json")):
        res = run(*args, root=tmp_path)
        assert res.exit_code == 0 and "Traceback" not in res.stderr, (args, res.stderr)
    assert "not a date" in run("log", "ms", root=tmp_path).stdout

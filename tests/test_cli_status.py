"""``ls``, ``show`` and ``stats`` through :mod:`agentjournal.status`: health classes, store
roots that are not stores, key files, colour and narrow terminals, ``diff``'s old values and
the demo's length (issue 9 item 4; issue 10 items 9, 23, 25-28, 30)."""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal, delta, status
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.cli import cli
from test_cli_support import assert_clean_stderr, make_agent, run, run_json

SRC = Path(__file__).resolve().parent.parent / "src"
KEY = "s3cret-key"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _keyed(root: Path, agent: str = "vault") -> None:
    with Journal(agent, root, key=KEY.encode(), durability="none") as j:
        for i in range(1, 6):
            j.append({"n": i, "status": "running"})


def _copied(root: Path) -> None:
    """An agent directory copied under another id, as a user might back one up."""
    make_agent(root, "original", 5, snapshot_every=None, keep_states=False)
    shutil.copytree(root / "original", root / "copy")


# --------------------------------------------------------------------------- engine: status


def test_agent_summary_is_plain_values(root: Path) -> None:
    make_agent(root, "researcher", 30, keep_states=False)
    with Journal("researcher", root, readonly=True) as j:
        s = status.agent_summary(j)
        assert (s.health, s.steps, s.records, s.status) == ("ok", 30, j.last_seq, "completed")
        assert s.snapshots == len(j.snapshot_seqs()) and s.bytes == j.disk_usage()
        st = status.journal_stats(j)
    assert st.steps == 30 and st.records == st.records_by_kind["step"] + st.snapshots
    assert st.resume.snapshot_seq is not None and st.snapshot_interval == 10.0
    json.dumps([vars(s), vars(st) | {"resume": vars(st.resume)}])  # plain JSON values


def test_health_classes_of_unreadable_journals(root: Path) -> None:
    _keyed(root)
    _copied(root)
    with Journal("vault", root, readonly=True) as j:
        assert status.agent_summary(j).health == "key_needed"
    with Journal("vault", root, readonly=True, key=b"wrong") as j:
        assert status.agent_summary(j).health == "wrong_key"
    with Journal("vault", root, readonly=True, key=KEY.encode()) as j:
        assert status.agent_summary(j).health == "ok"
    with Journal("original", root, readonly=True, key=b"some key") as j:
        assert status.agent_summary(j).health == "wrong_key"  # not keyed at all
    with Journal("copy", root, readonly=True) as j:
        s = status.agent_summary(j)
        assert s.health == "wrong_agent" and "'original'" in (s.problem or "")


def test_ls_shows_key_needed_and_wrong_agent_not_zero_steps(root: Path) -> None:
    _keyed(root)
    _copied(root)
    rows = {a["agent_id"]: a for a in run_json("ls", root=root)["agents"]}
    assert rows["vault"]["health"] == "key_needed"
    assert rows["copy"]["health"] == "wrong_agent"
    assert rows["original"]["health"] == "ok"
    res = run("ls", root=root)
    table = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert table["vault"].endswith("key needed") and table["copy"].endswith("wrong agent")
    assert_clean_stderr(res, r"^warning: (vault|copy): ")
    with_key = run_json("ls", "--verify", root=root, env={"AGENTJOURNAL_KEY": KEY})
    assert {a["agent_id"]: a["health"] for a in with_key["agents"]}["vault"] == "ok"


@pytest.mark.parametrize("case", ["no key", "wrong key", "copied"])
def test_show_of_an_unreadable_journal_fails_with_the_typed_error(root: Path,
                                                                   case: str) -> None:
    _keyed(root)
    _copied(root)
    wrong = _keyfile(root.parent / "wrong", "x")
    args = {"no key": ["vault"], "wrong key": ["vault", "--key-file", str(wrong)],
            "copied": ["copy"]}[case]
    res = run("show", *args, root=root)
    assert res.exit_code == 5, (res.stdout, res.stderr)
    assert res.stdout == ""  # never "{}"
    assert {"no key": "its key is needed", "wrong key": "does not match",
            "copied": "header names agent 'original'"}[case] in res.stderr
    assert ("'agentjournal fork'" if case == "copied" else "--key-file PATH") in res.stderr
    assert run("stats", *args, root=root).exit_code == 5


def test_ls_on_many_agents_reads_the_lock_table_once(root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(300):
        with Journal(f"a{i:03d}", root, durability="none", snapshot_every=None) as j:
            j.append({"i": i})
    calls = {"lock_holders": 0, "/proc/locks": 0}
    real_holders = FilesystemBackend.lock_holders
    real_open = builtins.open

    def counting_holders(self: FilesystemBackend) -> dict[str, int]:
        calls["lock_holders"] += 1
        return real_holders(self)

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/proc/locks":
            calls["/proc/locks"] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(FilesystemBackend, "lock_holders", counting_holders)
    monkeypatch.setattr(builtins, "open", counting_open)
    doc = run_json("ls", root=root)
    assert len(doc["agents"]) == 300 and {a["health"] for a in doc["agents"]} == {"ok"}
    assert calls["lock_holders"] == 1
    assert calls["/proc/locks"] == (1 if os.path.exists("/proc/locks") else 0)


# --------------------------------------------------------------------------- roots


def test_a_missing_root_or_an_agent_directory_is_not_found(root: Path) -> None:
    make_agent(root, "researcher", 3, keep_states=False)
    for bad, said in ((root.parent / "typo", "does not exist"),
                      (root / "researcher", "journal directory of agent 'researcher'")):
        for args in (["ls"], ["verify", "--all"], ["ls", "--json"], ["show", "researcher"]):
            res = run(*args, root=bad)
            assert res.exit_code == 3, (bad, args, res.stderr)
            assert said in res.stderr and "hint:" in res.stderr
            assert res.stdout == ""
    res = run("ls", root=root.parent / "typo")
    assert "record" in res.stderr and "--root" in res.stderr  # says what to do


def test_a_root_that_is_a_file_is_one_error_for_every_command(tmp_path: Path) -> None:
    make_agent(tmp_path / "store", "researcher", 3, keep_states=False)
    export = tmp_path / "r.jsonl"
    assert run("export", "researcher", "-o", str(export), root=tmp_path / "store").exit_code == 0
    afile = tmp_path / "afile"
    afile.write_text("not a store\n")
    commands = [["ls"], ["verify", "--all"], ["verify", "x"], ["show", "x"], ["log", "x"],
                ["diff", "x", "1"], ["stats", "x"], ["fork", "x", "--at", "1", "--to", "y"],
                ["compact", "x"], ["export", "x"], ["repair", "x", "--dry-run"],
                ["import", str(export)], ["demo"]]
    for args in commands:
        res = run(*args, root=afile)
        assert res.exit_code == 3, (args, res.stderr)
        assert f"store root {afile} is a file, not a directory" in res.stderr, args
        assert "Errno" not in res.stderr and "Traceback" not in res.stderr
    assert afile.read_text() == "not a store\n"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "store")
    for args in (["ls"], ["verify", "--all"], ["show", "researcher"], ["import", str(export)]):
        res = run(*args, root=link)
        assert res.exit_code == 5, (args, res.stderr)
        assert "is a symlink" in res.stderr and f"--root {tmp_path / 'store'}" in res.stderr


# --------------------------------------------------------------------------- keys


def _keyfile(where: Path, text: str, mode: int = 0o600) -> Path:
    """A key file beside ``where`` (never inside a store root)."""
    p = where.parent / f"{where.name}.key"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_key_file_on_every_command_that_takes_a_key(root: Path) -> None:
    _keyed(root)
    kf = _keyfile(root, KEY + "\n")  # the newline an editor or `echo` leaves is not the key
    keyed_commands = [name for name, cmd in cli.commands.items()
                      if any("--key" in p.opts for p in cmd.params)]
    for name in keyed_commands:
        assert any("--key-file" in p.opts for p in cli.commands[name].params), name
    assert {"ls", "log", "show", "diff", "stats", "verify", "export", "fork", "compact",
            "repair", "import"} <= set(keyed_commands)
    for args in (["show", "vault"], ["log", "vault"], ["stats", "vault"], ["verify", "vault"],
                 ["diff", "vault", "1", "2"]):
        res = run(*args, "--key-file", str(kf), root=root)
        assert res.exit_code == 0, (args, res.stderr)
        assert_clean_stderr(res)
        before = run("--key-file", str(kf), *args, root=root)
        assert before.exit_code == 0
        assert args[0] == "stats" or before.stdout == res.stdout  # stats times a resume
    crlf = _keyfile(root.parent / "crlf", KEY + "\r\n")
    assert run("show", "vault", "--key-file", str(crlf), root=root).exit_code == 0


def test_key_file_problems(root: Path) -> None:
    _keyed(root)
    loose = _keyfile(root.parent / "loose", KEY, 0o644)
    res = run("show", "vault", "--key-file", str(loose), root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res, rf"^warning: key file {re.escape(str(loose))} can be read by "
                             r"other users \(mode 0644\); restrict it: chmod 600 ")
    empty = _keyfile(root.parent / "empty", "\n")
    res = run("show", "vault", "--key-file", str(empty), root=root)
    assert res.exit_code == 2 and "holds no key" in res.stderr
    res = run("show", "vault", "--key-file", str(root / "nope"), root=root)
    assert res.exit_code == 2 and "cannot read" in res.stderr


def test_key_on_the_command_line_warns(root: Path) -> None:
    _keyed(root)
    for argv in (["show", "vault", "--key", KEY], ["--key", KEY, "show", "vault"]):
        res = run(*argv, root=root)
        assert res.exit_code == 0
        assert_clean_stderr(res, r"^warning: a key given with --key is visible to other local "
                                 r"users .*use AGENTJOURNAL_KEY or --key-file PATH instead$")
        assert res.stderr.count("warning:") == 1
    res = run("show", "vault", root=root, env={"AGENTJOURNAL_KEY": KEY})
    assert res.exit_code == 0
    assert_clean_stderr(res)  # the environment is the quiet way


# --------------------------------------------------------------------------- terminal


def _in_terminal(*args: str, columns: int = 80, root: Path) -> str:
    """Run the CLI in a real pseudo-terminal of ``columns`` columns; stdout and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "AGENTJOURNAL_KEY", "AGENTJOURNAL_ROOT")}
    env.update(PYTHONPATH=str(SRC), COLUMNS=str(columns), TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-m", "agentjournal.cli", "--root", str(root),
                             *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError as e:  # EIO: the child closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode()


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture()
def busy_store(root: Path) -> Path:
    make_agent(root, "researcher", 30, keep_states=False)
    make_agent(root, "helper-with-a-long-name", 4, snapshot_every=None, finished=False)
    seg = sorted((root / "researcher" / "segments").iterdir())[-1]
    with seg.open("ab") as f:
        f.write(b'{"kind":"step","seq":')  # a write cut short by a crash
    return root


def test_color_never_emits_no_escape_codes_in_a_terminal(busy_store: Path) -> None:
    for args in (["--color", "never", "ls"], ["ls", "--color", "never"],
                 ["stats", "researcher", "--color", "never"],
                 ["log", "researcher", "--color", "never"],
                 ["diff", "researcher", "3", "5", "--color", "never"]):
        out = _in_terminal(*args, root=busy_store)
        assert "\x1b" not in out, (args, out[:300])
    coloured = _in_terminal("ls", "--color", "always", root=busy_store)
    assert ANSI.search(coloured)
    # Only the word "warning:" is coloured, not the message after it.
    assert re.search(r"\x1b\[[0-9;]*mwarning: \x1b\[0mresearcher: incomplete", coloured)
    assert ANSI.search(_in_terminal("ls", root=busy_store))  # auto, in a terminal


def test_ls_health_is_not_ok_on_a_torn_tail(busy_store: Path) -> None:
    rows = {a["agent_id"]: a for a in run_json("ls", root=busy_store)["agents"]}
    assert rows["researcher"]["health"] == "torn_tail"
    assert "incomplete last line" in (rows["researcher"]["problem"] or "")
    assert rows["helper-with-a-long-name"]["health"] == "ok"


@pytest.mark.parametrize("command", [["ls"], ["stats", "researcher"]])
def test_ls_and_stats_fit_80_columns(busy_store: Path, command: list[str]) -> None:
    out = ANSI.sub("", _in_terminal(*command, columns=80, root=busy_store))
    # The table lines; a warning on stderr is one long line that the terminal wraps.
    lines = [line for line in out.replace("\r", "").splitlines()
             if line.strip() and not line.startswith("warning: ")]
    assert lines
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert "…" not in "\n".join(lines), out  # nothing cut off: long values fold onto the next line
    text = " ".join(out.split())
    if command == ["ls"]:
        for title in ("AGENT", "STEPS", "LAST STEP", "STATUS", "SNAPSHOTS", "SIZE", "HEALTH"):
            assert title in lines[0], lines[0]
        assert "torn tail" in text and "completed" in text and "running" in text
    else:
        assert "compressed; snapshots" in text and "replayed; measured" in text


# --------------------------------------------------------------------------- diff and demo


def test_diff_old_values_follow_the_ops_one_by_one(root: Path) -> None:
    with Journal("lists", root, durability="none") as j:
        j.append({"todo": ["a", "b", "c", "d"], "n": 1})
        j.append({"todo": ["c", "d", "e"], "n": 2})
    res = run("diff", "lists", "1", "2", root=root)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    removed = re.findall(r"\(was (.*)\)", res.stdout)
    ops = json.loads(run("diff", "lists", "1", "2", "--json", root=root).stdout)
    assert len(removed) == sum(op["op"] == "remove" for op in ops) >= 1
    # Whatever ops the diff chose, the old values are what each op found when it applied.
    state: Any = {"todo": ["a", "b", "c", "d"], "n": 1}
    shown = iter(removed)
    for op in ops:
        tokens = op["path"].split("/")[1:]
        if op["op"] == "remove":
            assert json.loads(next(shown)) == state[tokens[0]][int(tokens[1])]
        state = delta.apply(state, [op])
    assert state == {"todo": ["c", "d", "e"], "n": 2}


def test_diff_of_the_readme_demo(tmp_path: Path) -> None:
    """README: ``agentjournal diff demo-1 4 6`` after ``agentjournal demo``."""
    res = run("demo", root=tmp_path)
    assert res.exit_code == 0, res.stderr
    res = run("diff", "demo-1", "4", "6", root=tmp_path)
    assert res.exit_code == 0
    assert_clean_stderr(res)
    was = re.findall(r"^- /pending_actions/0 +\(was (.*)\)$", res.stdout, flags=re.M)
    assert [json.loads(w)["action"] for w in was] == ["take notes", "compare findings"]


def test_demo_task_follows_steps_and_refuses_a_crash_past_the_end(tmp_path: Path) -> None:
    res = run("demo", "--steps", "20", "--crash-at", "15", root=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "ran to step 20" in res.stdout and "status completed" in res.stdout
    rows = {a["agent_id"]: a for a in run_json("ls", root=tmp_path)["agents"]}
    assert rows["demo-1"]["steps"] == 20 and rows["demo-1"]["status"] == "completed"
    for steps, crash in (("12", "12"), ("12", "30"), ("20", "20")):
        res = run("demo", "--steps", steps, "--crash-at", crash, root=tmp_path)
        assert res.exit_code == 2
        assert f"the crash point {crash} is past the end of the {steps}-step task" in res.stderr
        assert "--crash-at" in res.stderr
    short = run("demo", "--steps", "4", "--crash-at", "2", root=tmp_path)
    assert short.exit_code == 0 and "ran to step 4" in short.stdout

"""The installed ``agentjournal`` console script, run as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentjournal import Journal
from agentjournal.cli.schemas import validate
from test_cli_support import make_agent


def _script() -> str:
    found = shutil.which("agentjournal")
    if found is None:
        # Installed into this interpreter's environment but not on PATH (a venv not
        # activated): the script sits next to the interpreter.
        candidate = Path(sys.executable).with_name("agentjournal")
        if not candidate.exists():
            pytest.fail("the agentjournal console script is not installed; run pip install -e .")
        found = str(candidate)
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTJOURNAL_")}
    env.update(extra)
    return env


def test_help_and_version() -> None:
    res = subprocess.run([_script(), "--help"], capture_output=True, text=True, timeout=60,
                         env=_env())
    assert res.returncode == 0
    assert res.stdout.startswith("Usage: agentjournal")
    for name in ("ls", "log", "show", "diff", "verify", "fork", "compact", "export", "import",
                 "stats", "demo"):
        assert f"  {name} " in res.stdout, name
    res = subprocess.run([_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "agentjournal" in res.stdout


def test_a_real_command_with_the_root_from_the_environment(tmp_path: Path) -> None:
    states = make_agent(tmp_path / "store")
    res = subprocess.run([_script(), "show", "researcher", "--at", "9", "--json"],
                         capture_output=True, text=True, timeout=60,
                         env=_env(AGENTJOURNAL_ROOT=str(tmp_path / "store")))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    validate("show", doc)
    assert doc["value"] == states[9]


def test_default_root_is_dot_agentjournal_in_the_working_directory(tmp_path: Path) -> None:
    make_agent(tmp_path / ".agentjournal", "here", 3)
    res = subprocess.run([_script(), "ls"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=_env())
    assert res.returncode == 0
    assert res.stdout.splitlines()[1].split()[:2] == ["here", "3"]


def test_expected_errors_never_print_a_traceback(tmp_path: Path) -> None:
    make_agent(tmp_path, "a", 3)
    for args, code in ((["show", "nobody"], 3), (["show", "a", "--at", "50"], 3),
                       (["log", "a", "--limit", "zero"], 2)):
        res = subprocess.run([_script(), "--root", str(tmp_path), *args], capture_output=True,
                             text=True, timeout=60, env=_env())
        assert res.returncode == code, (args, res.stderr)
        assert "Traceback" not in res.stderr
    with Journal("a", tmp_path):  # a writer holds the lock
        res = subprocess.run([_script(), "--root", str(tmp_path), "compact", "a"],
                             capture_output=True, text=True, timeout=60, env=_env())
    assert res.returncode == 4 and "locked" in res.stderr and "Traceback" not in res.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # More output than a pipe holds (64 KiB).
    make_agent(tmp_path, "long", 1000, snapshot_every=500, keep_states=False)
    proc = subprocess.Popen([_script(), "--root", str(tmp_path), "log", "long"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err

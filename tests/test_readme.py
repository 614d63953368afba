"""Every Python example of README.md runs as written, in a fresh working directory and then a
second time in the same one."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_readme_example_runs(n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[n], f"README.md example {n + 1}", "exec")
    exec(code, {"__name__": "__main__"})
    assert (tmp_path / ".agentjournal").is_dir(), "the example wrote its journal in ./.agentjournal"
    # A reader tries an example again in the same directory: it must still run.
    exec(code, {"__name__": "__main__"})


QUICK_START = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_quick_start_commands_run_twice_in_one_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``agentjournal demo``, then the commands the quick start suggests, twice in one place."""
    from test_cli_support import assert_clean_stderr, run

    commands = [shlex.split(c) for c in re.findall(r"`(agentjournal [^`]+)`", QUICK_START)]
    commands = [["agentjournal", "demo"]] + [c for c in commands if c[1] != "demo"]
    assert [c[1] for c in commands] == ["demo", "ls", "log", "show", "diff"]
    monkeypatch.chdir(tmp_path)
    for attempt in (1, 2):
        for argv in commands:
            res = run(*argv[1:])
            assert res.exit_code == 0, (attempt, argv, res.stderr)
            assert_clean_stderr(res)
            assert res.stdout.strip(), argv
    assert (tmp_path / ".agentjournal" / "demo-2").is_dir()  # the second demo is a new agent

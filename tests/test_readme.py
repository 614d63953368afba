"""Every Python example of README.md runs as written, in a fresh working directory and then a
second time in the same one."""

from __future__ import annotations

import re
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

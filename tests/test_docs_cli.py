"""docs/cli.md documents every command, option, --json field and exit code, and every example
in it (and in each command's --help) runs."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from agentjournal.cli import _app, cli
from agentjournal.cli.schemas import SCHEMAS, json_schema
from test_cli_support import assert_clean_stderr, make_agent, run

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HAVE_DEMO = importlib.util.find_spec("agentjournal.demo") is not None


def _sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## `agentjournal (\S+)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _examples(text: str) -> list[tuple[str, int]]:
    """``$ agentjournal ...`` lines of the ```console blocks, with their expected status."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ agentjournal "):
                cmd, _, comment = line[2:].partition("#")
                m = re.search(r"exit (\d+)", comment)
                out.append((cmd.strip(), int(m.group(1)) if m else 0))
    return out


def _run_example(line: str, expected: int) -> None:
    argv = shlex.split(line)
    assert argv[0] == "agentjournal", line
    argv = argv[1:]
    target = None
    if ">" in argv:
        i = argv.index(">")
        argv, target = argv[:i], argv[i + 1]
    if "demo" in argv and not HAVE_DEMO:
        return  # the facade's demo is not in this tree yet
    res = run(*argv)
    assert res.exit_code == expected, (line, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr, line
    assert_clean_stderr(res, r".")  # any message, but no Python warning or escape code
    if target is not None:
        Path(target).write_bytes(res.stdout_bytes)


def _schema_fields(schema: dict[str, Any]) -> set[str]:
    fields: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            fields.update(node.get("properties", {}))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return fields


def test_every_command_and_option_is_documented() -> None:
    sections = _sections()
    assert set(cli.commands) <= set(sections), set(cli.commands) - set(sections)
    for name, cmd in cli.commands.items():
        text = sections[name]
        assert _examples(text), f"no example for {name}"
        for param in cmd.params:
            if isinstance(param, click.Option):
                longest = max(param.opts, key=len)
                assert f"`{longest}" in text or f"{longest} " in text, (name, longest)
    top = DOC.read_text(encoding="utf-8")
    for option in ("--root", "--key", "--color", "--json", "--help", "--version",
                   _app.ENV_ROOT, _app.ENV_KEY):
        assert option in top, option


def test_every_json_field_is_documented() -> None:
    sections = _sections()
    for name in SCHEMAS:
        text = sections[name]
        missing = {f for f in _schema_fields(json_schema(name)) if f"`{f}`" not in text}
        assert not missing, (name, missing)


def test_exit_codes_are_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in (_app.EXIT_OK, _app.EXIT_PROBLEMS, _app.EXIT_USAGE, _app.EXIT_NOT_FOUND,
                 _app.EXIT_LOCKED, _app.EXIT_CORRUPT, _app.EXIT_EXISTS, _app.EXIT_INTERRUPTED):
        assert re.search(rf"^\| {code} \|", text, flags=re.M), code
    assert (_app.EXIT_NOT_FOUND, _app.EXIT_LOCKED, _app.EXIT_CORRUPT) == (3, 4, 5)


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTJOURNAL_ROOT", raising=False)
    monkeypatch.delenv("AGENTJOURNAL_KEY", raising=False)
    make_agent(tmp_path / ".agentjournal", "researcher", 30, snapshot_every=10,
               keep_states=False)
    # The keyed examples: a store ./keyed with agent "vault", its key in ./vault.key (0600).
    key = tmp_path / "vault.key"
    key.write_text("correct horse battery staple\n")
    key.chmod(0o600)
    make_agent(tmp_path / "keyed", "vault", 3, snapshot_every=None, keep_states=False,
               key=b"correct horse battery staple")
    return tmp_path


def test_every_documented_example_runs(workdir: Path) -> None:
    del workdir
    examples = _examples(DOC.read_text(encoding="utf-8"))
    assert len(examples) >= 25
    for line, expected in examples:
        _run_example(line, expected)


def test_every_help_example_runs(workdir: Path) -> None:
    del workdir
    order = list(_sections())
    ran = 0
    for name in order + ["--help"]:
        res = run("--help") if name == "--help" else run(name, "--help")
        for line in res.stdout.splitlines():
            line = line.strip()
            if line.startswith("$ agentjournal "):
                _run_example(line[2:], 0)
                ran += 1
    assert ran >= len(cli.commands)

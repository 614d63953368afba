"""Choosing a store by a string: ``open_backend``, ``describe_store``, ``--store`` and
``AGENTJOURNAL_STORE`` on the command line (a directory, ``memory:``, PostgreSQL)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pgf_support import record_agent, store_url

from agentjournal import FilesystemBackend, MemoryBackend
from agentjournal.backends import describe_store, open_backend, store_kind
from agentjournal.errors import MissingExtraError
from test_cli_support import assert_clean_stderr, make_agent, run

# --- open_backend / describe_store ---------------------------------------------------------


def test_a_path_is_a_filesystem_root(tmp_path: Path) -> None:
    be = open_backend(tmp_path / "store")
    assert isinstance(be, FilesystemBackend)
    assert be.describe() == str(tmp_path / "store")
    assert store_kind(str(tmp_path)) == "filesystem"
    # file: forces a directory, even one whose name looks like another kind of store
    odd = open_backend(f"file:{tmp_path}/memory:")
    assert isinstance(odd, FilesystemBackend)
    assert odd.describe() == f"{tmp_path}/memory:"


def test_memory_is_a_new_empty_store_each_time() -> None:
    a, b = open_backend("memory:"), open_backend("memory:")
    assert isinstance(a, MemoryBackend) and isinstance(b, MemoryBackend)
    record_agent(a, "x", 3)
    assert a.list_agents() == ["x"] and b.list_agents() == []


@pytest.mark.parametrize(("spec", "shown"), [
    ("postgresql://app:s3cr%40t@db.internal:5433/agents?schema=fleet",
     "postgresql://app@db.internal:5433/agents?schema=fleet"),
    ("postgres://app:pw@h1:5432,h2:5432/agents", "postgres://app@h1:5432,h2:5432/agents"),
    ("postgresql://db.internal/agents?password=pw&sslmode=require",
     "postgresql://db.internal/agents?sslmode=require"),
    ("postgresql://app@db.internal/agents", "postgresql://app@db.internal/agents"),
    ("memory:", "memory:"),
])
def test_describe_store_never_shows_a_password(spec: str, shown: str) -> None:
    assert describe_store(spec) == shown
    assert "pw" not in describe_store(spec) and "s3cr" not in describe_store(spec)


def test_postgres_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: psycopg made unimportable, and the backend module not yet imported.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "agentjournal.backends.postgres", raising=False)
    with pytest.raises(MissingExtraError) as e:
        open_backend("postgresql://app@127.0.0.1:1/agents")
    assert "pip install 'agentjournal[postgres]'" in (e.value.hint or "")
    assert isinstance(e.value, ImportError)
    res = run("ls", "--store", "postgresql://app@127.0.0.1:1/agents")
    assert res.exit_code == 1
    assert "agentjournal[postgres]" in res.stderr and "Traceback" not in res.stderr


# --- the command line ------------------------------------------------------------------------


def test_store_option_and_env_pick_a_directory(tmp_path: Path) -> None:
    make_agent(tmp_path / "s", "bot", 5, keep_states=False)
    for args, env in ((["--store", str(tmp_path / "s"), "ls", "--json"], {}),
                      (["ls", "--json", "--store", str(tmp_path / "s")], {}),
                      (["ls", "--json"], {"AGENTJOURNAL_STORE": str(tmp_path / "s")}),
                      # the command line wins over the environment
                      (["ls", "--json", "--root", str(tmp_path / "s")],
                       {"AGENTJOURNAL_STORE": str(tmp_path / "other")}),
                      (["ls", "--json", "--store", str(tmp_path / "s")],
                       {"AGENTJOURNAL_ROOT": str(tmp_path / "other")})):
        res = run(*args, env=env)
        assert res.exit_code == 0, (args, env, res.stderr)
        doc = json.loads(res.stdout)
        assert doc["root"] == str(tmp_path / "s")
        assert [a["agent_id"] for a in doc["agents"]] == ["bot"]


@pytest.mark.parametrize("args", [
    ["--store", "memory:", "--root", "x", "ls"],
    ["--root", "x", "ls", "--store", "memory:"],
    ["ls", "--store", "memory:", "--root", "x"],
])
def test_store_and_root_together_is_a_usage_error(args: list[str]) -> None:
    res = run(*args)
    assert res.exit_code == 2
    assert "--store or --root, not both" in res.stderr


def test_both_environment_variables_is_a_usage_error(tmp_path: Path) -> None:
    res = run("ls", env={"AGENTJOURNAL_STORE": "memory:", "AGENTJOURNAL_ROOT": str(tmp_path)})
    assert res.exit_code == 2
    assert "AGENTJOURNAL_STORE and AGENTJOURNAL_ROOT are both set" in res.stderr


def test_memory_store_is_empty_and_demo_wants_a_directory() -> None:
    res = run("--store", "memory:", "ls", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == {"root": "memory:", "agents": []}
    res = run("--store", "memory:", "show", "nobody")
    assert res.exit_code == 3
    res = run("demo", "--store", "memory:")
    assert res.exit_code == 2 and "--root DIR" in res.stderr


def test_a_missing_directory_given_as_store_is_refused_like_a_root(tmp_path: Path) -> None:
    res = run("--store", str(tmp_path / "typo"), "ls")
    assert res.exit_code == 3
    assert "no store at" in res.stderr


def test_serve_shows_the_store_without_its_password() -> None:
    res = run("serve", "--dry-run", "--store", "postgresql://app:hunter2@db.internal/agents")
    assert res.exit_code == 0, res.stderr
    assert "would serve postgresql://app@db.internal/agents on http://127.0.0.1:8765/" \
        in res.stdout
    assert "hunter2" not in res.stdout + res.stderr


# --- on PostgreSQL ---------------------------------------------------------------------------


def test_commands_on_postgres(pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    from agentjournal.backends.postgres import PostgresBackend

    be = PostgresBackend(pg_dsn, schema=pg_schema)
    try:
        states = record_agent(be, "researcher", 12, snapshot_every=5)
    finally:
        be.close()
    url = store_url(pg_dsn, pg_schema)
    res = run("ls", "--json", env={"AGENTJOURNAL_STORE": url})
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["root"] == describe_store(url)
    assert [(a["agent_id"], a["steps"], a["health"]) for a in doc["agents"]] == \
        [("researcher", 12, "ok")]
    res = run("--store", url, "show", "researcher", "--at", "7", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["value"] == states[7]
    res = run("--store", url, "verify", "--all")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("ok  researcher")
    res = run("--store", url, "fork", "researcher", "--at", "4", "--to", "retry")
    assert res.exit_code == 0, res.stderr
    assert "open_backend(" in res.stderr
    res = run("--store", url, "log", "retry", "--json")
    assert res.exit_code == 0, res.stderr
    res = run("--store", url, "show", "nobody")
    assert res.exit_code == 3
    assert_clean_stderr(res, r".")
    # export from a directory, import into PostgreSQL with --store
    make_agent(tmp_path / "fs", "imported", 6, keep_states=False)
    res = run("--root", str(tmp_path / "fs"), "export", "imported", "-o",
              str(tmp_path / "x.jsonl"))
    assert res.exit_code == 0, res.stderr
    res = run("import", str(tmp_path / "x.jsonl"), "--store", url, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["root"] == describe_store(url)
    res = run("--store", url, "verify", "imported")
    assert res.exit_code == 0 and res.stdout.startswith("ok  imported"), res.stdout


def test_store_url_parameters_of_ours(pg_dsn: str, pg_schema: str) -> None:
    be = open_backend(store_url(pg_dsn, pg_schema) + "&lease=row")
    try:
        assert be.schema == pg_schema and be.lease == "row"  # type: ignore[attr-defined]
        record_agent(be, "r", 2, snapshot_every=None)
        assert be.list_agents() == ["r"]
    finally:
        be.close()  # type: ignore[attr-defined]
    res = run("ls", "--store", store_url(pg_dsn, pg_schema) + "&lease=bogus")
    assert res.exit_code == 2 and "lease=advisory or lease=row" in res.stderr
    res = run("ls", "--store", store_url(pg_dsn, "bad schema!"))
    assert res.exit_code in (1, 2) and "Traceback" not in res.stderr

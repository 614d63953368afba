"""Moving journals between stores: ``exchange.copy_journal`` and ``agentjournal copy``,
filesystem → PostgreSQL → filesystem, verified, with the same state at every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pgf_support import record_agent, states_of, store_url

from agentjournal import FilesystemBackend, Journal, MemoryBackend
from agentjournal.backends import describe_store
from agentjournal.backends.base import Backend
from agentjournal.cli.schemas import validate as validate_json
from agentjournal.errors import JournalExistsError, JournalNotFoundError
from agentjournal.exchange import copy_journal
from test_cli_support import assert_clean_stderr, run

KEY = b"correct horse battery staple"


def heads(backend: Backend, agent: str, **kw: object) -> tuple[int, str]:
    with Journal(agent, backend=backend, readonly=True, create=False, **kw) as j:  # type: ignore[arg-type]
        return j.head().seq, j.head().hash


def test_copy_to_memory_keeps_chain_and_states(tmp_path: Path) -> None:
    src = FilesystemBackend(tmp_path / "s")
    states = record_agent(src, "a", 25, snapshot_every=7)
    dst = MemoryBackend()
    seen: list[tuple[int, int]] = []
    rep = copy_journal(src, dst, "a", progress=lambda d, t: seen.append((d, t)))
    assert rep.verified and rep.last_step == 25 and rep.snapshots == 3
    assert states_of(dst, "a") == states
    assert heads(dst, "a") == heads(src, "a")
    assert seen and seen[-1][0] == seen[-1][1]  # the bar ends full
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # and never goes back
    with pytest.raises(JournalExistsError):
        copy_journal(src, dst, "a")
    with pytest.raises(JournalNotFoundError):
        copy_journal(src, dst, "nobody")


def test_keyed_journal_copies_with_its_key(tmp_path: Path) -> None:
    src = FilesystemBackend(tmp_path / "s")
    states = record_agent(src, "k", 6, snapshot_every=None, key=KEY)
    dst = MemoryBackend()
    copy_journal(src, dst, "k", key=KEY)
    assert states_of(dst, "k", key=KEY) == states
    assert heads(dst, "k", key=KEY) == heads(src, "k", key=KEY)


def test_cli_copy_between_directories(tmp_path: Path) -> None:
    record_agent(FilesystemBackend(tmp_path / "s"), "a", 5)
    record_agent(FilesystemBackend(tmp_path / "s"), "b", 3)
    res = run("copy", str(tmp_path / "s"), str(tmp_path / "d"), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    validate_json("copy", doc)
    assert [(a["agent_id"], a["last_step"], a["verified"]) for a in doc["agents"]] == \
        [("a", 5, True), ("b", 3, True)]
    assert doc["target"] == str(tmp_path / "d")
    # One that exists is refused before anything is copied.
    record_agent(FilesystemBackend(tmp_path / "s"), "c", 2)
    res = run("copy", str(tmp_path / "s"), str(tmp_path / "d"))
    assert res.exit_code == 6
    assert "'a', 'b' already have journals" in res.stderr
    assert not FilesystemBackend(tmp_path / "d").exists("c")
    res = run("copy", str(tmp_path / "s"), str(tmp_path / "d"), "c")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("copied c: 2 records")
    assert_clean_stderr(res)
    res = run("copy", str(tmp_path / "s"), str(tmp_path / "s"), "c")
    assert res.exit_code == 2 and "the same store" in res.stderr
    res = run("copy", str(tmp_path / "nowhere"), str(tmp_path / "d"))
    assert res.exit_code == 3


def test_round_trip_filesystem_postgres_filesystem(pg_dsn: str, pg_schema: str,
                                                   tmp_path: Path) -> None:
    from agentjournal.backends.postgres import PostgresBackend

    fs = FilesystemBackend(tmp_path / "s")
    states = {"researcher": record_agent(fs, "researcher", 40, snapshot_every=10),
              "writer": record_agent(fs, "writer", 7, snapshot_every=None)}
    url = store_url(pg_dsn, pg_schema)
    res = run("copy", str(tmp_path / "s"), url, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["target"] == describe_store(url)
    assert all(a["verified"] for a in doc["agents"])

    pg = PostgresBackend(pg_dsn, schema=pg_schema)
    try:
        assert pg.list_agents() == ["researcher", "writer"]
        for agent, want in states.items():
            assert states_of(pg, agent) == want
            assert heads(pg, agent) == heads(fs, agent)
        res = run("--store", url, "verify", "--all", "--json")
        assert res.exit_code == 0 and json.loads(res.stdout)["ok"], res.stdout
        # The journal lives on in the fleet store: a writer continues it there.
        with Journal("researcher", backend=pg) as j:
            j.append({**states["researcher"][40], "status": "moved"})
        states["researcher"][41] = {**states["researcher"][40], "status": "moved"}
    finally:
        pg.close()

    res = run("copy", url, str(tmp_path / "back"))
    assert res.exit_code == 0, res.stderr
    back = FilesystemBackend(tmp_path / "back")
    for agent, want in states.items():
        assert states_of(back, agent) == want
    res = run("--root", str(tmp_path / "back"), "verify", "--all")
    assert res.exit_code == 0, res.stdout
    assert res.stdout.count("ok  ") == 2

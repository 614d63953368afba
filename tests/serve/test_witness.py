"""The integrity panel against heads kept off the store (``serve --witness``): real journals,
real witness files written by ``agentjournal anchor``, then cut, rolled back and rewritten."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from agentjournal import Journal
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.cli import cli
from agentjournal.serve import create_app

from .conftest import write_chat

BASE = "http://127.0.0.1:8765"


def anchor(root: Path, agent: str, witness: Path, key: str | None = None) -> None:
    """``agentjournal anchor AGENT --witness FILE``, as a user runs it."""
    args = ["--root", str(root), *(["--key", key] if key else []), "anchor", agent,
            "--witness", str(witness)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output


def verify_against(root: Path, agent: str, witness: Path) -> Any:
    res = CliRunner().invoke(cli, ["--root", str(root), "verify", agent, "--against",
                                   str(witness), "--json"], catch_exceptions=False)
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store and a directory of witness files (kept apart from it), with agents that
    match, moved on, were cut back, were rewritten, and one never anchored."""
    base = tmp_path_factory.mktemp("witness")
    root, heads = base / "store", base / "heads"
    heads.mkdir()
    w = heads / "heads.jsonl"
    for agent in ("same", "moved", "cut", "rewritten", "loose"):
        write_chat(root, agent, steps=12)
    for agent in ("same", "moved", "cut", "rewritten"):
        anchor(root, agent, w)
    with Journal("moved", root=root) as j:
        j.append({"after": "the anchor"})
    # 'cut': the store put back to an older copy (every byte of it genuine).
    shutil.copytree(root / "cut", base / "cut-backup")
    with Journal("cut", root=root) as j:
        for i in range(3):
            j.append({"more": i})
    anchor(root, "cut", heads / "later.jsonl")  # the newer head is in another witness file
    shutil.rmtree(root / "cut")
    shutil.copytree(base / "cut-backup", root / "cut")
    # 'rewritten': the whole history recorded again, differently: a valid chain, not the same.
    shutil.rmtree(root / "rewritten")
    write_chat(root, "rewritten", steps=14)  # same states, other times: other hashes
    return root, heads


@pytest.fixture(scope="module")
def client(witnessed: tuple[Path, Path]) -> Iterator[TestClient]:
    root, heads = witnessed
    with TestClient(create_app(FilesystemBackend(root), witnesses=[str(heads)]),
                    base_url=BASE) as c:
        yield c


def integrity(c: TestClient, agent: str) -> Any:
    r = c.get(f"/api/agents/{agent}/integrity")
    assert r.status_code == 200, r.text
    return r.json()


def test_each_agent_against_its_witnessed_head(client: TestClient,
                                               witnessed: tuple[Path, Path]) -> None:
    root, heads = witnessed
    same = integrity(client, "same")
    assert same["witness"]["status"] == "matches"
    with Journal("same", root=root, readonly=True) as j:
        head = j.head()
    assert same["anchored_head"] == {"seq": head.seq, "hash": head.hash}
    assert same["witness"]["heads"] == [{
        "path": str(heads / "heads.jsonl"), "seq": head.seq, "hash": head.hash,
        "status": "matches", "message": None, "since": 0}]
    moved = integrity(client, "moved")["witness"]
    assert moved["status"] == "matches" and moved["heads"][0]["since"] == 1
    assert integrity(client, "loose")["witness"] == {"status": "none", "heads": []}
    assert integrity(client, "loose")["anchored_head"] is None


def test_the_same_verdict_as_verify_against(client: TestClient,
                                            witnessed: tuple[Path, Path]) -> None:
    """What the panel says is what 'verify --against' says, for every witness file."""
    root, heads = witnessed
    for agent, want in (("same", "matches"), ("moved", "matches"), ("cut", "behind"),
                        ("rewritten", "diverged")):
        got = integrity(client, agent)["witness"]
        assert got["status"] == want, (agent, got)
        for h in got["heads"]:
            cli_says = verify_against(root, agent, Path(h["path"]))["agents"][0]
            rollback = [p for p in cli_says["problems"] if p["kind"] == "rollback"]
            assert (h["status"] == "matches") == (not rollback), (agent, h, cli_says)
            if rollback:
                assert h["message"] == rollback[0]["message"]
    cut = integrity(client, "cut")["witness"]["heads"]
    # The older head (heads.jsonl) still matches; the newer one (later.jsonl) is past the end.
    assert {Path(h["path"]).name: h["status"] for h in cut} == {"heads.jsonl": "matches",
                                                                "later.jsonl": "behind"}
    assert integrity(client, "cut")["anchored_head"]["seq"] == max(h["seq"] for h in cut)


def test_agents_list_and_full_verify_use_the_witness(client: TestClient) -> None:
    rows = {r["agent_id"]: r for r in client.get("/api/agents").json()["agents"]}
    assert {a: r["witness"] for a, r in rows.items()} == {
        "same": "matches", "moved": "matches", "cut": "behind", "rewritten": "diverged",
        "loose": "none"}
    # The chain of 'rewritten' is valid; only the witness shows it is not the history anchored,
    # and the full verify of the listing (as 'verify --against') counts that as a problem.
    assert rows["same"]["health"] == "verified" and rows["moved"]["health"] == "verified"
    assert rows["rewritten"]["health"] == "damaged" and rows["cut"]["health"] == "damaged"
    v = client.get("/api/agents/rewritten/verify").json()
    assert not v["ok"] and v["problems"][0]["kind"] == "rollback"
    assert client.get("/api/agents/same/verify").json()["ok"]


def test_a_witness_added_later_and_one_edited(witnessed: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    root, _ = witnessed
    w = tmp_path / "solo.jsonl"
    with TestClient(create_app(FilesystemBackend(root), witnesses=[str(w)]),
                    base_url=BASE) as c:
        assert integrity(c, "loose")["witness"]["status"] == "none"  # no file yet
        anchor(root, "loose", w)
        assert integrity(c, "loose")["witness"]["status"] == "matches"  # read again
        line = json.loads(w.read_text())
        line["hash"] = "0" * 64
        w.write_text(json.dumps(line) + "\n")
        got = integrity(c, "loose")["witness"]
        assert got["status"] == "diverged"
        assert "another hash" in got["heads"][0]["message"]


def test_a_keyed_witness_needs_its_mac(tmp_path: Path) -> None:
    root, w = tmp_path / "store", tmp_path / "heads.jsonl"
    write_chat(root, "vault", steps=4, key="k1")
    anchor(root, "vault", w, key="k1")
    with TestClient(create_app(FilesystemBackend(root), key="k1", witnesses=[str(w)]),
                    base_url=BASE) as c:
        assert integrity(c, "vault")["witness"]["status"] == "matches"
    line = json.loads(w.read_text())
    line["seq"] -= 1  # an edit by someone without the key: the MAC no longer fits
    w.write_text(json.dumps(line) + "\n")
    with TestClient(create_app(FilesystemBackend(root), key="k1", witnesses=[str(w)]),
                    base_url=BASE) as c:
        got = integrity(c, "vault")["witness"]
        assert got["status"] == "bad_witness" and "MAC" in got["heads"][0]["message"]


def test_cli_serve_takes_witness_files_and_directories(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--root", str(tmp_path), "serve", "--dry-run", "--witness",
                                   str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "w").mkdir()
    res = CliRunner().invoke(cli, ["--root", str(tmp_path), "serve", "--dry-run", "--witness",
                                   str(tmp_path / "w")])
    assert res.exit_code == 0, res.output

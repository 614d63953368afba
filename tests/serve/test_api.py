"""The viewer's JSON endpoints against real journals (Starlette's TestClient, no mocks)."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from agentjournal import Journal, delta
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.backends.memory import MemoryBackend
from agentjournal.cli import cli
from agentjournal.cli.serve import is_loopback
from agentjournal.errors import TamperedError
from agentjournal.exchange import import_journal, verify_export
from agentjournal.serve import CSP, create_app

from .conftest import BIG_STEPS, KEY

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(FilesystemBackend(store)), base_url=BASE) as c:
        yield c


def get(c: TestClient, url: str, status: int = 200) -> Any:
    r = c.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def error(c: TestClient, url: str, status: int) -> dict[str, Any]:
    body: dict[str, Any] = get(c, url, status)
    assert set(body) == {"error", "message", "hint"}
    assert "Traceback" not in body["message"]
    return body


# --- agents ------------------------------------------------------------------------------------


def test_agents_list_health_forks_and_writer(store: Path, client: TestClient) -> None:
    rows = {r["agent_id"]: r for r in get(client, "/api/agents")["agents"]}
    assert set(rows) == {"big", "chat", "chat-retry", "vault", "broken"}
    assert rows["big"]["steps"] == BIG_STEPS and rows["big"]["health"] == "ok"
    assert rows["big"]["snapshots"] >= 99 and rows["big"]["bytes"] > 0
    assert rows["vault"]["health"] == "key_needed"
    assert rows["broken"]["health"] == "damaged"
    assert rows["chat-retry"]["parent"] == {"agent_id": "chat", "step": 20,
                                            "seq": rows["chat-retry"]["parent"]["seq"]}
    assert not any(r["live"] for r in rows.values())
    with Journal("chat", root=store):  # a writer holds the lock now
        rows = {r["agent_id"]: r for r in get(client, "/api/agents")["agents"]}
    assert rows["chat"]["live"] and not rows["big"]["live"]
    assert [r["agent_id"] for r in get(client, "/api/agents?q=CHAT")["agents"]] == [
        "chat", "chat-retry"]


def test_keyed_journal_with_the_key(store: Path) -> None:
    with TestClient(create_app(FilesystemBackend(store), key=KEY), base_url=BASE) as c:
        row = next(r for r in get(c, "/api/agents")["agents"] if r["agent_id"] == "vault")
        assert row["health"] == "verified" and row["steps"] == 5
        assert get(c, "/api/agents/vault/state?step=5")["state"]["notes"]["n5"] == 5
        assert get(c, "/api/agents/vault/verify")["ok"]
        r = c.get("/api/agents/vault/export?from_step=2&to_step=4")
        assert r.status_code == 200
        rep = verify_export(io.BytesIO(r.content), key=KEY)  # sealed with the key
        assert rep.keyed and rep.range is not None and rep.range["to_step"] == 4
        with pytest.raises(TamperedError):
            verify_export(io.BytesIO(r.content))
        # The unkeyed journals still read (an unkeyed chain ignores the key).
        assert get(c, "/api/agents/chat/state?step=1")["state"]["notes"] == {"n1": 1}
    with TestClient(create_app(FilesystemBackend(store)), base_url=BASE) as c:
        assert error(c, "/api/agents/vault", 403)["error"] == "key_needed"


def test_agent_header_marks_and_forks(client: TestClient) -> None:
    info = get(client, "/api/agents/chat")
    assert (info["first_step"], info["last_step"]) == (1, 40)
    assert [m["step"] for m in info["snapshots"]] == [10, 20, 30, 40]
    assert info["forks"] == [{"agent_id": "chat-retry", "step": 20}]
    assert get(client, "/api/agents/chat-retry")["parent"]["agent_id"] == "chat"


# --- steps -------------------------------------------------------------------------------------


def test_steps_page_the_last_200_then_older(client: TestClient) -> None:
    page = get(client, "/api/agents/big/steps")
    rows = page["rows"]
    assert len(rows) == 200 and rows[-1]["seq"] == page["last_seq"]
    assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], page["last_seq"] + 1))
    assert all(r["kind"] in ("step", "snapshot") for r in rows)
    assert all(r["dt"] is not None and r["dt"] >= 0 for r in rows)
    older = get(client, f"/api/agents/big/steps?before={rows[0]['seq']}&limit=50")["rows"]
    assert [r["seq"] for r in older] == list(range(rows[0]["seq"] - 50, rows[0]["seq"]))
    first = get(client, "/api/agents/big/steps?after=1&limit=3")["rows"]
    assert [r["seq"] for r in first] == [1, 2, 3] and first[0]["dt"] is None
    assert len(get(client, "/api/agents/big/steps?limit=100000")["rows"]) == 1000  # capped
    around = get(client, "/api/agents/big/steps?around_step=50000&limit=20")
    assert any(r["step"] == 50000 and r["seq"] == around["around_seq"] for r in around["rows"])


def test_steps_filters(client: TestClient) -> None:
    touching = get(client, "/api/agents/chat/steps?touching=/status")["rows"]
    assert [r["step"] for r in touching] == [1, 7, 30]
    text = get(client, "/api/agents/chat/steps?text=turn%2013")["rows"]
    assert [r["step"] for r in text] == [13]
    rx = get(client, "/api/agents/chat/steps?text=turn%20(1|2)0$&regex=1")["rows"]
    assert [r["step"] for r in rx] == [10, 20]
    snaps = get(client, "/api/agents/chat/steps?kind=snapshot")["rows"]
    assert [r["step"] for r in snaps] == [10, 20, 30, 40]
    all_rows = get(client, "/api/agents/chat/steps?after=1&limit=1000")["rows"]
    mid = all_rows[20]["ts"]
    since = get(client, f"/api/agents/chat/steps?since={mid}&kind=step")["rows"]
    assert since and all(r["ts"] >= mid for r in since)
    until = get(client, f"/api/agents/chat/steps?until={mid}&kind=step")["rows"]
    assert until and all(r["ts"] <= mid for r in until)
    paged = get(client, "/api/agents/chat/steps?kind=step&limit=15")
    assert [r["step"] for r in paged["rows"]] == list(range(26, 41))
    older = get(client, f"/api/agents/chat/steps?kind=step&limit=15&before={paged['next_before']}")
    assert [r["step"] for r in older["rows"]] == list(range(11, 26))


# --- state and changes -------------------------------------------------------------------------


def test_state_and_changes_replay_exactly(store: Path, client: TestClient) -> None:
    with Journal("big", root=store, readonly=True) as j:
        for step in (1, 999, 1000, 1001, 54321, BIG_STEPS):
            got = get(client, f"/api/agents/big/state?step={step}")
            assert got["state"] == j.state_at(step)
        want = j.state_at(54321)["msgs"][-1]
    assert get(client, "/api/agents/big/state?step=54321&path=/msgs/5431")["state"] == want
    # Walk forward by changes only, as the page does, starting from one full state.
    state = get(client, "/api/agents/chat/state?step=3")["state"]
    for step in range(4, 41):
        ch = get(client, f"/api/agents/chat/changes?step={step}")
        for op in ch["ops"]:
            if op["op"] in ("replace", "remove"):
                found, old = True, state
                for t in delta.parse_pointer(op["at"]):
                    old = old[int(t)] if isinstance(old, list) else old[t]
                assert found and op["old"] == old
            state = delta.apply(state, [{k: op[k] for k in ("op", "path", "value") if k in op}])
        assert state == get(client, f"/api/agents/chat/state?step={step}")["state"]
    # Old values come with every overwrite, so the page can strike them through.
    ch = get(client, "/api/agents/chat/changes?step=30")
    status = next(op for op in ch["ops"] if op["path"] == "/status")
    assert (status["op"], status["old"], status["value"]) == (
        "replace", "<script>window.__pwned = 1</script>", "done")
    assert ch["agent_id"] == "chat" and ch["step"] == 30
    assert get(client, "/api/agents/chat/state?step=30")["agent_id"] == "chat"
    popped = get(client, "/api/agents/chat/changes?step=5")["ops"]
    assert {"op": "remove", "path": "/pending/0", "at": "/pending/0", "old": "a"} in popped
    appended = next(op for op in popped if op["path"] == "/messages/-")
    assert appended["at"] == "/messages/4"


def test_steps_of_a_damaged_journal_list_around_the_damage(client: TestClient) -> None:
    page = get(client, "/api/agents/broken/steps")
    seqs = [r["seq"] for r in page["rows"]]
    assert seqs[:2] == [1, 2] and 3 not in seqs and seqs[-1] == page["last_seq"]
    [problem] = page["problems"]
    assert problem["from_seq"] == 3 and "does not match" in problem["message"]
    assert "segments" in problem["message"]  # names the file


def test_changes_of_a_snapshot_step_list_both_records(client: TestClient) -> None:
    ch = get(client, "/api/agents/chat/changes?step=10")
    assert [r["kind"] for r in ch["records"]] == ["step", "snapshot"]
    assert get(client, "/api/agents/chat-retry/changes?step=20")["records"][0]["kind"] == "fork"


def test_compare_two_steps_and_two_branches(store: Path, client: TestClient) -> None:
    with Journal("chat", root=store, readonly=True) as j:
        a, b = j.state_at(12), j.state_at(31)
    ops = get(client, "/api/agents/chat/compare?a=12&b=31")["ops"]
    plain = [{k: op[k] for k in ("op", "path", "value") if k in op} for op in ops]
    assert delta.apply(a, plain) == b
    with Journal("chat", root=store, readonly=True) as j:
        parent = j.state_at(20)
    with Journal("chat-retry", root=store, readonly=True) as j:
        child = j.state_at(20)
    branch = get(client, "/api/agents/chat-retry/compare?a=20&b=20&a_agent=chat")
    assert branch["ops"] == [] and parent == child


def test_blame(client: TestClient) -> None:
    got = get(client, "/api/agents/chat/blame?path=/status")
    assert got["last"]["step"] == 30
    every = get(client, "/api/agents/chat/blame?path=/status&all=1")["changes"]
    assert [c["step"] for c in every] == [30, 7, 1]  # newest first
    assert error(client, "/api/agents/chat/blame?path=/nothing", 404)["error"] == "not_found"
    assert get(client, "/api/agents/chat/blame?path=/notes/n3")["last"]["step"] == 3


# --- integrity, export -------------------------------------------------------------------------


def test_verify_and_integrity(client: TestClient) -> None:
    ok = get(client, "/api/agents/chat/verify")
    assert ok["ok"] and ok["first_bad_seq"] is None and ok["records"] > 40
    bad = get(client, "/api/agents/broken/verify")
    assert not bad["ok"] and bad["problems"]
    assert bad["first_bad_seq"] == 3  # the edited record (its line names no seq: derived)
    rng = get(client, "/api/agents/broken/verify?from=1&to=5")
    assert not rng["ok"] and rng["problems"][0]["kind"] == "corrupt"
    assert rng["first_bad_seq"] == 3
    # A range starting after the bad line but in its segment cannot say where it is.
    assert get(client, "/api/agents/broken/verify?from=5&to=6")["first_bad_seq"] is None
    rows = {r["agent_id"]: r for r in get(client, "/api/agents")["agents"]}
    assert rows["chat"]["health"] == "verified" and rows["broken"]["health"] == "damaged"
    info = get(client, "/api/agents/chat/integrity")
    assert [s["step"] for s in info["snapshots"]] == [10, 20, 30, 40]
    assert all(s["bytes"] and s["bytes"] > 0 for s in info["snapshots"])
    assert info["watermark"] == {"first_seq": 1, "first_step": 1, "pruned": False}
    assert info["verified"]["ok"]


def test_export_whole_and_range(store: Path, client: TestClient, tmp_path: Path) -> None:
    r = client.get("/api/agents/chat/export")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert verify_export(io.BytesIO(r.content)).records > 40
    # A range is in the export format too: it imports, verifies, and holds the same states.
    r = client.get("/api/agents/chat/export?from_step=15&to_step=26")
    assert r.status_code == 200
    assert 'filename="chat.steps-15-26.export.jsonl"' in r.headers["content-disposition"]
    rep = import_journal(io.BytesIO(r.content), root=tmp_path)
    assert rep.range is not None and rep.range["first_step"] == 10
    assert rep.range["to_step"] == 26 and rep.range["anchor_seq"] == rep.last_seq
    with Journal("chat", root=tmp_path, readonly=True) as copy, \
            Journal("chat", root=store, readonly=True) as orig:
        assert copy.verify().ok and copy.last_step == 26
        for step in range(10, 27):
            assert copy.state_at(step) == orig.state_at(step)
    r = client.get("/api/agents/chat/export?to_step=3")
    assert verify_export(io.BytesIO(r.content)).last_step == 3
    r = client.get("/api/agents/chat/state?step=7&download=1")
    assert json.loads(r.content)["status"].startswith("<script>")
    assert "chat-step-7.json" in r.headers["content-disposition"]


@pytest.mark.parametrize(("query", "status"), [
    ("from_step=9&to_step=3", 400), ("from_step=999", 404), ("from_step=x", 400),
    ("to_step=-1", 400)])
def test_export_bad_range(client: TestClient, query: str, status: int) -> None:
    error(client, "/api/agents/chat/export?" + query, status)


# --- live tail ---------------------------------------------------------------------------------


def _events(c: TestClient, url: str, headers: dict[str, str] | None = None
            ) -> list[dict[str, Any]]:
    out = []
    with c.stream("GET", url, headers=headers or {}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        ev: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                ev["id"] = int(line[4:])
            elif line.startswith("event: "):
                ev["event"] = line[7:]
            elif line.startswith("data: "):
                ev["data"] = json.loads(line[6:])
            elif line == "" and ev:
                out.append(ev)
                ev = {}
    return out


def test_sse_tail_streams_new_records(tmp_path: Path) -> None:
    with Journal("live", root=tmp_path) as w, \
            TestClient(create_app(FilesystemBackend(tmp_path)), base_url=BASE) as c:
        for i in range(3):
            w.append({"i": i})
        evs = _events(c, "/api/agents/live/events?from_seq=2&max_seconds=1")
        assert [(e["event"], e["id"], e["data"]["step"]) for e in evs] == [
            ("record", 2, 2), ("record", 3, 3)]
        w.append({"i": 9})
        evs = _events(c, "/api/agents/live/events?max_seconds=1",
                      headers={"Last-Event-ID": "3"})
        assert [e["id"] for e in evs] == [4]
        assert error(c, "/api/agents/nobody/events", 404)["error"] == "not_found"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "status", "kind"), [
    ("/api/agents/nobody", 404, "not_found"),
    ("/api/agents/nobody/state?step=1", 404, "not_found"),
    ("/api/agents/..%2F..%2Fetc/state?step=1", 404, "not_found"),
    ("/api/agents/.hidden/state?step=1", 400, "bad_agent_id"),
    ("/api/agents/chat/state?step=41", 404, "not_found"),
    ("/api/agents/chat/state?step=-1", 400, "bad_request"),
    ("/api/agents/chat/state?step=abc", 400, "bad_request"),
    ("/api/agents/chat/state", 400, "bad_request"),
    ("/api/agents/chat/state?step=3&path=status", 400, "bad_path"),
    ("/api/agents/chat/state?step=3&path=/nope/x", 404, "not_found"),
    ("/api/agents/chat/state?step=3&path=/a~2", 400, "bad_path"),
    ("/api/agents/chat/changes?step=99", 404, "not_found"),
    ("/api/agents/chat/compare?a=1", 400, "bad_request"),
    ("/api/agents/chat/compare?a=1&b=2&a_agent=nobody", 404, "not_found"),
    ("/api/agents/chat/blame", 400, "bad_request"),
    ("/api/agents/chat/blame?path=x", 400, "bad_path"),
    ("/api/agents/chat/steps?text=(&regex=1", 400, "bad_request"),
    ("/api/agents/chat/steps?kind=bogus", 400, "bad_request"),
    ("/api/agents/chat/steps?since=yesterday", 400, "bad_request"),
    ("/api/agents/chat/steps?limit=0", 400, "bad_request"),
    ("/api/agents/chat/steps?touching=nope", 400, "bad_path"),
    ("/api/agents/broken/state?step=3", 409, "damaged"),
    ("/api/no/such/endpoint", 404, "not_found"),
])
def test_bad_input_is_a_json_4xx(client: TestClient, url: str, status: int, kind: str) -> None:
    assert error(client, url, status)["error"] == kind


# --- security ----------------------------------------------------------------------------------


def test_headers_and_read_only(client: TestClient) -> None:
    for url in ("/", "/agents/chat?step=3", "/static/app.js", "/api/agents", "/api/nope"):
        r = client.get(url)
        assert r.headers["content-security-policy"] == CSP, url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    page = client.get("/").text
    assert "<script>" not in page and "http" not in page.replace('href="/', "")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/api/agents/chat/fork", json={"at_step": 1, "new_id": "x"},
                           headers={"origin": BASE})
        assert r.status_code == 405 and r.json()["error"] == "read_only"


def test_host_header_must_be_loopback(client: TestClient) -> None:
    r = client.get("/api/agents", headers={"host": "attacker.example:8765"})
    assert r.status_code == 421 and r.json()["error"] == "bad_host"
    assert client.get("/api/agents", headers={"host": "localhost:8765"}).status_code == 200


def test_fork_only_same_origin_json(tmp_path: Path) -> None:
    from .conftest import write_chat

    write_chat(tmp_path, "src", steps=8)
    app = create_app(FilesystemBackend(tmp_path), allow_fork=True)
    body = {"at_step": 4, "new_id": "src-retry"}
    with TestClient(app, base_url=BASE) as c:
        assert c.post("/api/agents/src/fork", json=body).status_code == 403  # no Origin
        r = c.post("/api/agents/src/fork", json=body, headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["error"] == "cross_origin"
        r = c.post("/api/agents/src/fork", json=body,
                   headers={"origin": BASE, "sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        r = c.post("/api/agents/src/fork", content=json.dumps(body),
                   headers={"origin": BASE, "content-type": "text/plain"})
        assert r.status_code == 415
        assert not FilesystemBackend(tmp_path).exists("src-retry")
        r = c.post("/api/agents/src/fork", json=body, headers={"origin": BASE})
        assert r.status_code == 200, r.text
        assert "src-retry" in r.json()["resume"]["python"]
        r = c.post("/api/agents/src/fork", json=body, headers={"origin": BASE})
        assert r.status_code == 409 and r.json()["error"] == "exists"
        edited = {"at_step": 2, "new_id": "src-edit", "state": {"messages": [], "x": 1}}
        r = c.post("/api/agents/src/fork", json=edited, headers={"origin": BASE})
        assert r.status_code == 200, r.text
        for bad in ({"at_step": "2", "new_id": "y"}, {"at_step": 2, "new_id": "../y"},
                    {"at_step": 99, "new_id": "z"}, [1]):
            r = c.post("/api/agents/src/fork", json=bad, headers={"origin": BASE})
            assert 400 <= r.status_code < 500, (bad, r.text)
    with Journal("src-retry", root=tmp_path, readonly=True) as j:
        with Journal("src", root=tmp_path, readonly=True) as src:
            assert j.resume().state == src.state_at(4)
    with Journal("src-edit", root=tmp_path, readonly=True) as j:
        assert j.resume().state == {"messages": [], "x": 1}


def test_a_journal_removed_and_recorded_again_is_shown_afresh(tmp_path: Path) -> None:
    """Re-running an agent under the same id (after removing its journal) while the viewer
    runs: nothing of the old journal (open handle, cursor, caches) is shown for the new one."""
    with Journal("again", root=tmp_path) as j:
        for i in range(1, 31):
            j.append({"i": i, "gen": "old"})
    with TestClient(create_app(FilesystemBackend(tmp_path)), base_url=BASE) as c:
        assert get(c, "/api/agents/again/state?step=30")["state"] == {"i": 30, "gen": "old"}
        get(c, "/api/agents/again/changes?step=30")
        assert get(c, "/api/agents/again/verify")["ok"]
        shutil.rmtree(tmp_path / "again")
        assert error(c, "/api/agents/again/state?step=30", 404)["error"] == "not_found"
        with Journal("again", root=tmp_path) as j:
            for i in range(1, 41):
                j.append({"i": i * 10, "gen": "new"})
        assert get(c, "/api/agents/again")["last_step"] == 40
        assert get(c, "/api/agents/again/state?step=30")["state"] == {"i": 300, "gen": "new"}
        ops = get(c, "/api/agents/again/changes?step=30")["ops"]
        assert {"op": "replace", "path": "/i", "at": "/i", "value": 300, "old": 290} in ops
        row = next(r for r in get(c, "/api/agents")["agents"] if r["agent_id"] == "again")
        assert row["steps"] == 40 and row["health"] == "verified"


def test_memory_backend_is_served() -> None:
    be = MemoryBackend()
    with Journal("m", backend=be) as j:
        j.append({"a": 1})
        j.append({"a": 2})
        with TestClient(create_app(be), base_url=BASE) as c:
            rows = get(c, "/api/agents")["agents"]
            assert rows[0]["agent_id"] == "m" and rows[0]["live"]
            assert get(c, "/api/agents/m/state?step=2")["state"] == {"a": 2}


def test_cli_refuses_non_loopback_without_the_flag(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["--root", str(tmp_path), "serve", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "--allow-remote" in r.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("example.com")
    r = CliRunner().invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0 and "agentjournal serve --open" in r.output


def _undo(state: Any, ops: list[dict[str, Any]]) -> Any:
    """What the page does moving left: undo a step's annotated ops (``at``, ``old``)."""
    for o in reversed(ops):
        tokens = delta.parse_pointer(o["at"])
        if not tokens:
            state = o.get("old")
            continue
        parent = state
        for t in tokens[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        last = tokens[-1]
        if isinstance(parent, list):
            i = int(last)
            if o["op"] == "add":
                parent.pop(i)
            elif o["op"] == "replace":
                parent[i] = o["old"]
            else:
                parent.insert(i, o["old"])
        elif o["op"] == "remove" or "old" in o:
            parent[last] = o["old"]
        else:
            del parent[last]
    return state


def test_moving_left_by_undoing_the_changes(store: Path, client: TestClient) -> None:
    """From one state, undoing each step's changes walks back exactly (on the 100k journal,
    across a snapshot and a segment boundary)."""
    state = get(client, "/api/agents/big/state?step=3005")["state"]
    with Journal("big", root=store, readonly=True) as j:
        for step in range(3005, 2960, -1):
            state = _undo(state, get(client, f"/api/agents/big/changes?step={step}")["ops"])
            if step % 10 in (0, 1):
                assert state == j.state_at(step - 1), step
        assert state == j.state_at(2960)
    state = get(client, "/api/agents/chat/state?step=40")["state"]
    with Journal("chat", root=store, readonly=True) as j:
        for step in range(40, 1, -1):
            state = _undo(state, get(client, f"/api/agents/chat/changes?step={step}")["ops"])
            assert state == j.state_at(step - 1), step

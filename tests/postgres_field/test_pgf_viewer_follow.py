"""The viewer and ``log --follow`` on a PostgreSQL store: the same API over ``--store``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the viewer needs the 'serve' extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the 'test' extra)")

from pgf_support import record_agent, store_url  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from agentjournal import Journal  # noqa: E402
from agentjournal.backends import open_backend  # noqa: E402
from agentjournal.serve import create_app  # noqa: E402

BASE = "http://127.0.0.1:8765"


def get(c: TestClient, url: str) -> Any:
    r = c.get(url)
    assert r.status_code == 200, r.text
    return r.json()


def test_viewer_api_over_postgres(pg_dsn: str, pg_schema: str) -> None:
    be = open_backend(store_url(pg_dsn, pg_schema))
    try:
        states = record_agent(be, "chat", 15, snapshot_every=5)
        with TestClient(create_app(be), base_url=BASE) as c:
            rows = {r["agent_id"]: r for r in get(c, "/api/agents")["agents"]}
            assert rows["chat"]["steps"] == 15 and rows["chat"]["health"] in ("ok", "verified")
            assert not rows["chat"]["live"]
            for step in (1, 5, 6, 15):
                assert get(c, f"/api/agents/chat/state?step={step}")["state"] == states[step]
            with Journal("chat", backend=be) as w:  # a writer holds the lease now
                assert get(c, "/api/agents")["agents"][0]["live"]
                w.append({**states[15], "status": "live"})
                with c.stream("GET", "/api/agents/chat/events?from_seq=1&max_seconds=1") as r:
                    assert r.status_code == 200
                    ids = [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]
                last = w.last_seq
            assert ids == list(range(1, last + 1))  # from_seq on, each once, in order
    finally:
        be.close()  # type: ignore[attr-defined]


def test_log_follow_sees_a_writer_of_another_process(pg_dsn: str, pg_schema: str) -> None:
    url = store_url(pg_dsn, pg_schema)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "AGENTJOURNAL_STORE": url}
    env.pop("AGENTJOURNAL_ROOT", None)
    follower = subprocess.Popen(
        [sys.executable, "-m", "agentjournal.cli", "log", "bot", "--follow", "--json",
         "--max-records", "6", "--timeout", "60", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.0)  # the follower waits for the agent to appear
        writer = ("import sys\nfrom agentjournal import Journal\n"
                  "from agentjournal.backends import open_backend\n"
                  "be = open_backend(sys.argv[1])\n"
                  "with Journal('bot', backend=be, snapshot_every=None) as j:\n"
                  "    for i in range(6):\n"
                  "        j.append({'i': i})\n")
        subprocess.run([sys.executable, "-c", writer, url], env=env, check=True, timeout=120)
        out, err = follower.communicate(timeout=90)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [d["seq"] for d in lines] == [1, 2, 3, 4, 5, 6]
    assert "Traceback" not in err

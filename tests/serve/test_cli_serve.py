"""``agentjournal serve`` as users run it: a real process, a real socket, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import write_chat


def test_serve_process_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    write_chat(tmp_path, "chat", steps=5)
    env = {**os.environ, "AGENTJOURNAL_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "agentjournal.cli", "serve", "--port", "0"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+/) \(store .*, read-only\)", line)
        assert m, line
        url = m.group(1)
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/").headers["content-security-policy"].startswith("default-src")
            assert c.get("api/agents").json()["agents"][0]["agent_id"] == "chat"
            # An open live tail (a browser tab) must not hold the shutdown up.
            with c.stream("GET", "api/agents/chat/events?from_seq=1") as r:
                lines = r.iter_lines()
                assert next(lines).startswith("retry:")
                proc.send_signal(signal.SIGINT)
                rest = list(lines)
            assert any(x.startswith("id: 5") for x in rest)
        assert proc.wait(20) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "ERROR" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_open_starts_the_browser_on_the_page(tmp_path: Path) -> None:
    """--open hands the viewer's address to the user's browser ($BROWSER here: a script that
    loads the page, as a browser would, and notes what it got)."""
    write_chat(tmp_path, "chat", steps=3)
    seen = tmp_path / "seen.txt"
    fake = tmp_path / "browser.py"
    fake.write_text(
        "import sys, urllib.request\n"
        "url = sys.argv[1]\n"
        "with urllib.request.urlopen(url, timeout=30) as r:\n"
        "    body = r.read().decode()\n"
        f"open({str(seen)!r}, 'w').write(url + ' ' + str(r.status) + ' ' + "
        "str('app.js' in body))\n")
    env = {**os.environ, "AGENTJOURNAL_ROOT": str(tmp_path),
           "BROWSER": f"{sys.executable} {fake} %s"}
    proc = subprocess.Popen([sys.executable, "-m", "agentjournal.cli", "serve", "--port", "0",
                             "--open"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        m = re.search(r"on (http://127\.0\.0\.1:\d+/) ", proc.stderr.readline())
        assert m
        for _ in range(300):
            if seen.exists() and seen.read_text():
                break
            assert proc.poll() is None, "the server stopped"
            time.sleep(0.1)
        assert seen.read_text() == f"{m.group(1)} 200 True"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

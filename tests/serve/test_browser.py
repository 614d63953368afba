"""The viewer in a real browser: Debian's headless Chromium driven by Playwright, against a
real uvicorn server on a free loopback port, over real journals, one with a live writer.

Nothing is downloaded: Playwright is pointed at ``/usr/bin/chromium`` (installed by
``.ci/run``); without it these tests skip. Screenshots go to the test's temporary directory,
and also to ``$VIEWER_SCREENSHOTS`` when set (that is how ``docs/img/viewer-*.png`` were made).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install "
                "chromium); no browser is downloaded", allow_module_level=True)
pytest.importorskip("playwright", reason="the browser tests need playwright (the test extra)")
pytest.importorskip("uvicorn", reason="the viewer needs the 'serve' extra")

import uvicorn  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from agentjournal import Journal  # noqa: E402
from agentjournal.backends.filesystem import FilesystemBackend  # noqa: E402
from agentjournal.exchange import import_journal  # noqa: E402
from agentjournal.serve import create_app  # noqa: E402

from .conftest import write_chat  # noqa: E402
from .test_witness import anchor  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 15_000  # ms: how long a page may take to show what it should (a shared 2-core box)
expect.set_options(timeout=WAIT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn serving the viewer in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, root: Path, witnesses: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(FilesystemBackend(root), allow_fork=True, witnesses=witnesses)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the viewer's server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "store"
    write_chat(root, "chat", steps=40)
    with Journal("chat", root=root) as j:
        j.fork(20, "chat-retry").close()
    return root


@pytest.fixture(scope="module")
def writer(root: Path) -> Iterator[Journal]:
    """A live agent: its writer stays open for the module and appends when a test asks."""
    with Journal("live", root=root, snapshot_every=5) as j:
        for i in range(1, 9):
            j.append({"i": i, "log": [f"line {k}" for k in range(i)]})
        yield j


@pytest.fixture(scope="module")
def server(root: Path, writer: Journal) -> Iterator[Server]:
    with Server(root) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def open_page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh browser tab for the server at ``url``; fails if the page throws or loads
    anything from elsewhere."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    errors: list[str] = []
    foreign: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: None if r.url.startswith(url) else foreign.append(r.url))
    yield pg
    ctx.close()
    assert errors == [], errors
    assert foreign == [], f"the page loaded something from elsewhere: {foreign}"


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with open_page(browser, server.url) as pg:
        yield pg


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name))
    target = os.environ.get("VIEWER_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(target) / name)


def client_state(page: Page) -> Any:
    return page.evaluate("() => view.agent.state")


def test_agents_page_lists_agents_and_the_fork_tree(page: Page, server: Server,
                                                    tmp_path: Path) -> None:
    page.goto(server.url + "/")
    rows = page.locator("#agents tbody tr")
    expect(rows).to_have_count(3)
    assert rows.nth(0).get_attribute("data-agent") == "chat"
    assert rows.nth(1).get_attribute("data-agent") == "chat-retry"  # under its parent
    expect(rows.nth(1)).to_contain_text("forked at step 20")
    expect(page.locator('tr[data-agent="live"] .badge')).to_contain_text("live")
    expect(page.locator('tr[data-agent="chat"] .badge')).to_have_text("idle")
    page.fill("#agent-filter", "retry")
    expect(rows).to_have_count(1)
    page.fill("#agent-filter", "")
    shot(page, tmp_path, "viewer-agents.png")


def test_deep_link_highlight_keys_and_slider(page: Page, server: Server, root: Path,
                                             tmp_path: Path) -> None:
    page.goto(server.url + "/agents/chat?step=15")
    expect(page.locator("#step-label")).to_have_text("step 15 / 40")
    current = page.locator("#steps .row.current")
    expect(current).to_have_count(1)
    assert current.get_attribute("data-step") == "15"
    expect(current).to_be_in_viewport()
    assert page.locator("#slider").input_value() == "15"
    with Journal("chat", root=root, readonly=True) as j:
        assert client_state(page) == j.state_at(15)
        page.keyboard.press("ArrowRight")
        expect(page.locator("#step-label")).to_have_text("step 16 / 40")
        assert "step=16" in page.url
        assert page.locator("#steps .row.current").get_attribute("data-step") == "16"
        assert client_state(page) == j.state_at(16)  # forward: by applying step 16's ops
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#step-label")).to_have_text("step 14 / 40")
        assert client_state(page) == j.state_at(14)  # backward: by undoing, no state sent
        page.evaluate("""() => { const s = document.querySelector('#slider');
                                 s.value = 30; s.dispatchEvent(new Event('input')); }""")
        expect(page.locator("#step-label")).to_have_text("step 30 / 40")
        assert client_state(page) == j.state_at(30)
    page.keyboard.press("End")
    expect(page.locator("#step-label")).to_have_text("step 40 / 40")
    page.keyboard.press("Home")
    expect(page.locator("#step-label")).to_have_text("step 1 / 40")
    assert page.locator("#marks .mark.snap").count() == 4
    assert page.locator("#marks .mark.fork").count() == 1
    # The URL restores the exact view, with a comparison.
    page.goto(server.url + "/agents/chat?step=12&vs=10")
    expect(page.locator("#diff")).to_contain_text("step 10 → step 12")
    assert page.locator("#vs").input_value() == "10"


def test_diff_colours_and_inline_changes(page: Page, server: Server, tmp_path: Path) -> None:
    page.goto(server.url + "/agents/chat?step=30")
    replace = page.locator("#diff .op-replace").filter(has_text="/status")
    expect(replace).to_have_count(1)
    colour = replace.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(255, 241, 214)"
    expect(replace.locator("del.old")).to_have_text('"<script>window.__pwned = 1</script>"')
    add = page.locator("#diff .op-add").first
    assert add.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(227, 246, 233)"
    node = page.locator('#tree li.changed.ch-replace[data-path="/status"]')
    expect(node).to_have_count(1)
    expect(node.locator("del.old")).to_contain_text("<script>")
    shot(page, tmp_path, "viewer-agent.png")
    page.goto(server.url + "/agents/chat?step=5")
    remove = page.locator("#diff .op-remove")
    expect(remove).to_have_count(1)
    assert remove.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(253, 231, 229)"
    expect(page.locator("#tree .ghost.ch-remove")).to_have_count(1)  # struck-through removal


def test_values_render_as_text_never_as_html(page: Page, server: Server) -> None:
    page.goto(server.url + "/agents/chat?step=7")
    status = page.locator('#tree li[data-path="/status"] .v-str')
    expect(status).to_have_text('"<script>window.__pwned = 1</script>"')
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.querySelectorAll('script').length") == 1
    page.click("#raw")
    expect(page.locator("pre.raw")).to_contain_text("<script>window.__pwned = 1</script>")
    assert page.evaluate("() => window.__pwned") is None


def test_search_filters_and_url(page: Page, server: Server) -> None:
    page.goto(server.url + "/agents/chat?step=40")
    page.fill('#filters input[name="text"]', "turn 13")
    page.click('#filters button[type="submit"]')
    results = page.locator("#results .row")
    expect(results).to_have_count(1)
    assert results.get_attribute("data-step") == "13"
    assert "text=turn+13" in page.url
    results.click()
    expect(page.locator("#step-label")).to_have_text("step 13 / 40")
    page.goto(server.url + "/agents/chat?step=3&touching=%2Fstatus")
    expect(page.locator("#results .row")).to_have_count(3)
    assert [r.get_attribute("data-step") for r in page.locator("#results .row").all()] == [
        "1", "7", "30"]
    status = page.locator('#tree li[data-path="/status"]')
    status.hover()  # the node's tools show on hover
    status.locator("> .tools .blame").click()
    expect(page.locator("#blame")).to_contain_text("last changed at step 30")


def test_live_writer_steps_appear_without_reload(page: Page, server: Server,
                                                 writer: Journal) -> None:
    page.goto(server.url + "/agents/live")
    expect(page.locator("#step-label")).to_have_text("step 8 / 8")
    expect(page.locator("#live")).to_have_text("live tail")
    expect(page.locator("#writer")).to_contain_text("writer live (pid")
    page.evaluate("() => { window.__same_page = true; }")
    added = writer.append({"i": 9, "log": [f"line {k}" for k in range(9)], "note": "fresh"})
    expect(page.locator("#step-label")).to_have_text("step 9 / 9")  # followed to the end
    row = page.locator(f'#steps .row[data-seq="{added.seq}"]')
    expect(row).to_have_count(1)
    assert row.get_attribute("class") is not None and "current" in str(row.get_attribute("class"))
    expect(page.locator('#tree li[data-path="/note"]')).to_contain_text("fresh")
    # Looking at an older step: new steps are listed, the view stays where it is.
    page.keyboard.press("Home")
    expect(page.locator("#step-label")).to_have_text("step 1 / 9")
    added = writer.append({"i": 10, "log": [], "note": "later"})
    expect(page.locator("#step-label")).to_have_text("step 1 / 10")
    expect(page.locator("#new-steps")).to_have_text("1 new")
    page.keyboard.press("End")
    expect(page.locator("#step-label")).to_have_text("step 10 / 10")
    expect(page.locator("#new-steps")).to_be_hidden()
    assert page.evaluate("() => window.__same_page") is True


def test_verify_from_the_page(page: Page, server: Server) -> None:
    page.goto(server.url + "/agents/chat?step=3")
    page.click("#verify")
    expect(page.locator("#verify-result")).to_contain_text("verified:")
    page.fill("#verify-from", "2")
    page.fill("#verify-to", "9")
    page.click("#verify-range")
    expect(page.locator("#verify-result")).to_contain_text("verified: 8 records")


def test_fork_from_here(page: Page, server: Server, root: Path) -> None:
    page.goto(server.url + "/agents/chat?step=12")
    expect(page.locator("#step-label")).to_have_text("step 12 / 40")
    page.fill("#fork-id", "chat-b")
    page.click("#fork-go")
    expect(page.locator("#fork-result")).to_contain_text("Journal('chat-b'")
    with Journal("chat-b", root=root, readonly=True) as b, \
            Journal("chat", root=root, readonly=True) as a:
        assert b.resume().state == a.state_at(12)


def test_export_a_step_range_in_the_export_format(page: Page, server: Server, root: Path,
                                                  tmp_path: Path) -> None:
    """The range the page downloads is an export file: it imports, verifies, and holds the
    journal's states at every step of the range."""
    page.goto(server.url + "/agents/chat?step=20")
    expect(page.locator("#step-label")).to_have_text("step 20 / 40")
    page.fill("#exp-from", "14")
    page.fill("#exp-to", "22")
    with page.expect_download() as got:
        page.click("#export-range")
    dl = got.value
    assert dl.suggested_filename == "chat.steps-14-22.export.jsonl"
    path = tmp_path / dl.suggested_filename
    dl.save_as(path)
    with open(path, "rb") as f:
        rep = import_journal(f, root=tmp_path / "imported")
    assert rep.range is not None and rep.range["to_step"] == 22
    with Journal("chat", root=tmp_path / "imported", readonly=True) as copy, \
            Journal("chat", root=root, readonly=True) as orig:
        assert copy.verify().ok
        for step in range(14, 23):
            assert copy.state_at(step) == orig.state_at(step)
    # Bounds that cannot be exported are said on the page; nothing is downloaded.
    downloads: list[object] = []
    page.on("download", lambda d: downloads.append(d))
    page.fill("#exp-from", "30")
    page.fill("#exp-to", "3")
    page.click("#export-range")
    expect(page.locator("#export-note")).to_contain_text("to is before from")
    page.fill("#exp-from", "99")
    page.fill("#exp-to", "")
    page.click("#export-range")
    expect(page.locator("#export-note")).to_contain_text("from must be a step in 1..40")
    assert downloads == []


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A store whose agents were anchored to a witness file; 'tampered' was then recorded
    again (a valid chain, but not the history that was anchored)."""
    base = tmp_path_factory.mktemp("witnessed")
    store, heads = base / "store", base / "heads.jsonl"
    write_chat(store, "kept", steps=12)
    write_chat(store, "tampered", steps=12)
    write_chat(store, "unwitnessed", steps=3)
    anchor(store, "kept", heads)
    anchor(store, "tampered", heads)
    shutil.rmtree(store / "tampered")
    write_chat(store, "tampered", steps=12)
    with Server(store, witnesses=(str(heads),)) as s:
        yield s


def test_integrity_panel_shows_the_witnessed_head(browser: Browser, witnessed: Server,
                                                  tmp_path: Path) -> None:
    with open_page(browser, witnessed.url) as page:
        page.goto(witnessed.url + "/")
        expect(page.locator('tr[data-agent="tampered"] .witness')).to_have_text("diverged")
        expect(page.locator('tr[data-agent="kept"] .witness')).to_have_text("matches")
        expect(page.locator('tr[data-agent="unwitnessed"] .witness')).to_have_text("none")
        page.goto(witnessed.url + "/agents/kept")
        status = page.locator("#witness-status")
        expect(status).to_have_text("matches its witnessed head")
        expect(page.locator("#witness")).to_contain_text("anchored head: seq ")
        page.goto(witnessed.url + "/agents/tampered")
        expect(status).to_contain_text("diverged")
        assert "diverged" in str(status.get_attribute("class"))
        assert status.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"
        expect(page.locator("#witness .witness-head")).to_contain_text(
            "is not the one anchored")
        page.click("#verify")
        expect(page.locator("#verify-result")).to_contain_text("damaged")
        expect(page.locator("#verify-result")).to_contain_text("rollback")
        page.locator("#integrity").scroll_into_view_if_needed()
        shot(page, tmp_path, "viewer-integrity.png")
        page.goto(witnessed.url + "/agents/unwitnessed")
        expect(status).to_have_text("no witness")


def test_keys_still_move_after_a_click_on_follow(page: Page, server: Server) -> None:
    page.goto(server.url + "/agents/chat?step=10")
    expect(page.locator("#step-label")).to_have_text("step 10 / 40")
    page.click("#follow")  # the focus is on the checkbox now
    page.keyboard.press("ArrowRight")
    expect(page.locator("#step-label")).to_have_text("step 11 / 40")
    page.keyboard.press("End")
    expect(page.locator("#step-label")).to_have_text("step 40 / 40")
    page.fill("#jump", "")
    page.keyboard.press("Home")  # typed into a field: the field's, not a move
    expect(page.locator("#step-label")).to_have_text("step 40 / 40")


def test_a_long_removal_is_shown_capped(browser: Browser, tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Journal("lists", root=root) as j:
        j.append({"items": list(range(500)), "keep": 1})
        j.append({"items": [], "keep": 1})
    with Server(root) as s, open_page(browser, s.url) as page:
        page.goto(s.url + "/agents/lists?step=2")
        expect(page.locator("#diff")).to_contain_text("step 2:")
        ghosts = page.locator('#tree li[data-path="/items"] .ghost.ch-remove')
        expect(ghosts).to_have_count(100)
        expect(page.locator('#tree li[data-path="/items"] .ghost-more')).to_have_text(
            "… 400 more removed (see the changes above)")


def test_serve_the_demo_store_as_a_user_does(browser: Browser, tmp_path: Path) -> None:
    """'agentjournal demo', 'agentjournal anchor', then 'agentjournal serve' as a process on
    the demo's store, with a witness; the page shows the agent, its steps, its state, its
    witnessed head, and exports a range that imports and verifies."""
    env = {**os.environ, "AGENTJOURNAL_ROOT": str(tmp_path / "store")}
    env.pop("AGENTJOURNAL_KEY", None)
    cli = [sys.executable, "-m", "agentjournal.cli"]
    subprocess.run([*cli, "demo"], env=env, check=True, capture_output=True, timeout=120)
    witness = tmp_path / "heads.jsonl"
    subprocess.run([*cli, "anchor", "demo-1", "--witness", str(witness)], env=env, check=True,
                   capture_output=True, timeout=60)
    proc = subprocess.Popen([*cli, "serve", "--port", "0", "--witness", str(witness)],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/ ", line)
        assert m, line
        url = m.group(1)
        with open_page(browser, url) as page:
            page.goto(url + "/")
            row = page.locator('tr[data-agent="demo-1"]')
            expect(row.locator(".health")).to_have_text("verified")
            expect(row.locator(".witness")).to_have_text("matches")
            row.locator("a").click()
            expect(page.locator("#step-label")).to_have_text(re.compile(r"step (\d+) / \1$"))
            expect(page.locator("#steps .row.current")).not_to_have_count(0)
            expect(page.locator("#witness-status")).to_have_text("matches its witnessed head")
            page.keyboard.press("Home")
            expect(page.locator("#step-label")).to_have_text(re.compile(r"^step 0 / "))
            page.keyboard.press("ArrowRight")
            expect(page.locator("#diff li.op")).not_to_have_count(0)
            page.fill("#exp-from", "3")
            page.fill("#exp-to", "8")
            with page.expect_download() as got:
                page.click("#export-range")
            path = tmp_path / "range.jsonl"
            got.value.save_as(path)
        res = subprocess.run([*cli, "--root", str(tmp_path / "copy"), "import", str(path),
                              "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["range"]["to_step"] == 8
        res = subprocess.run([*cli, "--root", str(tmp_path / "copy"), "verify", "demo-1"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def test_live_tail_does_not_jump_while_scrolled_up(page: Page, server: Server,
                                                   writer: Journal) -> None:
    page.goto(server.url + "/agents/live")
    last = writer.last_step
    expect(page.locator("#step-label")).to_have_text(f"step {last} / {last}")
    expect(page.locator("#live")).to_have_text("live tail")
    for i in range(40):  # enough rows to scroll
        writer.append({"i": 100 + i, "log": []})
    last = writer.last_step
    expect(page.locator("#step-label")).to_have_text(f"step {last} / {last}")
    page.evaluate("""() => { const l = document.querySelector('#steps'); l.scrollTop = 0;
                             l.dispatchEvent(new Event('scroll')); }""")
    writer.append({"i": 999, "log": [], "note": "while scrolled up"})
    expect(page.locator("#step-label")).to_have_text(f"step {last} / {last + 1}")
    expect(page.locator("#new-steps")).to_have_text("1 new")
    assert page.evaluate("() => document.querySelector('#steps').scrollTop") == 0


def test_a_refused_export_is_said_on_the_page(browser: Browser, tmp_path: Path) -> None:
    """Exporting a damaged journal, or a range over the damage, is refused: the page says
    why, nothing is downloaded. The intact range after it exports."""
    root = tmp_path / "store"
    write_chat(root, "broken", steps=12)
    seg = sorted((root / "broken" / "segments").iterdir())[0]
    seg.write_bytes(seg.read_bytes().replace(b"turn 3", b"TURN 3"))
    with Server(root) as s, open_page(browser, s.url) as page:
        downloads: list[object] = []
        page.on("download", lambda d: downloads.append(d))
        page.goto(s.url + "/agents/broken?step=12")
        expect(page.locator("#step-label")).to_have_text("step 12 / 12")
        page.click("#export-all")
        expect(page.locator("#export-note")).to_contain_text(
            "not exported: record hash does not match its bytes")
        page.fill("#exp-from", "2")
        page.fill("#exp-to", "5")
        page.click("#export-range")
        expect(page.locator("#export-note")).to_contain_text("not exported:")
        page.click("#verify")
        expect(page.locator("#verify-result")).to_contain_text("first bad seq 3")
        assert downloads == []
        page.fill("#exp-from", "11")
        page.fill("#exp-to", "")
        with page.expect_download() as got:
            page.click("#export-range")
        path = tmp_path / got.value.suggested_filename
        got.value.save_as(path)
        with open(path, "rb") as f:
            rep = import_journal(f, root=tmp_path / "salvaged")
        assert rep.range is not None and rep.range["first_step"] == 10
        with Journal("broken", root=tmp_path / "salvaged", readonly=True) as j:
            assert j.verify().ok and j.state_at(12)["notes"]["n12"] == 12

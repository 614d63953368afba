"""``agentjournal serve``: the web viewer (needs the ``serve`` extra: starlette, uvicorn)."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from types import FrameType

import click

from ._app import EXIT_USAGE, get_settings, store_options


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve", epilog="""
\b
Examples:
  agentjournal serve --open           (serve ./.agentjournal, open a browser)
  agentjournal serve --allow-fork --port 9000
  agentjournal serve --witness heads.jsonl   (check each agent against its anchored head)
  agentjournal serve --store postgresql://viewer@db.internal/agents
  $ agentjournal serve --dry-run
\b
Then open http://127.0.0.1:8765/ (or /agents/AGENT?step=N for one step).
""")
@store_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --allow-remote.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the viewer in a browser.")
@click.option("--allow-fork", is_flag=True,
              help="Allow 'fork from here' (writes new journals; never runs agent code).")
@click.option("--dry-run", is_flag=True,
              help="Check the options and the extra, print the address, and exit.")
@click.option("--allow-remote", is_flag=True,
              help="Allow binding to a non-loopback address (anyone who reaches it can "
                   "read every journal).")
@click.option("--witness", "witnesses", multiple=True, metavar="PATH",
              type=click.Path(exists=True, dir_okay=True),
              help="A witness file written by 'agentjournal anchor --witness', or a directory "
                   "of them (repeatable): the integrity panel shows whether each agent's "
                   "history matches its anchored head.")
def serve_cmd(host: str, port: int, open_browser: bool, allow_fork: bool, dry_run: bool,
              allow_remote: bool, witnesses: tuple[str, ...]) -> None:
    """Browse the journals of the store in a web page: agents, steps, state at any step,
    diffs, search, live tail, integrity; read-only unless started with --allow-fork.

    Binds to 127.0.0.1 by default. Nothing on the page is loaded from the network.
    """
    s = get_settings()
    try:
        import uvicorn

        from ..serve import create_app
    except ImportError:
        raise click.ClickException(
            "the viewer needs its extra: pip install 'agentjournal[serve]'") from None
    remote = not is_loopback(host)
    if remote and not allow_remote:
        s.err.print(f"error: refusing to bind to {host}, which is not a loopback address; "
                    "anyone who can reach it could read every journal. Pass --allow-remote "
                    "to do it anyway.", markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)
    if remote:
        s.err.print(f"warning: serving {s.where} on {host}:{port}, reachable from other "
                    "machines, with no authentication and no TLS.", style="bold yellow",
                    markup=False, highlight=False)
    shown = "[" + host + "]" if ":" in host else host
    mode = "fork allowed" if allow_fork else "read-only"
    if dry_run:
        s.out.print(f"would serve {s.where} on http://{shown}:{port}/ ({mode})",
                    markup=False, highlight=False)
        return
    backend = s.backend(must_exist=False)
    app = create_app(backend, key=s.key, allow_fork=allow_fork,
                     hosts=None if remote else ("127.0.0.1", "localhost", "::1"),
                     witnesses=witnesses)
    # A browser tab keeps its live-tail stream open: without a grace limit, Ctrl-C would
    # wait for every tab to go away.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            server_header=False, date_header=False,
                            timeout_graceful_shutdown=2)
    viewer = app.state.viewer

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            viewer.closing.set()  # so that open live tails end and the shutdown is quick
            super().handle_exit(sig, frame)

    server = Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        bound = port
        for srv in getattr(server, "servers", []):
            for sock in srv.sockets:
                bound = sock.getsockname()[1]
        url = f"http://{shown}:{bound}/"
        s.err.print(f"agentjournal viewer on {url} (store {s.where}, {mode}); Ctrl-C to stop",
                    markup=False, highlight=False)
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl-C it handled; stopping is how serve ends (exit 0, as
        # 'log --follow').
        pass

"""A throw-away PostgreSQL cluster for the tests: initdb, start on loopback, stop and remove.

Used by ``tests/conftest.py`` when ``AGENTJOURNAL_TEST_PG_DSN`` names no server, and by the
fault tests that restart a server (they never restart a shared one). The cluster lives in a
temp directory, listens on 127.0.0.1 on a free port with its socket in a private directory,
and runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

ENV_DSN = "AGENTJOURNAL_TEST_PG_DSN"


class ServerUnavailable(RuntimeError):
    """No cluster can be started here (no binaries, no unprivileged user, initdb failed)."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One private cluster. ``start()``, then ``dsn``; ``restart()``; ``stop()`` removes it.

    Args:
        settings: extra ``-c name=value`` server settings (e.g. ``{"max_connections": "20"}``).
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise ServerUnavailable("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin "
                                    "(install PostgreSQL, or set AGENTJOURNAL_TEST_PG_DSN)")
        self.bindir = bindir
        self.settings = dict(settings or {})
        self.port = 0
        self.base = Path(tempfile.mkdtemp(prefix="agentjournal-pg-"))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.log = self.base / "server.log"
        self._as_user: list[str] = []
        self.running = False

    # --- running a server binary as the right user ----------------------------------------
    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.base)

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        runuser = shutil.which("runuser")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable("running as root and there is no 'postgres' user to "
                                    "run the server as") from None
        if runuser is None:
            raise ServerUnavailable("running as root and no runuser to drop to 'postgres'")
        os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._as_user = [runuser, "-u", "postgres", "--"]

    def start(self) -> PgServer:
        """initdb and start; raises :class:`ServerUnavailable` (and cleans up) on failure."""
        try:
            self._prepare_user()
            self.sock.mkdir()
            if self._as_user:
                shutil.chown(self.sock, "postgres")
            r = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--no-locale", "--no-sync")
            if r.returncode:
                raise ServerUnavailable(f"initdb failed: {r.stderr.strip()[-800:]}")
            self._start_server()
            atexit.register(self.stop)  # a session that dies without its finalizers
        except BaseException:
            self.stop()
            raise
        return self

    def _options(self) -> str:
        opts = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                "unix_socket_directories": str(self.sock), "max_connections": "100",
                "shared_buffers": "32MB", "fsync": "on", **self.settings}
        return " ".join(f"-c {k}={v}" for k, v in opts.items())

    def _start_server(self) -> None:
        for _ in range(5):  # another process may take the free port before we bind it
            self.port = free_port()
            r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                          "-t", "60", "-o", self._options(), "start")
            if r.returncode == 0:
                self.running = True
                return
            if "could not bind" not in self.log_text() and "in use" not in self.log_text():
                break
        raise ServerUnavailable(f"pg_ctl start failed: {r.stderr.strip()[-400:]} "
                                f"{self.log_text()[-800:]}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def restart(self, mode: str = "immediate") -> None:
        """``pg_ctl restart -m MODE`` (``immediate``: a crash, recovered from the WAL)."""
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                      "-m", mode, "-o", self._options(), "restart")
        if r.returncode:
            raise RuntimeError(f"pg_ctl restart failed: {r.stderr} {self.log_text()[-800:]}")

    def stop(self) -> None:
        """Stop at once (nothing here is worth a clean shutdown) and remove the directory."""
        if self.running and self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      timeout=60)
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)


def wait_ready(dsn: str, timeout: float = 30.0) -> None:
    """Return once ``dsn`` accepts a connection (raises the last error after ``timeout``)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as c:
                c.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fresh_schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class PgBouncer:
    """A PgBouncer in front of ``server_dsn``'s host and port, in ``pool_mode`` (default
    transaction), on a free loopback port; ``stop()`` ends it and removes its directory."""

    def __init__(self, host: str, port: int, pool_mode: str = "transaction") -> None:
        exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer"
                                            if os.path.exists("/usr/sbin/pgbouncer") else None)
        if exe is None:
            raise ServerUnavailable("no pgbouncer installed (Debian: apt-get install pgbouncer)")
        self.exe = exe
        self.base = Path(tempfile.mkdtemp(prefix="agentjournal-pgb-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (self.base / "users.txt").write_text('"postgres" ""\n')
        (self.base / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"postgres = host={host} port={port} dbname=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.base}/users.txt\n"
            f"pool_mode = {pool_mode}\nmax_client_conn = 200\ndefault_pool_size = 5\n"
            f"logfile = {self.base}/pgbouncer.log\nignore_startup_parameters = "
            "extra_float_digits\n")
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.base, "postgres")
            for f in self.base.iterdir():
                shutil.chown(f, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> PgBouncer:
        self.proc = subprocess.Popen([*self._as_user, self.exe, str(self.base / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    atexit.register(self.stop)
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        log = (self.base / "pgbouncer.log")
        text = log.read_text(errors="replace") if log.exists() else ""
        self.stop()
        raise ServerUnavailable(f"pgbouncer did not start: {text[-600:]}")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)

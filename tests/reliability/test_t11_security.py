"""T11 filesystem security.

* Agent ids that could escape the root (``../x``, ``/abs``, ``a/../../b``, NUL, ``..``, 300
  characters, empty, non-str) are rejected with :class:`InvalidAgentIdError` by every entry
  point, and nothing is created anywhere (a canary directory next to the root is compared
  byte for byte, and nothing new appears beside the root).
* Symlinks planted at the agent dir, ``segments/``, ``snapshots/``, a segment file, a snapshot
  file, a snapshot temp path, the ``LOCK`` file and ``quarantine/`` (and the root itself) are
  never followed: a typed error (:class:`UnsafePathError`), the canary target unchanged. So are
  FIFOs and directories planted where a file is expected (never block, never read).
* A group/world-writable root, or one owned by another user, is refused with
  :class:`UnsafePathError` unless ``allow_insecure_root=True``.
* Every file is created 0600 and every directory 0700 under umask 0, 0o022 and 0o077.
"""

from __future__ import annotations

import os
import stat
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import figures, preserved_umask, tree_listing

from agentjournal import (
    FilesystemBackend,
    InvalidAgentIdError,
    Journal,
    JournalError,
    MemoryBackend,
    RecoveryWarning,
    TornTailWarning,
    UnsafePathError,
    _fs,
)

AGENT = "sec-agent"

BAD_IDS: list[object] = [
    "../x", "/abs", "a/../../b", "a\0b", "\0", "..", ".", "x" * 300, "", "a/b", "a\\b",
    ".hidden", "-rf", "a b", "ä", "x\n", "../" + AGENT, "~", "$HOME", None, 1, b"bytes",
    ["list"], 1.5,
]

FIGS: dict[str, int] = {"bad_ids": 0, "symlinks": 0, "special_files": 0, "insecure_roots": 0,
                        "mode_checks": 0}


def _state(i: int) -> dict[str, Any]:
    return {"i": i, "msg": f"步骤 {i}"}


def _build(root: Path, **options: Any) -> None:
    opts = {"snapshot_every": 2, "segment_max_records": 3, **options}
    with Journal(AGENT, root, **opts) as j:
        for i in range(1, 6):
            j.append(_state(i))


@pytest.fixture()
def canary(tmp_path: Path) -> Path:
    """A directory outside the root holding a valid-looking journal: following a link into it
    would "work", so a passing test proves the link was refused."""
    c = tmp_path / "canary"
    _build(c)
    (c / "secret.txt").write_text("canary\n")
    os.chmod(c, 0o700)
    return c


# --------------------------------------------------------------------------- agent ids


@pytest.mark.parametrize("agent_id", BAD_IDS, ids=repr)
def test_t11_bad_agent_ids(tmp_path: Path, canary: Path, agent_id: object) -> None:
    root = tmp_path / "root"
    before = tree_listing(tmp_path)
    canary_before = tree_listing(canary)
    entry_points: list[Callable[[], object]] = [
        lambda: Journal(agent_id, root),  # type: ignore[arg-type]
        lambda: Journal(agent_id, root, readonly=True),  # type: ignore[arg-type]
        lambda: FilesystemBackend(root).agent(agent_id, create=True),  # type: ignore[arg-type]
        lambda: FilesystemBackend(root).exists(agent_id),  # type: ignore[arg-type]
        lambda: Journal(agent_id, backend=MemoryBackend()),  # type: ignore[arg-type]
        lambda: MemoryBackend().agent(agent_id, create=True),  # type: ignore[arg-type]
    ]
    for fn in entry_points:
        with pytest.raises(InvalidAgentIdError):
            fn()
    assert tree_listing(tmp_path) == before  # nothing created, nothing changed
    # A fork to a bad id is refused before anything is written.
    _build(root)
    mid = tree_listing(tmp_path)
    with Journal(AGENT, root) as j:
        with pytest.raises(InvalidAgentIdError):
            j.fork(2, agent_id)  # type: ignore[arg-type]
    after = tree_listing(tmp_path)
    assert {k for k in after if not k.endswith("LOCK")} == {k for k in mid
                                                           if not k.endswith("LOCK")}
    assert tree_listing(canary) == canary_before
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    FIGS["bad_ids"] += 1


def test_t11_good_ids_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for agent_id in ("a", "A.b-c_d", "0" * 128, "x..y"):
        with Journal(agent_id, root) as j:
            j.append({"ok": True})
        assert (root / agent_id / "segments").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["root"]


# --------------------------------------------------------------------------- symlinks


def _replace_with_symlink(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.symlink(target, path)


def _open_all(root: Path) -> list[BaseException | None]:
    """Open for writing and read-only and use the journal; the errors raised (None = fine)."""
    out: list[BaseException | None] = []
    for readonly in (False, True):
        try:
            with Journal(AGENT, root, readonly=readonly, snapshot_every=2,
                         segment_max_records=3) as j:
                j.resume()
                list(j.records())
                j.state_at(1)
                if not readonly:
                    j.append(_state(99))
                    j.snapshot()
            out.append(None)
        except JournalError as e:
            out.append(e)
    return out


LINK_SPOTS = {
    "agent-dir": lambda r, c: (r / AGENT, c / AGENT),
    "segments-dir": lambda r, c: (r / AGENT / "segments", c / AGENT / "segments"),
    "snapshots-dir": lambda r, c: (r / AGENT / "snapshots", c / AGENT / "snapshots"),
    "segment-file": lambda r, c: (sorted((r / AGENT / "segments").iterdir())[-1],
                                  sorted((c / AGENT / "segments").iterdir())[-1]),
    "first-segment-file": lambda r, c: (sorted((r / AGENT / "segments").iterdir())[0],
                                        sorted((c / AGENT / "segments").iterdir())[0]),
    "snapshot-file": lambda r, c: (sorted((r / AGENT / "snapshots").iterdir())[-1],
                                   sorted((c / AGENT / "snapshots").iterdir())[-1]),
    "lock-file": lambda r, c: (r / AGENT / "LOCK", c / "secret.txt"),
    "root": lambda r, c: (r, c),
}


@pytest.mark.parametrize("spot", sorted(LINK_SPOTS))
def test_t11_planted_symlinks(tmp_path: Path, canary: Path, spot: str) -> None:
    root = tmp_path / "root"
    _build(root)
    link, target = LINK_SPOTS[spot](root, canary)
    _replace_with_symlink(link, target)
    before = tree_listing(canary)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        errors = _open_all(root)
    assert tree_listing(canary) == before, "the canary was written through a symlink"
    assert all(e is not None for e in errors), f"{spot}: a planted symlink was accepted"
    # the error says what is wrong and where
    assert any(isinstance(e, UnsafePathError) for e in errors), errors
    assert os.path.islink(link)  # never replaced or removed behind the user's back
    FIGS["symlinks"] += 1


def test_t11_symlinked_quarantine(tmp_path: Path, canary: Path) -> None:
    root = tmp_path / "root"
    _build(root)
    seg = sorted((root / AGENT / "segments").iterdir())[-1]
    with open(seg, "ab") as f:
        f.write(b'{"kind":"step","seq":')  # a torn tail: opening for write will quarantine it
    (root / AGENT / "quarantine").symlink_to(canary)
    before = tree_listing(canary)
    with pytest.raises(UnsafePathError):
        Journal(AGENT, root)
    assert tree_listing(canary) == before
    # Read-only access never repairs, so never touches quarantine/ (it reads up to the torn
    # tail, and says so).
    with Journal(AGENT, root, readonly=True) as j, pytest.warns(TornTailWarning):
        assert j.resume().state == _state(5)
    assert tree_listing(canary) == before
    FIGS["symlinks"] += 1


def test_t11_symlink_at_snapshot_temp_path(tmp_path: Path, canary: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A symlink at the temp name a snapshot write will use: O_EXCL|O_NOFOLLOW refuses it."""
    root = tmp_path / "root"
    _build(root)
    before = tree_listing(canary)
    with Journal(AGENT, root, snapshot_every=None) as j:
        j.append(_state(6))
        seq = j.last_seq
        fixed = b"\x01\x02\x03\x04"
        monkeypatch.setattr(_fs.os, "urandom", lambda n: fixed[:n])
        name = f"{_fs.TEMP_PREFIX}{os.getpid()}-{fixed.hex()}-{seq:020d}.json.lz4"
        (root / AGENT / "snapshots" / name).symlink_to(canary / "secret.txt")
        with pytest.raises((UnsafePathError, FileExistsError)) as ei:
            j.snapshot()
        monkeypatch.undo()
        assert isinstance(ei.value, UnsafePathError), repr(ei.value)
        assert (canary / "secret.txt").read_text() == "canary\n"
        # the journal is still usable and consistent
        j.append(_state(7))
        assert j.verify().ok
    assert tree_listing(canary) == before
    # The next open and snapshot work (another temp name); the link is never followed.
    with Journal(AGENT, root) as j:
        j.append(_state(8))
        assert j.snapshot() == j.last_seq - 1
        assert j.resume().state == _state(8)
    assert tree_listing(canary) == before
    FIGS["symlinks"] += 1


# --------------------------------------------------------------------------- special files


def _with_timeout(fn: Callable[[], object], fifo: Path | None, seconds: float = 10) -> Any:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # handed back to the test thread
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if fifo is not None:  # unblock the reader so the thread can end
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        t.join(5)
        pytest.fail("a read blocked on a planted special file")
    return result[0]


@pytest.mark.parametrize("kind", ["fifo", "dir"])
@pytest.mark.parametrize("where", ["segment", "snapshot", "lock"])
def test_t11_special_files(tmp_path: Path, kind: str, where: str) -> None:
    root = tmp_path / "root"
    _build(root)
    if where == "segment":
        p = sorted((root / AGENT / "segments").iterdir())[-1]
    elif where == "snapshot":
        p = sorted((root / AGENT / "snapshots").iterdir())[-1]
    else:
        p = root / AGENT / "LOCK"
    p.unlink()
    if kind == "fifo":
        os.mkfifo(p, 0o600)
    else:
        p.mkdir(mode=0o700)

    def attempt() -> list[BaseException | None]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _open_all(root)

    errors = _with_timeout(attempt, p if kind == "fifo" else None)
    assert not isinstance(errors, BaseException), repr(errors)
    assert any(isinstance(e, UnsafePathError) for e in errors), errors
    FIGS["special_files"] += 1


# --------------------------------------------------------------------------- the root


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702, 0o1777])
def test_t11_insecure_root(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "root"
    _build(root)
    os.chmod(root, mode)
    before = tree_listing(root)
    for readonly in (False, True):
        with pytest.raises(UnsafePathError) as ei:
            Journal(AGENT, root, readonly=readonly)
        assert ei.value.path == str(root) and ei.value.hint
    with pytest.raises(UnsafePathError):
        Journal("new-agent", root)
    assert tree_listing(root) == before
    with Journal(AGENT, root, allow_insecure_root=True) as j:
        assert j.resume().state == _state(5)
    os.chmod(root, 0o700)
    FIGS["insecure_roots"] += 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="changing a directory's owner needs root")
def test_t11_root_owned_by_another_user(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _build(root)
    os.chown(root, 65534, 65534)
    try:
        with pytest.raises(UnsafePathError) as ei:
            Journal(AGENT, root)
        assert "owned by uid 65534" in str(ei.value)
        with Journal(AGENT, root, allow_insecure_root=True, readonly=True) as j:
            assert j.resume().state == _state(5)
    finally:
        os.chown(root, os.geteuid(), os.getegid())
    FIGS["insecure_roots"] += 1


def test_t11_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "root").write_text("not a dir")
    with pytest.raises((UnsafePathError, JournalError, NotADirectoryError)):
        Journal(AGENT, tmp_path / "root")


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize("mask", [0, 0o022, 0o077])
def test_t11_modes_under_any_umask(tmp_path: Path, mask: int) -> None:
    root = tmp_path / "root"
    before = os.umask(0o022)
    os.umask(before)
    with preserved_umask(mask):
        with Journal(AGENT, root, snapshot_every=2, segment_max_records=3, keep_snapshots=1,
                     compress_segments=True) as j:
            for i in range(1, 9):
                j.append(_state(i))
        seg = sorted((root / AGENT / "segments").glob("*.jsonl"))[-1]
        with open(seg, "ab") as f:
            f.write(b"torn")
        with pytest.warns(RecoveryWarning):
            with Journal(AGENT, root) as j:
                j.append(_state(9))
                j.fork(3, "forked").close()
        uncompressed = tmp_path / "root2"
        with Journal(AGENT, uncompressed, compress=False, snapshot_every=1) as j:
            j.append(_state(1))
    assert os.umask(before) == before  # the process umask is restored
    seen_files = seen_dirs = 0
    kinds: set[str] = set()
    for top in (root, uncompressed):
        assert stat.S_IMODE(os.lstat(top).st_mode) == 0o700, top
        for dirpath, dirnames, filenames in os.walk(top):
            for d in dirnames:
                m = stat.S_IMODE(os.lstat(os.path.join(dirpath, d)).st_mode)
                assert m == 0o700, (os.path.join(dirpath, d), oct(m))
                seen_dirs += 1
                kinds.add(d)
            for f in filenames:
                m = stat.S_IMODE(os.lstat(os.path.join(dirpath, f)).st_mode)
                assert m == 0o600, (os.path.join(dirpath, f), oct(m))
                seen_files += 1
                kinds.add(f.split(".", 1)[1] if "." in f else f)
    # every kind of file the engine writes was checked
    assert {"LOCK", "jsonl", "jsonl.lz4", "json", "json.lz4", "quarantine", "segments",
            "snapshots"} <= kinds | {k.split(".", 1)[1] for k in kinds if k.count(".") > 1}
    FIGS["mode_checks"] += seen_files + seen_dirs


def test_t11_zz_report() -> None:
    figures("T11", bad_agent_ids=FIGS["bad_ids"], symlinks_refused=FIGS["symlinks"],
            special_files_refused=FIGS["special_files"],
            insecure_roots_refused=FIGS["insecure_roots"], modes_checked=FIGS["mode_checks"],
            canary_changes=0)

"""A state bigger than one record (issue 10, item 13): legal when built from small steps, it
must survive export, import and fork. One journal is built once (three 22 MiB strings, a
66 MiB state over the 64 MiB record limit) and every check runs on it."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import pytest

from agentjournal import CorruptSnapshotError, Journal, JournalError, _fs
from agentjournal.exchange import export_journal, import_journal
from agentjournal.journal.reader import MAX_RECORD_BYTES
from agentjournal.replay.results import SnapshotSkippedWarning
from test_cli_support import run

PART = 22 << 20


def _big(tmp: Path) -> dict[str, Any]:
    state: dict[str, Any] = {}
    with Journal("big", tmp, snapshot_every=None, durability="none") as j:
        for k in "abc":
            state[k] = k * PART
            j.append(ops=[{"op": "add", "path": f"/{k}", "value": state[k]}])
        j.snapshot()
    assert sum(map(len, state.values())) > MAX_RECORD_BYTES
    return state


def _same(got: Any, want: dict[str, Any]) -> None:
    # Compared by length and ends: an assertion diff of 66 MiB strings helps nobody.
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert len(got[k]) == len(v) and got[k][:1] == v[:1] and got[k] == v, k


class _FailReplace(_fs.FileOps):
    """The first ``os.replace`` (the atomic write of a snapshot) fails with ENOSPC."""

    def __init__(self) -> None:
        self.failed = False

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        if not self.failed:
            self.failed = True
            raise OSError(errno.ENOSPC, "injected: disk full")
        super().replace(src, dst, dir_fd)


def test_a_state_over_the_record_limit_exports_imports_and_forks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "src"
    state = _big(root)

    # Backup and restore.
    buf = io.BytesIO()
    with Journal("big", root, readonly=True) as j:
        rep = export_journal(j, buf)
    assert rep.snapshots == 1 and not rep.skipped
    buf.seek(0)
    assert import_journal(buf, root=tmp_path / "restored").written
    del buf
    with Journal("big", tmp_path / "restored", readonly=True) as j:
        _same(j.resume().state, state)

    # Fork from the command line: exit 0, the whole state, linked to the parent.
    res = run("fork", "big", "--at", "3", "--to", "twin", root=root)
    assert res.exit_code == 0, res.stderr
    with Journal("twin", root, readonly=True) as t:
        first = next(iter(t.records()))
        assert first.kind == "fork" and first.in_snapshot and first.ops == []  # type: ignore[union-attr]
        _same(t.resume().state, state)
        _same(t.state_at(3), state)
        assert t.verify().ok
    # It goes on like any journal; retention never drops the snapshot holding its base.
    with Journal("twin", root, snapshot_every=1, keep_snapshots=1, sparse_snapshots=None) as t:
        t.append(ops=[{"op": "add", "path": "/d", "value": 1}])
        t.append(ops=[{"op": "add", "path": "/e", "value": 2}])
        assert 1 in t.snapshot_seqs() and len(t.snapshot_seqs()) == 2
        _same(t.state_at(3), state)

    # A fork that fails (disk full writing its snapshot) leaves no target behind.
    with Journal("big", root, readonly=True) as j:
        monkeypatch.setattr(_fs, "ops", _FailReplace())
        with pytest.raises((JournalError, OSError)):
            j.fork(3, "lost")
        monkeypatch.setattr(_fs, "ops", _fs.FileOps())
    assert not (root / "lost").exists()
    assert "lost" not in [a for a in (p.name for p in root.iterdir())]

    # Without its snapshot, the fork's base state is an error, never an empty state.
    snap = next((root / "twin" / "snapshots").glob("00000000000000000001.*"))
    snap.write_bytes(b"\x04\x22\x4d\x18damaged")
    for f in (root / "twin" / "snapshots").iterdir():
        if f != snap:
            f.unlink()
    with Journal("twin", root, readonly=True) as t, pytest.raises(
            CorruptSnapshotError, match="forked"), pytest.warns(SnapshotSkippedWarning):
        t.state_at(3)


def test_a_fork_onto_an_existing_journal_leaves_it_alone(tmp_path: Path) -> None:
    with Journal("a", tmp_path) as a, Journal("b", tmp_path) as b:
        a.append({"x": 1})
        b.append({"mine": True})
        with pytest.raises(JournalError, match="already has a journal"):
            a.fork(1, "b")
    with Journal("b", tmp_path, readonly=True) as b:
        assert b.resume().state == {"mine": True} and b.verify().ok

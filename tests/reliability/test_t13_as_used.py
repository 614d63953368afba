"""T13 and the "as it is used" faults of issue 10: threads, fork(), two writers in one process,
a clock that steps back, bad arguments, reads that cannot read, planted snapshots, retention
with a damaged snapshot, close() in ``none`` mode, a fork race.

Each test here failed on the engine before the fix it names (see docs/reliability.md).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest
from crash_helpers import report

from agentjournal import (
    CorruptRecordError,
    Journal,
    JournalExistsError,
    JournalNotFoundError,
    SnapshotSkippedWarning,
    TamperedError,
    _fs,
)
from agentjournal.errors import JournalForkedError
from agentjournal.replay import fork as fork_mod
from agentjournal.snapshot.store import SnapshotDoc, encode_snapshot

AGENT = "as-used"


def _canon(x: Any) -> bytes:
    return msgspec.json.encode(x)


# --------------------------------------------------------------------------- threads


def test_t13_threads_share_one_journal(tmp_path: Path) -> None:
    """8 threads append full states through one Journal: every record replays exactly."""
    j = Journal(AGENT, tmp_path, durability="none", snapshot_every=25, segment_max_records=40)
    written: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            state: dict[str, Any] = {"t": t, "items": []}
            for i in range(150):
                state["items"].append({"t": t, "i": i})
                state["n"] = i
                app = j.append(state)
                written[app.seq] = _canon(state)
        except BaseException as e:  # noqa: BLE001 - collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert j.verify().ok
    last = j.last_seq
    for seq in sorted(written):
        assert _canon(j.state_at_seq(seq)) == written[seq], seq
    j.close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.last_seq == last
        assert _canon(r.resume().state) == written[max(written)]
    report("T13", threads=8, appends=len(written), replayed=len(written), mismatches=0)


# --------------------------------------------------------------------------- fork()


def _child_append(root: str, q: Any) -> None:
    # Runs in a child made by fork(): the inherited journal must refuse to write.
    j = _inherited[0]
    try:
        j.append({"child": True})
    except JournalForkedError as e:
        q.put(("refused", str(e)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        q.put(("other", repr(e)))
    else:
        q.put(("appended", ""))


_inherited: list[Journal] = []


def test_t13_a_forked_child_cannot_append(tmp_path: Path) -> None:
    j = Journal(AGENT, tmp_path)
    j.append({"a": 1})
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            j.append({"a": 2})
        except JournalForkedError:
            code = 0
        except BaseException:  # noqa: BLE001 - exit code tells the parent
            code = 2
        j.close()  # must not release the parent's lock
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    j.append({"a": 3})  # the parent still writes, under its own lock
    assert j.verify().ok and j.last_seq == 2
    # multiprocessing's fork start method inherits it the same way
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    _inherited[:] = [j]
    p = ctx.Process(target=_child_append, args=(str(tmp_path), q))
    p.start()
    got = q.get(timeout=60)
    p.join(60)
    _inherited.clear()
    assert got[0] == "refused", got
    j.append({"a": 4})
    j.close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        assert r.resume().state == {"a": 4} and r.verify().ok


# --------------------------------------------------------------------------- clocks


def test_t13_a_clock_that_steps_back_does_not_hold_snapshots_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal(AGENT, tmp_path, snapshot_every=None, snapshot_seconds=0.05) as j:
        assert j.append({"i": 0}).snapshot_seq is None or True
        j.snapshot()
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # NTP stepped back an hour
        time.sleep(0.08)
        got = j.append({"i": 1})
        assert got.snapshot_seq is not None, "the interval trigger waited for the wall clock"
        ts = [r.ts for r in j.records()]
        assert ts == sorted(ts), "record timestamps went backwards"


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("step", [True, 2.5, "4", -1, 2**64])
def test_t13_a_bad_step_is_refused_before_anything_is_written(tmp_path: Path,
                                                              step: Any) -> None:
    with Journal(AGENT, tmp_path) as j:
        j.append({"a": 1})
        with pytest.raises((TypeError, ValueError)):
            j.append({"a": 2}, step=step)
        assert j.last_seq == 1
        j.append({"a": 3})
    with Journal(AGENT, tmp_path) as j:  # reopens: nothing unreadable was written
        assert j.resume().state == {"a": 3} and j.verify().ok


def test_t13_append_none_and_keep_zero_say_what_to_do(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path) as j:
        with pytest.raises(ValueError, match="needs the new state"):
            j.append(None)
        j.append({"a": 1})
        with pytest.raises(ValueError, match=">= 1"):
            j.compact(keep_snapshots=0)


# --------------------------------------------------------------------------- reads that cannot


def test_t13_reads_that_cannot_read_raise(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, key=b"secret") as j:
        for i in range(5):
            j.append({"i": i})
    for key in (None, b"wrong"):
        with Journal(AGENT, tmp_path, key=key, readonly=True) as r:
            with pytest.raises(TamperedError):
                r.resume()
            with pytest.raises(TamperedError):
                _ = r.last_seq
    shutil.copytree(tmp_path / AGENT, tmp_path / "copied")
    with Journal("copied", tmp_path, key=b"secret", readonly=True) as r:
        with pytest.raises(CorruptRecordError, match="header names agent"):
            r.resume()


# --------------------------------------------------------------------------- snapshots


def _plant(tmp_path: Path, j: Journal, seq: int) -> None:
    """A snapshot file at ``seq`` with the record's real chain hash and a valid digest."""
    rec = next(iter(j.records(seq, seq)))
    doc = SnapshotDoc(format=2, agent_id=AGENT, seq=seq, step=rec.step, chain_hash=rec.h,
                      ts=time.time(), state={"planted": True})
    data, _ = encode_snapshot(doc, True)
    path = tmp_path / AGENT / "snapshots" / f"{seq:020d}.json.lz4"
    path.write_bytes(data)
    os.chmod(path, 0o600)


def test_t13_a_planted_snapshot_is_not_trusted_in_a_keyed_journal(tmp_path: Path) -> None:
    with Journal(AGENT, tmp_path, key=b"k", snapshot_every=None) as j:
        for i in range(6):
            j.append({"i": i})
        _plant(tmp_path, j, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapshotSkippedWarning)
        with Journal(AGENT, tmp_path, key=b"k", readonly=True) as r:
            assert r.resume().state == {"i": 5}
            assert r.state_at(5) == {"i": 4}
            # verify said ok too; a planted file is a problem of the store even unused.
            rep = r.verify()
            assert [(p.kind, p.seq) for p in rep.problems] == [("snapshot", 5)]
            assert "vouches" in rep.problems[0].message
        with Journal(AGENT, tmp_path, key=b"k", snapshot_every=2, keep_snapshots=1) as j:
            j.append({"i": 6})
            j.append({"i": 7})  # a real snapshot; retention keeps it, not the planted one
            real = j.snapshot_seqs()
            assert real and real[-1] > 5
            assert j.resume().state == {"i": 7}


def test_t13_retention_never_deletes_the_only_usable_snapshot(tmp_path: Path) -> None:
    # Pruned history that starts at the older of two snapshots; the newer one gets damaged.
    with Journal(AGENT, tmp_path, snapshot_every=5, keep_snapshots=2, prune=True) as j:
        for i in range(17):
            j.append({"i": i})
        snaps = j.snapshot_seqs()
        newest = snaps[-1]
        assert len(snaps) == 2 and j.segment_seqs()[0] > 1
    (tmp_path / AGENT / "snapshots" / f"{newest:020d}.json.lz4").write_bytes(b"damaged")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapshotSkippedWarning)
        with Journal(AGENT, tmp_path, snapshot_every=None) as j:
            rep = j.compact(keep_snapshots=1, prune=False)
            assert snaps[0] not in rep.snapshots_deleted
            assert j.resume().state == {"i": 16}
            first_step = j.first_step_of_segment(j.segment_seqs()[0])
            assert j.state_at(first_step) == {"i": first_step - 1}


# --------------------------------------------------------------------------- close() in none mode


class _Counting(_fs.FileOps):
    def __init__(self) -> None:
        self.datasyncs = 0

    def fdatasync(self, fd: int) -> None:
        self.datasyncs += 1
        super().fdatasync(fd)


def test_t13_close_syncs_in_none_mode(tmp_path: Path) -> None:
    saved = _fs.ops
    shim = _Counting()
    _fs.ops = shim
    try:
        j = Journal(AGENT, tmp_path, durability="none", snapshot_every=None)
        j.append({"a": 1})
        before = shim.datasyncs
        j.close()
        assert shim.datasyncs > before, "close() did not sync in none mode"
    finally:
        _fs.ops = saved


# --------------------------------------------------------------------------- fork race


def test_t13_a_fork_race_is_refused_under_the_target_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal(AGENT, tmp_path) as j:
        j.append({"a": 1})
        with j.fork(1, "branch") as b:
            b.append({"a": 2})
        # Another process forked to "branch" between our check and our open: the check
        # before the lock saw nothing (injected), the one under the lock must refuse.
        monkeypatch.setattr(fork_mod, "_has_journal", lambda backend, agent_id: False)
        with pytest.raises(JournalExistsError):
            j.fork(1, "branch")
    with Journal("branch", tmp_path, readonly=True) as b:
        forks = [r for r in b.records() if r.kind == "fork"]
        assert len(forks) == 1 and b.resume().state == {"a": 2}


# --------------------------------------------------------------------------- visible cuts


def test_t16_every_cut_stays_visible(tmp_path: Path) -> None:
    """A torn tail cut on open is kept in quarantine/ and reported by verify and ls."""
    from agentjournal import RecoveryWarning, status
    from agentjournal.backends import FilesystemBackend

    with Journal(AGENT, tmp_path, snapshot_every=None) as j:
        for i in range(3):
            j.append({"i": i})
        assert j.verify().quarantined == []
    seg = sorted((tmp_path / AGENT / "segments").glob("*.jsonl"))[-1]
    with open(seg, "ab") as f:
        f.write(b'{"kind":"step","seq":4,"ts":1')  # a write cut short by a crash
    with pytest.warns(RecoveryWarning):
        Journal(AGENT, tmp_path).close()
    with Journal(AGENT, tmp_path, readonly=True) as r:
        rep = r.verify()
        assert rep.ok and len(rep.quarantined) == 1 and "quarantine" in rep.quarantined[0]
        row = status.agent_summary(
            r, writer_pid=FilesystemBackend(tmp_path).lock_holders().get(AGENT))
        assert row.quarantined == 1


# --------------------------------------------------------------------------- the facade


def _errno_once(err: int) -> Any:
    import errno as _errno  # noqa: F401

    class Once(_fs.FileOps):
        armed = False

        def fdatasync(self, fd: int) -> None:
            if self.armed:
                self.armed = False
                raise OSError(err, os.strerror(err))
            super().fdatasync(fd)

    return Once()


def test_t13_a_manager_recovers_a_poisoned_writer(tmp_path: Path) -> None:
    """One transient ENOSPC poisons the writer; the next save reopens (issue 10, item 18)."""
    import asyncio
    import errno

    from agentjournal import AgentState, FilesystemStorage, JournalPoisonedError, StateManager

    saved = _fs.ops
    shim = _errno_once(errno.ENOSPC)
    _fs.ops = shim
    try:
        async def main() -> None:
            async with StateManager(FilesystemStorage(tmp_path),
                                    checkpoint_frequency=None) as sm:
                s = AgentState(agent_id="a")
                for step in (1, 2):
                    s.step_number = step
                    await sm.save_checkpoint(s)
                shim.armed = True
                s.step_number = 3
                with pytest.raises(JournalPoisonedError, match="next save reopens"):
                    await sm.save_checkpoint(s)
                s.step_number = 4  # space is back
                await sm.save_checkpoint(s)
                latest = await sm.resume_from_latest("a")
                assert latest is not None and latest.step_number == 4
                assert (await sm.verify("a")).ok

        asyncio.run(main())
    finally:
        _fs.ops = saved


@pytest.mark.parametrize("max_open", [32, 0], ids=["32", "default"])
def test_t13_a_manager_bounds_its_open_journals(tmp_path: Path, max_open: int) -> None:
    """300 agents under a descriptor limit of 256 (issue 10, item 21); also with the default
    ``max_open_journals`` (128, meant for the usual 1024), which hit EMFILE under 256."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import asyncio, os, resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        from agentjournal import AgentState, FilesystemStorage, StateManager
        async def main():
            kw = {"max_open_journals": int(sys.argv[2])} if int(sys.argv[2]) else {}
            async with StateManager(FilesystemStorage(sys.argv[1]), checkpoint_frequency=None,
                                    **kw) as sm:
                for round in (1, 2):
                    for i in range(300):
                        s = AgentState(agent_id=f"agent-{i}", step_number=round)
                        await sm.save_checkpoint(s)
                print(len(os.listdir("/proc/self/fd")), len(sm._agents))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(max_open)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    fds, held = map(int, out.stdout.split())
    assert held <= 32 and fds < 256
    with Journal("agent-299", tmp_path, readonly=True) as r:
        assert r.last_step == 2 and r.verify().ok


def test_t13_manager_close_closes_every_journal(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One journal failing to close does not leave the others open (issue 10, item 6)."""
    import asyncio

    from agentjournal import AgentState, FilesystemStorage, StateManager
    from agentjournal.errors import CloseError

    async def main() -> StateManager:
        sm = StateManager(FilesystemStorage(tmp_path), checkpoint_frequency=None)
        for a in ("a", "b", "c"):
            await sm.save_checkpoint(AgentState(agent_id=a, step_number=1))
        return sm

    sm = asyncio.run(main())
    real = Journal.close

    def failing(self: Journal) -> None:
        real(self)
        if self.agent_id == "a":
            raise OSError(5, "injected EIO at close")

    monkeypatch.setattr(Journal, "close", failing)
    with pytest.raises(CloseError) as ei:
        sm.close()
    assert [a for a, _ in ei.value.errors] == ["a"]
    monkeypatch.setattr(Journal, "close", real)
    import subprocess
    import sys

    for a in ("b", "c"):  # released: another process may write them now
        out = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom agentjournal import Journal\n"
             "with Journal(sys.argv[1], sys.argv[2]) as j: print(j.last_step)", a,
             str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]


# --------------------------------------------------------------------------- a new root


def test_t13_a_root_with_missing_parents_is_made(tmp_path: Path) -> None:
    """Issue 10 item 30: ``Journal("bot", root="a/b/c")`` failed with "record a step first"
    when ``a/b`` did not exist; the writer makes the parents, the root is 0700."""
    root = tmp_path / "a" / "b" / "c"
    with Journal("bot", root) as j:
        j.append({"ok": True})
    assert (root / "bot").is_dir() and root.stat().st_mode & 0o777 == 0o700
    with Journal("bot", root, readonly=True) as r:
        assert r.resume().state == {"ok": True}
    with pytest.raises(JournalNotFoundError):  # a reader still creates nothing
        Journal("bot", tmp_path / "x" / "y", readonly=True)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- hard links


@pytest.mark.parametrize("target", ["LOCK", "segment"])
def test_t13_a_planted_hard_link_is_never_written_through(tmp_path: Path, target: str) -> None:
    """Issue 10 item 7: ``O_NOFOLLOW`` stops symlinks, not hard links; a hard link planted at
    ``LOCK`` or at the last segment made the writer overwrite or truncate a file outside the
    store. Every file opened for writing must have exactly one link."""
    from agentjournal import UnsafePathError

    root = tmp_path / "store"
    with Journal(AGENT, root, snapshot_every=None) as j:
        j.append({"a": 1})
    victim = tmp_path / "outside.txt"
    victim.write_bytes(b"precious\n" * 100)
    if target == "LOCK":
        planted = root / AGENT / "LOCK"
    else:
        planted = sorted((root / AGENT / "segments").glob("*.jsonl"))[-1]
        victim.write_bytes(planted.read_bytes() + b"garbage tail\n")  # looks like the segment
    before = victim.read_bytes()
    planted.unlink()
    os.link(victim, planted)
    with pytest.raises(UnsafePathError, match="hard links"):
        Journal(AGENT, root)
    assert victim.read_bytes() == before, "a file outside the store was changed"


_CRASH_BEFORE_MARK = """
import os, sys
from agentjournal import Journal
from agentjournal.journal import writer
writer.JournalWriter.append_mark = lambda *a, **k: os._exit(0)  # the crash
with Journal(sys.argv[2], sys.argv[1], key=b"k", snapshot_every=None) as j:
    for i in range(3):
        j.append({"i": i})
    j.snapshot()
"""


def test_t13_a_crash_between_a_keyed_snapshot_and_its_record(tmp_path: Path) -> None:
    """Killed after a keyed snapshot's file and before its ``snapshot`` record: once the next
    record was appended, the unbound snapshot looked planted — a SnapshotSkippedWarning on
    every resume, and (since verify checks it) a problem. The next writer removes it."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _CRASH_BEFORE_MARK, str(tmp_path), AGENT], check=True)
    assert (tmp_path / AGENT / "snapshots" / f"{3:020d}.json.lz4").exists()
    with Journal(AGENT, tmp_path, key=b"k", snapshot_every=None) as j:  # warnings are errors
        assert j.snapshot_seqs() == [] and j.writer is not None
        assert any("removed the snapshot of seq 3" in m for m in j.writer.recovery.messages)
        j.append({"i": 3})
        assert j.snapshot() is not None  # a new one is bound as usual
    with Journal(AGENT, tmp_path, key=b"k", readonly=True) as r:
        assert r.resume().state == {"i": 3} and r.verify().ok

"""T2 simulated power loss.

The model
---------
A scripted run (open, appends in ``sync`` mode with snapshots every 3 steps, a segment roll
every 4 records, retention keeping 2 snapshots with pruning or with segment compression; close,
reopen, more appends) is executed once on the real file system in directory A, with
``_fs.ops`` replaced by :class:`LoggingOps`, which performs every call and appends it to an op
log in file-system-model terms:

* files and directories are *inodes* (a fresh model id per created file, so a reused inode
  number is never confused with an unlinked file);
* ``write``/``pwrite``/``ftruncate`` of a file are pending data ops on its inode (with the
  offset the write landed at); ``fsync``/``fdatasync`` of a file make its pending data durable;
* creating a file (``open`` with ``O_CREAT`` of a new name), ``mkdir``, ``replace`` (rename)
  and ``unlink`` are pending entry ops on their directory; ``fsync`` of a directory makes its
  pending entries durable;
* after each ``append`` returned, an ``ack`` of the journal's last seq is logged.

A crash point is a position in the log just before an ``fsync``/``fdatasync``/``replace``/
``unlink`` call (every one of the run), or its end. For each crash point the "after power loss"
disk image is built in a fresh directory from the log up to that point: the durable state,
plus, for each pending data op, independently and at random (seeded): applied, dropped, or torn
(a random prefix of the bytes, the rest garbage or missing); and for each pending entry op, in
order: applied or dropped (an op that no longer applies, such as renaming a name that was never
created, is skipped). This is weaker than real disks in one way (data ops of one file are not
reordered across an ``fsync``, which no file system does) and harsher than ext4 in another
(entry ops of one directory are dropped independently, not as a prefix). Two draws per crash
point are not random: every pending op dropped, and the *stale hint* draw (every pending op
applied except the writer's unsynced hint writes in ``LOCK``, of which only a clean close's
survives, so that a crashed session would look clean).

The check, per image: the journal opens (recovering), its history is a gap-free prefix of what
was written (every record byte-identical to the one written), it holds every record
acknowledged before the crash point, resume (snapshot + replay) equals our own full replay,
``verify`` is ok, no temp file survives the open, the next append gets last + 1 — and a
snapshot file whose bytes were not what
the run wrote (its data or its entry was not synced and the fate garbled it) is never used.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import (
    AGENT,
    SCALE,
    SLOW_FACTOR,
    History,
    caught_warnings,
    check_journal,
    count_warnings,
    report,
    state_for,
    temp_files,
)

from agentjournal import Cut, Journal, _fs

# --------------------------------------------------------------------------- the op log


class LoggingOps(_fs.FileOps):
    """Real calls, logged as model events (see the module docstring)."""

    def __init__(self, root: str) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.next_id = 1
        st = os.stat(root)
        self.by_ino: dict[int, int] = {st.st_ino: 0}  # inode number -> current model id
        self.kind: dict[int, str] = {0: "dir"}
        self.fd_id: dict[int, int] = {}
        self.fd_append: dict[int, bool] = {}
        # What is under the root already is durable (a disk image left by an earlier crash).
        self.initial_entries: dict[int, dict[str, int]] = {0: {}}
        self.initial_content: dict[int, bytes] = {}
        for dirpath, dirs, files in os.walk(root):
            parent = self.by_ino[os.stat(dirpath).st_ino]
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                is_dir = name in dirs
                mid = self._new(os.stat(path).st_ino, "dir" if is_dir else "file")
                self.initial_entries[parent][name] = mid
                if is_dir:
                    self.initial_entries[mid] = {}
                else:
                    with open(path, "rb") as f:
                        self.initial_content[mid] = f.read()

    def _new(self, ino: int, kind: str) -> int:
        mid = self.next_id
        self.next_id += 1
        self.by_ino[ino] = mid
        self.kind[mid] = kind
        return mid

    def _dir_id(self, dir_fd: int | None) -> int | None:
        if dir_fd is None:
            return None
        return self.fd_id.get(dir_fd)

    def open(self, name: str, flags: int, mode: int = _fs.FILE_MODE,
             dir_fd: int | None = None) -> int:
        existed = True
        if flags & os.O_CREAT:
            try:
                os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                existed = False
        fd = super().open(name, flags, mode, dir_fd)
        st = os.fstat(fd)
        if not existed:
            mid = self._new(st.st_ino, "file")
            parent = self._dir_id(dir_fd)
            assert parent is not None, f"created {name} outside the model"
            self.log.append(("link", parent, name, mid))
        elif st.st_ino not in self.by_ino:
            self._new(st.st_ino, "dir" if flags & os.O_DIRECTORY else "file")
        self.fd_id[fd] = self.by_ino[st.st_ino]
        self.fd_append[fd] = bool(flags & os.O_APPEND)
        return fd

    def close(self, fd: int) -> None:
        self.fd_id.pop(fd, None)
        self.fd_append.pop(fd, None)
        super().close(fd)

    def write(self, fd: int, data: bytes) -> int:
        off = os.fstat(fd).st_size if self.fd_append[fd] else os.lseek(fd, 0, os.SEEK_CUR)
        n = super().write(fd, data)
        self.log.append(("write", self.fd_id[fd], off, bytes(data[:n])))
        return n

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        n = super().pwrite(fd, data, offset)
        self.log.append(("write", self.fd_id[fd], offset, bytes(data[:n])))
        return n

    def ftruncate(self, fd: int, size: int) -> None:
        super().ftruncate(fd, size)
        self.log.append(("trunc", self.fd_id[fd], size))

    def _sync(self, fd: int) -> None:
        mid = self.fd_id[fd]
        self.log.append(("dsync" if self.kind[mid] == "dir" else "fsync", mid))

    def fsync(self, fd: int) -> None:
        self._sync(fd)
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self._sync(fd)
        super().fdatasync(fd)

    def replace(self, src: str, dst: str, dir_fd: int) -> None:
        self.log.append(("rename", self.fd_id[dir_fd], src, dst))
        super().replace(src, dst, dir_fd)

    def unlink(self, name: str, dir_fd: int) -> None:
        self.log.append(("unlink", self.fd_id[dir_fd], name))
        super().unlink(name, dir_fd)

    def mkdir(self, name: str, mode: int, dir_fd: int | None = None) -> None:
        super().mkdir(name, mode, dir_fd)
        ino = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino
        mid = self._new(ino, "dir")
        parent = self._dir_id(dir_fd)
        if parent is None:  # the root itself, by absolute path: it exists before the run
            return
        self.log.append(("link", parent, name, mid))

    def ack(self, seq: int) -> None:
        self.log.append(("ack", seq))


CRASH_KINDS = ("fsync", "dsync", "rename", "unlink")


# --------------------------------------------------------------------------- the disk image


def _apply_data(content: bytearray, op: tuple[Any, ...]) -> None:
    if op[0] == "write":
        _, off, data = op
        if len(content) < off:
            content.extend(b"\0" * (off - len(content)))
        content[off:off + len(data)] = data
    else:
        del content[op[1]:]


def _apply_entry(entries: dict[str, int], op: tuple[Any, ...]) -> bool:
    if op[0] == "link":
        entries[op[1]] = op[2]
    elif op[0] == "rename":
        if op[1] not in entries:
            return False
        entries[op[2]] = entries.pop(op[1])
    elif op[0] == "unlink":
        if op[1] not in entries:
            return False
        del entries[op[1]]
    return True


@dataclass
class Image:
    damaged: set[str] = field(default_factory=set)
    """Paths (relative to the root) whose bytes differ from what the run wrote."""
    volatile: set[str] = field(default_factory=set)
    """Paths whose entry or content depended on an unsynced op that happened to survive."""
    pending_data: int = 0
    pending_entries: int = 0
    torn: int = 0
    dropped: int = 0


def build_image(shim: LoggingOps, k: int, dest: Path, rng: random.Random | None,
                stale_hint: bool = False) -> Image:
    """The disk after a power loss just before log entry ``k``.

    ``rng`` None: every pending op dropped. ``stale_hint``: the adversarial draw for the
    writer's hint in LOCK: every pending op applied except hint writes, of which only those of
    a clean close survive (so a crashed session looks clean if its own hint was not synced).
    """
    log, kinds = shim.log, shim.kind
    durable = {mid: bytearray(c) for mid, c in shim.initial_content.items()}
    pend: dict[int, list[tuple[Any, ...]]] = {}
    dentries = {mid: dict(e) for mid, e in shim.initial_entries.items()}
    dpend: dict[int, list[tuple[Any, ...]]] = {}
    for ev in log[:k]:
        kind = ev[0]
        if kind in ("write", "trunc"):
            pend.setdefault(ev[1], []).append((kind,) + ev[2:])
        elif kind == "fsync":
            content = durable.setdefault(ev[1], bytearray())
            for op in pend.pop(ev[1], []):
                _apply_data(content, op)
        elif kind in ("link", "rename", "unlink"):
            dpend.setdefault(ev[1], []).append((kind,) + ev[2:])
        elif kind == "dsync":
            entries = dentries.setdefault(ev[1], {})
            for op in dpend.pop(ev[1], []):
                _apply_entry(entries, op)
    img = Image()
    final: dict[int, bytes] = {}
    contents: dict[int, bytes] = {}
    volatile_ids: set[int] = set()
    for mid in set(durable) | set(pend):
        content = bytearray(durable.get(mid, b""))
        intended = bytearray(content)
        for op in pend.get(mid, []):
            _apply_data(intended, op)
            img.pending_data += 1
            if stale_hint:
                hint = op[0] == "write" and b'"clean":' in op[2]
                fate = "drop" if hint and b'"clean":true' not in op[2] else "apply"
            else:
                fate = "drop" if rng is None else rng.choice(("apply", "drop", "torn"))
            if fate == "apply":
                _apply_data(content, op)
                volatile_ids.add(mid)
            elif fate == "torn" and op[0] == "write" and op[2]:
                img.torn += 1
                data = op[2]
                cut = rng.randrange(len(data)) if rng else 0
                tail = (bytes(rng.getrandbits(8) for _ in range(len(data) - cut))
                        if rng and rng.random() < 0.5 else b"")
                _apply_data(content, ("write", op[1], data[:cut] + tail))
                volatile_ids.add(mid)
            else:
                img.dropped += 1
        contents[mid] = bytes(content)
        final[mid] = bytes(intended)
    entries_of: dict[int, dict[str, int]] = {}
    for dmid in set(dentries) | set(dpend):
        entries = dict(dentries.get(dmid, {}))
        for op in dpend.get(dmid, []):
            img.pending_entries += 1
            if stale_hint or rng is not None and rng.random() < 0.5:
                if _apply_entry(entries, op) and op[0] != "unlink":
                    volatile_ids.add(entries[op[-1] if op[0] == "rename" else op[1]])
            else:
                img.dropped += 1
        entries_of[dmid] = entries

    def make(dmid: int, path: Path, rel: str) -> None:
        for name, mid in sorted(entries_of.get(dmid, {}).items()):
            p = path / name
            r = f"{rel}/{name}" if rel else name
            if kinds[mid] == "dir":
                p.mkdir(mode=0o700)
                make(mid, p, r)
            else:
                data = contents.get(mid, b"")
                p.write_bytes(data)
                p.chmod(0o600)
                if data != final.get(mid, b""):
                    img.damaged.add(r)
                if mid in volatile_ids:
                    img.volatile.add(r)

    dest.mkdir(mode=0o700)
    make(0, dest, "")
    return img


# --------------------------------------------------------------------------- the test

SCRIPTS = [
    dict(snapshot_every=3, segment_max_records=4, keep_snapshots=2, prune=True),
    dict(snapshot_every=3, segment_max_records=4, keep_snapshots=2, compress_segments=True,
         compress=False),
]


def _scripted_run(root: Path, options: dict[str, Any]) -> LoggingOps:
    root.mkdir(mode=0o700)
    shim = LoggingOps(str(root))
    saved = _fs.ops
    _fs.ops = shim
    try:
        step = 0
        for n in (14, 12):  # two sessions: the second opens (recovers) and goes on
            with Journal(AGENT, root, **options) as j:
                for _ in range(n):
                    step += 1
                    j.append(state_for(step))
                    shim.ack(j.last_seq)
    finally:
        _fs.ops = saved
    return shim


def _written(log: list[tuple[Any, ...]], out: dict[int, set[str]] | None = None
             ) -> dict[int, set[str]]:
    """seq -> hashes of every record line the run wrote (more than one after a crash and a
    recovery session: a record lost in the crash is written anew)."""
    out = {} if out is None else {seq: set(hs) for seq, hs in out.items()}
    for ev in log:
        if ev[0] != "write":
            continue
        for line in ev[3].splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("kind") not in (None, "header") and "seq" in obj:
                out.setdefault(obj["seq"], set()).add(obj["h"])
    return out


@dataclass
class Stats:
    crash_points: int = 0
    images: int = 0
    records_verified: int = 0
    acked_checked: int = 0
    pending_data: int = 0
    pending_entries: int = 0
    torn: int = 0
    dropped: int = 0
    recovered_torn_tails: int = 0
    damaged_snapshots: int = 0
    volatile_snapshots: int = 0
    skipped_snapshots: int = 0


def _check_image(root: Path, img: Image, options: dict[str, Any], acked: int,
                 written: dict[int, set[str]], stats: Stats) -> None:
    snaps_dir = f"{AGENT}/snapshots/"
    damaged = {p for p in img.damaged if p.startswith(snaps_dir)}
    stats.damaged_snapshots += len(damaged)
    stats.volatile_snapshots += sum(1 for p in img.volatile if p.startswith(snaps_dir))
    with caught_warnings() as got:
        with Journal(AGENT, root, **options) as j:
            assert not temp_files(root), "a temp file survived the open"
            hist = History()
            res = check_journal(j, hist, acked=acked, prune=bool(options.get("prune")),
                                state_at_samples=0)
            recovered = False
            for rec in j.records():
                # Recovery records its cuts (format 3): this open's `cut` records were
                # written by no logged session, and only ever after everything that was.
                if isinstance(rec, Cut) and rec.h not in written.get(rec.seq, ()):
                    recovered = True
                    continue
                assert not recovered, f"record {rec.seq} after a recovery's cut record"
                assert rec.h in written.get(rec.seq, ()), f"record {rec.seq} was never written"
            stats.records_verified += hist.verified
            if res.snapshot_used is not None:
                name = os.path.basename(j.store.location("snapshot", res.snapshot_used))
                assert snaps_dir + name not in damaged, "a garbled snapshot was used"
            if res.last_seq:
                a = j.append(state_for(res.last_step + 1))
                assert a.seq == res.last_seq + 1
                assert j.verify().ok
    n_rec, n_skip, other = count_warnings(got)
    assert not other, other
    stats.recovered_torn_tails += n_rec
    stats.skipped_snapshots += n_skip
    stats.acked_checked += acked


def _acked_at(log: list[tuple[Any, ...]], base: int = 0) -> list[int]:
    """The largest acknowledged seq before each log entry (and at the end)."""
    out, acked = [], base
    for ev in log:
        out.append(acked)
        if ev[0] == "ack":
            acked = max(acked, ev[1])
    out.append(acked)
    return out


def _sweep(shim: LoggingOps, options: dict[str, Any], written: dict[int, set[str]],
           acked_at: list[int], fates: int, rng: random.Random, dest: Path, stats: Stats,
           label: str) -> None:
    """Power loss before every fsync/rename/unlink of ``shim``'s log: every pending op
    dropped, the stale-hint draw, then ``fates`` random draws."""
    log = shim.log
    points = [k for k, ev in enumerate(log) if ev[0] in CRASH_KINDS] + [len(log)]
    for k in points:
        stats.crash_points += 1
        for f in range(fates + 2):
            shutil.rmtree(dest, ignore_errors=True)
            frng = None if f < 2 else random.Random(rng.getrandbits(64))
            img = build_image(shim, k, dest, frng, stale_hint=f == 1)
            stats.images += 1
            stats.pending_data += img.pending_data
            stats.pending_entries += img.pending_entries
            stats.torn += img.torn
            stats.dropped += img.dropped
            try:
                _check_image(dest, img, options, acked_at[k], written, stats)
            except BaseException as e:
                raise AssertionError(
                    f"{label}, crash point {k} ({log[k][:2] if k < len(log) else 'end'}), "
                    f"fate draw {f}: {e}") from e


def _figures(test: str, stats: Stats, t0: float, seed: int, **extra: Any) -> None:
    report(test, **extra, crash_points=stats.crash_points, images=stats.images,
           pending_writes=stats.pending_data, pending_dir_ops=stats.pending_entries,
           torn_writes=stats.torn, dropped_ops=stats.dropped,
           torn_tails_recovered=stats.recovered_torn_tails,
           garbled_snapshots=stats.damaged_snapshots, unsynced_snapshots=stats.volatile_snapshots,
           snapshots_skipped=stats.skipped_snapshots, records_verified=stats.records_verified,
           lost=0, seconds=round(time.monotonic() - t0, 1), seed=seed)


def _t2(tmp_path: Path, fates: int, seed: int) -> None:
    t0 = time.monotonic()
    rng = random.Random(seed)
    stats = Stats()
    for s, options in enumerate(SCRIPTS):
        shim = _scripted_run(tmp_path / f"run{s}", options)
        _sweep(shim, options, _written(shim.log), _acked_at(shim.log), fates, rng,
               tmp_path / "image", stats, f"script {s}")
    _figures("T2", stats, t0, seed, scripts=len(SCRIPTS))


def _t2_recovery(tmp_path: Path, samples: int, fates: int, seed: int) -> None:
    """A second power loss while the first one is being recovered from.

    For ``samples`` random crash points of each script, the image left by the first power loss
    (random fates) is opened, recovered and appended to (three steps, a snapshot on the way)
    under a fresh :class:`LoggingOps` that takes the image as durable; then the crash point
    sweeps that session's log. Every record acknowledged before the first crash or during the
    recovery session must survive.
    """
    t0 = time.monotonic()
    rng = random.Random(seed)
    stats = Stats()
    sessions = 0
    for s, options in enumerate(SCRIPTS):
        first = _scripted_run(tmp_path / f"run{s}", options)
        written = _written(first.log)
        acked_at = _acked_at(first.log)
        points = [k for k, ev in enumerate(first.log) if ev[0] in CRASH_KINDS]
        for k in rng.sample(points, min(samples, len(points))):
            image = tmp_path / "first"
            shutil.rmtree(image, ignore_errors=True)
            build_image(first, k, image, random.Random(rng.getrandbits(64)))
            shim = LoggingOps(str(image))
            saved = _fs.ops
            _fs.ops = shim
            try:
                with caught_warnings(), Journal(AGENT, image, **options) as j:
                    for _ in range(3):
                        j.append(state_for(j.last_step + 1))
                        shim.ack(j.last_seq)
            finally:
                _fs.ops = saved
            sessions += 1
            _sweep(shim, options, _written(shim.log, written),
                   _acked_at(shim.log, base=acked_at[k]), fates, rng, tmp_path / "image",
                   stats, f"script {s}, first crash at {k}")
    _figures("T2-recovery", stats, t0, seed, scripts=len(SCRIPTS), recovery_sessions=sessions)


def test_t2_power_loss(tmp_path: Path) -> None:
    _t2(tmp_path, fates=2 * SCALE, seed=2)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t2_power_loss_slow(tmp_path: Path) -> None:
    _t2(tmp_path, fates=2 * SCALE * SLOW_FACTOR, seed=2002)


def test_t2_power_loss_during_recovery(tmp_path: Path) -> None:
    _t2_recovery(tmp_path, samples=12 * SCALE, fates=1, seed=22)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10x the CI trials
def test_t2_power_loss_during_recovery_slow(tmp_path: Path) -> None:
    _t2_recovery(tmp_path, samples=12 * SCALE * SLOW_FACTOR, fates=1, seed=2022)

"""Shared helpers for the crash tests T1, T2, T5, T7, T8 and T9.

The workload is deterministic: the state after agent step ``k`` is :func:`state_for` ``(k)``, so
a checker can tell, for every record it reads back, whether it is exactly what the writer wrote
(its ops turn ``state_for(k - 1)`` into ``state_for(k)``) without trusting the engine's replay.

Scale: every test runs ``SCALE`` times its CI-scale trials (env ``AGENTJOURNAL_RELIABILITY_SCALE``,
default 1); the ``slow`` variants run ``SLOW_FACTOR`` times that.

Figures: :func:`report` prints one parseable line per test (``RELIABILITY T1 trials=.. ..``),
appends it as JSON to the file named by ``AGENTJOURNAL_RELIABILITY_REPORT`` if set, and keeps it
for the terminal summary (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from agentjournal import Journal, RecoveryWarning, SnapshotSkippedWarning, delta
from agentjournal.events import Anchor, Cut, Fork, SnapshotMark, Step

SCALE = max(1, int(os.environ.get("AGENTJOURNAL_RELIABILITY_SCALE", "1") or 1))
SLOW_FACTOR = 10
AGENT = "crash-agent"
HERE = os.path.dirname(os.path.abspath(__file__))

REPORTED: list[str] = []
"""Figures lines of this session, printed by the terminal summary hook in ``conftest.py``."""


# --------------------------------------------------------------------------- the workload


def state_for(step: int) -> dict[str, Any]:
    """The agent state after ``step`` (``{}`` before step 1). Pure function of ``step``.

    A sliding window of messages (appends at the end, removals at the front), counters that
    change at different rates, a key that comes and goes and some non-ASCII text, so the deltas
    use ``add``, ``remove`` and ``replace`` at several depths.
    """
    if step <= 0:
        return {}
    lo = max(0, step - 8)
    st: dict[str, Any] = {
        "step": step,
        "messages": [{"role": "user" if i % 2 else "assistant",
                      "content": f"message {i} " + "é" * (i % 5)} for i in range(lo, step)],
        "counters": {f"c{i}": step // (i + 1) for i in range(3)},
        "budget": round(step * 0.25, 2),
    }
    if step % 3 == 0:
        st["scratch"] = {"tool": f"t{step % 7}", "args": list(range(step % 4))}
    return st


def state_copy(x: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(x))


def check_record_content(rec: Any) -> None:
    """Assert that ``rec`` is exactly what the deterministic writer wrote."""
    if isinstance(rec, Step):
        got = delta.apply(state_for(rec.step - 1), state_copy(rec.ops))
        assert got == state_for(rec.step), f"record {rec.seq} (step {rec.step}) has wrong ops"
    elif isinstance(rec, SnapshotMark):
        assert rec.at == rec.seq - 1, f"snapshot record {rec.seq} marks seq {rec.at}"
    elif isinstance(rec, Anchor):
        assert rec.first_seq <= rec.seq
    elif isinstance(rec, Cut):
        # Recovery recorded a cut (format 3): of a torn tail, never of acknowledged records
        # (the checks on seqs and acknowledged records below would see those missing).
        assert rec.reason == "torn_tail" and rec.cut_seq == rec.seq and rec.size > 0, rec
        assert rec.quarantine.startswith(f"{rec.segment:020d}.jsonl.{rec.offset}."), rec
    else:
        raise AssertionError(f"unexpected record {rec!r}")


def replay(state: Any, records: list[Any]) -> Any:
    """Our own replay (never the engine's): apply every step's ops in order."""
    state = state_copy(state)
    for rec in records:
        if isinstance(rec, (Step, Fork)):
            state = delta.apply_in_place(state, state_copy(rec.ops))
    return state


# --------------------------------------------------------------------------- checking


@dataclass
class History:
    """What a checker knows about one journal across crashes: every record hash it has seen."""

    known: dict[int, str] = field(default_factory=dict)
    max_known: int = 0
    verified: int = 0
    """Records whose content was checked (each counted once)."""


@dataclass
class CheckResult:
    first_seq: int
    last_seq: int
    last_step: int
    records: int
    snapshot_used: int | None
    recovery_warnings: int
    skipped_snapshots: int


def check_journal(j: Journal, hist: History, *, acked: int, rng: random.Random | None = None,
                  prune: bool = False, state_at_samples: int = 2) -> CheckResult:
    """All the post-crash checks on an open (recovered) journal.

    * records are gap-free, unique and in order; the history only starts after 1 if ``prune``;
    * every record seen before is unchanged; the history did not shrink at its end;
    * the last seq is >= the largest acknowledged seq (nothing acknowledged lost);
    * every new record is exactly what the deterministic writer wrote;
    * resume (snapshot + replay) == our own full replay == ``state_for(last_step)``;
    * ``state_at`` at a few random steps is right; ``verify()`` is ok.
    """
    recs = list(j.records())
    seqs = [r.seq for r in recs]
    if not recs:
        assert acked == 0 and hist.max_known == 0, f"history lost: acked {acked}"
        return CheckResult(0, 0, 0, 0, None, 0, 0)
    first, last = seqs[0], seqs[-1]
    assert seqs == list(range(first, last + 1)), "seqs are not unique, gap-free and in order"
    if not prune:
        assert first == 1, f"history starts at {first} without pruning"
    assert last >= acked, f"acknowledged seq {acked} lost: history ends at {last}"
    assert last >= hist.max_known, f"history shrank from {hist.max_known} to {last}"
    prev_step = None
    for rec in recs:
        h = hist.known.get(rec.seq)
        if h is not None:
            assert h == rec.h, f"record {rec.seq} changed"
        else:
            check_record_content(rec)
            hist.known[rec.seq] = rec.h
            hist.verified += 1
        if isinstance(rec, Step) and prev_step is not None:
            assert rec.step == prev_step + 1, f"step {rec.step} after {prev_step}"
        elif prev_step is not None:
            assert rec.step == prev_step
        prev_step = rec.step
    hist.max_known = max(hist.max_known, last)
    last_step = recs[-1].step

    # Full replay (ours): from genesis, or with pruning from the oldest snapshot that covers
    # the first record still on disk (read directly, not through the engine's selection).
    if first == 1:
        full = replay({}, recs)
    else:
        base = [s for s in j.snapshot_seqs() if s >= first - 1]
        assert base, "records were pruned but no snapshot covers the rest"
        doc = j.load_snapshot(base[0])
        assert doc.state == state_for(doc.step)
        full = replay(doc.state, [r for r in recs if r.seq > doc.seq])
    want = state_for(last_step)
    assert full == want, "full replay differs from what was written"
    res = j.resume()
    assert (res.seq, res.step) == (last, last_step)
    assert res.state == want, "resume (snapshot + replay) differs from full replay"
    used = None
    if j.snapshot_seqs():
        # The engine's own choice of snapshot for the last record (its doc.state is replayed
        # in place, so the file is read again to check the content that was used).
        doc = j.materialize(last)[3]
        if doc is not None:
            used = doc.seq
            assert j.load_snapshot(used).state == state_for(doc.step), \
                "a snapshot with wrong content was used"
    if rng is not None and state_at_samples:
        lo_step = recs[0].step
        if first > 1:
            lo_step = j.load_snapshot(min(s for s in j.snapshot_seqs() if s >= first - 1)).step
        for _ in range(state_at_samples):
            k = rng.randint(max(lo_step, 1), last_step) if last_step >= 1 else 0
            if k:
                assert j.state_at(k) == state_for(k), f"state_at({k}) is wrong"
    rep = j.verify()
    assert rep.ok, f"verify failed: {rep.problems}"
    # Every cut recorded in the chain names bytes that are still in quarantine/ (written and
    # synced before the segment was truncated, so before the record).
    assert all(c.kept for c in rep.cuts), rep.cuts
    return CheckResult(first, last, last_step, len(recs), used, 0, 0)


@contextmanager
def caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning (recovery emits RecoveryWarning, replay SnapshotSkippedWarning)."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        yield got


def count_warnings(got: list[warnings.WarningMessage]) -> tuple[int, int, list[str]]:
    rec = sum(1 for w in got if issubclass(w.category, RecoveryWarning))
    skip = sum(1 for w in got if issubclass(w.category, SnapshotSkippedWarning))
    other = [str(w.message) for w in got
             if not issubclass(w.category, (RecoveryWarning, SnapshotSkippedWarning))]
    return rec, skip, other


def temp_files(root: str | os.PathLike[str]) -> list[str]:
    """Temp files of ``atomic_write`` anywhere under ``root``."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [os.path.join(dirpath, f) for f in files if f.startswith(".tmp-")]
    return out


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------- writer child

CHILD = os.path.join(HERE, "crash_child.py")


class Lines:
    """Line reader over a pipe fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def readline(self) -> str | None:
        while b"\n" not in self.buf:
            if self.eof:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                continue
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


class Child:
    """A ``crash_child.py`` writer process and its report pipe."""

    def __init__(self, root: Path, agent: str, options: dict[str, Any], errlog: Path, *,
                 pause: bool = False, hold: bool = False, steps: int = 400) -> None:
        r_out, w_out = os.pipe()
        r_in, w_in = os.pipe()
        cfg = {"root": str(root), "agent": agent, "options": options, "pause": pause,
               "hold": hold, "out_fd": w_out, "in_fd": r_in, "steps": steps}
        self.err = open(errlog, "ab")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, CHILD, json.dumps(cfg)], pass_fds=(w_out, r_in),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err, cwd=HERE)
        os.close(w_out)
        os.close(r_in)
        self.lines = Lines(r_out)
        self.w_in = w_in
        self.acked = 0
        self.appends = 0
        self.ready = False

    def handle(self, line: str) -> None:
        if line.startswith("A "):
            self.acked = max(self.acked, int(line.split()[1]))
            self.appends += 1
        elif line.startswith("R "):
            self.ready = True

    def go_on(self) -> None:
        os.write(self.w_in, b"c")

    def kill_after(self, appends: int, rng: random.Random) -> None:
        """Let the child acknowledge ``appends`` appends, spin up to 3 ms, then SIGKILL it."""
        while self.appends < appends:
            line = self.lines.readline()
            if line is None:
                break
            self.handle(line)
        spin_until = time.perf_counter() + rng.uniform(0, 0.003)
        while time.perf_counter() < spin_until:
            pass
        self.kill()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def finish(self, errlog: Path) -> int:
        """Wait for the child, drain its report pipe (acks sent before the kill count)."""
        rc = self.proc.wait()
        os.close(self.w_in)
        while (line := self.lines.readline()) is not None:
            self.handle(line)
        os.close(self.lines.fd)
        self.err.close()
        if rc != -signal.SIGKILL:
            raise AssertionError(f"child exited with {rc}: {errlog.read_text()[-3000:]}")
        return rc


# --------------------------------------------------------------------------- forked crashes


def run_killed(fn: Callable[[], None], errfile: Path) -> None:
    """Run ``fn`` in a forked child that must die of SIGKILL (sent by itself at a crash point).

    The child never returns into pytest. Raises AssertionError if it exits instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with live threads
        pid = os.fork()
    if pid == 0:
        code = 2  # fn returned: the crash point was never reached
        try:
            fn()
        except BaseException:
            errfile.write_text(traceback.format_exc())
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGKILL:
        msg = errfile.read_text() if errfile.exists() else "the crash point was never reached"
        raise AssertionError(f"child was not killed (status {status}): {msg}")


# --------------------------------------------------------------------------- figures


def report(test: str, **figures: Any) -> str:
    """Print, keep and (if ``AGENTJOURNAL_RELIABILITY_REPORT`` is set) append the figures."""
    line = "RELIABILITY " + test + " " + " ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    REPORTED.append(line)
    path = os.environ.get("AGENTJOURNAL_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "time": time.time(), **figures}) + "\n")
    return line

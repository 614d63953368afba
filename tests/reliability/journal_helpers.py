"""Shared helpers for the T3, T4, T6, T10, T11 and T12 reliability tests.

Oracles here never use the code under test's snapshot or replay paths: genesis replay applies
the ops of every record, in order, to ``{}``, and states are compared on a canonical encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

from agentjournal import delta
from agentjournal.events import Fork, Step

SLOW_FACTOR = 10
"""The ``slow`` variants run this many times the CI-scale trials."""


def canonical(state: Any) -> str:
    """Canonical text of a JSON state (sorted keys, no spaces, unicode kept)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_hash(state: Any) -> str:
    """BLAKE2b-256 of the canonical encoding."""
    return hashlib.blake2b(canonical(state).encode(), digest_size=32).hexdigest()


def genesis_states(records: Iterable[Any]) -> dict[int, Any]:
    """State after every record seq, replaying all step/fork ops from ``{}`` (the oracle)."""
    state: Any = {}
    out: dict[int, Any] = {}
    for rec in records:
        if isinstance(rec, (Step, Fork)):
            ops = msgspec.json.decode(msgspec.json.encode(rec.ops))  # never alias the record
            state = delta.apply_in_place(state, ops)
        out[rec.seq] = msgspec.json.decode(msgspec.json.encode(state))
    return out


def replay_genesis(records: Iterable[Any]) -> Any:
    state: Any = {}
    for rec in records:
        if isinstance(rec, (Step, Fork)):
            ops = msgspec.json.decode(msgspec.json.encode(rec.ops))
            state = delta.apply_in_place(state, ops)
    return state


@dataclass(frozen=True)
class Line:
    """One line of a segment file: ``start`` .. ``end`` (``end`` just past the newline)."""

    start: int
    end: int
    kind: str
    seq: int | None


def lines_of(data: bytes) -> list[Line]:
    """The complete lines of an intact segment, with their offsets."""
    out = []
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        obj = json.loads(data[pos:nl])
        out.append(Line(pos, nl + 1, obj["kind"], obj.get("seq")))
        pos = nl + 1
    return out


def seg_dir(root: str | os.PathLike[str], agent: str) -> str:
    return os.path.join(os.fspath(root), agent, "segments")


def snap_dir(root: str | os.PathLike[str], agent: str) -> str:
    return os.path.join(os.fspath(root), agent, "snapshots")


def segment_files(root: str | os.PathLike[str], agent: str) -> list[str]:
    d = seg_dir(root, agent)
    return sorted(os.path.join(d, n) for n in os.listdir(d) if not n.startswith("."))


def copy_store(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a store root keeping the 0700/0600 modes the backend insists on."""
    shutil.copytree(src, dst)
    for dirpath, _dirnames, filenames in os.walk(dst):
        os.chmod(dirpath, 0o700)
        for n in filenames:
            os.chmod(os.path.join(dirpath, n), 0o600)


def tree_listing(path: str | os.PathLike[str]) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``path`` with its mode and (for files) content, links unfollowed."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p).encode()
            out[os.path.relpath(p, path)] = (st.st_mode, content)
    return out


@contextmanager
def preserved_umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def figures(test: str, **values: Any) -> str:
    """Print and return the parseable figures line ``RELIABILITY <test> k=v ...``.

    Goes through ``crash_helpers.report`` (T1/T2's helper) so that the line also appears in the
    session's "reliability figures" summary and in ``$AGENTJOURNAL_RELIABILITY_REPORT``.
    """
    try:
        from crash_helpers import report
    except ImportError:  # running this file on its own, without the crash helpers
        line = "RELIABILITY " + test + " " + " ".join(f"{k}={v}" for k, v in values.items())
        print(line)
        return line
    return report(test, **values)

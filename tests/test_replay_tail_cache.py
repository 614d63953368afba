"""Regression: reads between opening a journal and its next append replay the writer's cached
scan of the last segment; replaying must not alias (and later mutate) the cached op values."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentjournal import Journal
from agentjournal.backends.filesystem import FilesystemBackend
from agentjournal.backends.memrecords import MemoryRecordBackend


def _build(root: Path, steps: int) -> list[dict]:
    states = []
    state: dict = {"messages": [], "counter": 0}
    with Journal("a", root, durability="none", snapshot_every=None) as j:
        for i in range(1, steps + 1):
            state["messages"].append({"i": i})
            state["counter"] = i
            j.append(state)
            states.append({"messages": list(state["messages"]), "counter": i})
    return states


def test_reads_after_open_do_not_corrupt_each_other(tmp_path: Path) -> None:
    states = _build(tmp_path, 12)
    with Journal("a", tmp_path) as j:
        assert j.resume().state == states[-1]
        for k in (3, 12, 1, 7, 7):
            assert j.state_at(k) == states[k - 1]
        assert j.resume().state == states[-1]
        # the shadow (used to diff the next append) is not shared with the cache either
        states[-1]["messages"].append({"i": 13})
        states[-1]["counter"] = 13
        j.append(states[-1])
        assert j.state_at(5) == states[4]
        assert j.resume().state == states[-1]


@pytest.mark.parametrize("kind", ["filesystem", "memory-records"])
def test_a_kept_scan_of_a_segment_the_writer_rolled_since_is_not_reused(
        tmp_path: Path, kind: str) -> None:
    """A read-only call keeps the scans it made (resume reads the tail segment for the last
    record, then replays it). If the writer appends to that segment and rolls to a new one
    in between, the kept scan lacks the segment's end: it must be read again, and a read
    that ends inside the kept part must not run on into the new segment (it used to fail
    with "segment starting at seq 23 is missing", seen on PostgreSQL in CI)."""
    be = MemoryRecordBackend() if kind == "memory-records" else FilesystemBackend(tmp_path)
    with Journal("a", backend=be, snapshot_every=None, segment_max_records=25) as w:
        for i in range(1, 23):
            w.append({"n": i})
        r = Journal("a", backend=be, readonly=True)
        reader = r.reader
        reader.scans = {}
        assert [x.seq for x in reader.read(1).records] == list(range(1, 23))
        for i in range(23, 31):
            w.append({"n": i})
        assert [s for s, _ in r.store.list_segments()] == [1, 26]
        reader.segments(refresh=True)
        assert [x.seq for x in reader.records(1, 22)][-1] == 22
        assert [x.seq for x in reader.records(1)] == list(range(1, 31))
        reader.scans = None
        assert r.resume().state == {"n": 30}
        r.close()


"""Retention edge cases: reports, refusals, dry runs and unusable snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentjournal import Journal
from agentjournal.retention import compact

AGENT = "ret-agent"


def _build(root: Path, **kw: object) -> Journal:
    j = Journal(AGENT, root, snapshot_every=2, segment_max_records=2, **kw)  # type: ignore[arg-type]
    for i in range(1, 11):
        j.append({"i": i})
    return j


def test_refuses_to_delete_every_snapshot(tmp_path: Path) -> None:
    with _build(tmp_path) as j:
        with pytest.raises(ValueError):
            compact(j, keep_snapshots=0)


def test_dry_run_reports_without_changing_anything(tmp_path: Path) -> None:
    with _build(tmp_path) as j:
        before = (j.snapshot_seqs(), j.segment_seqs())
        rep = j.compact(keep_snapshots=1, prune=True, dry_run=True)
        assert rep.dry_run and rep.snapshots_deleted and rep.segments_deleted
        assert rep.bytes_saved > 0
        assert (j.snapshot_seqs(), j.segment_seqs()) == before
        rep = j.compact(keep_snapshots=1, compress_segments=True, dry_run=True)
        assert rep.segments_compressed
        d = rep.to_dict()
        assert d["agent_id"] == AGENT and d["dry_run"] is True


def test_unusable_snapshots_do_not_bound_pruning(tmp_path: Path) -> None:
    with _build(tmp_path, compress=False) as j:
        snaps = j.snapshot_seqs()
        for s in snaps:
            (tmp_path / AGENT / "snapshots" / f"{s:020d}.json").write_bytes(b"broken\n")
        rep = j.compact(keep_snapshots=2, prune=True)
        # no kept snapshot is usable: nothing may be pruned
        assert rep.segments_deleted == []
        assert j.segment_seqs()[0] == 1


def _counter(i: int) -> dict[str, object]:
    return {"n": i, "log": [f"entry {k}" for k in range(i % 7)]}


@pytest.mark.parametrize("compress_segments", [False, True])
def test_sparse_old_snapshots_bound_time_travel_into_old_history(
        tmp_path: Path, compress_segments: bool) -> None:
    # snapshot every 10 steps, keep the 3 newest, and one old snapshot per 5 intervals.
    with Journal("sp", tmp_path, snapshot_every=10, keep_snapshots=3, sparse_snapshots=5,
                 compress_segments=compress_segments, segment_max_records=25) as j:
        for i in range(1, 601):
            j.append(_counter(i))
        snaps = j.snapshot_seqs()
        newest, old = snaps[-3:], snaps[:-3]
        assert old, "old snapshots were all deleted"
        # Every gap between kept snapshots is bounded (about 5 intervals of 11 seqs each).
        gaps = [b - a for a, b in zip(snaps[:-1], snaps[1:], strict=True)]
        assert max(gaps) <= 5 * 10 + 11, gaps
        assert len(snaps) < 60 // 5 + 3 + 2  # sparse, not all 60
        assert all(s < newest[0] for s in old)
        # Retention again changes nothing (the picks are stable).
        rep = j.compact(keep_snapshots=3)
        assert rep.snapshots_deleted == [] and j.snapshot_seqs() == snaps
        for step in (1, 37, 123, 250, 401, 599):
            assert j.state_at(step) == _counter(step)
        assert j.verify().ok


def test_sparse_snapshots_off_and_with_pruning(tmp_path: Path) -> None:
    with Journal("off", tmp_path, snapshot_every=10, keep_snapshots=3,
                 sparse_snapshots=None) as j:
        for i in range(1, 301):
            j.append(_counter(i))
        assert len(j.snapshot_seqs()) == 3
    # Pruning removes the old history: nothing is kept for it.
    with Journal("pr", tmp_path, snapshot_every=10, keep_snapshots=3, prune=True,
                 segment_max_records=25) as j:
        for i in range(1, 301):
            j.append(_counter(i))
        assert len(j.snapshot_seqs()) <= 4  # the kept ones and the one pruning starts from
        assert j.resume().state == _counter(300)
    with pytest.raises(ValueError, match="sparse_snapshots"):
        Journal("bad", tmp_path, sparse_snapshots=-1)


def test_compact_of_a_journal_object_says_what_to_call(tmp_path: Path) -> None:
    with Journal("c", tmp_path) as j:
        j.append({"a": 1})
        with pytest.raises(TypeError, match="Journal.compact"):
            compact(j, keep_snapshots=1)  # type: ignore[arg-type]


def test_cli_compact_keeps_the_sparse_snapshots_the_writer_kept(tmp_path: Path) -> None:
    """`agentjournal compact` opens the journal without a snapshot interval: it derives the
    interval from the journal's own snapshot marks, so it deletes none of the sparse old
    snapshots the writer's retention kept (it used to keep exactly --keep)."""
    from test_cli_support import run

    root = tmp_path / "store"
    with Journal("sp", root=root, snapshot_every=5, keep_snapshots=2) as j:
        for i in range(1, 301):
            j.append({"i": i})
        kept = j.snapshot_seqs()
    assert len(kept) > 2  # the writer kept sparse old snapshots beside the newest two
    res = run("compact", "sp", "--keep", "2", root=root)
    assert res.exit_code == 0, res.output
    with Journal("sp", root=root, readonly=True) as r:
        assert r.snapshot_seqs() == kept
        assert r.state_at(7) == {"i": 7}


def test_the_mark_spacing_is_read_once_and_not_when_pruning(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Journal("ms", root=root, snapshot_every=5) as j:
        for i in range(1, 41):
            j.append({"i": i})
    with Journal("ms", root=root, snapshot_every=None) as j:
        reads = 0
        real = j.records

        def counting(*a: int) -> Any:
            nonlocal reads
            reads += 1
            return real(*a)

        j.records = counting  # type: ignore[method-assign]
        j.compact(keep_snapshots=2, prune=True)
        assert reads == 0  # pruning keeps no old history: no sparse snapshots to space
        j.compact(keep_snapshots=2)
        j.compact(keep_snapshots=2)
        assert reads == 1


def test_time_travel_does_not_try_snapshots_its_own_retention_deleted(tmp_path: Path) -> None:
    """A writer that time-travelled once keeps its snapshot listing; the snapshots its own
    retention deletes afterwards leave that listing too, so later calls do not try to open
    them one by one (measured before: 192 listed against 29 on disk after 20k steps, and
    169 failed opens in 40 calls against 32)."""
    j = Journal("a", tmp_path, durability="none", snapshot_every=10, keep_snapshots=3)
    tries: list[int] = []
    read = j.store.read_snapshot

    def counting(seq: int, limit: int) -> Any:
        try:
            return read(seq, limit)
        except FileNotFoundError:
            tries.append(seq)
            raise

    j.store.read_snapshot = counting  # type: ignore[method-assign]
    for i in range(1, 31):
        j.append({"n": i})
    assert j.state_at(5) == {"n": 5}  # before any snapshot: takes the listing
    for i in range(31, 301):
        j.append({"n": i})
    on_disk = j.snapshot_seqs()
    tries.clear()
    for k in (159, 169, 179):  # old history: from the sparse snapshot at or before it
        assert j.state_at(k) == {"n": k}
    # At most the one snapshot the step index suggests (the one before k's segment) per call;
    # never the deleted ones the listing would otherwise still hold.
    assert len(tries) <= 3, tries
    assert len(on_disk) < 10
    j.close()

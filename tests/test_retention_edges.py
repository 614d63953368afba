"""Retention edge cases: reports, refusals, dry runs and unusable snapshots."""

from __future__ import annotations

from pathlib import Path

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

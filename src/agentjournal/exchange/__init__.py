"""Export a journal to one self-contained file and import it back, verified.

An export file is JSON Lines. Its first line is a *manifest*; after it come the journal's
segment lines **verbatim** (each segment's header line, then its records, exactly the bytes
that were on disk) and then one line per snapshot::

    {"kind":"agentjournal-export","export_format":1,"agent_id":"a",...,"h":"<hash>"}
    {"kind":"header","format":1,"agent_id":"a","first_seq":1,...,"h":"..."}
    {"kind":"step","seq":1,...,"h":"..."}
    ...
    {"kind":"snapshot-file","seq":40,"compressed":true,"blake2b":"...","doc":{...}}

Because the journal lines are copied byte for byte, the importer checks them with the same
code that reads a journal (:func:`agentjournal.journal.reader.scan`): every record hash, the
chain across segments, gap-free seqs, and, for a pruned journal, the anchor that vouches for
the removed records. The manifest is sealed like a journal line (BLAKE2b, keyed for a keyed
journal) and names the last seq and hash, so a truncated file is refused rather than imported
as a shorter history. A snapshot line carries the snapshot document verbatim, so its digest
and its chain hash are checked against the records too. A snapshot line may be as long as a
snapshot (a state can outgrow one record), every other line at most one record.

Export writes only the snapshots the journal itself would use (they decode and match the
chain, :func:`~agentjournal.snapshot.check.snapshot_mismatch`) and reports the others. Both
directions read segments a piece at a time: memory is bounded by the record and snapshot
limits, never by the length of the journal or of the file.

A *range* of steps (``export_journal(..., from_step=, to_step=)``, ``export --from/--to``) is
written in the same layout, as pruning and a cut would leave the journal: its lines from the
segment after the newest usable snapshot at or before the range (or from its start) up to the
range's last record, byte for byte, with that snapshot, then, when it does not start at seq 1,
one ``anchor`` record written by the export that vouches for the records left out before it.
The manifest's ``range`` (:class:`RangeInfo`) says what it holds. It imports like any export.

Import verifies the whole file before it writes anything, writes through the backend
(:meth:`~agentjournal.backends.base.AgentStore.create_segment`), refuses an agent that already
has a journal, finally runs :meth:`Journal.verify` on what it wrote, and removes everything it
wrote when any of this fails.

:func:`copy_journal` is the two in one, from one backend to another (a filesystem root to
PostgreSQL and back), with the copy checked against its source.
"""

from __future__ import annotations

from ..errors import ImportRefusedError
from .copy import CopyReport, check_targets, copy_journal
from .exporter import export_journal
from .fileformat import (
    EXPORT_FORMAT,
    ExportReport,
    ImportReport,
    Manifest,
    RangeInfo,
    SegmentInfo,
    SnapshotInfo,
    SnapshotLine,
    check_key,
)
from .importer import import_journal, read_manifest, verify_export

__all__ = [
    "EXPORT_FORMAT",
    "CopyReport",
    "ExportReport",
    "ImportRefusedError",
    "ImportReport",
    "Manifest",
    "RangeInfo",
    "SegmentInfo",
    "SnapshotInfo",
    "SnapshotLine",
    "check_key",
    "check_targets",
    "copy_journal",
    "export_journal",
    "import_journal",
    "read_manifest",
    "verify_export",
]

"""The record store on rows (``PostgresRecordStore``) beyond what the engine shows: an append
is one atomic, conditional step (all of its records and its snapshot, or nothing), the
segment view over it is byte-exact, and a journal moves between the filesystem and
PostgreSQL through the exchange format (verified both ways)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agentjournal import Journal
from agentjournal.backends import FilesystemBackend
from agentjournal.backends.base import Quarantine, RecordBackend, RecordStore, SnapshotData, Usage
from agentjournal.backends.postgres import PostgresBackend, PostgresRecordStore
from agentjournal.errors import JournalFencedError, StoreError
from agentjournal.exchange import export_journal, import_journal

HDR = b'{"kind":"header"}\n'


def _line(seq: int, body: str = "x") -> bytes:
    return f'{{"kind":"step","seq":{seq},"ts":1.0,"v":"{body}","h":"{"0" * 64}"}}\n'.encode()


@pytest.fixture()
def rs(pg_backend: PostgresBackend) -> Iterator[PostgresRecordStore]:
    s = pg_backend.records("rows", create=True)
    s.acquire()
    try:
        yield s
    finally:
        s.close()


def _count(dsn: str, schema: str, table: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute(f"SELECT count(*) FROM {schema}.{table} WHERE agent = 'rows'"
                        ).fetchone()
        assert row is not None
        return int(row[0])


def test_the_core_protocols(pg_backend: PostgresBackend, rs: PostgresRecordStore) -> None:
    assert isinstance(pg_backend, RecordBackend) and isinstance(rs, RecordStore)
    quarantine: Quarantine = rs  # the optional capabilities, statically and at run time
    usage: Usage = rs
    assert quarantine.list_quarantine() == [] and usage.usage() == 0


def test_append_is_conditional_on_the_next_seq(pg_dsn: str, pg_schema: str,
                                               rs: PostgresRecordStore) -> None:
    assert rs.span() is None and rs.headers() == []
    rs.append(1, [_line(1), _line(2, "yy"), _line(3)], header=HDR)
    rs.append(4, [_line(4)])
    assert list(rs.read(1)) == [(1, _line(1)), (2, _line(2, "yy")), (3, _line(3)),
                                (4, _line(4))]
    assert list(rs.read(2, 4)) == [(2, _line(2, "yy")), (3, _line(3))]
    assert rs.span() == (1, 4) and rs.headers() == [(1, HDR)]
    for start in (4, 2, 6):  # already there, far behind, a gap: refused, nothing written
        with pytest.raises(JournalFencedError):
            rs.append(start, [_line(start)])
    with pytest.raises(JournalFencedError, match="already in the store"):
        rs.append(3, [_line(3)])
    with pytest.raises(JournalFencedError, match="next seq is 5, not 7"):
        rs.append(7, [_line(7)], header=HDR, snapshot=SnapshotData(7, b"{}", False))
    assert rs.span() == (1, 4) and rs.list_snapshots() == []
    assert _count(pg_dsn, pg_schema, "records") == 4
    rs.append(5, [_line(5)], header=HDR, snapshot=SnapshotData(5, b'{"s":5}', False))
    assert rs.headers() == [(1, HDR), (5, HDR)] and rs.list_snapshots() == [(5, 7)]
    assert rs.get_snapshot(5, 100) == (b'{"s":5}', False)
    rs.delete_from(5)
    rs.delete_below(3)
    assert rs.span() == (3, 4) and rs.headers() == []
    rs.append(5, [_line(5)])  # the next seq after the suffix cut
    assert rs.usage() == len(_line(3)) + len(_line(4)) + len(_line(5)) + 7


def test_an_append_is_all_or_nothing(pg_dsn: str, pg_schema: str,
                                     rs: PostgresRecordStore) -> None:
    """A failure inside an append (injected: a trigger refusing its third row) leaves none
    of its records, its header or its snapshot: whole appends only."""
    rs.append(1, [_line(1)], header=HDR)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f"CREATE FUNCTION {pg_schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN IF NEW.seq = 4 THEN RAISE EXCEPTION 'injected'; END IF; "
                  "RETURN NEW; END $$")
        c.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {pg_schema}.records FOR EACH ROW "
                  f"EXECUTE FUNCTION {pg_schema}.refuse()")
    with pytest.raises(StoreError, match="injected"):
        rs.append(2, [_line(2), _line(3), _line(4)], header=HDR,
                  snapshot=SnapshotData(4, b"{}", False))
    assert rs.span() == (1, 1) and rs.headers() == [(1, HDR)] and rs.list_snapshots() == []
    assert _count(pg_dsn, pg_schema, "records") == 1
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f"DROP TRIGGER refuse ON {pg_schema}.records")
    rs.append(2, [_line(2), _line(3), _line(4)], header=HDR)
    assert [s for s, _ in rs.read(1)] == [1, 2, 3, 4]


def test_changes_need_the_lease(pg_backend: PostgresBackend, rs: PostgresRecordStore) -> None:
    rs.append(1, [_line(1)], header=HDR)
    other = pg_backend.records("rows", create=False)  # a reader: no lease
    try:
        assert list(other.read(1)) == [(1, _line(1))]
        for change in (lambda: other.append(2, [_line(2)]), lambda: other.delete_below(1),
                       lambda: other.delete_from(1), lambda: other.delete_snapshot(1),
                       lambda: other.put_snapshot(SnapshotData(1, b"{}", False)),
                       lambda: other.quarantine("x", b"y")):
            with pytest.raises(JournalFencedError, match="does not hold the lease"):
                change()
    finally:
        other.close()
    rs.quarantine("00000000000000000001.jsonl.9.0", b"cut")
    assert rs.list_quarantine() == ["00000000000000000001.jsonl.9.0"]


def test_segment_view_reads_byte_exact(pg_backend: PostgresBackend) -> None:
    s = pg_backend.agent("view", create=True)
    try:
        s.lock()
        app = s.create_segment(1, HDR, durable=True)
        lines = [_line(1), _line(2, "yy"), _line(3)]
        app.write(b"".join(lines))  # several records in one write (the importer): one append
        app.sync()
        data = HDR + b"".join(lines)
        assert s.read_segment(1) == data and s.segment_size(1) == len(data)
        for off in (0, 5, len(HDR), len(HDR) + 3, len(data) - 2):
            assert s.read_segment(1, off) == data[off:]
            assert s.read_segment(1, off, 7) == data[off:off + 7]
        with pytest.raises(StoreError, match="whole lines only"):
            app.write(b'{"kind":"step","se')  # a record store holds no part of a record
        assert s.read_segment(1) == data
    finally:
        s.close()


def test_move_between_filesystem_and_postgres(tmp_path: Path,
                                              pg_backend: PostgresBackend) -> None:
    fs = FilesystemBackend(tmp_path / "fs")
    with Journal("mv", backend=fs, snapshot_every=5, segment_max_records=4,
                 compress_segments=True) as j:
        for i in range(1, 40):
            j.append({"i": i, "log": list(range(i))})
        j.compact()  # seal old segments: the import writes sealed ones too
        buf = io.BytesIO()
        export_journal(j, buf)
        want = j.resume().state
    buf.seek(0)
    rep = import_journal(buf, backend=pg_backend)
    assert rep.records and rep.written
    with Journal("mv", backend=pg_backend) as p:
        assert p.verify().ok and p.resume().state == want
        assert p.state_at(3) == {"i": 3, "log": [0, 1, 2]}
        p.append({"i": 40})
        back = io.BytesIO()
        export_journal(p, back)
    back.seek(0)
    fs2 = FilesystemBackend(tmp_path / "fs2")
    import_journal(back, backend=fs2)
    with Journal("mv", backend=fs2, readonly=True) as f:
        assert f.verify().ok and f.resume().state == {"i": 40}

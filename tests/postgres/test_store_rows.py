"""The store's byte mapping beyond one line per write: several lines and a partial one in a
write (what the importer does), truncation inside a record, and a journal moved between the
filesystem and PostgreSQL through the exchange format (verified both ways)."""

from __future__ import annotations

import io
from pathlib import Path

from agentjournal import Journal
from agentjournal.backends import FilesystemBackend
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.exchange import export_journal, import_journal

HDR = b'{"kind":"header"}\n'


def _line(seq: int, body: str = "x") -> bytes:
    return f'{{"kind":"step","seq":{seq},"ts":1.0,"v":"{body}","h":"{"0" * 64}"}}\n'.encode()


def test_several_lines_a_partial_one_and_cuts(pg_backend: PostgresBackend) -> None:
    s = pg_backend.agent("rows", create=True)
    try:
        app = s.create_segment(1, HDR, durable=True)
        lines = [_line(1), _line(2, "yy"), _line(3)]
        app.write(b"".join(lines) + b'{"kind":"step","se')
        app.write(b'q":4')  # the partial line goes on: still bytes, exact
        app.sync()
        data = HDR + b"".join(lines) + b'{"kind":"step","seq":4'
        assert s.read_segment(1) == data and s.segment_size(1) == len(data)
        for off in (0, 5, len(HDR), len(HDR) + 3, len(data) - 2):
            assert s.read_segment(1, off) == data[off:]
            assert s.read_segment(1, off, 7) == data[off:off + 7]
        cut = len(HDR) + len(lines[0]) + 10  # inside record 2
        s.truncate_segment(1, cut)
        assert s.read_segment(1) == data[:cut] and s.segment_size(1) == cut
        app = s.open_segment(1)
        app.write(data[cut:len(HDR) + len(lines[0]) + len(lines[1])])  # the rest of line 2
        app.write(_line(3))
        assert s.read_segment(1) == HDR + b"".join(lines)
        s.truncate_segment(1, 4)  # even into the header
        assert s.read_segment(1) == HDR[:4]
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

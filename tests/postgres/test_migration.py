"""The schema migration from version 1 (segment-shaped: ``segments``, ``fragments``,
``hints``, byte offsets in ``records``) to version 2 (the record store), on a store made the
way version 1 laid it out: segments of a real journal as rows, a torn tail as a fragment."""

from __future__ import annotations

from pathlib import Path

import psycopg

from agentjournal import Journal
from agentjournal.backends import FilesystemBackend
from agentjournal.backends.postgres import PostgresBackend
from agentjournal.backends.postgres._schema import create_v1, create_v2

TORN = b'{"kind":"step","seq":99,"ts":1.0,"st'


def _v1_store(dsn: str, schema: str, root: Path) -> tuple[dict[int, object], list[int]]:
    """A version-1 schema holding agent "old" as version 1 wrote it: a segments row per
    segment (the oldest sealed), one records row per line with its ``seg`` and ``off``, a
    fragment after the last record (a torn write), a hint, the snapshots."""
    states: dict[int, object] = {}
    with Journal("old", backend=FilesystemBackend(root), snapshot_every=4,
                 segment_max_records=5) as j:
        for i in range(1, 13):
            states[i] = {"i": i, "log": list(range(i))}
            j.append(states[i])
    agent = root / "old"
    with psycopg.connect(dsn, autocommit=True) as c, c.transaction():
        c.execute(f"CREATE SCHEMA {schema}")
        c.execute(f"CREATE TABLE {schema}.schema_version (version integer PRIMARY KEY, "
                  "applied timestamptz NOT NULL DEFAULT now())")
        for stmt in create_v1(schema):
            c.execute(stmt)
        c.execute(f"INSERT INTO {schema}.schema_version (version) VALUES (1)")
        c.execute(f"INSERT INTO {schema}.agents (agent) VALUES ('old')")
        segs = sorted((agent / "segments").glob("*.jsonl"))
        for i, path in enumerate(segs):
            first = int(path.name.split(".")[0])
            data = path.read_bytes()
            header, *lines = data.splitlines(keepends=True)
            c.execute(f"INSERT INTO {schema}.segments (agent, first_seq, header, sealed, "
                      "sealed_bytes) VALUES ('old', %s, %s, %s, %s)",
                      (first, header, i == 0, 10 if i == 0 else None))
            off = len(header)
            for k, line in enumerate(lines):
                c.execute(f"INSERT INTO {schema}.records (agent, seq, seg, off, line) VALUES "
                          "('old', %s, %s, %s, %s)", (first + k, first, off, line))
                off += len(line)
            if i == len(segs) - 1:
                c.execute(f"INSERT INTO {schema}.fragments (agent, seg, off, data) VALUES "
                          "('old', %s, %s, %s)", (first, off, TORN))
                c.execute(f"INSERT INTO {schema}.hints (agent, seg, snap, clean) VALUES "
                          "('old', %s, 0, false)", (first,))
        for path in sorted((agent / "snapshots").iterdir()):
            c.execute(f"INSERT INTO {schema}.snapshots (agent, seq, data, compressed) VALUES "
                      "('old', %s, %s, %s)", (int(path.name.split(".")[0]), path.read_bytes(),
                                              path.name.endswith(".lz4")))
    return states, [int(p.name.split(".")[0]) for p in segs]


def _columns(c: psycopg.Connection[tuple[object, ...]], schema: str) -> set[tuple[str, ...]]:
    rows = c.execute("SELECT table_name, column_name, data_type, is_nullable FROM "
                     "information_schema.columns WHERE table_schema = %s", (schema,)).fetchall()
    return {tuple(str(x) for x in r) for r in rows}


def _indexes(c: psycopg.Connection[tuple[object, ...]], schema: str) -> set[tuple[str, str]]:
    rows = c.execute("SELECT tablename, replace(indexdef, schemaname || '.', '') "
                     "FROM pg_indexes WHERE schemaname = %s", (schema,)).fetchall()
    return {(str(t), str(d)) for t, d in rows}


def test_a_version_1_store_is_migrated(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    states, firsts = _v1_store(pg_dsn, pg_schema, tmp_path / "fs")
    assert len(firsts) > 2
    with PostgresBackend(pg_dsn, schema=pg_schema) as be:
        with Journal("old", backend=be, readonly=True) as r:
            rep = r.verify()
            assert rep.ok, rep.problems
            assert r.last_step == 12 and r.resume().state == states[12]
            assert [r.state_at(k) for k in (1, 5, 11)] == [states[k] for k in (1, 5, 11)]
            assert r.segment_seqs() == firsts  # each header moved onto its first record
        store = be.records("old", create=False)
        try:  # the torn bytes are kept, as a quarantine row named by segment and offset
            names = store.list_quarantine()
            assert len(names) == 1 and names[0].endswith(".v1")
        finally:
            store.close()
        with Journal("old", backend=be, snapshot_every=4) as w:  # and the writer goes on
            w.append({"i": 13})
            assert w.verify().ok and w.last_step == 13
    with psycopg.connect(pg_dsn) as c:
        assert [v for (v,) in c.execute(f"SELECT version FROM {pg_schema}.schema_version "
                                        "ORDER BY version").fetchall()] == [1, 2]
        torn = c.execute(f"SELECT data FROM {pg_schema}.quarantine").fetchone()
        assert torn is not None and bytes(torn[0]) == TORN
        # The migrated schema is the one a new store is created with, column for column.
        fresh = pg_schema + "_new"
        try:
            c.execute(f"CREATE SCHEMA {fresh}")
            for stmt in create_v2(fresh):
                c.execute(stmt)
            assert _columns(c, pg_schema) - {("schema_version", "version", "integer", "NO"),
                                             ("schema_version", "applied",
                                              "timestamp with time zone", "NO")} \
                == _columns(c, fresh)
            assert _indexes(c, pg_schema) - {(t, d) for t, d in _indexes(c, pg_schema)
                                             if t == "schema_version"} == _indexes(c, fresh)
        finally:
            c.execute(f"DROP SCHEMA {fresh} CASCADE")
            c.commit()

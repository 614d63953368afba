"""T16: tampering is not a crash -- the public ``agent-memory-integrity`` (agmi) suite.

agmi's nine at-rest attacks (edit, truncate, delete, reorder, forge after the tip, cross-agent
splice, old-record splice, metadata edit, whole-store rollback) run against agentjournal
through an adapter written here: each attack edits the raw segment file (or copies the store),
then the journal is opened again and asked whether it noticed. Run keyed and unkeyed, with and
without a head anchored off the store, on the read path (opening the journal for writing, as
an agent restarting does, and resuming) and by ``verify``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("agmi")

from agmi.adapters.base import MemoryAdapter, Record  # noqa: E402
from agmi.attacks.at_rest import AT_REST_ATTACKS_WITH_SNAPSHOT  # noqa: E402
from crash_helpers import report  # noqa: E402

from agentjournal import Head, Journal, JournalError  # noqa: E402

AGENT = "victim"
OTHER = "donor"
KEY = b"agmi-test-key"


class JournalAdapter(MemoryAdapter):
    """One agent's journal (one segment) as a list of raw records for agmi's attacks."""

    supports_replay = True
    supports_metadata = True
    supports_snapshot = True

    def __init__(self, *, keyed: bool, anchored: bool, path: str) -> None:
        self.keyed, self.anchored, self.path = keyed, anchored, path
        self.name = f"agentjournal-{'keyed' if keyed else 'unkeyed'}" + (
            "-anchored" if anchored else "") + f"-{path}"
        self._dir: str | None = None
        self._head: Head | None = None  # kept off the store: in the verifier's memory

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        assert self._dir is not None
        return Path(self._dir) / "store"

    def _key(self) -> bytes | None:
        return KEY if self.keyed else None

    def setup(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="aj-agmi-")
        self._head = None

    def teardown(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _seed(self, agent: str, token: str, n: int) -> None:
        with Journal(agent, self.root, key=self._key(), snapshot_every=None) as j:
            state: dict[str, Any] = {"messages": []}
            for i in range(n):
                state["messages"].append({"role": "user", "content": f"{token}{i}"})
                j.append(state)
            if agent == AGENT and self.anchored:
                self._head = j.head()

    def seed(self, n: int) -> None:
        self._seed(AGENT, "seed-", n)

    def seed_other(self, n: int) -> None:
        self._seed(OTHER, "other-", n)

    def append_genuine(self) -> None:
        with Journal(AGENT, self.root, key=self._key(), snapshot_every=None) as j:
            state = j.resume().state
            state["messages"].append({"role": "user", "content": "late"})
            j.append(state)
            if self.anchored:
                self._head = j.head()

    def reload(self) -> None:
        pass  # every verify() opens the journal anew

    # --- the raw store --------------------------------------------------------------------
    def _segment(self, agent: str) -> Path:
        segs = sorted((self.root / agent / "segments").glob("*.jsonl"))
        assert len(segs) == 1, segs
        return segs[0]

    def _lines(self, agent: str) -> tuple[bytes, list[bytes]]:
        data = self._segment(agent).read_bytes()
        header, _, rest = data.partition(b"\n")
        return header, [x for x in rest.split(b"\n") if x]

    def _write(self, agent: str, header: bytes, lines: list[bytes]) -> None:
        self._segment(agent).write_bytes(b"\n".join([header, *lines]) + b"\n")

    def _records(self, agent: str) -> list[Record]:
        out = []
        for i, line in enumerate(self._lines(agent)[1]):
            fields = msgspec.json.decode(line)
            fields["_agent"] = agent
            out.append(Record(seq=i, fields=fields))
        return out

    def read_all_raw(self) -> list[Record]:
        return self._records(AGENT)

    def read_other_raw(self) -> list[Record]:
        return self._records(OTHER)

    @staticmethod
    def _encode(fields: dict[str, Any]) -> bytes:
        return msgspec.json.encode({k: v for k, v in fields.items() if k != "_agent"})

    def write_raw(self, record: Record) -> None:
        header, lines = self._lines(AGENT)
        line = self._encode(record.fields)
        if record.seq < len(lines):
            lines[record.seq] = line
        else:
            lines.append(line)
        self._write(AGENT, header, lines)

    def delete_raw(self, seq: int) -> None:
        header, lines = self._lines(AGENT)
        del lines[seq]
        self._write(AGENT, header, lines)

    def replay_onto(self, victim_seq: int, donor: Record) -> None:
        header, lines = self._lines(AGENT)
        lines[victim_seq] = self._encode(donor.fields)  # genuine bytes, wrong place
        self._write(AGENT, header, lines)

    # --- content, identity, metadata ------------------------------------------------------
    def mutate_payload(self, record: Record) -> Record:
        op = record.fields["ops"][-1]
        op["value"] = dict(op["value"], content=op["value"]["content"] + "  [TAMPERED]")
        return record

    def forge_record(self, template: Record) -> Record:
        f = dict(template.fields)
        f.update(seq=f["seq"] + 1, step=f["step"] + 1, prev=f["h"],
                 ops=[{"op": "add", "path": "/messages/-",
                       "value": {"role": "user", "content": "forged"}}])
        return Record(seq=template.seq + 1, fields=f)

    def identity_of(self, record: Record) -> str:
        return f"{record.fields['_agent']}:{record.seq}"

    def payload_of(self, record: Record) -> str:
        return msgspec.json.encode(record.fields["ops"]).decode()

    def owner_of(self, record: Record) -> str | None:
        return str(record.fields["_agent"])

    def read_meta(self, seq: int) -> dict[str, Any]:
        f = self._records(AGENT)[seq].fields
        return {"ts": f["ts"], "step": f["step"]}

    def write_meta(self, seq: int, meta: dict[str, Any]) -> None:
        rec = self._records(AGENT)[seq]
        rec.fields["ts"] = rec.fields["ts"] + 3600  # the metadata an attacker would move
        rec.fields["meta"] = {k: v for k, v in meta.items() if k not in ("ts", "step")}
        self.write_raw(rec)

    def snapshot_store(self) -> object:
        return self._copy_store(self.root)

    def restore_store(self, token: object) -> None:
        self._restore_store(str(token), self.root)

    # --- the verdict ----------------------------------------------------------------------
    def verify(self) -> bool:
        self.verify_detail = None
        try:
            if self.path == "read":
                # An agent restarting: open for writing (recovery runs), then resume.
                with Journal(AGENT, self.root, key=self._key(), snapshot_every=None,
                             expect_head=self._head) as j:
                    j.resume()
                return True
            with Journal(AGENT, self.root, key=self._key(), readonly=True) as j:
                rep = j.verify(against=self._head)
            if not rep.ok:
                self.verify_detail = rep.problems[0].message
            return rep.ok
        except JournalError as e:
            self.verify_detail = f"{type(e).__name__}: {e.message}"
            return False


VARIANTS = [(keyed, anchored, path) for keyed in (False, True) for anchored in (False, True)
            for path in ("read", "verify")]
NOT_WITHOUT_ANCHOR = {"truncate", "snapshot_rollback"}
"""What no chain kept inside the store can see (agmi's own account of T2 and T9)."""


@pytest.mark.parametrize(("keyed", "anchored", "path"), VARIANTS,
                         ids=[f"{'keyed' if k else 'unkeyed'}-{'anchored' if a else 'bare'}-{p}"
                              for k, a, p in VARIANTS])
def test_t16_agmi_attacks(keyed: bool, anchored: bool, path: str) -> None:
    results = {}
    for cls in AT_REST_ATTACKS_WITH_SNAPSHOT:
        attack = cls()
        res = attack.run(JournalAdapter(keyed=keyed, anchored=anchored, path=path))
        results[attack.name] = res
    statuses = {name: r.status for name, r in results.items()}
    report("T16", keyed=keyed, anchored=anchored, path=path,
           **{name: s for name, s in statuses.items()},
           detected=sum(s == "safe" for s in statuses.values()), of=len(statuses))
    assert len(statuses) == 9
    assert all(s in ("safe", "VULNERABLE") for s in statuses.values()), \
        {n: (r.status, r.error or r.guard) for n, r in results.items()}
    for name, status in statuses.items():
        if anchored or name not in NOT_WITHOUT_ANCHOR:
            assert status == "safe", (name, results[name].detail)
        else:
            assert status == "VULNERABLE", (name, "an unanchored chain cannot see this")

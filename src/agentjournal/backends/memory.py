"""An in-memory backend: the reference implementation of the protocol, for fast tests.

Nothing survives the process; ``sync`` is a no-op. Behaviour otherwise matches the filesystem
backend (the contract tests check both).
"""

from __future__ import annotations

import os

from .. import _codec
from .._ids import validate_agent_id
from ..errors import (
    CorruptRecordError,
    JournalLockedError,
    JournalNotFoundError,
    LimitExceededError,
)
from .base import Hint, seq_name


class _MemAppender:
    __slots__ = ("_buf",)

    def __init__(self, buf: bytearray) -> None:
        self._buf = buf

    def write(self, data: bytes) -> None:
        self._buf += data

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class _AgentData:
    def __init__(self) -> None:
        self.segments: dict[int, bytearray] = {}
        self.sealed: dict[int, bytes] = {}
        self.snapshots: dict[int, tuple[bytes, bool]] = {}
        self.quarantine: dict[str, bytes] = {}
        self.locked = False
        self.hint: Hint | None = None


class MemoryAgentStore:
    def __init__(self, data: _AgentData, agent_id: str) -> None:
        self.agent_id = agent_id
        self._d = data
        self._locked_here = False

    def location(self, kind: str, seq: int | None = None) -> str:
        base = f"memory://{self.agent_id}"
        if kind == "segment" and seq is not None:
            return f"{base}/segments/{seq_name(seq)}.jsonl"
        if kind == "snapshot" and seq is not None:
            return f"{base}/snapshots/{seq_name(seq)}.json"
        return base

    def lock(self) -> None:
        if self._locked_here:
            return
        if self._d.locked:
            raise JournalLockedError(
                f"journal of agent {self.agent_id!r} is locked by another writer "
                f"(pid {os.getpid()})",
                pid=os.getpid(), hint="only one writer per agent; close the other Journal first",
            )
        self._d.locked = self._locked_here = True

    def unlock(self) -> None:
        if self._locked_here:
            self._d.locked = self._locked_here = False

    def read_hint(self) -> Hint | None:
        return self._d.hint

    def write_hint(self, hint: Hint) -> None:
        if self._locked_here:
            self._d.hint = hint

    def segment_exists(self, first_seq: int) -> bool:
        return first_seq in self._d.segments or first_seq in self._d.sealed

    def list_segments(self) -> list[tuple[int, bool]]:
        out = {s: False for s in self._d.segments}
        for s in self._d.sealed:
            out.setdefault(s, True)
        return sorted(out.items())

    def read_segment(self, first_seq: int, offset: int = 0, length: int | None = None) -> bytes:
        end = None if length is None else offset + length
        if first_seq in self._d.segments:
            return bytes(self._d.segments[first_seq][offset:end])
        if first_seq in self._d.sealed:
            where = self.location("segment", first_seq) + ".lz4"
            try:
                if end is not None:  # a peek: as in the filesystem backend
                    return _codec.decompress_prefix(self._d.sealed[first_seq], end,
                                                    what=where)[offset:]
                data = _codec.decompress(self._d.sealed[first_seq], 1 << 30, what=where)
                return data[offset:end]
            except LimitExceededError:
                raise
            except ValueError as e:  # a damaged lz4 frame, as in the filesystem backend
                raise CorruptRecordError(str(e), path=where, offset=0) from None
        raise FileNotFoundError(self.location("segment", first_seq))

    def segment_size(self, first_seq: int) -> int:
        if first_seq not in self._d.segments:
            raise FileNotFoundError(self.location("segment", first_seq))
        return len(self._d.segments[first_seq])

    def create_segment(self, first_seq: int, header: bytes, durable: bool) -> _MemAppender:
        if first_seq in self._d.segments or first_seq in self._d.sealed:
            raise FileExistsError(self.location("segment", first_seq))
        buf = bytearray(header)
        self._d.segments[first_seq] = buf
        return _MemAppender(buf)

    def segment_bytes(self, first_seq: int) -> int:
        if first_seq in self._d.segments:
            return len(self._d.segments[first_seq])
        if first_seq in self._d.sealed:
            return len(self._d.sealed[first_seq])
        raise FileNotFoundError(self.location("segment", first_seq))

    def snapshot_bytes(self, seq: int) -> int:
        if seq not in self._d.snapshots:
            raise FileNotFoundError(self.location("snapshot", seq))
        return len(self._d.snapshots[seq][0])

    def name(self, kind: str, seq: int) -> str:
        return self.location(kind, seq).removeprefix(f"memory://{self.agent_id}/")

    def open_segment(self, first_seq: int) -> _MemAppender:
        return _MemAppender(self._d.segments[first_seq])

    def truncate_segment(self, first_seq: int, size: int) -> None:
        del self._d.segments[first_seq][size:]

    def delete_segment(self, first_seq: int) -> None:
        self._d.segments.pop(first_seq, None)
        self._d.sealed.pop(first_seq, None)

    def seal_segment(self, first_seq: int, data: bytes) -> None:
        self._d.sealed[first_seq] = data
        self._d.segments.pop(first_seq, None)

    def list_quarantine(self) -> list[str]:
        return [f"memory://{self.agent_id}/quarantine/{n}" for n in sorted(self._d.quarantine)]

    def quarantine(self, first_seq: int, offset: int, data: bytes) -> str:
        name = f"{seq_name(first_seq)}.jsonl.{offset}.{len(self._d.quarantine)}"
        self._d.quarantine[name] = bytes(data)
        return f"memory://{self.agent_id}/quarantine/{name}"

    def list_snapshots(self) -> list[int]:
        return sorted(self._d.snapshots)

    def write_snapshot(self, seq: int, data: bytes, compressed: bool) -> None:
        self._d.snapshots[seq] = (bytes(data), compressed)

    def read_snapshot(self, seq: int, limit: int) -> tuple[bytes, bool]:
        if seq not in self._d.snapshots:
            raise FileNotFoundError(self.location("snapshot", seq))
        data, compressed = self._d.snapshots[seq]
        if len(data) > limit:
            raise LimitExceededError(f"snapshot {seq} is {len(data)} bytes, over {limit}")
        return data, compressed

    def delete_snapshot(self, seq: int) -> None:
        self._d.snapshots.pop(seq, None)

    def remove_temps(self) -> list[str]:
        return []

    def disk_usage(self) -> int:
        return (
            sum(len(b) for b in self._d.segments.values())
            + sum(len(b) for b in self._d.sealed.values())
            + sum(len(b) for b, _ in self._d.snapshots.values())
        )

    def sync_dirs(self) -> None:
        pass

    def close(self) -> None:
        self.unlock()


class MemoryBackend:
    """Journals held in this process's memory."""

    def __init__(self) -> None:
        self._agents: dict[str, _AgentData] = {}

    def agent(self, agent_id: str, *, create: bool) -> MemoryAgentStore:
        validate_agent_id(agent_id)
        if agent_id not in self._agents:
            if not create:
                raise JournalNotFoundError(
                    f"no journal for agent {agent_id!r} in memory",
                    hint="record a step first",
                )
            self._agents[agent_id] = _AgentData()
        return MemoryAgentStore(self._agents[agent_id], agent_id)

    def exists(self, agent_id: str) -> bool:
        validate_agent_id(agent_id)
        return agent_id in self._agents

    # --- optional capability: remove what a failed import or fork created -------------------
    def discard_empty(self, agent_id: str) -> bool:
        """Forget ``agent_id`` if it holds no segment and no snapshot; whether it is gone."""
        validate_agent_id(agent_id)
        data = self._agents.get(agent_id)
        if data is None:
            return True
        if data.segments or data.sealed or data.snapshots or data.quarantine or data.locked:
            return False
        del self._agents[agent_id]
        return True

    def list_agents(self) -> list[str]:
        return sorted(self._agents)

    def describe(self) -> str:
        return "memory://"

    def lock_holders(self) -> dict[str, int]:
        """``{agent_id: pid}`` of the agents with a writer (always this process)."""
        return {a: os.getpid() for a, d in self._agents.items() if d.locked}

    def identity(self) -> tuple[str, int]:
        return ("memory", id(self))

    # --- removing a whole journal (added for integrations/langgraph.py: delete_thread) -----
    def delete_agent(self, agent_id: str) -> bool:
        """Forget an agent's journal; refused while a writer holds it. Returns whether it was.

        Raises:
            JournalLockedError: a writer has the journal open.
        """
        validate_agent_id(agent_id)
        data = self._agents.get(agent_id)
        if data is None:
            return False
        if data.locked:
            raise JournalLockedError(
                f"journal of agent {agent_id!r} is open for writing",
                hint="close the Journal (or the saver) that writes it first")
        del self._agents[agent_id]
        return True

"""``StateManager(storage=PostgresStorage(dsn))``: every StateManager method works on
PostgreSQL as on the filesystem (the same test runs on a directory, on memory and on
PostgreSQL), and a new process resumes what another one saved."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pgf_support import store_url

from agentjournal import AgentState, FilesystemStorage, MemoryBackend, StateManager
from agentjournal.errors import CheckpointNotFoundError
from agentjournal.storage import PostgresStorage

Factory = Callable[[], FilesystemStorage]


@pytest.fixture(params=["filesystem", "memory", "postgres"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory of storages on one store (each call: a new storage object on it)."""
    made: list[FilesystemStorage] = []
    if request.param == "filesystem":
        def factory() -> FilesystemStorage:
            made.append(FilesystemStorage(tmp_path / "store", durability="none"))
            return made[-1]
    elif request.param == "memory":
        backend = MemoryBackend()

        def factory() -> FilesystemStorage:
            made.append(FilesystemStorage(backend=backend, durability="none"))
            return made[-1]
    else:
        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")

        def factory() -> FilesystemStorage:
            made.append(PostgresStorage(dsn, schema=schema))
            return made[-1]
    yield factory
    for st in made:
        st.close()


def step(state: AgentState, k: int) -> None:
    state.step_number = k
    state.conversation_history.append({"role": "user" if k % 2 else "assistant",
                                       "content": f"message {k}"})
    state.budget_spent_usd = round(0.25 * k, 2)
    state.status = "completed" if k == 20 else "running"
    if k % 5 == 0:
        state.memory_contents[f"fact{k}"] = k


def test_every_state_manager_method(make_storage: Factory) -> None:
    async def main() -> None:
        async with StateManager(make_storage(), checkpoint_frequency=4,
                                retention_count=None) as sm:
            s = AgentState(agent_id="a")
            ids, times = [], []
            for k in range(1, 21):
                step(s, k)
                ids.append(await sm.save_checkpoint(s))
                times.append(time.time())
            assert await sm.last_step("a") == 20
            for k in (1, 7, 20):
                got = await sm.load_checkpoint(ids[k - 1])
                assert got.step_number == k and len(got.conversation_history) == k
                assert (await sm.state_at("a", k)).budget_spent_usd == round(0.25 * k, 2)
            listed = await sm.list_checkpoints("a")
            assert [c.checkpoint_id for c in listed] == ids[::-1]
            hist = await sm.history("a", 3, 5)
            assert [h.step for h in hist if h.kind == "step"] == [3, 4, 5]
            ops = await sm.diff("a", 4, 5)
            assert {"op": "add", "path": "/memory_contents/fact5", "value": 5} in ops
            mid = await sm.state_at_time("a", times[9])
            assert mid.step_number >= 10
            blame = await sm.blame("a", "/memory_contents/fact10")
            assert blame.last is not None and blame.last.step == 10
            found = await sm.bisect("a", "/budget_spent_usd >= 3")
            assert found.step == 12
            assert (await sm.verify("a")).ok
            fork = await sm.fork_from_checkpoint(ids[9], "a-retry")
            assert fork.step_number == 10 and fork.parent_checkpoint_id == ids[9]
            assert ids[9] in (await sm.get_checkpoint_tree("a"))
            assert (await sm.compact("a", dry_run=True)).bytes_before > 0
            assert await sm.cleanup_old_checkpoints("a") >= 0
        # A new manager (what a new process or host does) resumes at the last step.
        async with StateManager(make_storage()) as sm2:
            latest = await sm2.resume_from_latest("a")
            assert latest is not None and latest.step_number == 20
            assert latest.status == "completed" and latest.memory_contents["fact20"] == 20
            fork2 = await sm2.resume_from_latest("a-retry")
            assert fork2 is not None and fork2.step_number == 10
            assert await sm2.resume_from_latest("nobody") is None
            assert {c.agent_id for c in await sm2.list_checkpoints()} == {"a", "a-retry"}

    asyncio.run(main())


def test_the_seed_storage_protocol(make_storage: Factory) -> None:
    async def main() -> None:
        st = make_storage()
        s = AgentState(agent_id="seed")
        cids = []
        for k in range(1, 6):
            step(s, k)
            cids.append(await st.save(s))
        assert (await st.load(cids[2])).step_number == 3
        assert await st.exists(cids[4])
        await st.delete(cids[4])
        assert not await st.exists(cids[4])
        with pytest.raises(CheckpointNotFoundError):
            await st.load(cids[4])
        assert [c.checkpoint_id for c in await st.list_checkpoints("seed")] == cids[3::-1]

    asyncio.run(main())


RESUME_CHILD = """
import asyncio, json, sys
from agentjournal import StateManager
from agentjournal.storage import PostgresStorage

async def main():
    async with StateManager(PostgresStorage(sys.argv[1])) as sm:
        s = await sm.resume_from_latest("a")
        s.step_number += 1
        s.conversation_history.append({"role": "user", "content": "from the child"})
        await sm.save_checkpoint(s, force=True)
        print(json.dumps([s.step_number, len(s.conversation_history)]))

asyncio.run(main())
"""


def test_another_process_takes_over_on_postgres(pg_dsn: str, pg_schema: str) -> None:
    async def first() -> None:
        async with StateManager(PostgresStorage(pg_dsn, schema=pg_schema)) as sm:
            s = AgentState(agent_id="a")
            for k in range(1, 6):
                step(s, k)
                await sm.save_checkpoint(s)

    asyncio.run(first())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", RESUME_CHILD, store_url(pg_dsn, pg_schema)],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "[6, 6]", out.stderr

    async def check() -> None:
        st = PostgresStorage(pg_dsn, schema=pg_schema)
        try:
            async with StateManager(st) as sm:
                got = await sm.resume_from_latest("a")
                assert got is not None and got.step_number == 6
                assert got.conversation_history[-1]["content"] == "from the child"
                assert (await sm.verify("a")).ok
        finally:
            st.close()

    asyncio.run(check())


def test_repr_hides_the_password() -> None:
    st = PostgresStorage("postgresql://app:hunter2@127.0.0.1:1/agents",
                         backend=MemoryBackend())  # a backend given: no connection is made
    assert "hunter2" not in repr(st) and "app@127.0.0.1:1" in repr(st)
    st.close()
    kv = PostgresStorage("host=127.0.0.1 password='x y' dbname=agents", backend=MemoryBackend())
    assert "x y" not in repr(kv) and "password=***" in repr(kv)
    kv.close()

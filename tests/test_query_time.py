"""Time travel by wall clock: parsing times, state_at_time against a brute-force oracle."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agentjournal import Journal
from agentjournal.errors import InvalidTimeError, StepPrunedError, TimeNotFoundError
from agentjournal.query import parse_time, record_at_time, state_at_time, to_epoch

UTC = timezone.utc


@pytest.mark.parametrize(("text", "want"), [
    ("2026-11-26T10:00Z", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("2026-11-26T10:00:05z", datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC)),
    ("2026-11-26T10:00:05.25Z", datetime(2026, 11, 26, 10, 0, 5, 250000, tzinfo=UTC)),
    ("2026-11-26 11:00+01:00", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("2026-11-26T05:30:00-0430", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("2026-11-26T12+02", None),
    ("2026-11-26T12:00+02", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
])
def test_parse_iso_8601_with_zones(text: str, want: datetime | None) -> None:
    if want is None:
        with pytest.raises(InvalidTimeError):
            parse_time(text)
        return
    assert parse_time(text) == want.timestamp()


def test_parse_local_epoch_and_errors() -> None:
    assert parse_time("2026-11-26") == datetime(2026, 11, 26).timestamp()  # local midnight
    assert parse_time("2026-11-26T10:00") == datetime(2026, 11, 26, 10).timestamp()
    assert parse_time(" 1764150000.5 ") == 1764150000.5
    assert to_epoch(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1,
                                                                 tzinfo=UTC).timestamp()
    assert to_epoch(12) == 12.0
    for bad in ["yesterday", "2026-13-01", "2026-02-30T10:00Z", "2026-11-26T25:00Z", ""]:
        with pytest.raises(InvalidTimeError):
            parse_time(bad)
    with pytest.raises(InvalidTimeError):
        to_epoch(True)
    with pytest.raises(InvalidTimeError):
        to_epoch([1])  # type: ignore[arg-type]


def _journal(tmp_path: Path, steps: int = 30, **kw: object) -> None:
    with Journal("t", tmp_path, durability="none", snapshot_every=4, **kw) as j:  # type: ignore[arg-type]
        for i in range(1, steps + 1):
            j.append({"i": i, "log": list(range(i))})
            if i % 5 == 0:
                time.sleep(0.002)  # distinct times between some steps


def test_state_at_time_matches_a_scan(tmp_path: Path) -> None:
    _journal(tmp_path)
    with Journal("t", tmp_path, readonly=True) as j:
        recs = list(j.records())
        steps = [r for r in recs if r.kind == "step"]
        for r in recs:
            want = max((s for s in steps if s.ts <= r.ts), key=lambda s: s.seq)
            step, state = state_at_time(j, r.ts)
            assert (step, state) == (want.step, {"i": want.step, "log": list(range(want.step))})
            dt = datetime.fromtimestamp(r.ts, tz=UTC)  # rounded to microseconds
            assert j.state_at_time(dt) == state_at_time(j, dt.timestamp())
        last = recs[-1]
        assert j.state_at_time(last.ts + 3600)[0] == 30
        with pytest.raises(TimeNotFoundError, match="history starts at"):
            j.state_at_time(recs[0].ts - 10)
        iso = (datetime.fromtimestamp(recs[0].ts, tz=UTC) - timedelta(days=1)).isoformat()
        with pytest.raises(TimeNotFoundError):
            record_at_time(j, iso)


def test_empty_pruned_and_keyed(tmp_path: Path) -> None:
    Journal("e", tmp_path).close()
    with Journal("e", tmp_path, readonly=True) as j, pytest.raises(TimeNotFoundError):
        j.state_at_time(time.time())
    with Journal("p", tmp_path, durability="none", snapshot_every=4) as j:
        for i in range(1, 31):
            j.append({"i": i})
        t_old = next(iter(j.records())).ts
        j.compact(keep_snapshots=2, prune=True)
    with Journal("p", tmp_path, readonly=True) as j:
        with pytest.raises(StepPrunedError):
            j.state_at_time(t_old - 1)
        assert j.state_at_time(time.time())[1] == {"i": 30}
    _journal(tmp_path / "k", 10, key=b"k")
    with Journal("t", tmp_path / "k", key=b"k", readonly=True) as j:
        assert j.state_at_time(time.time()) == (10, {"i": 10, "log": list(range(10))})


def test_state_manager_queries(tmp_path: Path) -> None:
    import asyncio

    from agentjournal import AgentState, StateManager
    from agentjournal.storage import FilesystemStorage

    async def main() -> None:
        async with StateManager(storage=FilesystemStorage(str(tmp_path))) as m:
            state = AgentState(agent_id="m")
            for step in range(1, 8):
                state.step_number = step
                state.budget_spent_usd = step * 2.0
                await m.save_checkpoint(state)
            r = await m.bisect("m", "/budget_spent_usd > 9")
            assert r.step == 5
            b = await m.blame("m", "/budget_spent_usd", all=True)
            assert b.last.step == 7 and len(b.earlier) == 6
            then = await m.state_at_time("m", time.time())
            assert then.step_number == 7

    asyncio.run(main())

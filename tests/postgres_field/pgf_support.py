"""Helpers of the fleet-side PostgreSQL tests: a store URL for a test's schema, and agents
recorded through any backend."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentjournal import Journal
from agentjournal.backends.base import Backend
from test_cli_support import advance, seed_state


def store_url(dsn: str, schema: str) -> str:
    """``dsn`` (a ``postgresql://`` URL) with ``?schema=`` set: the ``--store`` form."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def record_agent(backend: Backend, agent: str = "researcher", steps: int = 30, *,
                 snapshot_every: int | None = 10, **options: Any) -> dict[int, Any]:
    """Record ``steps`` seed-style steps through ``backend``; returns ``{step: state}``."""
    state = seed_state()
    states = {}
    with Journal(agent, backend=backend, snapshot_every=snapshot_every, **options) as j:
        for i in range(1, steps + 1):
            advance(state, i, last=i == steps)
            j.append(state)
            states[i] = json.loads(json.dumps(state))
    return states


def states_of(backend: Backend, agent: str, **options: Any) -> dict[int, Any]:
    """``{step: state}`` of every step of ``agent``, by time travel."""
    with Journal(agent, backend=backend, readonly=True, create=False, **options) as j:
        return {step: j.state_at(step) for step in range(1, j.last_step + 1)}

"""The PostgreSQL section of docs/guide.md runs as written, on the test server (its blocks are
fenced ``py`` so that the seed-example tests, which have no server, leave them to this one)."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

from pgf_support import store_url

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
PLACEHOLDER = "postgresql://app@db.internal/agents"


def _blocks() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## PostgreSQL: one store for a fleet", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```py\n(.*?)^```", section, flags=re.M | re.S)


def test_the_guide_has_a_postgres_example() -> None:
    blocks = _blocks()
    assert blocks and all(PLACEHOLDER in b and 'schema="agentjournal"' in b for b in blocks)


def test_the_guide_postgres_example_runs(pg_dsn: str, pg_schema: str) -> None:
    for n in (1, 2):  # again on the same store: the agent resumes (the fork id is taken)
        ns: dict[str, Any] = {"__name__": "guide"}
        for src in _blocks():
            src = src.replace(f'"{PLACEHOLDER}"', repr(store_url(pg_dsn, pg_schema)))
            src = src.replace('schema="agentjournal"', f"schema={pg_schema!r}")
            if n == 2:
                src = src.replace('"researcher-retry"', '"researcher-retry-2"')
            code = compile(src, "<guide: PostgreSQL>", "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)

            async def run(code: Any = code, ns: dict[str, Any] = ns) -> None:
                result = eval(code, ns)  # noqa: S307 - our own documentation
                if asyncio.iscoroutine(result):
                    await result

            asyncio.run(run())

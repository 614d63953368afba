"""Reliability tests: print every figures line (``RELIABILITY T.. k=v ..``) in the summary."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from crash_helpers import REPORTED

    if REPORTED:
        terminalreporter.section("reliability figures")
        for line in REPORTED:
            terminalreporter.write_line(line)

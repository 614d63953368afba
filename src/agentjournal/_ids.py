"""Agent-id validation: the only names that ever become directory names under the root."""

from __future__ import annotations

import re

from .errors import InvalidAgentIdError

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_agent_id(agent_id: object) -> str:
    """Return ``agent_id`` if it is a safe agent id, else raise :class:`InvalidAgentIdError`.

    A safe id is 1-128 characters of ``A-Z a-z 0-9 . _ -`` that starts with a letter or
    digit, so it can never be ``..``, an absolute path, contain a separator or a NUL.
    """
    if not isinstance(agent_id, str):
        raise InvalidAgentIdError(
            f"agent id must be a str, not {type(agent_id).__name__}",
            hint=f"use an id matching {AGENT_ID_PATTERN}",
        )
    if _AGENT_ID.fullmatch(agent_id) is None:
        shown = agent_id if len(agent_id) <= 40 else agent_id[:40] + "..."
        raise InvalidAgentIdError(
            f"invalid agent id {shown!r}",
            hint=f"agent ids are 1-128 characters matching {AGENT_ID_PATTERN}",
        )
    return agent_id

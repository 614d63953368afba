"""``agentjournal serve``: a read-only time-travel debugger in the browser.

Install with ``pip install 'agentjournal[serve]'``; start with ``agentjournal serve`` or
build the ASGI app yourself with :func:`create_app`. See ``docs/viewer.md``.
"""

from __future__ import annotations

from .app import CSP, create_app
from .model import Viewer

__all__ = ["CSP", "Viewer", "create_app"]

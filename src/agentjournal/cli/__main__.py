"""``python -m agentjournal.cli``: the same as the ``agentjournal`` console script."""

from . import main

main()

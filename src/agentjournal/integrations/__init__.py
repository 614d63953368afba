"""Storage for other agent frameworks, over agentjournal journals (optional extras)."""

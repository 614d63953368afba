"""Adapters for other agent frameworks.

Each adapter lives in its own module and is imported only when its extra is installed
(``agentjournal[langgraph]`` for :mod:`agentjournal.integrations.langgraph`,
``agentjournal[kaizen]`` for :mod:`agentjournal.integrations.kaizen`); importing this
package never imports a framework.
"""

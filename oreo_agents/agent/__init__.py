"""Agents that use what the learner produces: value-guided action selection, step beam search, evaluation.

    >>> from oreo_agents.agent import Agent
    >>> agent = Agent.load("runs/oreo/policy", value="runs/oreo/value", select="value", k=4)  # doctest: +SKIP

Modules: :mod:`~oreo_agents.agent.selection` (greedy / sample / value best-of-K / admissible scoring),
:mod:`~oreo_agents.agent.agent` (the :class:`Agent` policy), :mod:`~oreo_agents.agent.beam` (math step beam search and
best-of-N), :mod:`~oreo_agents.agent.evaluate` (success rate / accuracy with confidence intervals). torch is imported
only when a model runs.
"""

from __future__ import annotations

from oreo_agents.agent.agent import Agent, build_agent, load_value
from oreo_agents.agent.selection import SELECT_MODES

__all__ = ["Agent", "SELECT_MODES", "build_agent", "load_value"]

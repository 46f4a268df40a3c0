"""Policies: something that turns a batch of :class:`~oreo_agents.turns.Turn` into Decisions.

``make_policy`` builds a scripted one by name (``expert``, ``random``, ``noisy-expert``); they need no torch. A model
folder is loaded by :func:`oreo_agents.agent.build_agent` (``--policy <folder>``), above this layer::

    >>> from oreo_agents.policies import make_policy
    >>> make_policy("noisy-expert", eps=0.1, seed=3).name
    'noisy-expert'
"""

from __future__ import annotations

from typing import Any

from oreo_agents.errors import OreoError
from oreo_agents.turns import Candidate, Decision, Policy, Turn

POLICY_NAMES = ("expert", "random", "noisy-expert")
# Policies that read info["expert_action"], so the env must be built with expert=True.
NEEDS_EXPERT = frozenset({"expert", "noisy-expert"})


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name.

    - ``expert``: no arguments.
    - ``random``: ``seed``.
    - ``noisy-expert``: ``eps`` (probability of a random action), ``seed``.

    Unknown names and arguments a policy does not take are :class:`OreoError` naming them.
    """
    from oreo_agents.policies import scripted

    if name == "model":
        raise OreoError("policy 'model': pass the model folder itself (--policy <folder>; "
                        "oreo_agents.agent.build_agent loads it)")
    classes = {"expert": scripted.ExpertPolicy, "random": scripted.RandomPolicy, "noisy-expert": scripted.NoisyExpertPolicy}
    if name not in classes:
        raise OreoError(f"unknown policy '{name}' (choose from: {', '.join(POLICY_NAMES)})")
    accepted = {"expert": set(), "random": {"seed"}, "noisy-expert": {"eps", "seed"}}[name]
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise OreoError(f"policy '{name}' takes no option(s) {', '.join(unknown)}")
    return classes[name](**kwargs)


__all__ = ["POLICY_NAMES", "NEEDS_EXPERT", "Candidate", "Decision", "Policy", "Turn", "make_policy"]

"""Policies: something that turns a batch of :class:`~oreo_agents.turns.Turn` into Decisions.

``make_policy`` builds one by name. The scripted ones (``expert``, ``random``, ``noisy-expert``) need no torch; the
``model`` policy (an HF causal LM, or vLLM on GPU) is imported only when asked for::

    >>> from oreo_agents.policies import make_policy
    >>> make_policy("noisy-expert", eps=0.1, seed=3).name
    'noisy-expert'
"""

from __future__ import annotations

from typing import Any

from oreo_agents.errors import OreoError
from oreo_agents.turns import Candidate, Decision, Policy, Turn

POLICY_NAMES = ("expert", "random", "noisy-expert", "model")
# Policies that read info["expert_action"], so the env must be built with expert=True.
NEEDS_EXPERT = frozenset({"expert", "noisy-expert"})


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name.

    - ``expert``: no arguments.
    - ``random``: ``seed``.
    - ``noisy-expert``: ``eps`` (probability of a random action), ``seed``.
    - ``model``: ``model`` (a save_pretrained folder) and the keywords of
      :meth:`oreo_agents.models.policy.ModelPolicy.from_pretrained` (backend, device, dtype, temperature, top_p,
      max_new_tokens, seed).

    Unknown names and arguments a policy does not take are :class:`OreoError` naming them.
    """
    from oreo_agents.policies import scripted

    if name == "model":
        from oreo_agents.models.loading import check_model_dir  # torch/transformers only on this branch
        from oreo_agents.models.policy import ModelPolicy

        kwargs = dict(kwargs)
        path = kwargs.pop("model", None)
        if not path:
            raise OreoError("policy 'model' needs a model directory (--model PATH)")
        return ModelPolicy.from_pretrained(check_model_dir(path, flag="--model"), **kwargs)
    classes = {"expert": scripted.ExpertPolicy, "random": scripted.RandomPolicy, "noisy-expert": scripted.NoisyExpertPolicy}
    if name not in classes:
        raise OreoError(f"unknown policy '{name}' (choose from: {', '.join(POLICY_NAMES)})")
    accepted = {"expert": set(), "random": {"seed"}, "noisy-expert": {"eps", "seed"}}[name]
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise OreoError(f"policy '{name}' takes no option(s) {', '.join(unknown)}")
    return classes[name](**kwargs)


__all__ = ["POLICY_NAMES", "NEEDS_EXPERT", "Candidate", "Decision", "Policy", "Turn", "make_policy"]

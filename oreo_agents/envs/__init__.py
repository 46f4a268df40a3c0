"""Gymnasium text environments: ALFWorld (embodied), math word problems (reasoning), a web shop (web).

No torch here. Envs are registered by id with string entry points, so registering imports no game engine::

    >>> import gymnasium as gym
    >>> import oreo_agents  # registers the ids
    >>> env = gym.make("oreo_agents/ALFWorld-v0", split="train")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                              # doctest: +SKIP
    >>> info["admissible_commands"][:2]                             # doctest: +SKIP
    ['examine countertop 1', 'go to cabinet 1']
"""

from __future__ import annotations

from oreo_agents.envs.core import (
    INFO_ADMISSIBLE,
    INFO_EXPERT,
    INFO_GOAL,
    INFO_SPLIT,
    INFO_TASK_ID,
    INFO_TASK_TYPE,
    INFO_WON,
    TEXT_SPACE_MAX_LENGTH,
    text_space,
)

# id -> (entry point, default kwargs). One place, so every id and its default step limit are listed together.
ENV_SPECS: dict[str, tuple[str, dict]] = {
    "oreo_agents/ALFWorld-v0": ("oreo_agents.envs.alfworld.env:ALFWorldEnv", {}),
    "oreo_agents/Math-v0": ("oreo_agents.envs.math.env:MathEnv", {}),
    "oreo_agents/WebShop-v0": ("oreo_agents.envs.webshop.env:WebShopEnv", {}),
}

# Short names used by the CLI (`--env alfworld`).
ENV_FAMILIES: dict[str, str] = {
    "alfworld": "oreo_agents/ALFWorld-v0",
    "math": "oreo_agents/Math-v0",
    "webshop": "oreo_agents/WebShop-v0",
}


def register_envs() -> None:
    """Register every oreo_agents env id with Gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env_id, (entry_point, kwargs) in ENV_SPECS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False)


__all__ = [
    "ENV_FAMILIES",
    "ENV_SPECS",
    "INFO_ADMISSIBLE",
    "INFO_EXPERT",
    "INFO_GOAL",
    "INFO_SPLIT",
    "INFO_TASK_ID",
    "INFO_TASK_TYPE",
    "INFO_WON",
    "TEXT_SPACE_MAX_LENGTH",
    "register_envs",
    "text_space",
]

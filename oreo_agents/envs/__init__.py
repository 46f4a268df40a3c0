"""Gymnasium text environments: ALFWorld (embodied), math word problems (reasoning), a web shop (web).

No torch here, and importing this package imports neither gymnasium nor any game engine: the ids are registered with
string entry points as soon as gymnasium is imported (see :mod:`.registration`)::

    >>> import gymnasium as gym
    >>> import oreo_agents  # the ids are registered when gymnasium is (in either import order)
    >>> env = gym.make("oreo_agents/ALFWorld-v0", split="train")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                              # doctest: +SKIP
    >>> info["admissible_commands"][:2]                             # doctest: +SKIP
    ['examine countertop 1', 'go to cabinet 1']

or, by family name and with the shared option vocabulary (``split``, ``data_path``, ``num_tasks``, ``task_types``,
``max_steps``, ``expert``; ``reset(options={"task": i})`` picks a task in every env)::

    >>> from oreo_agents.envs import make
    >>> env = make("alfworld", split="valid_unseen", num_tasks=6, max_steps=40)  # doctest: +SKIP
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
    TASK_OPTION,
    TEXT_SPACE_MAX_LENGTH,
    text_space,
)
from oreo_agents.envs.registration import (
    ENV_FAMILIES,
    ENV_SPECS,
    make,
    options_of,
    register_envs,
    register_when_gymnasium_loads,
    resolve,
)

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
    "TASK_OPTION",
    "TEXT_SPACE_MAX_LENGTH",
    "make",
    "options_of",
    "register_envs",
    "register_when_gymnasium_loads",
    "resolve",
    "text_space",
]

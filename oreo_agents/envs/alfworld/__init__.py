"""ALFWorld on alfworld's real text engine, as a Gymnasium env, with an offline game generator and a fixed expert.

Importing this package imports no game engine; the names below load their modules on first use::

    >>> from oreo_agents.envs.alfworld import ensure_games, list_games
    >>> files = ensure_games(split="valid_unseen", num_games=6)   # doctest: +SKIP
    >>> from oreo_agents.envs import make
    >>> env = make("alfworld", split="valid_unseen", num_tasks=6)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ALFWorldEnv": "oreo_agents.envs.alfworld.env",
    "TextGame": "oreo_agents.envs.alfworld.engine",
    "compile_game": "oreo_agents.envs.alfworld.engine",
    "default_compiled_dir": "oreo_agents.envs.alfworld.compiled",
    "clean_observation": "oreo_agents.envs.alfworld.env",
    "ALFWorldExpert": "oreo_agents.envs.alfworld.expert",
    "HandcodedExpert": "oreo_agents.envs.alfworld.expert",
    "ensure_games": "oreo_agents.envs.alfworld.games",
    "list_games": "oreo_agents.envs.alfworld.games",
    "default_root": "oreo_agents.envs.alfworld.games",
    "engine_fingerprint": "oreo_agents.envs.alfworld.gamefiles",
    "TASK_TYPES": "oreo_agents.envs.alfworld.gamefiles",
    "SPLITS": "oreo_agents.envs.alfworld.gamefiles",
    "generate_game": "oreo_agents.envs.alfworld.generator",
    "solve": "oreo_agents.envs.alfworld.generator",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)

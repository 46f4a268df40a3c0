"""Options shared by the commands, and the one place that turns env options into an env.

``resolve_env_id`` maps an env family (``alfworld``, ``math``, ``webshop``) or a Gymnasium id to a registered id, and
``env_kwargs`` maps the env options of a command (``split``, ``data_path``, ``games_root``, ``source``,
``task_types``, ``max_steps``, ``num_tasks``) onto the env constructor's keywords. This is the only code that knows
the env constructors' vocabulary; when :func:`oreo_agents.envs.make` takes one vocabulary for every env, ``make_env``
is where to point at it.
"""

from __future__ import annotations

import inspect
from typing import Any

from oreo_agents.errors import OreoError

# Config field -> env constructor keyword, in the order the env's signature is checked.
_ENV_KWARGS = {
    "split": ("split",),
    "data_path": ("data_path", "path", "data_dir"),
    "games_root": ("root",),
    "source": ("source",),
    "task_types": ("task_types",),
    "max_steps": ("max_steps",),
    "num_tasks": ("num_games", "num_problems", "num_tasks"),
}


def resolve_env_id(name: str) -> str:
    from oreo_agents.envs import ENV_FAMILIES

    if name in ENV_FAMILIES:
        return ENV_FAMILIES[name]
    import importlib

    import gymnasium as gym

    env_id = name
    try:
        if ":" in name:  # Gymnasium's "module:Id" form: importing the module registers the id
            module, env_id = name.split(":", 1)
            importlib.import_module(module)
        return gym.spec(env_id).id
    except Exception as exc:  # gymnasium raises several error types for unknown / unimportable ids
        raise OreoError(
            f"--env {name}: not an env family ({', '.join(ENV_FAMILIES)}) nor a registered Gymnasium id ({exc})"
        ) from None


def env_kwargs(cfg: Any, env_id: str, needs_expert: bool, *, default_split: str | None = "train") -> dict[str, Any]:
    """Constructor keywords for the env from the options that were set, checked against its signature."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    entry = spec.entry_point
    if isinstance(entry, str):
        module, attr = entry.split(":")
        import importlib

        try:
            entry = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise OreoError(f"--env: env {env_id} cannot be loaded ({entry}: {exc})") from None
    params = inspect.signature(entry).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs: dict[str, Any] = {}
    for name, candidates in _ENV_KWARGS.items():
        value = getattr(cfg, name, None)
        if value is None or value == [] or (name == "split" and value == default_split and "split" not in params):
            continue
        target = next((c for c in candidates if c in params), candidates[0] if takes_any else None)
        if target is None:
            raise OreoError(f"--{name.replace('_', '-')} is not an option of env {env_id}")
        kwargs[target] = value
    if needs_expert:
        if "expert" not in params and not takes_any:
            raise OreoError(f"--policy {getattr(cfg, 'policy', 'expert')} needs an expert, and env {env_id} has none (no 'expert' option)")
        kwargs["expert"] = True
    return kwargs


def make_env(env_id: str, kwargs: dict[str, Any]) -> Any:
    """The env ``env_id`` built with ``kwargs`` (from :func:`env_kwargs`)."""
    import gymnasium as gym

    import oreo_agents  # noqa: F401  (registers the env ids)

    return gym.make(env_id, **kwargs)

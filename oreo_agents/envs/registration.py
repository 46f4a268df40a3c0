"""The env ids, their lazy registration with Gymnasium, and :func:`make`: one way to build any env by name.

Importing this module imports neither gymnasium nor numpy (``oreo-agents --help`` and ``import oreo_agents`` stay
fast). The ids are registered the moment they can be used: at once when gymnasium is already imported, else right
after gymnasium's own ``__init__`` runs (a post-import hook on ``sys.meta_path``), and always by :func:`make`. So both
orders work::

    >>> import oreo_agents; import gymnasium as gym
    >>> env = gym.make("oreo_agents/Math-v0", num_tasks=5)
    >>> from oreo_agents.envs import make
    >>> env = make("math", num_tasks=5, max_steps=10)            # a family name, an id, or "module:Id-v0"
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from oreo_agents.errors import OreoError

# id -> (entry point, default kwargs). One place, so every id is listed together.
ENV_SPECS: dict[str, tuple[str, dict]] = {
    "oreo_agents/ALFWorld-v0": ("oreo_agents.envs.alfworld.env:ALFWorldEnv", {}),
    "oreo_agents/Math-v0": ("oreo_agents.envs.math.env:MathEnv", {}),
    "oreo_agents/WebShop-v0": ("oreo_agents.envs.webshop.env:WebShopEnv", {}),
}

# Short names used by the CLI (`--env alfworld`) and by make().
ENV_FAMILIES: dict[str, str] = {
    "alfworld": "oreo_agents/ALFWorld-v0",
    "math": "oreo_agents/Math-v0",
    "webshop": "oreo_agents/WebShop-v0",
}

# gym.make's own keywords, passed through by make() rather than to the env's constructor.
GYM_MAKE_OPTIONS = ("max_episode_steps", "disable_env_checker")


def register_envs() -> None:
    """Register every oreo_agents env id with Gymnasium (idempotent). Imports gymnasium."""
    from gymnasium.envs.registration import register, registry

    for env_id, (entry_point, kwargs) in ENV_SPECS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False)


# -- lazy registration ------------------------------------------------------------------------------------------------


class _RegisterAfterGymnasium:
    """A ``sys.meta_path`` finder that finds nothing itself: when ``gymnasium`` is about to be imported, it wraps the
    real loader so that the ids are registered right after gymnasium's ``__init__`` has run, and then leaves
    ``sys.meta_path``. It stays until gymnasium actually loads, so a mere ``importlib.util.find_spec("gymnasium")``
    probe (libraries check what is installed that way) does not use it up. (No ``importlib.abc`` base classes:
    finders and loaders are duck-typed, and importing ``importlib.abc`` alone costs more than ``import oreo_agents``.)"""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if isinstance(finder, _RegisterAfterGymnasium) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # gymnasium sees its own loader (importlib.resources and friends read it), then runs as usual.
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        _remove_hook()
        register_envs()


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterGymnasium)]


def register_when_gymnasium_loads() -> None:
    """Register the ids now if gymnasium is imported, else as soon as it is; imports nothing itself."""
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterGymnasium())


# -- make ---------------------------------------------------------------------------------------------------------------


def resolve(env: str) -> str:
    """The Gymnasium id of a family name (``alfworld``), an id, or ``"module:Id-v0"`` (importing the module first)."""
    if env in ENV_FAMILIES:
        return ENV_FAMILIES[env]
    import gymnasium as gym

    register_envs()
    env_id = env
    try:
        if ":" in env:  # Gymnasium's "module:Id" form: importing the module registers the id
            module, env_id = env.split(":", 1)
            importlib.import_module(module)
        return gym.spec(env_id).id
    except Exception as exc:  # gymnasium raises several error types for unknown / unimportable ids
        raise OreoError(
            f"env {env}: not an env family ({', '.join(ENV_FAMILIES)}) nor a registered Gymnasium id ({exc})"
        ) from None


def _entry_point(env_id: str) -> Any:
    import gymnasium as gym

    entry = gym.spec(env_id).entry_point
    if isinstance(entry, str):
        module, attr = entry.split(":")
        try:
            entry = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise OreoError(f"env {env_id} cannot be loaded ({entry}: {exc})") from None
    return entry


def options_of(env: str) -> frozenset[str] | None:
    """The constructor options an env takes (besides the id's registered defaults); None when it takes any."""
    import inspect

    entry = _entry_point(resolve(env))
    params = inspect.signature(entry).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)


def make(env: str, /, **options: Any) -> Any:
    """Build an env: ``env`` is a family name (alfworld, math, webshop), a registered id or ``"module:Id-v0"``;
    ``options`` are its constructor options in the shared vocabulary (``split``, ``data_path``, ``num_tasks``,
    ``task_types``, ``max_steps``, ``expert``, ``seed``, plus the env's own). An option set to None means the env's
    default. Old spellings and unknown options fail with one line naming the option and the env.

    Returns what ``gym.make`` returns (the env inside Gymnasium's checker and order wrappers); ``max_episode_steps``
    and ``disable_env_checker`` go to ``gym.make`` itself.
    """
    import gymnasium as gym

    register_envs()
    env_id = resolve(env)
    options = {k: v for k, v in options.items() if v is not None}
    make_kwargs = {k: options.pop(k) for k in GYM_MAKE_OPTIONS if k in options}
    accepted = options_of(env_id)
    if accepted is not None:
        renamed = getattr(_entry_point(env_id), "renamed_options", {})
        for name in options:
            if name in accepted:
                continue
            if name in renamed:
                from oreo_agents.envs.base import renamed_error

                raise renamed_error(env_id, name, renamed[name])
            raise OreoError(f"{name} is not an option of env {env_id} (its options: {', '.join(sorted(accepted))})")
    return gym.make(env_id, **make_kwargs, **options)

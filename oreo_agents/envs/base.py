"""``TextEnv``: the rules every oreo_agents env shares, written once.

- The option vocabulary. Every env's constructor speaks the same words: ``split``, ``data_path``, ``num_tasks``,
  ``max_steps``, ``expert``, ``seed``, ``render_mode`` (and ``task_types`` where tasks have types), plus its own extras
  (ALFWorld ``games_root`` / ``games``, math ``source`` / ``difficulty``, web shop ``num_products``...). An old spelling
  (``num_games``, ``path``, ``data_dir``, ``root``...) fails with one line naming the new one, whether the env is built
  directly, with ``gym.make`` or with :func:`oreo_agents.envs.make`: it is never silently ignored.
- Task choice: ``reset(options={"task": i})`` (an index, or an id / game folder) in every env; ``game`` / ``problem``
  fail by name, and so does any other unknown reset option.
- The step limit: ``max_steps`` steps without termination end the episode as ``truncated``. It is counted here, inside
  the env, rather than by Gymnasium's ``TimeLimit`` wrapper, because the count is part of the episode's state: the math
  env's ``get_state()`` / ``set_state()`` / ``clone()`` branch mid-episode (beam search steps ``env.unwrapped``, below
  every wrapper), and envs built directly (``oreo-agents serve``) must keep their limit too. Unlike ``TimeLimit``
  (gymnasium 1.4 ``wrappers/common.py``, which sets ``truncated`` whenever the count is reached), a step that
  terminates is never also ``truncated``. ``gym.make(..., max_episode_steps=N)`` still adds a ``TimeLimit`` on top.
- Order: ``step`` before the first ``reset``, or after the episode ended (terminated or truncated), raises
  ``gymnasium.error.ResetNeeded`` — the error Gymnasium's ``OrderEnforcing`` wrapper raises for the first case, raised
  by the env itself so envs built without ``gym.make`` behave the same.

A subclass implements ``_begin(task) -> (observation, info)`` (start an episode on the chosen task, or on one drawn
with ``self.np_random`` when ``task`` is None), ``_advance(action) -> (observation, reward, terminated, extra_info)``
(one step; ``self.elapsed_steps`` already counts it) and ``_info()`` (the shared ``info`` keys of the current state).
"""

from __future__ import annotations

import operator
from typing import Any, ClassVar

import gymnasium as gym

from oreo_agents.envs.core import TASK_OPTION
from oreo_agents.errors import OreoError

# Reset options that used to pick a task, by env: ALFWorld's ``game``, math's ``problem``.
RENAMED_RESET_OPTIONS = {"game": TASK_OPTION, "problem": TASK_OPTION}


def renamed_error(env: str, old: str, new: str) -> OreoError:
    return OreoError(f"{old} was renamed {new} (env {env})")


class TextEnv(gym.Env[str, str]):
    """Base of the oreo_agents text envs (see the module docstring): vocabulary, task option, step limit, order."""

    # Old constructor option -> its name now. Checked in ``__new__``, which sees the keywords before ``__init__``
    # would reject them with a bare TypeError.
    renamed_options: ClassVar[dict[str, str]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> "TextEnv":
        for old, new in cls.renamed_options.items():
            if old in kwargs:
                raise renamed_error(cls.__name__, old, new)
        return super().__new__(cls)

    def __init__(self, *, max_steps: int, render_mode: str | None = None) -> None:
        try:
            limit = operator.index(max_steps)
        except TypeError:
            limit = 0
        if limit < 1:
            raise OreoError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        modes = self.metadata.get("render_modes", [])
        if render_mode is not None and render_mode not in modes:
            raise OreoError(f"render_mode {render_mode!r} is not supported: use one of {', '.join(modes)} or None")
        self.max_steps = limit
        self.render_mode = render_mode
        self.elapsed_steps = 0
        self.episode_over: bool | None = None  # None until the first reset

    # -- gymnasium API -------------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        task = self._task_option(options)
        self.elapsed_steps, self.episode_over = 0, False
        return self._begin(task)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.episode_over is None:
            raise gym.error.ResetNeeded(f"{type(self).__name__}: call reset() before step()")
        if self.episode_over:
            raise gym.error.ResetNeeded(f"{type(self).__name__}: the episode is over; call reset() before step()")
        self.elapsed_steps += 1
        obs, reward, terminated, extra = self._advance(action)
        truncated = not terminated and self.elapsed_steps >= self.max_steps
        self.episode_over = terminated or truncated
        info = self._info()
        info.update(extra)
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    # -- what a subclass provides --------------------------------------------------------------------------------------
    def _begin(self, task: Any) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _advance(self, action: Any) -> tuple[str, float, bool, dict[str, Any]]:
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------------------------------
    def _task_option(self, options: dict[str, Any] | None) -> Any:
        """The task asked for in the reset options (None: draw one); old or unknown option names fail by name."""
        if not options:
            return None
        for key in options:
            if key in RENAMED_RESET_OPTIONS:
                raise OreoError(
                    f"reset option {key!r} was renamed {RENAMED_RESET_OPTIONS[key]!r} "
                    f"(env {type(self).__name__}): reset(options={{'task': ...}})"
                )
            if key != TASK_OPTION:
                raise OreoError(f"unknown reset option {key!r} of env {type(self).__name__}: the only one is 'task'")
        return options[TASK_OPTION]

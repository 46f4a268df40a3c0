"""A small text env for recorder/collect tests, independent of the real games (any Gymnasium text env must work).

The task: reach a target number by typing "inc"/"dec", then "submit". The target comes from the reset seed, so
``reset(seed=k)`` always plays the same task. Registered as ``Toy-v0`` (and ``ToySlow-v0``, 10 ms a step), so ``gym.make("toy_env:Toy-v0")`` and
``oreo-agents collect --env toy_env:Toy-v0`` work once this folder is on ``sys.path``.
"""

from __future__ import annotations

import time

import gymnasium as gym
from oreo_agents.envs.core import text_space

COMMANDS = ["dec", "inc", "look", "submit"]


class ToyEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, expert: bool = False, max_steps: int = 12, split: str = "train", step_delay: float = 0.0):
        self.observation_space = text_space(200)
        self.action_space = text_space(50)
        self.expert, self.max_steps, self.split, self.step_delay = expert, max_steps, split, step_delay
        self.target = self.value = self.t = 0

    def _info(self, won: bool = False) -> dict:
        info = {
            "admissible_commands": list(COMMANDS),
            "task_id": f"count-to-{self.target}",
            "task_type": "small" if self.target <= 2 else "large",
            "goal": f"make the counter {self.target} and submit",
            "split": self.split,
            "won": won,
        }
        if self.expert:
            info["expert_action"] = "inc" if self.value < self.target else "submit"
        return info

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = int(self.np_random.integers(1, 5))
        self.value = self.t = 0
        return f"The counter shows 0. Your task is to: make the counter {self.target} and submit.", self._info()

    def step(self, action):
        if self.step_delay:
            time.sleep(self.step_delay)
        self.t += 1
        if action == "inc":
            self.value += 1
        elif action == "dec":
            self.value -= 1
        elif action == "submit":
            won = self.value == self.target
            return ("You win!" if won else "Wrong number."), float(won), True, False, self._info(won)
        elif action != "look":
            return "Nothing happens.", 0.0, False, self.t >= self.max_steps, self._info()
        return f"The counter shows {self.value}.", 0.0, False, self.t >= self.max_steps, self._info()


class NoInfoToyEnv(ToyEnv):
    """The same game with an empty ``info``: a third-party env that names no task."""

    def _info(self, won: bool = False) -> dict:
        return {}


if "Toy-v0" not in gym.registry:
    gym.register(id="Toy-v0", entry_point=ToyEnv)
    # Slow steps, so a test can kill a collection half-way.
    gym.register(id="ToySlow-v0", entry_point=ToyEnv, kwargs={"step_delay": 0.01})


"""Fake text envs for the env worker tests (tests/envs/test_workers.py), importable by a worker process.

Registered as ``worker_fakes:Fake-v0`` (this folder must be on ``sys.path``; a worker gets the parent's ``sys.path``).
The task: type ``inc`` until the counter reaches the seed's target, then ``submit``. Faults for the pool's recovery:

- ``delay``: seconds slept per step times ``seed % 4``, so replies come back out of order;
- ``crash_at=(seed, step)``: ``os._exit(3)`` at that step, once (``flag`` is the file that says it happened);
- ``hang_at=(seed, step)``: sleep an hour at that step, once (same ``flag``);
- ``raise_at=(seed, step)``: raise ``ValueError`` (an env bug, not a crash);
- ``noisy``: the first observation carries a fresh random number (an env a replay cannot reproduce).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import gymnasium as gym

from oreo_agents.envs.core import text_space


class FakeEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, expert: bool = True, max_steps: int = 8, delay: float = 0.0, crash_at: tuple | None = None,
                 hang_at: tuple | None = None, raise_at: tuple | None = None, flag: str | None = None,
                 noisy: bool = False, num_tasks: int = 5):
        self.observation_space, self.action_space = text_space(300), text_space(50)
        self.expert, self.max_steps, self.delay, self.noisy = expert, max_steps, delay, noisy
        self.crash_at, self.hang_at, self.raise_at = (tuple(x) if x else None for x in (crash_at, hang_at, raise_at))
        self.flag = flag
        self.tasks = [f"task-{i}" for i in range(num_tasks)]
        self.seed_ = self.target = self.value = self.t = 0

    def _info(self, won=False):
        info = {"task_id": f"{self.task}-to-{self.target}", "task_type": "fake", "goal": f"reach {self.target}",
                "split": "train", "won": won, "admissible_commands": ["inc", "dec", "submit"],
                "pid": os.getpid(), "torch_loaded": "torch" in sys.modules}
        if self.expert:
            info["expert_action"] = "inc" if self.value < self.target else "submit"
        return info

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_ = seed or 0
        self.task = self.tasks[(options or {}).get("task", 0) % len(self.tasks)]
        self.target = int(self.np_random.integers(1, 5))
        self.value = self.t = 0
        extra = f" ({os.urandom(4).hex()})" if self.noisy else ""
        return f"{self.task}: the counter shows 0; reach {self.target}{extra}.", self._info()

    def _once(self, at):
        if at is None or (self.seed_, self.t) != at or (self.flag and Path(self.flag).exists()):
            return False
        if self.flag:
            Path(self.flag).write_text("done")
        return True

    def step(self, action):
        self.t += 1
        time.sleep(self.delay * (self.seed_ % 4))
        if self._once(self.crash_at):
            os._exit(3)
        if self._once(self.hang_at):
            time.sleep(3600)
        if self.raise_at is not None and (self.seed_, self.t) == tuple(self.raise_at):
            raise ValueError(f"fake env bug at step {self.t}")
        if action == "submit":
            won = self.value == self.target
            return ("You win!" if won else "Wrong number."), float(won), True, False, self._info(won)
        self.value += {"inc": 1, "dec": -1}.get(action, 0)
        return f"The counter shows {self.value}.", 0.0, False, self.t >= self.max_steps, self._info()


gym.register("Fake-v0", entry_point="worker_fakes:FakeEnv")

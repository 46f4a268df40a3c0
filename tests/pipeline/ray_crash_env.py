"""A slow toy env (tests/recording/toy_env.py) whose process dies once, for the Ray resume tests.

``RayCrash-v0`` sleeps ``step_delay`` per step; when the file named by ``$OREO_TEST_CRASH_FLAG`` exists, the first
step of any process that claims it (an atomic rename, so exactly one process does) calls ``os._exit(1)``: a Ray actor
dying mid-collection. ``collect --env ray_crash_env:RayCrash-v0`` works once this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recording"))
from toy_env import ToyEnv  # noqa: E402

CRASH_FLAG = "OREO_TEST_CRASH_FLAG"


class RayCrashEnv(ToyEnv):
    def step(self, action):
        flag = os.environ.get(CRASH_FLAG)
        if flag and os.path.exists(flag):
            try:
                os.rename(flag, f"{flag}.taken-{os.getpid()}")
            except OSError:
                pass  # another process claimed it
            else:
                os._exit(1)
        return super().step(action)


if "RayCrash-v0" not in gym.registry:
    gym.register(id="RayCrash-v0", entry_point=RayCrashEnv, kwargs={"step_delay": 0.05})

"""A slow toy env (tests/recording/toy_env.py) whose process dies once, for the Ray resume tests.

``RayCrash-v0`` sleeps ``step_delay`` per step; when the file named by ``$OREO_TEST_CRASH_FLAG`` exists, the first
step of any process that claims it (an atomic rename, so exactly one process does) calls ``os._exit(1)``: a Ray actor
dying mid-collection. ``$OREO_TEST_HANG_FLAG`` does the same with a step that never returns: a hung actor. ``collect --env ray_crash_env:RayCrash-v0`` works once this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recording"))
from toy_env import ToyEnv  # noqa: E402

CRASH_FLAG = "OREO_TEST_CRASH_FLAG"
HANG_FLAG = "OREO_TEST_HANG_FLAG"  # the same, but the claiming process hangs in step() instead of dying


def _claim(variable: str) -> bool:
    flag = os.environ.get(variable)
    if not flag or not os.path.exists(flag):
        return False
    try:
        os.rename(flag, f"{flag}.taken-{os.getpid()}")
    except OSError:
        return False  # another process claimed it
    return True


class RayCrashEnv(ToyEnv):
    def step(self, action):
        if _claim(CRASH_FLAG):
            os._exit(1)
        if _claim(HANG_FLAG):
            time.sleep(10**6)  # no exception will ever end this: only --ray-stall-timeout does
        return super().step(action)


if "RayCrash-v0" not in gym.registry:
    gym.register(id="RayCrash-v0", entry_point=RayCrashEnv, kwargs={"step_delay": 0.05})

"""Hostile actions through every env: tried / survived / failed per env (issue #14). The unit tests run a few hundred
seeded actions per env (tests/envs/test_hostile_actions.py); this runs as many as you like.

    PYTHONPATH=. python benchmarks/fuzz_env_actions.py --actions 5000            # math and web shop
    PYTHONPATH=. python benchmarks/fuzz_env_actions.py --envs alfworld --actions 1000 --games-root envs/alfworld/embedded

An action survives when ``env.step`` returns without raising, the observation lies in the observation space, the reward
is a float and ``info`` has the keys every env promises (:func:`oreo_agents.envs.hostile.fuzz_env`).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import oreo_agents  # noqa: F401  (registers the ids)
from oreo_agents.envs.hostile import fuzz_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["math", "webshop"], choices=["math", "webshop", "alfworld"])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--games-root", default=None, help="ALFWorld embedded games root (generated when missing)")
    args = parser.parse_args()
    makers = {
        "math": lambda: gym.make("oreo_agents/Math-v0", num_tasks=100, verify_timeout=1),
        "webshop": lambda: gym.make("oreo_agents/WebShop-v0", num_products=200),
        "alfworld": lambda: gym.make("oreo_agents/ALFWorld-v0", games_root=args.games_root, num_tasks=12, max_steps=50),
    }
    for name in args.envs:
        env = makers[name]().unwrapped
        start = time.monotonic()
        report = fuzz_env(env, args.actions, seed=args.seed)
        print(f"{name}: tried {report.tried}, survived {report.survived}, failed {report.failed} "
              f"({time.monotonic() - start:.1f} s)")
        for action, error in report.failures:
            print(f"    {action}: {error}")
        env.close()


if __name__ == "__main__":
    main()

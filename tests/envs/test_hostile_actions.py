"""Every env survives hostile actions (issue #14): a cheap seeded fuzz pass per env; the long pass is `slow`.

``benchmarks/fuzz_env_actions.py`` runs the same loop with many more actions and prints tried / survived / failed.
"""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import oreo_agents  # noqa: F401  (registers the ids)
from oreo_agents.envs.hostile import fuzz_env, hostile_actions, hostile_math_answers


def _make(env_id, alfworld_root=None):
    kwargs = {
        "oreo_agents/Math-v0": dict(num_tasks=30, verify_timeout=1),
        "oreo_agents/WebShop-v0": dict(num_products=60),
        "oreo_agents/ALFWorld-v0": dict(games_root=alfworld_root, num_tasks=6, max_steps=40),
    }[env_id]
    return gym.make(env_id, **kwargs).unwrapped


@pytest.mark.parametrize("env_id,n", [("oreo_agents/Math-v0", 300), ("oreo_agents/WebShop-v0", 300)])
def test_env_survives_hostile_actions(env_id, n):
    report = fuzz_env(_make(env_id), n, seed=0)
    assert report.tried == n and report.failures == [], report.failures


def test_alfworld_survives_hostile_actions(alfworld_games_root):
    env = _make("oreo_agents/ALFWorld-v0", alfworld_games_root)
    report = fuzz_env(env, 120, seed=0)
    assert report.tried == 120 and report.failures == [], report.failures


def test_hostile_actions_are_deterministic_and_cover_the_fixed_list():
    a, b = hostile_actions(random.Random(3), 200), hostile_actions(random.Random(3), 200)
    assert [repr(x) for x in a] == [repr(x) for x in b]
    assert "#### $" in a and "𝟏𝟖" in a and None in a and any(isinstance(x, str) and len(x) >= 100_000 for x in a)


def test_every_hostile_math_answer_is_decided_quickly():
    from oreo_agents.envs.math.answers import check_answer, is_pathological

    answers = hostile_math_answers()
    assert len(answers) > 140
    # The costly ones never reach the CAS: no answer of the list that the pre-filter passes is a known budget-burner.
    for costly in ("{99999999}!", "\\Gamma(99999999)", "\\binom{99999999}{49999999}", "\\sum_{i=1}^{400} i^{400}"):
        assert is_pathological(costly)
    for answer in answers:
        if is_pathological(answer):
            assert check_answer(answer, "18", "boxed") is False


@pytest.mark.slow
@pytest.mark.parametrize("env_id,n", [("oreo_agents/Math-v0", 2000), ("oreo_agents/WebShop-v0", 2000)])
def test_env_survives_many_hostile_actions(env_id, n):
    report = fuzz_env(_make(env_id), n, seed=1)
    assert report.failures == [], report.failures

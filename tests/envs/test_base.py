"""The rules every env shares (``oreo_agents.envs.base.TextEnv``), checked on all three envs alike: one option
vocabulary, old spellings refused by name, ``reset(options={"task": ...})``, the step limit, and ResetNeeded."""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest

from oreo_agents.envs import make
from oreo_agents.errors import OreoError

FAMILIES = ("alfworld", "math", "webshop")
SMALL = {"math": dict(num_tasks=4), "webshop": dict(num_products=60)}
VOCABULARY = {"split", "data_path", "num_tasks", "max_steps", "expert", "seed", "render_mode"}


@pytest.fixture()
def build(request):
    """build(family, **options) -> the unwrapped env, small; ALFWorld on the session's test games."""
    made = []

    def _build(family, **options):
        base = dict(SMALL.get(family, {}))
        if family == "alfworld":
            base.update(games_root=request.getfixturevalue("alfworld_games_root"), num_tasks=6)
        env = make(family, **{**base, **options})
        made.append(env)
        return env.unwrapped

    yield _build
    for env in made:
        env.close()


def _classes():
    from oreo_agents.envs.alfworld.env import ALFWorldEnv
    from oreo_agents.envs.math.env import MathEnv
    from oreo_agents.envs.webshop.env import WebShopEnv

    return {"alfworld": ALFWorldEnv, "math": MathEnv, "webshop": WebShopEnv}


def test_every_env_speaks_the_shared_vocabulary():
    for family, cls in _classes().items():
        params = set(inspect.signature(cls).parameters)
        assert VOCABULARY <= params, (family, VOCABULARY - params)
    assert "task_types" in inspect.signature(_classes()["alfworld"]).parameters


@pytest.mark.parametrize(
    "family,old,new",
    [
        ("alfworld", "num_games", "num_tasks"),
        ("alfworld", "root", "games_root"),
        ("math", "num_problems", "num_tasks"),
        ("math", "path", "data_path"),
        ("webshop", "data_dir", "data_path"),
    ],
)
def test_old_spellings_fail_by_name_however_the_env_is_built(family, old, new):
    cls = _classes()[family]
    with pytest.raises(OreoError, match=f"^{old} was renamed {new} \\(env {cls.__name__}\\)$"):
        cls(**{old: 3})
    with pytest.raises(OreoError, match=f"^{old} was renamed {new} \\(env {cls.__name__}\\)$"):
        gym.make(f"oreo_agents/{ {'alfworld': 'ALFWorld', 'math': 'Math', 'webshop': 'WebShop'}[family]}-v0", **{old: 3})
    with pytest.raises(OreoError, match=f"^{old} was renamed {new} \\(env oreo_agents/"):
        make(family, **{old: 3})


@pytest.mark.parametrize("family", FAMILIES)
def test_task_option_picks_the_task_and_old_options_fail(build, family):
    env = build(family)
    first = env.reset(options={"task": 1})[1]["task_id"]
    assert env.reset(seed=5, options={"task": 1})[1]["task_id"] == first
    old = "game" if family != "math" else "problem"
    with pytest.raises(OreoError, match=f"reset option '{old}' was renamed 'task'"):
        env.reset(options={old: 1})
    with pytest.raises(OreoError, match="unknown reset option 'tsak'"):
        env.reset(options={"tsak": 1})


@pytest.mark.parametrize("family", FAMILIES)
def test_step_before_reset_raises_reset_needed(build, family):
    env = build(family)  # unwrapped: no Gymnasium OrderEnforcing in front
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        env.step("look")


@pytest.mark.parametrize("family", FAMILIES)
def test_truncated_exactly_at_max_steps_then_reset_needed(build, family):
    env = build(family, max_steps=2)
    env.reset(seed=0, options={"task": 0})
    first = env.step("nothing here")
    second = env.step("nothing here")
    assert (first[2], first[3], second[2], second[3]) == (False, False, False, True)
    assert second[4]["won"] is False and second[1] == 0.0
    with pytest.raises(gym.error.ResetNeeded, match="episode is over"):
        env.step("nothing here")
    env.reset(seed=0)  # a new episode counts from zero
    assert env.step("nothing here")[3] is False


def test_a_step_that_terminates_at_the_limit_is_not_truncated(build):
    # Gymnasium's TimeLimit would set truncated on this step too (gymnasium 1.4 wrappers/common.py); the envs do not.
    n = len(build("math").problems[0].steps)
    env = build("math", max_steps=n, expert=True)
    _, info = env.reset(options={"task": 0})
    for _ in range(n):
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
    assert (env.elapsed_steps, reward, terminated, truncated) == (n, 1.0, True, False)


def test_math_branches_keep_their_step_count(build):
    env = build("math", max_steps=3)
    env.reset(options={"task": 0})
    env.step("one")
    snapshot, twin = env.get_state(), env.clone()
    assert snapshot.num_steps == 1 and not snapshot.done
    assert env.step("two")[3] is False and env.step("three")[3] is True
    env.set_state(snapshot)  # back to one step taken: two more to the limit
    assert env.step("two")[3] is False and env.step("three")[3] is True
    assert twin.step("two")[3] is False and twin.step("three")[3] is True


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", None])
def test_max_steps_must_be_a_positive_integer(bad):
    with pytest.raises(OreoError, match="max_steps must be an integer >= 1"):
        _classes()["math"](num_tasks=2, max_steps=bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_num_tasks_sets_how_many_tasks_the_env_plays(build, family):
    env = build(family, num_tasks=3)
    from oreo_agents.envs.core import task_list

    assert task_list(env) == ("task", 3)

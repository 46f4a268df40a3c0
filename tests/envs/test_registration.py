"""``oreo_agents.envs.make`` and the lazy registration: ``import oreo_agents`` loads neither gymnasium nor numpy, and
``gym.make("oreo_agents/...")`` works whichever of the two is imported first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from oreo_agents.envs import ENV_FAMILIES, make, options_of, resolve
from oreo_agents.errors import OreoError

REPO = Path(__file__).resolve().parents[2]
TOY_DIR = REPO / "tests" / "recording"  # toy_env.py registers Toy-v0


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_importing_the_package_imports_neither_gymnasium_nor_numpy():
    proc = _python(
        "import sys, oreo_agents, oreo_agents.envs\n"
        "heavy = sorted(m for m in ('gymnasium', 'numpy', 'torch', 'textworld') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout


@pytest.mark.parametrize(
    "code",
    [
        "import oreo_agents\nimport gymnasium as gym\n",  # registered right after gymnasium's __init__ runs
        "import gymnasium as gym\nimport oreo_agents\n",  # registered at once
        "import oreo_agents\nimport gymnasium.spaces\nimport gymnasium as gym\n",  # a submodule first
        # a library probing what is installed does not use the hook up
        "import oreo_agents, importlib.util\nassert importlib.util.find_spec('gymnasium')\nimport gymnasium as gym\n",
    ],
    ids=["package-first", "gymnasium-first", "submodule-first", "probed-first"],
)
def test_gym_make_works_in_either_import_order(code):
    proc = _python(
        code + "import sys\n"
        "env = gym.make('oreo_agents/Math-v0', num_tasks=3, max_steps=4)\n"
        "obs, info = env.reset(seed=0)\n"
        "hooks = [f for f in sys.meta_path if type(f).__name__ == '_RegisterAfterGymnasium']\n"
        "print('OK', info['task_id'], type(gym.__spec__.loader).__name__, len(hooks))\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # gymnasium keeps its own loader, and the hook is gone once it has fired
    assert "OK " in proc.stdout and proc.stdout.split()[-2:] == ["SourceFileLoader", "0"], proc.stdout


def test_make_takes_a_family_an_id_or_module_and_id(monkeypatch):
    env = make("math", num_tasks=3, max_steps=5, data_path=None)  # None: the env's default
    assert env.spec.id == "oreo_agents/Math-v0" and env.unwrapped.max_steps == 5 and len(env.unwrapped.problems) == 3
    assert make("oreo_agents/WebShop-v0", num_products=60, num_tasks=2).unwrapped.task_ids.__len__() == 2
    monkeypatch.syspath_prepend(str(TOY_DIR))
    assert resolve("toy_env:Toy-v0") == "Toy-v0"
    toy = make("toy_env:Toy-v0", expert=True)
    assert toy.reset(seed=1)[1]["expert_action"] in ("inc", "submit")
    assert {resolve(f) for f in ENV_FAMILIES} == set(ENV_FAMILIES.values())


def test_make_refuses_unknown_envs_and_options_in_one_line():
    with pytest.raises(OreoError, match="^env nope: not an env family \\(alfworld, math, webshop\\)"):
        make("nope")
    with pytest.raises(OreoError, match="^task_types is not an option of env oreo_agents/WebShop-v0 \\(its options: "):
        make("webshop", task_types=["x"])
    with pytest.raises(OreoError, match="^num_games was renamed num_tasks \\(env oreo_agents/ALFWorld-v0\\)$"):
        make("alfworld", num_games=4)


def test_make_passes_gym_make_keywords_to_gym_make():
    env = make("math", num_tasks=2, max_steps=10, max_episode_steps=2)  # Gymnasium's TimeLimit on top
    env.reset(seed=0)
    assert env.step("a")[3] is False and env.step("b")[3] is True


def test_options_of_lists_constructor_options():
    for family in ("math", "webshop"):
        assert {"split", "data_path", "num_tasks", "max_steps", "expert", "seed"} <= options_of(family)
    assert "num_products" in options_of("webshop") and "source" in options_of("math")
    assert gym.spec("oreo_agents/Math-v0").entry_point == "oreo_agents.envs.math.env:MathEnv"

"""Game sources: the generator (determinism, solvability, splits), the expert fix, real ALFWorld data, bad paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import oreo_agents  # noqa: F401
from oreo_agents.envs.alfworld import games as G
from oreo_agents.envs.alfworld.generator import scene_numbers
from oreo_agents.errors import DataNotFoundError, OreoError

REPO = Path(__file__).resolve().parents[2]
REAL_GAME = REPO.parent / "shared" / "fixtures" / "alfworld_real_game"


def test_fixture_covers_all_task_types_and_manifest(alfworld_games_root):
    train = G.list_games(alfworld_games_root, "train")
    types = {json.loads((g.parent / "traj_data.json").read_text())["task_type"] for g in train}
    assert types == set(G.TASK_TYPES)
    manifest = json.loads((alfworld_games_root / G.MANIFEST).read_text())
    assert manifest["alfworld_version"] == G.engine_fingerprint()["alfworld_version"]
    assert manifest["grammar_sha256"] == G.engine_fingerprint()["grammar_sha256"]
    assert manifest["seed"] == 0 and manifest["counts"]["train/pick_two_obj_and_place"] == 1


def test_walkthroughs_replay_to_a_win_without_the_expert(alfworld_games_root):
    for game in G.list_games(alfworld_games_root, "train") + G.list_games(alfworld_games_root, "valid_unseen"):
        walkthrough = json.loads(game.read_text())["walkthrough"]
        env = gym.make("oreo_agents/ALFWorld-v0", games=[game])
        env.reset(seed=0)
        results = [env.step(a) for a in walkthrough]
        assert results[-1][2] and results[-1][1] == 1.0, game
        assert not any(r[2] for r in results[:-1])
        env.close()


def test_fixed_expert_solves_every_generated_game_within_50_steps(alfworld_games_root):
    games = G.list_games(alfworld_games_root, "train") + G.list_games(alfworld_games_root, "valid_unseen")
    env = gym.make("oreo_agents/ALFWorld-v0", games=games, expert=True, max_steps=50)
    for i in range(len(games)):
        _, info = env.reset(seed=i, options={"task": i})
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            done = terminated or truncated
        assert terminated and info["won"], games[i]
    env.close()


def test_unseen_split_uses_floor_plans_train_never_uses(alfworld_games_root):
    assert not set(scene_numbers("train")) & set(scene_numbers("valid_unseen"))
    assert set(scene_numbers("valid_seen")) == set(scene_numbers("train"))
    for game in G.list_games(alfworld_games_root, "valid_unseen"):
        scene = json.loads((game.parent / "traj_data.json").read_text())["scene"]["scene_num"]
        assert scene in scene_numbers("valid_unseen")


_GEN = (
    "import sys; from pathlib import Path; from oreo_agents.envs.alfworld.generator import generate_game; "
    "print(generate_game(Path(sys.argv[1]), 3, 'valid_unseen', 'pick_two_obj_and_place', 0)[0])"
)


def test_generator_is_deterministic_across_processes(tmp_path):
    outs = []
    for name in ("a", "b"):
        res = subprocess.run([sys.executable, "-c", _GEN, str(tmp_path / name)], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": name == "a" and "1" or "2", "PATH": "/usr/bin",
                                              "OREO_AGENTS_CACHE": str(tmp_path / "cache")})  # not the user's cache
        outs.append(Path(res.stdout.strip().splitlines()[-1]))
    rel = [o.relative_to(tmp_path / n) for o, n in zip(outs, "ab")]
    assert rel[0] == rel[1]
    for f in ("game.tw-pddl", "traj_data.json", "initial_state.pddl"):
        assert (outs[0].parent / f).read_bytes() == (outs[1].parent / f).read_bytes(), f


def test_ensure_games_extends_without_changing_and_checks_seed(alfworld_games_root):
    first = G.ensure_games(alfworld_games_root, "train", num_games=6, seed=0, progress=False)
    again = G.ensure_games(alfworld_games_root, "train", num_games=3, seed=0, progress=False)
    assert again == first[:3]
    with pytest.raises(OreoError, match="seed 0, not 5"):
        G.ensure_games(alfworld_games_root, "train", num_games=1, seed=5, progress=False)


@pytest.mark.skipif(not REAL_GAME.is_dir(), reason=f"real ALFWorld fixture not present at {REAL_GAME}")
def test_real_alfworld_game_plays_to_a_win_with_its_walkthrough():
    games = G.list_games(REAL_GAME, "train")
    assert len(games) == 1
    walkthrough = json.loads(games[0].read_text())["walkthrough"]
    env = gym.make("oreo_agents/ALFWorld-v0", data_path=REAL_GAME, split="train", expert=True)
    obs, info = env.reset(seed=0)
    assert info["goal"] == "put a hot potato in sinkbasin"
    assert info["task_type"] == "pick_heat_then_place_in_recep"
    for action in walkthrough:
        assert action in info["admissible_commands"]
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and reward == 1.0 and info["won"]
    env.close()


@pytest.mark.skipif(not REAL_GAME.is_dir(), reason=f"real ALFWorld fixture not present at {REAL_GAME}")
def test_alfworld_data_env_var_is_used(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", str(REAL_GAME))
    assert G.resolve_games("train") == G.list_games(REAL_GAME, "train")


def test_bad_data_path_names_the_path_and_the_way_out(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(DataNotFoundError) as err:
        gym.make("oreo_agents/ALFWorld-v0", data_path=missing)
    assert str(missing) in str(err.value) and "oreo-agents games generate" in str(err.value)
    (tmp_path / "json_2.1.1" / "train").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="valid_seen"):
        G.list_games(tmp_path, "valid_seen")
    with pytest.raises(DataNotFoundError, match="no playable train games"):
        gym.make("oreo_agents/ALFWorld-v0", data_path=tmp_path)
    with pytest.raises(DataNotFoundError, match="nope.tw-pddl"):
        gym.make("oreo_agents/ALFWorld-v0", games=[tmp_path / "nope.tw-pddl"])


def test_bad_split_and_task_type_are_one_line_errors():
    with pytest.raises(OreoError, match="unknown split 'test'"):
        G.check_split("test")
    with pytest.raises(OreoError, match="unknown task type 'pick_three'"):
        G.check_task_types(["pick_three"])

"""The ALFWorld env's Gymnasium contract: check_env, make / make_vec, seeding, reward and termination rules, bad actions."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import oreo_agents  # noqa: F401  (registers the ids)
from oreo_agents.envs.core import INFO_ADMISSIBLE, INFO_EXPERT, INFO_GOAL, INFO_SPLIT, INFO_TASK_ID, INFO_TASK_TYPE, INFO_WON

ENV_ID = "oreo_agents/ALFWorld-v0"


@pytest.fixture()
def make(alfworld_games_root):
    envs = []

    def _make(**kwargs):
        kwargs.setdefault("games_root", alfworld_games_root)
        kwargs.setdefault("num_tasks", 6)
        env = gym.make(ENV_ID, **kwargs)
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()


def test_check_env_passes(make):
    check_env(make().unwrapped, skip_render_check=True)


def test_reset_observation_and_info(make):
    obs, info = make(expert=True).reset(seed=0)
    assert "Welcome to TextWorld" not in obs  # banner stripped as ALFWorld agents do
    assert obs.startswith("You are in the middle of a room.")
    assert f"Your task is to: {info[INFO_GOAL]}." in obs
    for key in (INFO_ADMISSIBLE, INFO_TASK_ID, INFO_TASK_TYPE, INFO_GOAL, INFO_SPLIT, INFO_WON, INFO_EXPERT, "game_file"):
        assert key in info, key
    assert info[INFO_SPLIT] == "train" and info[INFO_WON] is False
    assert info[INFO_EXPERT] == "look" and "look" in info[INFO_ADMISSIBLE]
    assert INFO_EXPERT not in make().reset(seed=0)[1]  # no peeking unless asked


def _rollout(env, seed, n=8):
    obs, info = env.reset(seed=seed)
    trace = [obs]
    rng = env.unwrapped.np_random
    for _ in range(n):
        cmds = info[INFO_ADMISSIBLE]
        obs, *_, info = env.step(cmds[int(rng.integers(len(cmds)))])
        trace.append(obs)
    return info[INFO_TASK_ID], trace


def test_same_seed_same_episode(make):
    a, b = make(), make()
    assert _rollout(a, 7) == _rollout(b, 7)
    ids = {_rollout(a, s, n=0)[0] for s in range(12)}
    assert len(ids) > 1  # the seed picks among the games


def test_expert_wins_with_reward_one_on_the_winning_step_only(make):
    env = make(expert=True)
    obs, info = env.reset(options={"task": 0})
    rewards, terminated, truncated = [], False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(info[INFO_EXPERT])
        rewards.append(reward)
    assert terminated and not truncated and info[INFO_WON]
    assert rewards[-1] == 1.0 and set(rewards[:-1]) <= {0.0}


def test_truncated_exactly_at_step_limit(make):
    env = make(max_steps=3)
    env.reset(seed=0)
    flags = [env.step("look")[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


@pytest.mark.parametrize(
    "action",
    ["", "   ", "x" * 200_000, "prendre la pomme 🍎 ü", "go to\x00 fridge\x1b[31m 1\n\t", "\n\r\x7f", 12345, None],
)
def test_any_action_is_a_normal_step(make, action):
    env = make()
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs == "Nothing happens."
    assert reward == 0.0 and not terminated and not truncated
    assert env.observation_space.contains(obs)


def test_control_characters_are_sanitised_to_the_command(make):
    env = make()
    _, info = env.reset(options={"task": 0})
    command = next(c for c in info[INFO_ADMISSIBLE] if c.startswith("go to "))
    obs, *_ = env.step(command.replace(" ", "\n", 1) + "\x00")
    assert obs.startswith("You arrive at ")


def test_reset_picks_game_by_index_or_path(make, alfworld_games_root):
    env = make()
    _, info0 = env.reset(options={"task": 2})
    _, info1 = env.reset(options={"task": info0["game_file"]})
    assert info0[INFO_TASK_ID] == info1[INFO_TASK_ID]
    with pytest.raises(oreo_agents.errors.OreoError, match="out of range"):
        env.reset(options={"task": 99})


def test_render_ansi_returns_transcript(make):
    env = make(render_mode="ansi")
    obs, _ = env.reset(seed=0)
    env.step("inventory")
    text = env.render()
    assert text.startswith(obs) and "> inventory\nYou are not carrying anything." in text


def test_make_vec_sync(alfworld_games_root):
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", games_root=alfworld_games_root, num_tasks=6)
    try:
        obs, info = vec.reset(seed=0)
        assert len(obs) == 2 and all(o.startswith("You are in the middle") for o in obs)
        obs, reward, terminated, truncated, info = vec.step(["inventory", "look"])
        assert obs[0] == "You are not carrying anything." and list(reward) == [0.0, 0.0]
    finally:
        vec.close()


def test_task_type_filter(make):
    env = make(task_types=["pick_two_obj_and_place"], num_tasks=1)
    _, info = env.reset(seed=0)
    assert info[INFO_TASK_TYPE] == "pick_two_obj_and_place"


# --- issue #14 item 13: the expert is right from any state ------------------------------------------------------------
def _play_expert(env, game, extra=None, prefix=()):
    """Follow info["expert_action"] on one game, playing ``extra`` before every expert step and ``prefix`` first."""
    obs, info = env.reset(options={"task": game}, seed=game)
    terminated = truncated = False
    for action in prefix:
        obs, _, terminated, truncated, info = env.step(action)
    while not (terminated or truncated):
        if extra is not None:
            obs, _, terminated, truncated, info = env.step(extra)
            if terminated or truncated:
                break
        assert info[INFO_EXPERT] in info[INFO_ADMISSIBLE], info[INFO_EXPERT]
        obs, _, terminated, truncated, info = env.step(info[INFO_EXPERT])
    return info[INFO_WON]


@pytest.mark.parametrize("extra,games", [("look", range(6)), ("xyzzy", (0, 1, 5))])
def test_expert_wins_with_a_foreign_command_before_every_step(make, extra, games):
    # The handcoded expert tracked its plan from its own last action: with a `look` before every step it won 0 of 12
    # games (an invalid command: 7 of 12). The expert now replans from the game state once play leaves its script.
    env = make(expert=True, max_steps=60)
    assert [_play_expert(env, g, extra) for g in games] == [True] * len(games)


def test_expert_recovers_from_random_detours(make):
    env = make(expert=True, max_steps=60)
    for game in (0, 1):  # the small rooms: each detour costs one replan
        _, info = env.reset(options={"task": game}, seed=game)
        rng = env.unwrapped.np_random
        prefix = []
        for _ in range(4):  # random admissible commands: go somewhere, open things, pick something up
            cmd = info[INFO_ADMISSIBLE][int(rng.integers(len(info[INFO_ADMISSIBLE])))]
            prefix.append(cmd)
            _, _, terminated, _, info = env.step(cmd)
            if terminated:
                break
        assert _play_expert(env, game, prefix=prefix)


def test_plain_expert_play_stays_on_the_handcoded_script(make):
    env = make(expert=True)
    _play_expert(env, 0)
    assert env.unwrapped._expert.on_script and env.unwrapped._expert.replans == 0

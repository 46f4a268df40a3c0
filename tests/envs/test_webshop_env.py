"""WebShopEnv: Gymnasium contract, the expert, bad actions as normal steps, truncation, task selection."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import oreo_agents  # noqa: F401 - registers the ids
from oreo_agents.envs import ENV_FAMILIES, INFO_ADMISSIBLE, INFO_EXPERT, INFO_WON, register_envs
from oreo_agents.envs.webshop.env import WebShopEnv
from oreo_agents.errors import OreoError

register_envs()
N = 120  # a small shop keeps these tests fast; the generator covers every product type at this size


def run_expert(env: gym.Env, **reset_kwargs):
    obs, info = env.reset(**reset_kwargs)
    actions, reward, terminated, truncated = [], 0.0, False, False
    while not (terminated or truncated):
        action = info[INFO_EXPERT]
        assert action in info[INFO_ADMISSIBLE], (action, info[INFO_ADMISSIBLE])
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
    return actions, reward, terminated, info


def test_check_env_and_make_by_id():
    env = gym.make(ENV_FAMILIES["webshop"], num_products=N)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.startswith("WebShop\nInstruction: ") and info["goal"] in obs
    assert info["task_type"] in {"beauty", "grocery", "fashion", "furniture", "electronics"}
    assert info["split"] == "train" and info[INFO_WON] is False
    assert INFO_EXPERT not in info  # only with expert=True
    assert len(info[INFO_ADMISSIBLE]) == 1 and info[INFO_ADMISSIBLE][0].startswith("search[")


def test_reset_is_deterministic_and_task_option_picks_instruction():
    env = WebShopEnv(num_products=N)
    assert env.reset(seed=7)[0] == env.reset(seed=7)[0]
    obs, info = env.reset(options={"task": 2})
    assert info["task_id"] == env.task_ids[2]
    assert env.reset(options={"task": env.task_ids[5]})[1]["task_id"] == env.task_ids[5]
    with pytest.raises(OreoError, match="reset option 'game' was renamed 'task'"):  # the old ALFWorld-style alias
        env.reset(options={"game": 1})
    with pytest.raises(OreoError, match="out of range"):
        env.reset(options={"task": 10_000})
    test_id = WebShopEnv(split="test", num_products=N).task_ids[0]
    with pytest.raises(OreoError, match="split 'test'"):
        env.reset(options={"task": test_id})


@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_wins_every_generated_instruction(split):
    env = WebShopEnv(split=split, num_products=N, expert=True)
    lengths = []
    for i in range(len(env.tasks)):
        actions, reward, terminated, info = run_expert(env, options={"task": i})
        assert terminated and reward == 1.0 and info[INFO_WON], (env.tasks[i].text, actions)
        assert info["reward_details"]["price_ok"] and info[INFO_EXPERT] is None
        lengths.append(len(actions))
    assert max(lengths) < env.max_steps and min(lengths) >= 3  # search, click item, buy (plus options)


def test_bad_actions_are_normal_steps_with_feedback():
    env = WebShopEnv(num_products=N, expert=True)
    obs0, info = env.reset(seed=1)
    for bad, reason in [
        ("search[red", "Invalid action"),
        ("buy it now", "Invalid action"),
        ("click[buy now]", "Unknown button"),
        ("search[]", "Empty search"),
        ("\x00\n", "Invalid action"),
    ]:
        obs, reward, terminated, truncated, info = env.step(bad)
        assert obs.startswith(reason) and obs.endswith(obs0), (bad, obs)
        assert (reward, terminated, truncated, info["valid_action"], info["page"]) == (0.0, False, False, False, "search")
    obs, *_, info = env.step(info[INFO_EXPERT])
    assert info["page"] == "results" and info["valid_action"]
    obs, *_ = env.step("search[lipstick]")
    assert obs.startswith("There is no search box on this page")
    obs, *_ = env.step("click[b0zzzzzzzz]")
    assert obs.startswith("Unknown button 'b0zzzzzzzz'") and "clickable here: back to search" in obs
    # Clicks are case-insensitive, and the expert still finishes after the detour.
    _, reward, terminated, *_ = run_expert_from(env, info)
    assert terminated and reward == 1.0


def run_expert_from(env, info):
    while True:
        obs, reward, terminated, truncated, info = env.step(info[INFO_EXPERT].upper().replace("CLICK", "click"))
        if terminated or truncated:
            return obs, reward, terminated, truncated, info


def test_pages_pagination_options_details_and_wrong_purchase():
    env = WebShopEnv(num_products=N)
    task = next(i for i, t in enumerate(env.tasks) if t.category != "beauty")
    env.reset(options={"task": task})
    obs, *_, info = env.step("search[black]")  # a colour many items offer: several result pages
    assert "page 1 of 5 (total results: 4" in obs  # only items that hold the word are results
    assert "click[next >]" in info[INFO_ADMISSIBLE] and "click[< prev]" not in info[INFO_ADMISSIBLE]
    obs, *_, info = env.step("click[next >]")
    assert "page 2 of 5" in obs and "click[< prev]" in info[INFO_ADMISSIBLE]
    obs, *_, info = env.step("click[< prev]")
    assert "page 1 of 5" in obs
    obs, *_, info = env.step("click[back to search]")
    assert info["page"] == "search"
    obs, *_, info = env.step("search[lipstick]")
    assert "Lipstick" in obs.splitlines()[4]
    first_item = next(a for a in info[INFO_ADMISSIBLE] if a.startswith("click[b0"))
    obs, *_, info = env.step(first_item)
    assert info["page"] == "item" and "click[buy now]" in info[INFO_ADMISSIBLE]
    option = next(a for a in info[INFO_ADMISSIBLE] if a not in {
        "click[back to search]", "click[< prev]", "click[description]", "click[features]", "click[buy now]"})
    obs, *_ = env.step(option)
    assert f"(selected: {option[6:-1]})" in obs
    obs, *_, info = env.step("click[features]")
    assert info["page"] == "detail" and "Features of" in obs
    obs, *_, info = env.step("click[< prev]")
    assert info["page"] == "item" and f"(selected: {option[6:-1]})" in obs
    obs, reward, terminated, truncated, info = env.step("click[buy now]")
    # A lipstick for a non-beauty instruction: no shared type, so WebShop's type factor zeroes the reward.
    assert terminated and not truncated and reward == 0.0 and not info[INFO_WON]
    assert info["reward_details"]["r_type"] == 0.0
    assert "Your score" in obs
    with pytest.raises(gym.error.ResetNeeded):
        env.step("click[buy now]")


def test_truncated_at_max_steps_with_zero_reward():
    env = WebShopEnv(num_products=N, max_steps=3)
    env.reset(seed=0)
    results = [env.step("click[nothing]") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and all(r[1] == 0.0 and not r[2] for r in results)


def test_bad_constructor_arguments_are_one_line_errors():
    with pytest.raises(OreoError, match="max_steps"):
        WebShopEnv(max_steps=0, num_products=N)
    with pytest.raises(OreoError, match="split 'dev'"):
        WebShopEnv(split="dev", num_products=N)
    with pytest.raises(OreoError, match="num_products"):
        WebShopEnv(num_products=3)
    with pytest.raises(OreoError, match="data_dir was renamed data_path"):
        WebShopEnv(data_dir="x")


def test_num_tasks_keeps_the_first_instructions_of_the_split():
    full, cut = WebShopEnv(num_products=N), WebShopEnv(num_products=N, num_tasks=5)
    assert cut.task_ids == full.task_ids[:5]
    assert cut.reset(options={"task": full.task_ids[4]})[1]["task_id"] == full.task_ids[4]
    with pytest.raises(OreoError, match="not among this env's 5 tasks"):
        cut.reset(options={"task": full.task_ids[5]})
    with pytest.raises(OreoError, match=f"num_tasks={len(full.tasks) + 1}: split 'train' .* holds {len(full.tasks)}"):
        WebShopEnv(num_products=N, num_tasks=len(full.tasks) + 1)


def test_truncation_ends_the_episode():
    env = WebShopEnv(num_products=N, max_steps=1)
    env.reset(seed=0)
    assert env.step("click[nothing]")[3]
    with pytest.raises(gym.error.ResetNeeded):  # used to step on past the limit
        env.step("click[nothing]")

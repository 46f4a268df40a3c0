"""MathEnv episode rules, info keys, registration / check_env, and state branching."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import oreo_agents  # noqa: F401  (registers the ids)
from oreo_agents.envs.core import INFO_ADMISSIBLE, INFO_EXPERT, INFO_GOAL, INFO_SPLIT, INFO_TASK_ID, INFO_TASK_TYPE
from oreo_agents.envs.math.env import MathEnv, MathState
from oreo_agents.envs.math.problems import Problem, expert_steps, math_problems
from oreo_agents.errors import OreoError
from oreo_agents.prompting import MATH_FORMAT


def make(**kwargs) -> MathEnv:
    kwargs.setdefault("num_tasks", 30)
    return MathEnv(**kwargs)


def play(env: MathEnv, actions):
    out = None
    for action in actions:
        out = env.step(action)
        if out[2] or out[3]:
            break
    return out


@pytest.mark.parametrize("difficulty", [1, 3, 5])
def test_check_env_is_clean(difficulty):
    env = gym.make("oreo_agents/Math-v0", difficulty=difficulty, num_tasks=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_check_env_with_ansi_render():
    env = gym.make("oreo_agents/Math-v0", num_tasks=5, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=1)
    assert env.render().startswith(env.unwrapped.problem.question)


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_expert_replay_wins(difficulty):
    env = make(difficulty=difficulty, expert=True, num_tasks=8)
    for k in range(8):
        obs, info = env.reset(options={"task": k})
        for _ in range(env.max_steps):
            obs, reward, terminated, truncated, info = env.step(info[INFO_EXPERT])
            if terminated or truncated:
                break
        assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True)
        assert info["parsed_answer"] == env.problem.answer
        assert obs == "\n".join([env.problem.question, *expert_steps(env.problem)])


def test_observation_is_problem_then_steps_and_rewards_are_sparse():
    env = make(difficulty=2)
    obs, info = env.reset(seed=3)
    assert obs == info[INFO_GOAL] == env.problem.question
    obs, reward, terminated, truncated, _ = env.step("I think about it.")
    assert obs == env.problem.question + "\nI think about it."
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_wrong_answer_terminates_with_zero_reward():
    env = make()
    _, info = env.reset(options={"task": 0})
    wrong = str(int(env.problem.answer) + 1)
    obs, reward, terminated, truncated, info = env.step(f"#### {wrong}")
    assert (reward, terminated, truncated, info["won"], info["parsed_answer"]) == (0.0, True, False, False, wrong)


@pytest.mark.parametrize("final", ["####", "#### lots", "#### 18 or 19"])
def test_malformed_final_answer_ends_with_zero(final):
    env = make()
    env.reset(options={"task": 0})
    _, reward, terminated, _, info = env.step(final)
    assert (reward, terminated, info["won"]) == (0.0, True, False)


def test_truncated_at_max_steps():
    env = make(max_steps=3)
    env.reset(seed=0)
    for k in range(3):
        _, reward, terminated, truncated, info = env.step(f"step {k}")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["parsed_answer"] is None
    with pytest.raises(gym.error.ResetNeeded):
        env.step("one more")


def test_step_before_reset_and_after_end_raise():
    env = make()
    with pytest.raises(gym.error.ResetNeeded):
        env.step("hello")
    env.reset(seed=0)
    env.step("#### 1")
    with pytest.raises(gym.error.ResetNeeded):
        env.step("#### 2")


def test_only_first_non_blank_line_is_a_step():
    env = make(expert=True)
    _, info = env.reset(options={"task": 0})
    first = info[INFO_EXPERT]
    obs, _, terminated, _, info = env.step(f"\n  {first}\n#### {env.problem.answer}\n")
    assert not terminated  # the final answer on the second line was ignored
    assert obs.splitlines()[-1] == first
    _, _, terminated, _, _ = env.step(123)  # non-strings become text; a step like any other
    assert not terminated


def test_blank_step_counts_but_adds_nothing():
    env = make(max_steps=2)
    obs0, _ = env.reset(seed=0)
    obs1, _, _, truncated, _ = env.step("   \n\n")
    assert obs1 == obs0 and not truncated
    assert env.step("")[3]  # second step hits the limit


def test_info_keys_and_opt_in_secrets():
    env = make(difficulty=2)
    _, info = env.reset(seed=0)
    assert info[INFO_ADMISSIBLE] == [] and info[INFO_SPLIT] == "train"
    assert info[INFO_TASK_TYPE] == "arith-L2" and info[INFO_TASK_ID] == env.problem.id
    assert INFO_EXPERT not in info and "reference_answer" not in info and "parsed_answer" not in info
    env = make(difficulty=2, expert=True, reveal_answer=True, split="test")
    _, info = env.reset(seed=0)
    assert info["reference_answer"] == env.problem.answer and info[INFO_SPLIT] == "test"
    assert info[INFO_EXPERT] == expert_steps(env.problem)[0]


def test_expert_finishes_after_the_agent_goes_off_script():
    env = make(difficulty=1, expert=True)
    _, info = env.reset(options={"task": 1})
    for _ in range(3):
        _, _, _, _, info = env.step("something else")
    assert info[INFO_EXPERT] == f"#### {env.problem.answer}"


def test_reset_by_index_id_and_seed():
    env = make()
    _, info = env.reset(options={"task": 4})
    pid = info[INFO_TASK_ID]
    assert env.reset(options={"task": pid})[1][INFO_TASK_ID] == pid
    assert env.reset(options={"task": -1})[1][INFO_TASK_ID] == env.problems[-1].id
    assert env.reset(seed=7)[0] == env.reset(seed=7)[0]
    with pytest.raises(OreoError, match="reset option task='nope': no such problem"):
        env.reset(options={"task": "nope"})
    with pytest.raises(OreoError, match="task=30: no such problem"):
        env.reset(options={"task": 30})


def test_bad_kwargs_are_one_line_errors():
    with pytest.raises(OreoError, match="max_steps"):
        make(max_steps=0)
    with pytest.raises(OreoError, match="difficulty"):
        make(difficulty=9)
    with pytest.raises(OreoError, match="unknown math source 'gsm9k'"):
        make(source="gsm9k")


def test_clone_is_independent_and_shares_problems():
    env = make(difficulty=3, expert=True)
    _, info = env.reset(options={"task": 2})
    obs, *_ , info = env.step(info[INFO_EXPERT])
    twin = env.clone()
    assert twin.problems is env.problems and twin.get_state() == env.get_state()
    twin_obs, *_ = twin.step("#### -1")
    assert twin.get_state().done and not env.get_state().done
    assert env._observation() == obs  # the original did not move
    replay = [info[INFO_EXPERT]]
    while True:
        obs, reward, terminated, truncated, info = env.step(replay[-1])
        if terminated or truncated:
            break
        replay.append(info[INFO_EXPERT])
    assert reward == 1.0 and twin.get_state().won is False
    assert twin_obs.endswith("#### -1") and not obs.endswith("#### -1")


def test_clone_rng_is_a_copy():
    env = make()
    env.reset(seed=11)
    twin = env.clone()
    assert [env.reset()[1][INFO_TASK_ID] for _ in range(5)] == [twin.reset()[1][INFO_TASK_ID] for _ in range(5)]


def test_get_state_set_state_round_trip_and_beam_like_branching():
    env = make(difficulty=2, expert=True)
    _, info = env.reset(options={"task": 5})
    first = info[INFO_EXPERT]
    env.step(first)
    snapshot = env.get_state()
    assert isinstance(snapshot, MathState) and snapshot.steps == (first,)
    # branch B ways from one snapshot on one env, as a beam search does
    ends = []
    for guess in ("#### 0", f"#### {env.problem.answer}", "a detour"):
        env.set_state(snapshot)
        _, reward, terminated, _, _ = env.step(guess)
        ends.append((reward, terminated))
    assert ends == [(0.0, True), (1.0, True), (0.0, False)]
    env.set_state(snapshot)
    assert env.get_state() is snapshot and env._observation().endswith(first)
    with pytest.raises(OreoError, match="set_state"):
        env.set_state("not a state")


def test_boxed_problems_end_on_boxed_or_hashes():
    rows = [{"problem": "What is $1/2 + 0$?", "solution": "Adding zero: $\\frac12$.\nSo $\\boxed{\\frac{1}{2}}$.",
             "level": "Level 1", "type": "Prealgebra"}]
    problems = math_problems(rows, split="test", origin="inline")
    env = MathEnv(problems=problems, source="math", expert=True)
    for final, won in [("The answer is $\\boxed{0.5}$.", True), ("#### \\dfrac{1}{2}", True), ("\\boxed{2}", False)]:
        _, info = env.reset(options={"task": 0})
        assert info[INFO_TASK_TYPE] == "math-prealgebra-L1"
        _, reward, terminated, _, info = env.step(final)
        assert (terminated, info["won"], reward) == (True, won, float(won))


def test_prompt_format_renders_the_problem_once():
    env = make()
    obs, info = env.reset(seed=0)
    prompt = MATH_FORMAT.prompt_text(info[INFO_GOAL], obs)
    assert prompt.count(env.problem.question) == 1 and prompt.endswith("Answer:\n")


def test_problems_argument_accepts_custom_problems():
    p = Problem(id="p1", question="What is 2 + 2?", answer="4", steps=("2 + 2 = 4.", "#### 4"), task_type="custom")
    env = MathEnv(problems=[p])
    _, info = env.reset()
    assert info[INFO_TASK_ID] == "p1"
    assert env.step("#### 4.0")[1] == 1.0


# --- issue #14 items 2 and 14 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("final", ["#### $", "#### €", "#### .", "#### -$", "#### \\$"])
def test_bare_currency_or_punctuation_answer_ends_the_episode_with_zero(final):
    env = make(expert=True)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(final)  # IndexError before the fix
    assert terminated and reward == 0.0 and info["won"] is False


def test_astral_characters_are_replaced_so_observations_stay_in_the_space():
    env = make()
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step("I think 🤔 the answer is 𝟏𝟖")
    assert env.observation_space.contains(obs)  # U+1F914 and U+1D7CF lie outside the space's BMP charset
    assert obs.splitlines()[-1] == "I think \ufffd the answer is \ufffd\ufffd"


@pytest.mark.parametrize("split", ["train", "test"])
def test_default_options_work_on_every_split(split):
    # Level 1's test split holds ~720 questions; the default size (1000) used to be an error there.
    env = gym.make("oreo_agents/Math-v0", split=split)
    obs, info = env.reset(seed=0)
    assert info["split"] == split and 500 < len(env.unwrapped.problems) <= 1000
    with pytest.raises(OreoError, match="more than level 1 holds"):
        MathEnv(split="test", num_tasks=1000)  # an explicit size the split cannot give is still an error

"""RecordEpisode on a text env: what each step records, how episodes end, and that it works on envs that are not ours."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import toy_env  # noqa: F401  (registers Toy-v0)

from oreo_agents.turns import Decision
from oreo_agents.recording import INFO_EPISODE_ID, EpisodeMetadata, RecordEpisode


def _play(env, actions):
    for a in actions:
        out = env.step(a)
        if out[2] or out[3]:
            return out
    return out


def test_expert_episode_is_recorded_with_task_fields():
    finished = []
    env = RecordEpisode(gym.make("Toy-v0", expert=True), metadata=EpisodeMetadata(policy="expert"), on_episode=finished.append)
    obs, info = env.reset(seed=3)
    assert info[INFO_EPISODE_ID] == env.episode.episode_id
    while True:
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            break
    [record] = finished
    row = record.to_row()
    assert row["env_id"] == "Toy-v0" and row["task_id"] == info["task_id"] and row["split"] == "train"
    assert row["task_type"] in {"small", "large"} and "submit" in row["goal"]
    assert row["initial_observation"].startswith("The counter shows 0")
    assert row["success"] and row["total_reward"] == 1.0 and row["termination"] == "success"
    assert row["length"] == len(row["steps"]) and row["steps"][-1]["action"] == "submit"
    assert row["steps"][-1]["reply"] == "submit" and math.isnan(row["steps"][0]["value"])
    assert row["metadata"]["policy"] == "expert"
    assert env.episode is None and env.last_episode is record


def test_failure_and_truncation_terminations():
    env = RecordEpisode(gym.make("Toy-v0", max_steps=3))
    env.reset(seed=0)
    _play(env, ["dec", "submit"])
    assert env.last_episode.termination == "failure" and not env.last_episode.success
    env.reset(seed=0)
    _play(env, ["look", "look", "look"])
    assert env.last_episode.termination == "truncated" and env.last_episode.to_row()["length"] == 3


def test_step_with_records_model_extras_exactly():
    env = RecordEpisode(gym.make("Toy-v0"))
    env.reset(seed=0)
    d = Decision(action="inc", reply="inc.", prompt_token_ids=[5, 6, 7], completion_token_ids=[9, 2],
                 completion_logprobs=[-0.5, -0.25], value=0.75)
    env.step_with(d)
    step = env.episode.steps[0].to_row()
    assert step["action"] == "inc" and step["reply"] == "inc."
    assert step["prompt_token_ids"] == [5, 6, 7] and step["completion_token_ids"] == [9, 2]
    assert step["completion_logprobs"] == [-0.5, -0.25] and step["value"] == 0.75


def test_unparseable_reply_ends_episode_without_stepping_env():
    env = RecordEpisode(gym.make("Toy-v0"))
    obs0, _ = env.reset(seed=0)
    env.step("inc")
    inner_steps = env.unwrapped.t
    obs, reward, terminated, truncated, _ = env.step_with(Decision(action=None, reply="I think...", completion_token_ids=[4]))
    assert env.unwrapped.t == inner_steps  # the env never saw the reply
    assert terminated and not truncated and reward == 0.0 and obs == "The counter shows 1."
    record = env.last_episode
    assert record.termination == "invalid_action" and record.steps[-1].reply == "I think..." and record.steps[-1].action == ""
    with pytest.raises(gym.error.ResetNeeded):
        env.step("inc")


def test_aborted_decision_and_reset_mid_episode_end_as_aborted():
    env = RecordEpisode(gym.make("Toy-v0"))
    env.reset(seed=0)
    env.step("inc")
    *_, truncated, _ = env.step_with(Decision(action=None, aborted=True, prompt_token_ids=[1] * 10))
    assert truncated and env.last_episode.termination == "aborted" and len(env.last_episode.steps) == 1
    env.reset(seed=1)
    env.step("inc")
    env.reset(seed=2)  # the running episode is kept, marked aborted
    assert env.last_episode.termination == "aborted" and len(env.last_episode.steps) == 1


def test_env_without_task_info_gets_stable_fallback_ids():
    env = RecordEpisode(toy_env.NoInfoToyEnv())
    env.reset(seed=5)
    _play(env, ["submit"])
    a = env.last_episode
    env.reset(seed=5)
    _play(env, ["submit"])
    b = env.last_episode
    assert a.env_id == "NoInfoToyEnv" and a.task_id.startswith("obs-") and a.task_id == b.task_id
    assert a.split == "" and a.task_type == ""
    # Same task, same metadata, same sample index -> same deterministic id; another sample index -> another id.
    env.reset(seed=5, sample_index=1)
    assert env.episode.episode_id != a.episode_id
    env.reset(seed=5, episode_id="given")
    assert env.episode.episode_id == "given"

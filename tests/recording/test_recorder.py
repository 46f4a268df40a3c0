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


def test_decision_set_before_step_records_model_extras_exactly():
    env = RecordEpisode(gym.make("Toy-v0"))
    env.reset(seed=0)
    env.decision = Decision(action="inc", reply="inc.", prompt_token_ids=[5, 6, 7], completion_token_ids=[9, 2],
                            completion_logprobs=[-0.5, -0.25], value=0.75)
    env.step("inc")
    env.step("inc")  # the decision is used once: the next plain step records the action alone
    step, plain = (s.to_row() for s in env.episode.steps)
    assert step["action"] == "inc" and step["reply"] == "inc."
    assert step["prompt_token_ids"] == [5, 6, 7] and step["completion_token_ids"] == [9, 2]
    assert step["completion_logprobs"] == [-0.5, -0.25] and step["value"] == 0.75
    assert plain["reply"] == "inc" and plain["completion_token_ids"] == [] and math.isnan(plain["value"])


def test_reset_and_step_keep_gymnasium_signatures_so_outer_wrappers_forward_them():
    """An outer wrapper (here Gymnasium's own) forwards reset/step, and reaches the recorder's attributes."""
    import inspect

    assert list(inspect.signature(RecordEpisode.reset).parameters) == ["self", "seed", "options"]
    assert list(inspect.signature(RecordEpisode.step).parameters) == ["self", "action"]
    finished = []
    env = gym.wrappers.TimeLimit(RecordEpisode(gym.make("Toy-v0"), on_episode=finished.append), max_episode_steps=2)
    env.set_wrapper_attr("next_episode_id", "outer")
    obs, info = env.reset(seed=0)
    assert info[INFO_EPISODE_ID] == "outer"
    env.set_wrapper_attr("decision", Decision(action="inc", reply="inc!", value=0.5))
    env.step("inc")
    env.step("inc")
    assert env.get_wrapper_attr("episode").steps[0].reply == "inc!"  # the inner record is still running (limit 2)


def test_abort_and_reset_mid_episode_end_as_aborted():
    env = RecordEpisode(gym.make("Toy-v0"))
    env.reset(seed=0)
    env.step("inc")
    assert env.abort().termination == "aborted" and len(env.last_episode.steps) == 1
    with pytest.raises(gym.error.ResetNeeded):
        env.step("inc")
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
    env.sample_index = 1
    env.reset(seed=5)
    assert env.episode.episode_id != a.episode_id
    env.next_episode_id = "given"
    env.reset(seed=5)
    assert env.episode.episode_id == "given"
    env.reset(seed=5)  # next_episode_id is used once
    assert env.episode.episode_id not in ("given", a.episode_id)

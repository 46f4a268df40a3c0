"""Fixtures for the recording tests: the toy text env (tests/recording/toy_env.py) and small recorded datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def toy_dataset(tmp_path):
    """A recorded noisy-expert dataset on the toy env: 40 episodes, 2 samples per task, successes and failures."""
    import gymnasium as gym
    import toy_env  # noqa: F401  (registers Toy-v0)

    from oreo_agents.policies import make_policy
    from oreo_agents.pipeline.collect import collect_episodes
    from oreo_agents.recording import EpisodeMetadata, ShardWriter

    out = tmp_path / "toy"
    with ShardWriter(out, {"policy": "noisy-expert", "eps": 0.4}, shard_size=16) as writer:
        collect_episodes(
            lambda: gym.make("Toy-v0", expert=True), make_policy("noisy-expert", eps=0.4, seed=0), writer,
            episodes=40, num_envs=4, samples_per_task=4, seed=0, metadata=EpisodeMetadata(policy="noisy-expert"),
        )
    return out

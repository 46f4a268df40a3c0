"""The collection loop: a deterministic plan, batched policy calls, results independent of batching, resume."""

from __future__ import annotations

import gymnasium as gym
import pytest
import toy_env  # noqa: F401  (registers Toy-v0)

from oreo_agents.errors import OreoError
from oreo_agents.policies import make_policy
from oreo_agents.pipeline.collect import collect_episodes
from oreo_agents.recording import EpisodeMetadata, ShardWriter, load_episodes, plan_episodes


class CountingPolicy:
    """Wraps a policy and records the batch size of every act() call."""

    def __init__(self, inner):
        self.inner, self.name, self.batches = inner, inner.name, []

    def act(self, turns):
        self.batches.append(len(turns))
        return self.inner.act(turns)

    def metadata(self):
        return self.inner.metadata()


def _collect(out, *, episodes, num_envs, policy=None, samples_per_task=2, seed=0, settings=None):
    policy = policy or make_policy("random", seed=seed)
    with ShardWriter(out, settings or {"seed": seed}, shard_size=5) as writer:
        return collect_episodes(
            lambda: gym.make("Toy-v0", expert=True), policy, writer, episodes=episodes, num_envs=num_envs,
            samples_per_task=samples_per_task, seed=seed, metadata=EpisodeMetadata(policy=policy.name, seed=seed),
        )


def _by_id(path):
    return {r["episode_id"]: r for r in load_episodes(path)}


def test_plan_is_deterministic_and_prefix_stable():
    small = list(plan_episodes(episodes=6, samples_per_task=3, seed=4, key="k"))
    big = list(plan_episodes(episodes=12, samples_per_task=3, seed=4, key="k"))
    assert big[:6] == small
    assert [(p.task_slot, p.sample_index, p.reset_seed) for p in small[:4]] == [(0, 0, 4), (0, 1, 4), (0, 2, 4), (1, 0, 5)]
    assert len({p.episode_id for p in big}) == 12
    other = list(plan_episodes(episodes=6, samples_per_task=3, seed=5, key="k"))
    assert not {p.episode_id for p in other} & {p.episode_id for p in small}


def test_one_batched_act_per_round_over_running_envs(tmp_path):
    policy = CountingPolicy(make_policy("expert"))
    summary = _collect(tmp_path / "ds", episodes=10, num_envs=4, policy=policy)
    assert summary.recorded == 10 and summary.success_rate == 1.0
    assert max(policy.batches) == 4 and policy.batches[0] == 4
    assert sum(policy.batches) == summary.steps  # one decision per env step, nothing else
    assert len(policy.batches) < summary.steps  # i.e. batched, not one call per step


def test_samples_of_a_task_play_the_same_task(tmp_path):
    _collect(tmp_path / "ds", episodes=12, num_envs=3, samples_per_task=3)
    rows = load_episodes(tmp_path / "ds")
    import json

    by_slot = {}
    for r in rows:
        slot = json.loads(r["metadata"]["extra"])["task_slot"]
        by_slot.setdefault(slot, set()).add(r["task_id"])
    assert len(by_slot) == 4 and all(len(v) == 1 for v in by_slot.values())


def test_batching_does_not_change_episodes(tmp_path):
    _collect(tmp_path / "one", episodes=12, num_envs=1)
    _collect(tmp_path / "four", episodes=12, num_envs=4)
    one, four = _by_id(tmp_path / "one"), _by_id(tmp_path / "four")
    assert one.keys() == four.keys()
    for episode_id, row in one.items():
        assert [s["action"] for s in row["steps"]] == [s["action"] for s in four[episode_id]["steps"]]


def test_resume_extends_without_duplicates(tmp_path):
    first = _collect(tmp_path / "ds", episodes=8, num_envs=2)
    second = _collect(tmp_path / "ds", episodes=20, num_envs=3)
    assert (first.recorded, second.skipped, second.recorded) == (8, 8, 12)
    ids = load_episodes(tmp_path / "ds")["episode_id"]
    assert len(ids) == len(set(ids)) == 20
    third = _collect(tmp_path / "ds", episodes=20, num_envs=3)
    assert third.recorded == 0 and third.skipped == 20


def test_policy_errors_surface(tmp_path):
    class Broken(CountingPolicy):
        def act(self, turns):
            return []

    with pytest.raises(OreoError, match="returned 0 decisions for 2 turns"):
        _collect(tmp_path / "ds", episodes=2, num_envs=2, policy=Broken(make_policy("expert")))


def test_cooperating_collectors_with_disjoint_shares_fill_one_folder(tmp_path):
    """Three collectors, each with its share of the plan and its own share writer, open at once on one folder: the
    union is the plan exactly once, episode for episode what one collector writes, and a whole-plan resume has
    nothing left to do."""
    policy = make_policy("noisy-expert", eps=0.5, seed=0)
    writers = [ShardWriter(tmp_path / "ds", {"seed": 0}, shard_size=3, share=f"{i}-of-3") for i in range(3)]
    for i, writer in enumerate(writers):
        summary = collect_episodes(
            lambda: gym.make("Toy-v0", expert=True), policy, writer, episodes=20, num_envs=2, samples_per_task=2,
            seed=0, metadata=EpisodeMetadata(policy=policy.name), share=(i, 3),
        )
        assert summary.planned == len(range(i, 20, 3))
    for writer in writers:
        writer.close()
    ids = load_episodes(tmp_path / "ds")["episode_id"]
    assert len(ids) == len(set(ids)) == 20
    _collect(tmp_path / "alone", episodes=20, num_envs=2, policy=make_policy("noisy-expert", eps=0.5, seed=0))
    alone, shared = _by_id(tmp_path / "alone"), _by_id(tmp_path / "ds")
    assert {k: [s["action"] for s in r["steps"]] for k, r in alone.items()} == {
        k: [s["action"] for s in r["steps"]] for k, r in shared.items()}
    again = _collect(tmp_path / "ds", episodes=20, num_envs=2, policy=make_policy("noisy-expert", eps=0.5, seed=0))
    assert again.recorded == 0 and again.skipped == 20
    with pytest.raises(OreoError, match="share must be"):
        collect_episodes(lambda: gym.make("Toy-v0"), policy, ShardWriter(tmp_path / "x", {}), episodes=1, share=(3, 3))

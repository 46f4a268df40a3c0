"""The rollout runner (oreo_agents/rollouts.py): the termination rules, one batched act per turn over the envs still
running, the events in order, per-episode seeding, and that batching does not change an episode."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import pytest

sys.path.insert(0, str(Path(__file__).parent / "recording"))
import toy_env  # noqa: E402,F401  (registers Toy-v0)

from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.policies import make_policy  # noqa: E402
from oreo_agents.rollouts import (  # noqa: E402
    EpisodeFinished,
    EpisodeStarted,
    Job,
    StepTaken,
    TurnFinished,
    finished_records,
    rollouts,
)
from oreo_agents.turns import Decision  # noqa: E402


class Scripted:
    """Plays a fixed list of decisions per episode (by the job's tag) and logs every act call's batch size."""

    name = "scripted"

    def __init__(self, plans: dict) -> None:
        self.plans, self.batches = plans, []

    def act(self, turns):
        self.batches.append(len(turns))
        return [self.plans[t.info["tag"]][len(t.history)] if len(t.history) < len(self.plans[t.info["tag"]])
                else self.plans[t.info["tag"]][-1] for t in turns]

    def metadata(self):
        return {}


class Tagged(gym.Wrapper):
    """Puts the task option into info so the scripted policy knows which plan it plays."""

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.tag = (options or {}).get("tag")
        return obs, {**info, "tag": self.tag}

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r, term, trunc, {**info, "tag": self.tag}


def _env(max_steps=12):
    return Tagged(gym.make("Toy-v0", max_steps=max_steps))


def _run(plans, *, num_envs=1, max_steps=12, closed=None):
    """Jobs 0..n-1 (seed 0: the toy target is the same for all), each playing plans[i]."""
    def make():
        env = _env(max_steps)
        if closed is not None:
            original = env.close
            env.close = lambda: (closed.append(env), original())
        return env

    policy = Scripted(plans)
    jobs = [Job(seed=0, task=i, tag=i) for i in range(len(plans))]
    events = list(rollouts(make, policy, jobs, num_envs=num_envs, task_options=lambda env, task: {"tag": task}))
    return events, policy


def _target():
    env = gym.make("Toy-v0")
    env.reset(seed=0)
    return env.unwrapped.target


def _act(a):
    return Decision(action=a, reply=a)


def test_each_ending_is_named_by_one_rule():
    n = _target()
    win = [_act("inc")] * n + [_act("submit")]
    plans = {
        0: win,                                                            # success
        1: [_act("dec"), _act("submit")],                                  # failure (terminated, not won)
        2: [_act("look")],                                                 # truncated (step limit 3)
        3: [_act("inc"), Decision(action=None, reply="hmm", completion_token_ids=[7], value=0.5)],  # invalid_action
        4: [_act("inc"), Decision(action=None, aborted=True)],             # aborted
    }
    events, _ = _run(plans, max_steps=max(3, n + 1))
    records = {e.job.tag: e.record for e in events if isinstance(e, EpisodeFinished)}
    assert records[0].termination == "success" and records[0].success and len(records[0].steps) == n + 1
    assert records[1].termination == "failure" and not records[1].success
    assert records[2].termination == "truncated" and len(records[2].steps) == max(3, n + 1)
    invalid = records[3]
    assert invalid.termination == "invalid_action" and len(invalid.steps) == 2
    last = invalid.steps[-1]
    assert (last.action, last.observation, last.reward, last.reply) == ("", "", 0.0, "hmm")
    assert last.completion_token_ids == [7] and last.value == 0.5
    aborted = records[4]
    assert aborted.termination == "aborted" and len(aborted.steps) == 1  # the aborted decision is no step
    # The step events say so too, and whether the env saw the decision.
    steps = {e.job.tag: e for e in events if isinstance(e, StepTaken) and e.termination}
    assert steps[3].terminated and not steps[3].truncated and not steps[3].stepped_env
    assert steps[4].truncated and not steps[4].terminated and not steps[4].stepped_env
    assert steps[0].stepped_env and steps[0].reward == 1.0


def test_one_batched_act_per_turn_over_the_envs_still_running():
    short, long = [_act("dec"), _act("submit")], [_act("look")] * 4 + [_act("submit")]
    closed = []
    events, policy = _run({0: short, 1: long, 2: short}, num_envs=2, max_steps=12, closed=closed)
    # Two envs for three jobs: turn 1-2 both run; job 0 ends, job 2 takes its env; then jobs 1 and 2 run together.
    assert policy.batches == [2, 2, 2, 2, 1]
    assert [e.active for e in events if isinstance(e, TurnFinished)] == policy.batches
    assert len(closed) == 2  # min(num_envs, jobs) envs, all closed
    assert [e.slot for e in events if isinstance(e, EpisodeStarted)] == [0, 1, 0]


def test_events_come_in_order_and_the_episode_id_reaches_the_policy():
    events, _ = _run({0: [_act("submit")]})
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["EpisodeStarted", "StepTaken", "EpisodeFinished", "TurnFinished"]
    started, step, finished = events[:3]
    assert started.info["episode_id"] == started.episode.episode_id == finished.record.episode_id
    assert step.info["episode_id"] == finished.record.episode_id and step.termination == finished.record.termination


def test_jobs_set_seed_task_id_sample_and_metadata():
    from oreo_agents.recording.schema import EpisodeMetadata

    seen = []

    def make():
        env = gym.make("Toy-v0", expert=True)
        original = env.reset

        def reset(*, seed=None, options=None):
            seen.append((seed, options))
            return original(seed=seed, options=options)

        env.reset = reset
        return env

    jobs = [Job(seed=5, task=2, episode_id="given", sample_index=3, metadata=EpisodeMetadata(policy="mine")),
            Job(seed=6, task=0)]
    records = list(finished_records(rollouts(make, make_policy("expert"), jobs, env_id="Named",
                                             metadata=EpisodeMetadata(policy="base"),
                                             task_options=lambda env, task: {"n": task}))
                   )
    assert seen == [(5, {"n": 2}), (6, {"n": 0})]
    assert records[0].episode_id == "given" and records[0].sample_index == 3 and records[0].metadata.policy == "mine"
    assert records[1].metadata.policy == "base" and records[1].env_id == "Named" and records[1].success


def test_batching_does_not_change_an_episode():
    """Random play seeded per episode id: the same jobs give the same records whatever num_envs."""
    def play(num_envs):
        jobs = [Job(seed=s, sample_index=s) for s in range(5)]
        return [r.to_row() for r in finished_records(rollouts(lambda: gym.make("Toy-v0", max_steps=6),
                                                              make_policy("random", seed=1), jobs, num_envs=num_envs))]

    one, three = play(1), play(3)
    assert sorted(one, key=lambda r: r["episode_id"]) == sorted(three, key=lambda r: r["episode_id"])


def test_a_policy_that_drops_a_decision_is_an_error_and_envs_are_closed():
    closed = []

    class Drops:
        name = "drops"

        def act(self, turns):
            return []

    def make():
        env = gym.make("Toy-v0")
        env.close = lambda: closed.append(env)
        return env

    with pytest.raises(OreoError, match="returned 0 decisions for 2 turns"):
        list(rollouts(make, Drops(), [Job(seed=0), Job(seed=1)], num_envs=2))
    assert len(closed) == 2
    with pytest.raises(OreoError, match="at least one env"):
        list(rollouts(make, Drops(), [Job()], num_envs=0))


# --- the same episodes whatever the layout: env worker processes (issue #16) ------------------------------------------


def _rows_bytes(folder: Path) -> bytes:
    """The dataset's episode rows sorted by id, as Arrow IPC bytes (values and types; shard order and schema metadata
    aside). Rows hold no wall-clock field, so equal bytes are equal episodes, log-probs and token ids included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = [pq.read_table(f).replace_schema_metadata(None) for f in sorted((folder / "data").glob("*.parquet"))]
    table = pa.concat_tables(shards).sort_by("episode_id").combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue().to_pybytes()


def _collect(tmp_path: Path, name: str, *args: str) -> Path:
    from click.testing import CliRunner

    from oreo_agents.cli.app import cli

    out = tmp_path / name
    result = CliRunner().invoke(cli, ["collect", *args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@pytest.mark.parametrize("policy, episodes, max_steps", [("expert", 2, 6), ("random", 2, 4), ("noisy-expert", 2, 4)])
def test_env_workers_record_the_same_alfworld_episodes_byte_for_byte(policy, episodes, max_steps, tmp_path,
                                                                      alfworld_games_root):
    args = ["--env", "alfworld", "--games-root", str(alfworld_games_root), "--num-tasks", "3", "--policy", policy,
            "--episodes", str(episodes), "--max-steps", str(max_steps), "--num-envs", "2", "--seed", "3"]
    here = _collect(tmp_path, "here", *args)
    workers = _collect(tmp_path, "workers", *args, "--env-workers", "2")
    assert _rows_bytes(here) == _rows_bytes(workers)
    import json

    manifest = lambda d: json.loads((d / "manifest.json").read_text())["settings"]  # noqa: E731
    assert manifest(here) == manifest(workers)  # where envs run is not a setting: either resumes the other


def test_env_workers_record_the_same_model_episodes_byte_for_byte(tmp_path):
    """A model policy (seeded per episode and step) with --batch-invariant: tokens, log-probs and all, whatever batches
    the ready envs happened to form."""
    pytest.importorskip("torch")
    import torch

    torch.set_num_threads(1)
    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import build_tiny_model

    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    model = build_tiny_model(texts, tmp_path / "tiny")
    args = ["--env", "math", "--num-tasks", "4", "--policy", str(model), "--episodes", "6", "--samples-per-task", "2",
            "--num-envs", "3", "--max-new-tokens", "10", "--max-steps", "3", "--batch-invariant"]
    here = _collect(tmp_path, "here", *args)
    workers = _collect(tmp_path, "workers", *args, "--env-workers", "2")
    assert _rows_bytes(here) == _rows_bytes(workers)


def test_eval_with_env_workers_plays_the_same_outcomes():
    from oreo_agents.agent.evaluate import run_episodes
    from oreo_agents.envs.workers import EnvSpec

    spec = EnvSpec("toy_env:Toy-v0", {"max_steps": 6})
    here = run_episodes(spec, make_policy("random", seed=2), episodes=7, num_envs=3)
    workers = run_episodes(spec, make_policy("random", seed=2), episodes=7, num_envs=3, env_workers=2)
    assert here == workers and [o.index for o in workers] == list(range(7))


class _KillsAWorker:
    """Acts as ``policy`` and, at its ``at``-th batch, SIGKILLs env worker 0 (an outside crash: the OOM killer, a
    segfault in a game engine)."""

    def __init__(self, policy, at: int) -> None:
        self.policy, self.at, self.calls, self.killed, self.name = policy, at, 0, False, policy.name

    def act(self, turns):
        import multiprocessing
        import os
        import signal

        self.calls += 1
        if self.calls == self.at:
            [worker] = [p for p in multiprocessing.active_children() if p.name == "oreo-env-worker-0"]
            os.kill(worker.pid, signal.SIGKILL)
            self.killed = True
        return self.policy.act(turns)


@pytest.mark.slow
def test_a_killed_alfworld_worker_is_replayed_into_the_same_episodes(alfworld_games_root, capsys):
    from oreo_agents.envs.core import task_reset_options
    from oreo_agents.envs.workers import EnvSpec

    spec = EnvSpec("oreo_agents/ALFWorld-v0", {"games_root": str(alfworld_games_root), "num_tasks": 3, "max_steps": 6,
                                               "expert": True})
    jobs = [Job(seed=3 + i, task=i) for i in range(2)]

    def play(policy, workers):
        records = finished_records(rollouts(spec, policy, jobs, num_envs=2, task_options=task_reset_options,
                                            env_workers=workers))
        return sorted((r.to_row() for r in records), key=lambda r: r["episode_id"])

    killer = _KillsAWorker(make_policy("expert"), at=3)
    replayed = play(killer, 2)
    assert killer.killed and "env worker 0" in capsys.readouterr().out
    assert replayed == play(make_policy("expert"), 0)


def test_env_worker_options_are_checked_and_are_not_episode_content():
    from oreo_agents.pipeline.collect import CollectConfig, content_settings
    from oreo_agents.pipeline.evaluate import EvalConfig
    from oreo_agents.pipeline.loops import IterateConfig
    from oreo_agents.pipeline.options import ENV_WORKER_OPTIONS

    with pytest.raises(OreoError, match="^--env-workers must be 0 .* got -1$"):
        CollectConfig(env_workers=-1)
    with pytest.raises(OreoError, match="--env-timeout"):
        EvalConfig(env_timeout=0)
    with pytest.raises(OreoError, match="--env-restarts"):
        CollectConfig(env_restarts=-2)
    settings = content_settings(CollectConfig(env_workers=2, env_timeout=5.0, out="x"))
    assert not set(ENV_WORKER_OPTIONS) & set(settings)  # a resume may change them
    assert IterateConfig(env_workers=2).env_worker_kwargs() == {"env_workers": 2, "env_timeout": 300.0,
                                                                 "env_restarts": 3}


def test_collect_with_env_workers_on_a_module_env_resumes_across_layouts(tmp_path):
    """--env module:Id-v0 reaches the workers as spelled (they import the module), and a dataset begun with env
    workers resumes in process (and back): same rows as one uninterrupted in-process run."""
    args = ["--env", "toy_env:Toy-v0", "--policy", "noisy-expert", "--num-envs", "3", "--shard-size", "2"]
    whole = _collect(tmp_path, "whole", *args, "--episodes", "9")
    _collect(tmp_path, "split", *args, "--episodes", "5", "--env-workers", "2")
    split = _collect(tmp_path, "split", *args, "--episodes", "9", "--env-workers", "0")
    assert _rows_bytes(split) == _rows_bytes(whole)

"""Env worker processes (oreo_agents/envs/workers.py) under the rollout runner: the same episodes as in process whatever
the replies' order, a crashed or hung worker restarted and its episode replayed (nothing lost, nothing twice), a
restart budget, an env's own exception raised here, a replay that differs refused, and workers free of torch."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # worker_fakes: importable here and (same sys.path) in the workers
import worker_fakes  # noqa: E402,F401  (registers Fake-v0)

from oreo_agents.envs.core import task_reset_options  # noqa: E402
from oreo_agents.envs.workers import EnvPool, EnvSpec, RemoteEnv, RemoteTraceback  # noqa: E402
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.policies import make_policy  # noqa: E402
from oreo_agents.rollouts import EpisodeFinished, EpisodeStarted, Job, TurnFinished, rollouts  # noqa: E402

FAKE = "worker_fakes:Fake-v0"
JOBS = [Job(seed=s, task=s, sample_index=s % 2) for s in range(8)]


def _play(spec, policy="random", *, workers=0, num_envs=3, jobs=JOBS, **options):
    events = list(rollouts(spec, make_policy(policy, seed=1) if policy == "random" else make_policy(policy), jobs,
                           num_envs=num_envs, task_options=task_reset_options, env_workers=workers, **options))
    return events, sorted((e.record.to_row() for e in events if isinstance(e, EpisodeFinished)),
                          key=lambda r: r["episode_id"])


@pytest.fixture(scope="module")
def in_process():
    """The reference: each policy's episodes on the fake env, played in this process."""
    return {policy: _play(EnvSpec(FAKE), policy)[1] for policy in ("random", "expert")}


@pytest.mark.parametrize("policy", ["random", "expert"])
def test_out_of_order_replies_give_the_same_episodes(policy, in_process):
    # Seeds sleep 0-3 x 20 ms per step: replies come back out of order, batches are whatever is ready.
    events, rows = _play(EnvSpec(FAKE, {"delay": 0.02}), policy, workers=2)
    assert rows == in_process[policy]
    assert len({r["episode_id"] for r in rows}) == len(JOBS)
    started = [e for e in events if isinstance(e, EpisodeStarted)]
    assert len({e.info["pid"] for e in started}) == 2  # two worker processes played
    assert not any(e.info["torch_loaded"] for e in started)  # workers never import torch
    assert isinstance(started[0].env, RemoteEnv) and started[0].env.max_steps == 8 and len(started[0].env.tasks) == 5
    batches = [e.active for e in events if isinstance(e, TurnFinished)]
    assert sum(batches) == sum(len(r["steps"]) for r in rows)  # every decision in exactly one batch


def test_a_worker_that_crashes_is_restarted_and_its_episode_replayed(tmp_path, in_process, capsys):
    flag = tmp_path / "crashed"
    spec = EnvSpec(FAKE, {"crash_at": (4, 2), "flag": str(flag)})  # os._exit at seed 4, step 2, once
    _, rows = _play(spec, workers=2)
    assert flag.exists(), "the fake env never crashed: the test tests nothing"
    assert rows == in_process["random"]  # nothing lost, nothing twice, nothing changed
    assert "exited with code 3" in capsys.readouterr().out


def test_a_worker_that_hangs_is_killed_restarted_and_replayed(tmp_path, in_process, capsys):
    flag = tmp_path / "hung"
    spec = EnvSpec(FAKE, {"hang_at": (5, 1), "flag": str(flag)})
    _, rows = _play(spec, workers=2, env_timeout=3.0)
    assert flag.exists()
    assert rows == in_process["random"]
    assert "did not answer within --env-timeout 3 s" in capsys.readouterr().out


def test_a_worker_that_keeps_crashing_stops_the_run_naming_worker_and_env(tmp_path):
    spec = EnvSpec(FAKE, {"crash_at": (1, 1)})  # no flag file: crashes every time it gets there (replays too)
    with pytest.raises(OreoError, match=r"env worker 1 \(env worker_fakes:Fake-v0\) exited with code 3 .*"
                                        r"2 times in a row: giving up \(--env-restarts 1\)"):
        _play(spec, workers=2, env_restarts=1)


def test_an_env_exception_is_raised_here_with_the_worker_traceback():
    with pytest.raises(ValueError, match="fake env bug at step 2") as caught:
        _play(EnvSpec(FAKE, {"raise_at": (0, 2)}), workers=1)
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "in env worker 0, slot 0" in str(caught.value.__cause__) and "worker_fakes.py" in str(caught.value.__cause__)


def test_a_replay_that_differs_from_the_record_is_refused(tmp_path):
    spec = EnvSpec(FAKE, {"noisy": True, "crash_at": (2, 2), "flag": str(tmp_path / "crashed")})
    with pytest.raises(OreoError, match="different first observation than recorded: the env is not a function of"):
        _play(spec, workers=1, num_envs=2)


def test_bad_settings_fail_with_one_line():
    with pytest.raises(OreoError, match="--env-workers -1"):
        _play(EnvSpec(FAKE), workers=-1)
    with pytest.raises(OreoError, match="cannot be sent to a worker process"):
        _play(lambda: None, workers=1)
    with pytest.raises(OreoError, match="is not an option of env"):  # the worker's error, raised here
        _play(EnvSpec(FAKE, {"colour": "red"}), workers=1)


def test_more_workers_than_envs_start_one_per_env():
    pool = EnvPool(EnvSpec(FAKE), slots=2, workers=5)
    try:
        assert len(pool.workers) == 2
        pool.reset(1, 3, {"task": 1})
        [(slot, (obs, info))] = pool.wait()
        assert slot == 1 and obs.startswith("task-1") and pool.envs[1].env_id == "Fake-v0"
    finally:
        pool.close()
    assert all(w.process is None for w in pool.workers)


def test_env_spec_is_a_picklable_factory():
    spec = EnvSpec(FAKE, {"max_steps": 3})
    assert pickle.loads(pickle.dumps(spec)) == spec
    env = spec()
    assert env.unwrapped.max_steps == 3
    env.close()

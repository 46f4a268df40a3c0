"""Collection and evaluation on Ray (pipeline/ray_runner.py): a local 2-CPU cluster, started once per test session.

What is checked: 2 Ray workers write the same episodes as one process (ALFWorld expert and random, a tiny LM on math;
row for row); a collection whose driver is killed (SIGKILL), then whose actor dies, resumes with nothing lost or
duplicated; a SIGTERM on the driver makes the actors flush what they finished; eval on 2 workers writes the same
report files; refusals are one line. No field of an episode row is wall-clock time, so rows compare whole.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from oreo_agents.cli.app import cli
from oreo_agents.errors import OreoError

ray = pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEST_PATHS = [str(ROOT), str(HERE), str(HERE.parent / "recording")]  # oreo_agents, ray_crash_env, toy_env
for path in TEST_PATHS[1:]:
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local Ray cluster with 2 CPUs for this test session (~20 s to start on a loaded 2-core machine); its actors
    see the test folders and the crash flag of :mod:`ray_crash_env`."""
    from ray.job_config import JobConfig

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "OREO_TEST_CRASH_FLAG", "OREO_TEST_HANG_FLAG")}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60 would otherwise write ~/.ray/auth_token
    os.environ["OREO_TEST_CRASH_FLAG"] = str(tmp_path_factory.mktemp("ray") / "crash-once")  # inherited by workers
    os.environ["OREO_TEST_HANG_FLAG"] = str(tmp_path_factory.mktemp("ray") / "hang-once")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
             job_config=JobConfig(_py_driver_sys_path=TEST_PATHS))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(folder: Path) -> list[str]:
    """Every episode row of a dataset folder as JSON (NaN included), sorted by episode id: equal lists are the same
    episodes, field for field (no field of a row is wall-clock time)."""
    import pyarrow.parquet as pq

    from oreo_agents.recording.writer import shard_paths

    found = [r for shard in shard_paths(folder) for r in pq.read_table(shard).to_pylist()]
    return [json.dumps(r, sort_keys=True, default=str) for r in sorted(found, key=lambda r: r["episode_id"])]


def _alfworld(games: Path, out: Path, policy: str, *extra: str) -> list[str]:
    return ["collect", "--env", "alfworld", "--games-root", str(games), "--num-tasks", "6", "--policy", policy,
            "--episodes", "4", "--shard-size", "1", "--out", str(out), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("policy, extra", [("expert", ()), ("random", ("--max-steps", "4"))])
def test_two_ray_workers_write_the_episodes_one_process_writes(ray_address, alfworld_games_root, tmp_path, policy,
                                                               extra):
    alone = run(*_alfworld(alfworld_games_root, tmp_path / "alone", policy, *extra))
    assert alone.exit_code == 0, alone.output
    shared = run(*_alfworld(alfworld_games_root, tmp_path / "ray", policy, *extra, "--ray-address", ray_address,
                            "--workers", "2"))
    assert shared.exit_code == 0, shared.output
    assert "4 new episodes (0 already there, 4 in the dataset)" in " ".join(shared.output.split())
    assert rows(tmp_path / "ray") == rows(tmp_path / "alone") and len(rows(tmp_path / "alone")) == 4
    shards = sorted(p.name for p in (tmp_path / "ray" / "data").iterdir())
    assert {re.match(r"shard-(\d-of-2)-", s).group(1) for s in shards} == {"0-of-2", "1-of-2"}  # both actors wrote
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("alone", "ray")]
    assert manifests[0]["settings"] == manifests[1]["settings"] and manifests[1]["status"] == "complete"
    # the same command on one process resumes the Ray-written folder: nothing left to do
    again = run(*_alfworld(alfworld_games_root, tmp_path / "ray", policy, *extra))
    assert "0 new episodes (4 already there, 4 in the dataset)" in " ".join(again.output.split())


@pytest.mark.slow
def test_a_model_policy_on_two_ray_workers_writes_the_episodes_one_process_writes(ray_address, tmp_path, monkeypatch):
    """A tiny LM sampling math replies (--batch-invariant: log-probs bit for bit), its folder given relative to the
    driver's folder: actors work from the driver's folder, so every path and the tokenizer name read the same."""
    pytest.importorskip("torch")
    import torch

    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import build_tiny_model

    torch.set_num_threads(1)
    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    build_tiny_model(texts, tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    cmd = ["collect", "--env", "math", "--num-tasks", "3", "--policy", "tiny", "--episodes", "4", "--samples-per-task",
           "2", "--max-new-tokens", "8", "--max-steps", "2", "--batch-invariant", "--device", "cpu"]
    assert run(*cmd, "--out", "alone").exit_code == 0
    shared = run(*cmd, "--out", "ray", "--ray-address", ray_address, "--workers", "2")
    assert shared.exit_code == 0, shared.output
    assert rows(tmp_path / "ray") == rows(tmp_path / "alone") and len(rows(tmp_path / "alone")) == 4


def _crash_cmd(out: Path, *extra: str) -> list[str]:
    return ["collect", "--env", "ray_crash_env:RayCrash-v0", "--policy", "noisy-expert", "--episodes", "40",
            "--samples-per-task", "2", "--shard-size", "2", "--out", str(out), *extra]


@pytest.mark.slow
def test_a_killed_ray_collection_resumes_with_nothing_lost_or_duplicated(ray_address, tmp_path):
    alone = run(*_crash_cmd(tmp_path / "alone"))
    assert alone.exit_code == 0, alone.output
    # 1. the driver (a CLI process joined to the cluster) is killed with SIGKILL once some shards are in
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(TEST_PATHS), "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "oreo_agents.cli.app", *_crash_cmd(tmp_path / "ds", "--ray-address", ray_address,
                                                                    "--workers", "2")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    data, deadline = tmp_path / "ds" / "data", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if data.is_dir() and len(list(data.glob("shard-*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # killed half-way, not after the end
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = rows(tmp_path / "ds")
    assert 0 < len(partial) < 40
    # Ray ends the dead driver's actors (their share locks go with them): the whole folder can be locked again
    from oreo_agents.recording.locks import DatasetLock

    for _ in range(300):
        try:
            DatasetLock(tmp_path / "ds").acquire().release()
            break
        except OreoError:
            time.sleep(0.1)
    else:
        pytest.fail("the killed driver's actors still hold their locks after 30 s")
    # 2. rerun: one actor dies at its first step (the crash flag) and its share restarts on a fresh actor
    flag = Path(os.environ["OREO_TEST_CRASH_FLAG"])
    flag.write_text("")
    rerun = run(*_crash_cmd(tmp_path / "ds", "--ray-address", ray_address, "--workers", "2"))
    assert rerun.exit_code == 0, rerun.output
    assert not flag.exists() and "Ray worker" in rerun.output and "restarts on a fresh actor" in rerun.output
    done = rows(tmp_path / "ds")
    ids = [json.loads(r)["episode_id"] for r in done]
    assert len(ids) == len(set(ids)) == 40 and done == rows(tmp_path / "alone")
    assert set(partial) <= set(done)
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_a_hung_ray_worker_is_killed_after_the_stall_timeout_and_its_share_rerun(ray_address, tmp_path):
    alone = run(*_crash_cmd(tmp_path / "alone"))
    assert alone.exit_code == 0, alone.output
    flag = Path(os.environ["OREO_TEST_HANG_FLAG"])
    flag.write_text("")  # the first actor to step claims it and never returns from that step
    hung = run(*_crash_cmd(tmp_path / "ds", "--ray-address", ray_address, "--workers", "2", "--ray-stall-timeout", "3"))
    assert hung.exit_code == 0, hung.output
    out = " ".join(hung.output.split())
    assert not flag.exists() and "made no progress for" in out and "--ray-stall-timeout 3" in out
    assert "restarts on a fresh actor" in out
    assert rows(tmp_path / "ds") == rows(tmp_path / "alone")
    with pytest.raises(OreoError, match="--ray-stall-timeout must be 0"):
        from oreo_agents.pipeline.collect import CollectConfig

        CollectConfig(ray_address="auto", ray_stall_timeout=-1)


@pytest.mark.slow
def test_sigterm_on_the_driver_makes_the_actors_flush_what_they_finished(ray_address, tmp_path):
    """With shards of 1000 episodes nothing reaches the disk until a writer closes: episodes found after a SIGTERM
    were flushed by the stopping actors (a SIGKILL would leave none)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(TEST_PATHS), "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "oreo_agents.cli.app", *_crash_cmd(tmp_path / "ds", "--ray-address", ray_address,
                                                                    "--workers", "2", "--shard-size", "1000")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # the driver's progress lines (non-interactive): "... 4/40 episodes, ..."
        seen.append(line)
        if "/40 episodes" in line:
            proc.send_signal(signal.SIGTERM)
            break
    output = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "/40 episodes" in output, output[-3000:]
    flushed = rows(tmp_path / "ds")
    ids = [json.loads(r)["episode_id"] for r in flushed]
    assert 0 < len(ids) < 40 and len(ids) == len(set(ids)), output[-3000:]
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["status"] == "in_progress"
    assert not list((tmp_path / "ds" / "data").glob(".*tmp*"))  # nothing half-written
    assert run(*_crash_cmd(tmp_path / "alone")).exit_code == 0
    assert set(flushed) <= set(rows(tmp_path / "alone"))


@pytest.mark.slow
def test_eval_on_two_ray_workers_writes_the_rows_one_process_writes(ray_address, alfworld_games_root, tmp_path):
    base = ["eval", "--env", "alfworld", "--games-root", str(alfworld_games_root), "--split", "valid_unseen",
            "--num-tasks", "2", "--policy", "expert", "--policy", "random", "--max-steps", "4", "--episodes", "3",
            "--num-envs", "1"]
    assert run(*base, "--out", str(tmp_path / "alone")).exit_code == 0
    ray = ["--out", str(tmp_path / "ray"), "--ray-address", ray_address, "--workers", "2"]
    assert run(*base[:-4], "--episodes", "2", "--num-envs", "1", *ray).exit_code == 0  # as if killed after 2
    shared = run(*base, *ray)  # resumes: the actors play only episode 2 of each agent
    assert shared.exit_code == 0, shared.output
    assert " ".join(shared.output.split()).count("3 episodes (2 played before, kept)") == 2, shared.output
    for name in ("eval.csv", "eval.md", "outcomes.jsonl"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "alone" / name).read_text(), name
    for agent in ("expert-greedy", "random-greedy"):
        assert rows(tmp_path / "ray" / "episodes" / agent) == rows(tmp_path / "alone" / "episodes" / agent)



@pytest.mark.slow
def test_a_hung_eval_actor_is_killed_after_the_stall_timeout_and_its_share_rerun(ray_address, tmp_path):
    base = ["eval", "--env", "ray_crash_env:RayCrash-v0", "--policy", "noisy-expert", "--episodes", "6",
            "--num-envs", "1"]
    assert run(*base, "--out", str(tmp_path / "alone")).exit_code == 0
    flag = Path(os.environ["OREO_TEST_HANG_FLAG"])
    flag.write_text("")  # the first actor to step claims it and never returns from that step
    hung = run(*base, "--out", str(tmp_path / "ray"), "--ray-address", ray_address, "--workers", "2",
               "--ray-stall-timeout", "5")
    assert hung.exit_code == 0, hung.output
    out = " ".join(hung.output.split())
    assert not flag.exists() and "made no progress for" in out and "restarts on a fresh actor" in out
    assert (tmp_path / "ray" / "outcomes.jsonl").read_text() == (tmp_path / "alone" / "outcomes.jsonl").read_text()

def test_refusals_are_one_line(ray_address, tmp_path, monkeypatch):
    base = ["collect", "--env", "toy_env:Toy-v0", "--policy", "random", "--episodes", "2", "--out", str(tmp_path / "ds")]
    gpus = run(*base[:-1], str(tmp_path / "gpu"), "--ray-address", ray_address, "--gpus-per-worker", "1")
    assert gpus.exit_code == 2 and "--gpus-per-worker 1: the Ray cluster has 0 GPUs" in gpus.output
    bad = run(*base, "--ray-address", "somewhere")
    assert bad.exit_code == 2 and "--ray-address 'somewhere': give auto" in bad.output
    client = run(*base, "--ray-address", "ray://head:10001")
    assert client.exit_code == 2 and "Ray Client addresses are not supported" in client.output
    alone = run(*base, "--workers", "2")
    assert alone.exit_code == 2 and "--workers runs Ray actors: give --ray-address" in alone.output
    search = run("eval", "--env", "math", "--select", "beam", "--ray-address", ray_address, "--out", str(tmp_path / "e"))
    assert search.exit_code == 2 and "evaluate it without --ray-address" in search.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    missing = run(*base, "--ray-address", "auto")
    assert missing.exit_code == 2 and "--ray-address needs Ray: pip install 'oreo-agents[ray]'" in missing.output
    assert not (tmp_path / "ds").exists()  # refused before anything was written


def test_the_ray_options_do_not_change_what_a_dataset_records():
    from oreo_agents.pipeline.collect import CollectConfig, content_settings

    one = content_settings(CollectConfig(out="x"))
    many = content_settings(CollectConfig(out="x", ray_address="auto", workers=8, gpus_per_worker=0.5, ray_stall_timeout=60))
    assert one == many
    with pytest.raises(OreoError, match="--workers must be a positive integer"):
        CollectConfig(ray_address="auto", workers=0)

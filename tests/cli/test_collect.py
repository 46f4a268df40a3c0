"""`oreo-agents collect` / `export` end to end: YAML + flags, kill and resume, refusals, the real ALFWorld and math envs,
and a tiny language model collecting with exact token ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from oreo_agents.cli.app import cli

TOY_DIR = Path(__file__).resolve().parents[1] / "recording"  # tests/recording/toy_env.py
if str(TOY_DIR) not in sys.path:
    sys.path.insert(0, str(TOY_DIR))


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _episodes(path):
    from oreo_agents.recording import load_episodes

    return {r["episode_id"]: r for r in load_episodes(path)}


def test_collect_yaml_with_flag_override_and_summary(tmp_path):
    cfg = tmp_path / "collect.yaml"
    cfg.write_text("env: toy_env:Toy-v0\npolicy: noisy-expert\neps: 0.3\nepisodes: 30\nnum_envs: 3\nsamples_per_task: 3\n")
    result = run("collect", "--config", str(cfg), "--episodes", "12", "--out", str(tmp_path / "ds"))
    assert result.exit_code == 0, result.output
    assert "task type" in result.output and "12 new episodes" in result.output
    rows = _episodes(tmp_path / "ds")
    assert len(rows) == 12 and {r["metadata"]["policy"] for r in rows.values()} == {"noisy-expert"}
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["settings"]["eps"] == 0.3 and manifest["status"] == "complete"
    # resume is the default: the same command adds nothing; more episodes extend the dataset
    again = run("collect", "--config", str(cfg), "--episodes", "15", "--out", str(tmp_path / "ds"))
    assert "3 new episodes (12 already there, 15 in the dataset)" in " ".join(again.output.split())
    # export works on what collect wrote
    out = run("export", "--dataset", str(tmp_path / "ds"), "--view", "kto", "--family", "alfworld",
              "--out", str(tmp_path / "kto.jsonl"))
    assert out.exit_code == 0 and len((tmp_path / "kto.jsonl").read_text().splitlines()) == 15


def test_refusals_are_one_line_errors(tmp_path):
    base = ["collect", "--env", "toy_env:Toy-v0", "--policy", "random", "--episodes", "4"]
    assert run(*base, "--out", str(tmp_path / "ds")).exit_code == 0
    mismatch = run(*base, "--seed", "1", "--out", str(tmp_path / "ds"))
    assert mismatch.exit_code == 2 and "different settings (seed: 0 -> 1)" in mismatch.output
    no_resume = run(*base, "--no-resume", "--out", str(tmp_path / "ds"))
    assert no_resume.exit_code == 2 and "already holds 4 episodes" in no_resume.output
    (tmp_path / "file").write_text("x")
    bad = run(*base, "--out", str(tmp_path / "file" / "ds"))
    assert bad.exit_code == 2 and "cannot create output folder" in bad.output
    assert "--out is required" in run(*base).output
    unknown = run("collect", "--env", "nope", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 2 and "env nope: not an env family" in unknown.output
    no_expert = run("collect", "--env", "oreo_agents/WebShop-v0", "--policy", "random", "--task-types", "a",
                    "--out", str(tmp_path / "w"))
    assert no_expert.exit_code == 2 and "--task-types is not an option of env oreo_agents/WebShop-v0" in no_expert.output
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("episodes: 3\nepisdoes: 4\n")
    typo = run("collect", "--config", str(bad_yaml), "--out", str(tmp_path / "y"))
    assert typo.exit_code == 2 and "unknown option 'episdoes'" in typo.output


def _collect_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "oreo_agents.cli.app", "collect", "--env", "toy_env:ToySlow-v0", "--policy",
            "noisy-expert", "--episodes", "60", "--samples-per-task", "2", "--num-envs", "2", "--shard-size", "5",
            "--out", str(out)]


def test_resume_after_kill_loses_and_duplicates_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "killed"
    proc = subprocess.Popen(_collect_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "data").glob("shard-*.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to flush: only atomic shards survive
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    partial = _episodes(out)
    assert 10 <= len(partial) < 60  # killed mid-run, after some shards

    subprocess.run(_collect_cmd(out), env=env, check=True, capture_output=True)
    resumed = _episodes(out)
    from oreo_agents.recording import load_episodes

    ids = load_episodes(out)["episode_id"]
    assert len(ids) == len(set(ids)) == 60  # nothing lost, nothing twice
    assert set(partial) <= set(resumed)

    clean = tmp_path / "clean"
    subprocess.run(_collect_cmd(clean), env=env, check=True, capture_output=True)
    uninterrupted = _episodes(clean)
    assert uninterrupted.keys() == resumed.keys()
    for episode_id, row in uninterrupted.items():  # the same plan, the same per-episode randomness
        assert [s["action"] for s in row["steps"]] == [s["action"] for s in resumed[episode_id]["steps"]]


def test_alfworld_expert_collect_end_to_end(alfworld_games_root, tmp_path):
    result = run("collect", "--env", "alfworld", "--games-root", str(alfworld_games_root), "--num-tasks", "6",
                 "--policy", "expert", "--episodes", "6", "--num-envs", "2", "--max-steps", "40",
                 "--out", str(tmp_path / "alf"))
    assert result.exit_code == 0, result.output
    rows = list(_episodes(tmp_path / "alf").values())
    assert len(rows) == 6 and len({r["task_id"] for r in rows}) == 6  # task slots cycle through the six games
    assert len({r["task_type"] for r in rows}) == 6
    assert sum(r["success"] for r in rows) >= 5, [(r["task_type"], r["termination"]) for r in rows]
    meta = rows[0]["metadata"]
    assert meta["env_version"].startswith("alfworld 0.4") and len(meta["grammar_hash"]) == 16
    assert all(r["initial_observation"].rstrip().endswith(r["goal"]) or r["goal"] in r["initial_observation"] for r in rows)
    sft = run("export", "--dataset", str(tmp_path / "alf"), "--view", "sft", "--out", str(tmp_path / "sft.jsonl"))
    assert sft.exit_code == 0, sft.output


def test_tiny_model_collects_math_with_exact_token_ids(tmp_path):
    pytest.importorskip("torch")
    import torch

    torch.set_num_threads(1)
    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import build_tiny_model, load_tokenizer
    from oreo_agents.prompting import MATH_FORMAT, encode_episode

    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    model = build_tiny_model(texts, tmp_path / "tiny")
    result = run("collect", "--env", "math", "--num-tasks", "4", "--policy", "model", "--model", str(model),
                 "--episodes", "8", "--samples-per-task", "2", "--num-envs", "4", "--max-new-tokens", "12",
                 "--max-steps", "3", "--out", str(tmp_path / "ds"))
    assert result.exit_code == 0, result.output
    rows = list(_episodes(tmp_path / "ds").values())
    assert len(rows) == 8
    tok = load_tokenizer(model)
    for r in rows:
        assert r["metadata"]["policy"] == "model" and r["metadata"]["checkpoint"] == str(model)
        assert r["metadata"]["tokenizer"] and json.loads(r["metadata"]["sampling"])["temperature"] == 1.0
        for s in r["steps"]:
            assert len(s["completion_token_ids"]) == len(s["completion_logprobs"]) > 0
            assert all(lp <= 0 for lp in s["completion_logprobs"])
        # step 0's context is the rendered prompt; math adds no context between steps (the step is the new state)
        first_prompt = tok(MATH_FORMAT.prompt_text(r["goal"], r["initial_observation"]), add_special_tokens=False)
        assert r["steps"][0]["prompt_token_ids"] == list(first_prompt["input_ids"])
        assert all(s["prompt_token_ids"] == [] for s in r["steps"][1:])
        for s in r["steps"]:  # the stored ids are the reply that was parsed, as sampled
            assert tok.decode(s["completion_token_ids"], skip_special_tokens=True) == s["reply"]
            assert s["action"] == (MATH_FORMAT.parse_action(s["reply"]) or "")
        # the learner splices the recorded ids in verbatim
        stored = [t for s in r["steps"] for t in s["prompt_token_ids"] + s["completion_token_ids"]]
        assert encode_episode(MATH_FORMAT, tok, goal=r["goal"], initial_observation=r["initial_observation"],
                              steps=r["steps"]).input_ids == stored


def test_value_guided_agent_collects_with_its_values_recorded(tmp_path):
    """`collect --value DIR --select value` records the agent's chosen replies with V, as any policy's episodes."""
    pytest.importorskip("torch")
    import math

    import torch

    torch.set_num_threads(1)
    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import ValueModel, build_tiny_model

    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    model = build_tiny_model(texts, tmp_path / "tiny")
    value_dir = ValueModel.from_base(model).save_pretrained(tmp_path / "value")
    common = ["collect", "--env", "math", "--num-tasks", "2", "--policy", "model", "--model", str(model),
              "--episodes", "2", "--max-new-tokens", "8", "--max-steps", "2"]
    result = run(*common, "--select", "value", "--out", str(tmp_path / "nov"))
    assert result.exit_code == 2 and "--select value needs --value" in result.output
    result = run(*common, "--value", str(value_dir), "--select", "value", "--k", "3", "--out", str(tmp_path / "ds"))
    assert result.exit_code == 0, result.output
    rows = list(_episodes(tmp_path / "ds").values())
    assert len(rows) == 2
    for r in rows:
        assert r["metadata"]["policy"] == "agent"
        assert json.loads(r["metadata"]["sampling"])["select"] == "value"
        for s in r["steps"]:
            assert not math.isnan(s["value"]) and s["completion_token_ids"]


# --- issue #14: concurrent collectors, resume checks by content, per-episode seeding ------------------------------------


def test_a_second_collector_on_the_same_out_is_refused_naming_the_first(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "ds"
    first = subprocess.Popen(_collect_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((out / "data").glob("shard-*.parquet")):
            time.sleep(0.05)
        second = subprocess.run(_collect_cmd(out), env=env, capture_output=True, text=True)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"another collector is writing this dataset: pid {first.pid} on" in " ".join(second.stderr.split())
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait()
    subprocess.run(_collect_cmd(out), env=env, check=True, capture_output=True)  # the lock died with its holder
    from oreo_agents.recording import load_episodes

    ids = load_episodes(out)["episode_id"]
    assert len(ids) == len(set(ids)) == 60


def _games_copy(src: Path, dst: Path, *, drop_one: bool = False) -> Path:
    import shutil

    shutil.copytree(src, dst)
    if drop_one:  # the same layout with one game less: other games in the same slots
        shutil.rmtree(sorted(dst.rglob("traj_data.json"))[0].parent)
    return dst


def test_resume_refuses_other_env_data_behind_the_same_flags(alfworld_games_root, tmp_path, monkeypatch):
    """ALFWORLD_DATA now names other games: the manifest's data hash tells, the flags alone could not."""
    base = ["collect", "--env", "alfworld", "--policy", "expert", "--episodes", "0", "--out", str(tmp_path / "ds")]
    monkeypatch.setenv("ALFWORLD_DATA", str(_games_copy(alfworld_games_root, tmp_path / "a")))
    first = run(*base)
    assert first.exit_code == 0, first.output
    assert len(json.loads((tmp_path / "ds" / "manifest.json").read_text())["settings"]["env_data_sha256"]) == 16
    assert run(*base).exit_code == 0  # the same data resumes
    monkeypatch.setenv("ALFWORLD_DATA", str(_games_copy(alfworld_games_root, tmp_path / "b", drop_one=True)))
    other = run(*base)
    assert other.exit_code == 2 and "different settings (env_data_sha256: '" in " ".join(other.output.split())


def _tiny_math_model(root: Path) -> Path:
    import torch

    torch.set_num_threads(1)
    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import build_tiny_model

    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    return build_tiny_model(texts, root)


def test_resume_refuses_new_weights_and_accepts_another_spelling_of_the_folder(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    model = _tiny_math_model(tmp_path / "tiny")
    monkeypatch.chdir(model.parent)
    common = ["collect", "--env", "math", "--num-tasks", "2", "--policy", "model", "--episodes", "1",
              "--max-new-tokens", "4", "--max-steps", "1", "--out", str(tmp_path / "ds")]
    assert run(*common, "--model", str(model)).exit_code == 0
    same = run(*common, "--model", f"./{model.name}/")  # the same folder, spelled relative with a slash
    assert same.exit_code == 0 and "0 new episodes (1 already there" in " ".join(same.output.split()), same.output
    from transformers import AutoModelForCausalLM

    import torch

    weights = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        next(weights.parameters()).add_(0.01)
    weights.save_pretrained(model)  # new weights, same folder
    changed = run(*common, "--model", str(model))
    assert changed.exit_code == 2 and "model_weights_sha256: '" in " ".join(changed.output.split()), changed.output


def test_model_episodes_do_not_depend_on_num_envs_nor_on_resume(tmp_path):
    """Same seed: --num-envs 1 and 4 and a resumed run give the same episodes (bit for bit with --batch-invariant;
    without it the tokens are the same and only the log-probs' last bits may differ)."""
    pytest.importorskip("torch")
    model = _tiny_math_model(tmp_path / "tiny")

    def collect(out: str, *extra: str, episodes: int = 6) -> dict:
        result = run("collect", "--env", "math", "--num-tasks", "3", "--policy", "model", "--model", str(model),
                     "--episodes", str(episodes), "--samples-per-task", "2", "--max-new-tokens", "10",
                     "--max-steps", "3", "--out", str(tmp_path / out), *extra)
        assert result.exit_code == 0, result.output
        return _episodes(tmp_path / out)

    def text(rows: dict) -> dict:
        return {k: json.dumps(v, sort_keys=True, default=str) for k, v in rows.items()}

    one = collect("one", "--num-envs", "1", "--batch-invariant")
    four = collect("four", "--num-envs", "4", "--batch-invariant")
    collect("resumed", "--num-envs", "2", "--batch-invariant", episodes=3)  # "killed" after 3 episodes
    resumed = collect("resumed", "--num-envs", "4", "--batch-invariant")
    assert text(one) == text(four) == text(resumed)
    fast = collect("fast", "--num-envs", "4")
    tokens = {k: [s["completion_token_ids"] for s in r["steps"]] for k, r in fast.items()}
    assert tokens == {k: [s["completion_token_ids"] for s in r["steps"]] for k, r in one.items()}

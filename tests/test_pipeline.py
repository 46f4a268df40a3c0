"""The quickstart / iterate loop end to end at toy size: real games, real tiny model, real datasets and runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oreo_agents.errors import OreoError

# The checkout under test (not whatever copy of the package the interpreter has installed) runs in the subprocesses.
REPO = str(Path(__file__).resolve().parents[1])

# Two train games, one held-out game, one sample each: every stage runs for real, in about a minute.
TOY = [
    "--train-tasks", "2", "--eval-tasks", "1", "--samples-per-task", "2", "--max-steps", "6",
    "--sft-epochs", "2", "--oreo-epochs", "1", "--k", "2", "--num-envs", "2", "--eval-splits", "valid_unseen",
]


def quickstart(tmp_path: Path, games_root: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "oreo_agents.cli.app", "quickstart", *TOY, "--games-root", str(games_root),
           "--out", str(tmp_path / "runs"), "--datasets", str(tmp_path / "data"), *extra]
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "OREO_AGENTS_DATA": str(tmp_path / "unused-data-root"), "PYTHONPATH": REPO}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory, alfworld_games_root: Path):
    tmp = tmp_path_factory.mktemp("quickstart")
    proc = quickstart(tmp, alfworld_games_root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_quickstart_runs_every_stage_and_writes_named_folders(toy_run):
    tmp, proc = toy_run
    runs = tmp / "runs"
    for marker in ("games", "expert", "sft", "eval"):
        assert (runs / f"{marker}.done.json").is_file(), marker
    assert (runs / "round-1" / "rollouts.done.json").is_file() and (runs / "round-1" / "oreo.done.json").is_file()
    assert (runs / "sft" / "policy" / "config.json").is_file()
    assert (runs / "round-1" / "oreo" / "value" / "oreo_value.json").is_file()
    expert = json.loads((runs / "expert.done.json").read_text())
    assert expert["episodes"] == 2 and expert["success_rate"] == 1.0  # the fixed expert solves generated games
    report = (runs / "eval" / "eval.md").read_text()
    for agent, select in [("sft", "greedy"), ("oreo", "greedy"), ("oreo+V K=2", "value")]:
        assert f"| {agent} | {select} | valid_unseen | all |" in report
        assert f"| {agent} | {select} | train | all | 2 |" in report  # the training games, beside the held-out ones
    assert (runs / "eval" / "eval.png").stat().st_size > 1000
    assert (runs / "eval" / "eval_task_types.png").stat().st_size > 1000
    assert "oreo-agents play --policy" in proc.stdout


def test_quickstart_verdict_fits_80_columns_with_a_reading_and_no_library_noise(toy_run):
    _, proc = toy_run
    out = proc.stdout
    table = out[out.index("solved/played"): out.index("Reading:")]
    assert "train games" in table and "valid_unseen" in table and "oreo+V K=2" in table
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "…" not in table  # no cell cut
    assert "/2 " in table and "/1 " in table  # successes/played on 2 training games and 1 held-out game
    assert "Reading: The agents solve" in out
    for noise in ("FutureWarning", "past_key_values", "Generating train split", "Warning"):
        assert noise not in out and noise not in proc.stderr, noise


def test_quickstart_writes_the_value_lens_of_its_oreo_value(toy_run):
    tmp, proc = toy_run
    lens = tmp / "runs" / "eval" / "value"
    for name in ("value_report.md", "value_report.json", "value_curves.png", "value_calibration.png",
                 "value_trace.html", "value_trace.txt"):
        assert (lens / name).stat().st_size > 100, name
    summary = json.loads((lens / "value_report.json").read_text())
    assert summary["episodes"] == 3  # the OREO agent's own episodes: 2 training games + 1 held-out game
    assert {e["split"] for e in summary["episode_values"]} == {"train", "valid_unseen"}
    assert "value lens" in proc.stdout and "AUC of V(s0)" in proc.stdout and "ECE" in proc.stdout
    assert json.loads((tmp / "runs" / "value.done.json").read_text())["report"].endswith("value_report.md")
    # The expert check: the OREO agent's ALFWorld episodes replayed with the expert (its states counted, not scored here)
    check = json.loads((lens / "expert_check.json").read_text())
    assert check["states"] == json.loads((tmp / "runs" / "value.done.json").read_text())["expert_check"]["states"]
    assert "expert check" in proc.stdout and "## The expert check" in (lens / "value_report.md").read_text()


def test_rollouts_hold_the_sft_models_own_token_ids(toy_run):
    from oreo_agents.recording.dataset import load_episodes

    tmp, _ = toy_run
    ds = load_episodes(tmp / "data" / "round-1" / "rollouts")
    assert len(ds) == 4  # 2 games x 2 samples
    for row in ds:
        assert row["metadata"]["policy"] == "model" and "sft/policy" in row["metadata"]["checkpoint"]
        first = row["steps"][0]
        assert first["completion_token_ids"] and len(first["completion_logprobs"]) == len(first["completion_token_ids"])


def test_rerun_skips_finished_stages(toy_run, alfworld_games_root):
    tmp, _ = toy_run
    before = {p: p.stat().st_mtime for p in (tmp / "runs").glob("**/*.done.json")}
    proc = quickstart(tmp, alfworld_games_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Each stage says so once; the per-agent markers (eval/<agent>/<split>/rows.done.json) live inside the eval stage.
    stages = [p for p in before if p.name != "rows.done.json"]
    assert len(stages) >= 7 and proc.stdout.count("done before") == len(stages)
    assert {p: p.stat().st_mtime for p in before} == before


def test_iterate_needs_an_existing_policy(tmp_path):
    from oreo_agents.pipeline import IterateConfig, run_iterate

    with pytest.raises(OreoError, match="--policy is required"):
        run_iterate(IterateConfig())
    with pytest.raises(OreoError, match="no such model folder"):
        run_iterate(IterateConfig(policy=str(tmp_path / "nope")))


def test_compare_on_math_trains_every_method_and_pools_seeds(tmp_path):
    """Math path of the loop: expert steps -> SFT -> rollouts -> RFT, DPO, OREO, round 2; beam search with the value."""
    cmd = [sys.executable, "-m", "oreo_agents.cli.app", "compare", "--env", "math", "--train-tasks", "6",
           "--eval-tasks", "3", "--samples-per-task", "2", "--max-steps", "4", "--sft-epochs", "30", "--oreo-epochs", "1",
           "--num-envs", "4", "--seeds", "0", "--seeds", "1", "--ks", "2", "--rounds", "2",
           "--out", str(tmp_path / "runs"), "--datasets", str(tmp_path / "data")]
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": REPO}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (tmp_path / "runs" / "compare.md").read_text()
    assert "OREO+beam K=2" in report and "| OREO round 2 | test |" in report and "| SFT | test |" in report
    assert "| RFT | test |" in report and "| RFT round 2 | test |" in report  # iterative RFT: the control for round 2
    for seed in (0, 1):
        seed_dir = tmp_path / "runs" / f"seed-{seed}"
        for marker in ("sft", "rft", "dpo", "eval"):
            assert (seed_dir / f"{marker}.done.json").is_file(), (seed, marker)
        assert (seed_dir / "round-2" / "oreo" / "policy" / "config.json").is_file()
        assert (seed_dir / "rft-round-2" / "rft" / "policy" / "config.json").is_file()
    # Pooled counts are the sum over the two seeds of 3 test problems each.
    assert "/6) |" in report
    # What each stage cost, from the markers: training stages and every agent's evaluation
    assert "## Time per stage" in report and "| seed-0/sft |" in report and "| seed-1/round-2/oreo |" in report
    assert "| seed-0/eval/OREO-beamK2/held-out |" in report


def test_task_types_reach_game_generation_collection_and_evaluation(monkeypatch, tmp_path):
    """--task-types narrows every stage to the same task types (games generated, rollouts collected, games evaluated)."""
    import oreo_agents.pipeline.collect as collect_cli
    import oreo_agents.pipeline.evaluate as eval_cli
    import oreo_agents.envs.alfworld as alfworld
    from oreo_agents.pipeline.stages import AgentSpec, LoopConfig, collect_stage, ensure_eval_tasks, eval_rows

    seen = {}

    def fake_ensure(root, split, n, seed, task_types):
        seen[split] = task_types

    def fake_collect(collect_cfg):
        seen["collect"] = collect_cfg
        return _Summary()

    def fake_eval(eval_cfg, report):
        seen["eval"] = eval_cfg
        return []

    monkeypatch.setattr(alfworld, "ensure_games", fake_ensure)
    monkeypatch.setattr(collect_cli, "run_collect", fake_collect)
    monkeypatch.setattr(eval_cli, "run_eval", fake_eval)
    cfg = LoopConfig(task_types=["pick_and_place_simple"], eval_splits=["valid_seen"])
    ensure_eval_tasks(cfg)
    collect_stage(cfg, Path("unused"), policy="expert")
    eval_rows(cfg, tmp_path, [AgentSpec("sft", "unused")])
    assert seen["train"] == seen["valid_seen"] == ["pick_and_place_simple"]
    assert seen["collect"].task_types == seen["eval"].task_types == ["pick_and_place_simple"]


def test_eval_rows_resume_per_agent_and_redo_an_agent_whose_settings_changed(monkeypatch, tmp_path):
    """A killed evaluation of several agents resumes at the agent it was playing; a marker of other settings is redone."""
    import oreo_agents.pipeline.evaluate as eval_cli
    from oreo_agents.agent.evaluate import Row
    from oreo_agents.pipeline.stages import AgentSpec, LoopConfig, eval_rows

    played = []

    def fake_eval(eval_cfg, report):
        played.append((eval_cfg.policy[0], eval_cfg.k))
        return [Row("x", eval_cfg.select[0], "valid_seen", "all", 4, len(played), len(played) / 4, 0.0, 1.0, 3.0)]

    monkeypatch.setattr(eval_cli, "run_eval", fake_eval)
    cfg = LoopConfig(eval_splits=["valid_seen"])
    agents = [AgentSpec("sft", "p1"), AgentSpec("oreo", "p2", "v2", "value", 3)]
    first = eval_rows(cfg, tmp_path, agents)
    assert played == [("p1", 4), ("p2", 3)] and [r.agent for r in first] == ["sft", "oreo+V K=3"]
    again = eval_rows(cfg, tmp_path, agents)
    assert played == [("p1", 4), ("p2", 3)] and again == first  # nothing played twice, same rows
    (tmp_path / "oreo-VK3" / "held-out" / "rows.done.json").unlink()  # killed while playing the second agent
    eval_rows(cfg, tmp_path, agents)
    assert played[2:] == [("p2", 3)]
    eval_rows(cfg, tmp_path, [AgentSpec("sft", "p1"), AgentSpec("oreo", "p2", "v2", "value", 5)])
    assert played[3:] == [("p2", 5)]  # K changed: another agent folder, evaluated; sft still done
    eval_rows(LoopConfig(eval_splits=["valid_seen"], max_steps=7), tmp_path, agents[:1])
    assert played[4:] == [("p1", 4)]  # same folder, other settings: the marker does not stand for it


class _Summary:  # what collect_stage reads of run_collect's summary
    recorded, skipped, success_rate = 1, 0, 1.0


def test_sft_stage_passes_precision_lora_and_observation_loss_to_the_trainer(monkeypatch, tmp_path):
    import oreo_agents.learning as learning
    from oreo_agents.pipeline.stages import StartConfig, sft_stage

    seen = {}

    class FakeTrainer:
        def __init__(self, train_cfg):
            seen["cfg"] = train_cfg

        def train(self):
            return {"updates": 1}

    monkeypatch.setattr(learning, "make_trainer", FakeTrainer)
    cfg = StartConfig(out=str(tmp_path), mixed_precision="bf16", lora_r=8, sft_observation_loss_weight=0.5, sft_epochs=7)
    assert sft_stage(cfg, tmp_path / "demos") == str(tmp_path / "sft" / "policy")
    assert (seen["cfg"].algo, seen["cfg"].epochs) == ("sft", 7)
    assert (seen["cfg"].mixed_precision, seen["cfg"].lora_r, seen["cfg"].observation_loss_weight) == ("bf16", 8, 0.5)

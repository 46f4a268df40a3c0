"""`oreo-agents train` errors are one line naming the dataset, field or model folder."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from oreo_agents.cli.app import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning"))
from fake_episodes import episode, write_dataset  # noqa: E402


def run(*args: str):
    return CliRunner().invoke(cli, ["train", *args])


def test_missing_dataset(tmp_path: Path):
    res = run("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "dataset not found" in res.output and "nope" in res.output


def test_dataset_without_needed_fields(tmp_path: Path):
    import datasets

    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([{"task_id": "t", "steps": []}]).to_parquet(str(bad))
    res = run("--data", str(bad), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "lacks the field" in res.output and "episode_id" in res.output


def test_model_dir_that_does_not_load(tmp_path: Path):
    data = write_dataset(tmp_path / "d.parquet", [episode(0, True)])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    res = run("--data", str(data), "--model", str(broken), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and str(broken) in res.output and "Traceback" not in res.output


def test_bad_option_values_and_yaml(tmp_path: Path):
    res = run("--data", "x", "--batch-size", "0")
    assert res.exit_code == 2 and "--batch-size" in res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rat: 0.1\n")
    res = run("--config", str(cfg))
    assert res.exit_code == 2 and "learning_rat" in res.output


def test_sft_needs_successes(tmp_path: Path):
    data = write_dataset(tmp_path / "d.parquet", [episode(0, False)])
    res = run("--algo", "sft", "--data", str(data), "--out", str(tmp_path / "r"), "--model-cache", str(tmp_path / "c"))
    assert res.exit_code == 2 and "successful episodes" in res.output

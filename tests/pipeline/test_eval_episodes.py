"""A killed evaluation resumes: the agent's committed episodes are kept and only the rest are played, giving the same
outcomes and the same recorded episodes as an uninterrupted run; other settings or --no-resume start it over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.pipeline.eval_episodes import EVAL_SHARD_SIZE
from oreo_agents.pipeline.evaluate import EvalConfig, run_eval


def _outcomes(out: Path) -> list[dict]:
    return sorted((json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()),
                  key=lambda o: (o["agent"], o["select"], o["split"], o["index"]))


def _episodes(folder: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    from oreo_agents.recording.writer import shard_paths

    rows = [r for shard in shard_paths(folder) for r in pq.read_table(shard).to_pylist()]
    # As JSON text: steps hold NaN values (no value model), which never compare equal as floats.
    return {r["episode_id"]: json.dumps([r["steps"], r["success"], r["task_id"]]) for r in rows}


@pytest.fixture
def tiny_math_model(tmp_path: Path) -> Path:
    import torch

    torch.set_num_threads(1)
    from oreo_agents.envs.math.problems import load_problems
    from oreo_agents.models.loading import build_tiny_model

    texts = [p.question for p in load_problems("embedded", num_problems=50)] + ["#### 4", "3 + 4 = 7"]
    return build_tiny_model(texts, tmp_path / "tiny")


def test_a_killed_evaluation_resumes_with_the_same_episodes(tiny_math_model: Path, tmp_path: Path, monkeypatch, capsys):
    from oreo_agents.recording.writer import ShardWriter

    def cfg(out: Path) -> EvalConfig:
        # One env: the sampled replies do not depend on which episodes share a batch.
        return EvalConfig(env="math", policy=[str(tiny_math_model)], select=["sample"], episodes=7, num_envs=1,
                          max_new_tokens=8, max_steps=2, out=str(out))

    reference = tmp_path / "whole"
    run_eval(cfg(reference), report=False)

    calls, add = [0], ShardWriter.add

    def killed_at_the_sixth(self, record):
        calls[0] += 1
        if calls[0] == EVAL_SHARD_SIZE + 2:  # one shard committed, one episode buffered: Ctrl-C
            raise KeyboardInterrupt
        return add(self, record)

    monkeypatch.setattr(ShardWriter, "add", killed_at_the_sixth)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg(resumed), report=False)
    monkeypatch.setattr(ShardWriter, "add", add)
    folder = next((resumed / "episodes").iterdir())
    assert len(_episodes(folder)) == EVAL_SHARD_SIZE + 1  # the buffered one was flushed on the way out
    capsys.readouterr()

    run_eval(cfg(resumed), report=False)
    assert f"7 episodes ({EVAL_SHARD_SIZE + 1} played before, kept)" in " ".join(capsys.readouterr().out.split())
    assert _outcomes(resumed) == _outcomes(reference)
    assert _episodes(folder) == _episodes(next((reference / "episodes").iterdir()))  # token ids and all

    def no_model(*args, **kwargs):
        raise AssertionError("a finished agent's models were loaded")

    monkeypatch.setattr(EvalConfig, "build", no_model)
    run_eval(cfg(resumed), report=False)  # every episode kept: nothing to play, no model to load
    assert _outcomes(resumed) == _outcomes(reference)


def test_other_settings_or_no_resume_play_the_agent_again(tmp_path: Path, capsys):
    out = tmp_path / "eval"
    base = dict(env="math", policy=["expert"], episodes=3, out=str(out))
    run_eval(EvalConfig(**base), report=False)
    capsys.readouterr()
    run_eval(EvalConfig(**base), report=False)
    assert "3 episodes (3 played before, kept)" in " ".join(capsys.readouterr().out.split())
    run_eval(EvalConfig(**base, max_steps=3), report=False)
    text = " ".join(capsys.readouterr().out.split())
    assert "played with other settings (max_steps: None -> 3); playing its episodes again" in text
    assert "played before" not in text
    run_eval(EvalConfig(**base, max_steps=3, resume=False), report=False)
    assert "--no-resume; playing its episodes again" in " ".join(capsys.readouterr().out.split())


def test_a_folder_not_written_by_eval_is_refused_and_kept(tmp_path: Path):
    folder = tmp_path / "eval" / "episodes" / "expert-greedy"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"settings": {"source": "collect"}}))
    with pytest.raises(OreoError, match="was not written by eval"):
        run_eval(EvalConfig(env="math", policy=["expert"], episodes=2, out=str(tmp_path / "eval")), report=False)
    assert (folder / "manifest.json").is_file()

"""The loop commands' training options reach every training stage; bad values are refused when the config is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.pipeline import stages
from oreo_agents.pipeline.compare import CompareConfig, baseline_stage


def test_micro_batch_and_checkpointing_reach_oreo_and_baselines_but_sft_keeps_its_batch(monkeypatch, tmp_path: Path):
    seen = []

    class Recorder:
        def __init__(self, cfg):
            seen.append(cfg)

        def train(self):
            return {"updates": 1}

    monkeypatch.setattr("oreo_agents.learning.make_trainer", Recorder)
    cfg = CompareConfig(out=str(tmp_path / "runs"), datasets=str(tmp_path / "data"), micro_batch_size=1,
                        gradient_checkpointing=True, sft_batch_size=4, save_steps=5)
    stages.train_stage(cfg, tmp_path / "oreo", algo="oreo", data=[tmp_path / "d"], model="tiny")
    baseline_stage(cfg, "rft", "tiny", tmp_path / "d")
    stages.sft_stage(cfg, tmp_path / "expert")
    oreo, rft, sft = seen
    assert (oreo.micro_batch_size, rft.micro_batch_size, sft.micro_batch_size) == (1, 1, 4)
    assert oreo.gradient_checkpointing and rft.gradient_checkpointing and sft.gradient_checkpointing
    assert oreo.save_steps == rft.save_steps == sft.save_steps == 5


@pytest.mark.parametrize("bad", [0, -2])
def test_bad_micro_batch_is_refused_by_name(bad: int):
    with pytest.raises(OreoError, match="--micro-batch-size"):
        CompareConfig(micro_batch_size=bad)
    with pytest.raises(OreoError, match="--save-steps"):
        CompareConfig(save_steps=bad)
    with pytest.raises(OreoError, match="--env-workers"):
        CompareConfig(env_workers=-1)


def test_stage_times_lists_every_timed_marker_in_the_order_stages_finished(tmp_path: Path):
    import json
    import os

    def marker(rel: str, body: dict, mtime: int) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body))
        os.utime(path, (mtime, mtime))

    marker("seed-0/sft.done.json", {"run": "x", "seconds": 2767.0}, 100)
    marker("games.done.json", {"seconds": 350.4}, 50)
    marker("seed-0/eval/SFT/held-out/rows.done.json", {"settings": {}, "rows": [], "seconds": 770.0}, 200)
    marker("seed-0/eval/OREO/held-out/rows.done.json", {"settings": {}, "rows": []}, 300)  # written before times were kept
    marker("seed-0/round-1/rollouts.done.json", ["not", "a", "summary"], 150)
    assert stages.stage_times(tmp_path) == [("games", 350.4), ("seed-0/sft", 2767.0), ("seed-0/eval/SFT/held-out", 770.0)]

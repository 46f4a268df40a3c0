"""The pre-flight memory estimate: the fitted formula against the measurements it came from, and the warning by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oreo_agents.learning import memory as M

SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, vocab_size=49152)
QWEN_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, vocab_size=151936)


def test_per_layer_token_cost_matches_the_measurements():
    # benchmarks/memory_estimate.py (saved_tensors_hooks, fp32, policy + value): Qwen2.5-1.5B widths 389 kB per
    # layer-token without checkpointing, 12.3 kB with; SmolLM2-135M 331 MB per layer at 4 x 1,024 tokens (80.8 kB).
    def per_layer_token(shape, checkpointing):
        one = dict(shape, num_hidden_layers=1, vocab_size=0)
        return M.activation_bytes(one, 1, trained_models=2, checkpointing=checkpointing)

    assert per_layer_token(QWEN_1_5B, False) == 2 * 4 * (8 * 1536 + 4 * 8960) == 385_024  # measured 389 kB
    assert per_layer_token(QWEN_1_5B, True) == 2 * 4 * 1536 == 12_288  # measured 12.3 kB: the layer inputs exactly
    assert abs(per_layer_token(SMOLLM2, False) - 80_800) / 80_800 < 0.07  # 86,016 predicted
    # Outside the layers: 1.5 x 4 B x V per token (measured 242 kB for SmolLM2, 1.02 MB for Qwen).
    assert M.activation_bytes(dict(SMOLLM2, num_hidden_layers=0), 1, trained_models=2, checkpointing=False) == 294_912


def test_the_recipe_that_was_killed_and_the_one_that_fits():
    # SmolLM2 OREO (policy + value, LoRA, cached reference) on 30-step ALFWorld episodes (1,024 tokens), measured on the
    # 24 GB machine: micro-batch 1 peaked at 6.73 GB resident; micro-batch 4 went past 18 GB (stopped there) and, in the
    # run beside an evaluation, was killed at 24.2 GB.
    kwargs = dict(length=1024, trained_models=2, loaded_models=3, full_finetune=False, checkpointing=False)
    text = M.memory_warning(SMOLLM2, rows=4, available=18 * 10**9, **kwargs)
    assert text is not None and "4 x 1024 tokens" in text and "19.6 GB" in text
    assert "--micro-batch-size 1 (~6.7 GB)" in text and "--gradient-checkpointing" in text and "--max-length" in text
    assert M.memory_warning(SMOLLM2, rows=1, available=12 * 10**9, **kwargs) is None
    # Full fine-tuning adds gradients and two Adam moments (12 B) per trained parameter.
    full = dict(kwargs, full_finetune=True)
    assert M.memory_warning(SMOLLM2, rows=1, available=8 * 10**9, **full) is not None


def test_model_shape_reads_config_json_and_gives_up_quietly(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps(dict(SMOLLM2, model_type="llama")))
    assert M.model_shape(tmp_path) == SMOLLM2
    nested = tmp_path / "vl"
    nested.mkdir()
    (nested / "config.json").write_text(json.dumps({"text_config": SMOLLM2}))
    assert M.model_shape(nested) == SMOLLM2
    assert M.model_shape(tmp_path / "missing") is None
    (nested / "config.json").write_text(json.dumps({"hidden_size": 8}))
    assert M.model_shape(nested) is None


def test_trainer_warns_before_loading_models(mixed_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture):
    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig

    monkeypatch.setattr(M, "available_bytes", lambda device: 1000)  # nothing fits in a kilobyte
    cfg = TrainConfig(data=[str(mixed_dataset)], out=str(tmp_path / "run"), model="tiny", model_cache=str(tmp_path / "cache"),
                      batch_size=4, micro_batch_size=2, max_steps=1, plot=False)
    make_trainer(cfg).train()
    out = capsys.readouterr().out
    assert "warning" in out and "2 x" in out and "--micro-batch-size 1" in out and "--gradient-checkpointing" in out

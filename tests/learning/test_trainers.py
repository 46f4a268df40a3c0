"""End-to-end training on tiny real models: OREO separates successes from failures, baselines run, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oreo_agents.learning import make_trainer
from oreo_agents.learning.config import TrainConfig


def cfg(data: Path, out: Path, cache: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], out=str(out), model="tiny", model_cache=str(cache), batch_size=4, micro_batch_size=2, plot=False)
    base.update(kw)
    return TrainConfig(**base)


def test_oreo_values_separate_success_from_failure(mixed_dataset: Path, tmp_path: Path):
    summary = make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", epochs=12, plot=True)).train()
    assert summary["value_mean_success"] > summary["value_mean_failure"] + 0.2
    assert summary["value_auc"] == 1.0
    out = tmp_path / "run"
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == summary["updates"] == 24
    assert {"loss_v", "loss_pi", "kl", "mean_v", "return", "lr", "lr_v", "tokens_per_s"} <= set(records[0])
    assert records[-1]["loss_v"] < records[0]["loss_v"]
    assert (out / "metrics.png").stat().st_size > 1000
    from oreo_agents.models.loading import ValueModel, load_policy

    load_policy(out / "policy")
    ValueModel.from_pretrained(out / "value")


@pytest.mark.parametrize("algo", ["sft", "rft", "dpo"])
def test_baselines_run(algo: str, mixed_dataset: Path, tmp_path: Path):
    summary = make_trainer(cfg(mixed_dataset, tmp_path / algo, tmp_path / "cache", algo=algo, epochs=2, dpo_beta=0.1)).train()
    records = [json.loads(x) for x in (tmp_path / algo / "metrics.jsonl").read_text().splitlines()]
    assert summary["updates"] == len(records) >= 1
    assert all(r["loss"] == r["loss"] for r in records)  # no NaN
    assert (tmp_path / algo / "policy" / "config.json").is_file()


def test_sft_observation_loss_trains_the_observations_too(mixed_dataset: Path, tmp_path: Path):
    # Same start, same batches: with observation tokens in the loss, the observations' NLL must fall further.
    runs = {w: make_trainer(cfg(mixed_dataset, tmp_path / f"w{w}", tmp_path / "cache", algo="sft", epochs=3, learning_rate=3e-3,
                                observation_loss_weight=w)) for w in (0.0, 1.0)}
    for trainer in runs.values():
        trainer.train()
    records = [json.loads(x) for x in (tmp_path / "w1.0" / "metrics.jsonl").read_text().splitlines()]
    assert "action_loss" in records[-1] and records[-1]["action_loss"] < records[0]["action_loss"]
    from oreo_agents.learning import data as D
    from oreo_agents.learning import losses as L
    from oreo_agents.models.loading import load_policy

    batch = runs[0.0].batch(list(range(len(runs[0.0].items))))
    observed = L.sft_token_weights(batch["mask"], batch["attention_mask"], 1.0) - batch["mask"]
    nll = {}
    for w in runs:
        with torch.no_grad():
            logits = load_policy(tmp_path / f"w{w}" / "policy")(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll[w] = float(L.sft_loss(D.token_logprobs(logits, batch["input_ids"]), observed))
    assert nll[1.0] < nll[0.0] - 0.5


@pytest.mark.parametrize("lora_r", [0, 4])
def test_exact_kl_from_recomputed_reference_matches_the_cache(lora_r: int, mixed_dataset: Path, tmp_path: Path):
    """--ref-distributions online (frozen copy, or LoRA's base with adapters off) trains like the float16 cache."""
    records = {}
    for mode in ("cache", "online"):
        out = tmp_path / mode
        make_trainer(cfg(mixed_dataset, out, tmp_path / "cache", max_steps=3, lora_r=lora_r, alpha=0.5,
                         ref_distributions=mode)).train()
        records[mode] = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert (out / "ref_cache").is_dir()
        assert any((out / "ref_cache").rglob("full.npy")) == (mode == "cache")
    for cached, online in zip(records["cache"], records["online"]):
        assert online["kl"] == pytest.approx(cached["kl"], rel=0.02, abs=1e-4)
        assert online["loss_pi"] == pytest.approx(cached["loss_pi"], rel=0.02, abs=1e-4)
    assert records["online"][-1]["kl"] > 0  # the policy moved away from pi_ref: a zero KL would mean pi_ref moved too


@pytest.mark.parametrize("level", ["step", "response"])
def test_oreo_loss_levels_train(level: str, mixed_dataset: Path, tmp_path: Path):
    summary = make_trainer(cfg(mixed_dataset, tmp_path / level, tmp_path / "cache", loss_level=level, max_steps=3)).train()
    assert summary["updates"] == 3


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "oreo_agents.cli.train", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_resume_after_kill_ends_like_an_uninterrupted_run(mixed_dataset: Path, tmp_path: Path):
    common = ["--algo", "oreo", "--data", str(mixed_dataset), "--model", "tiny", "--model-cache", str(tmp_path / "cache"),
              "--epochs", "6", "--batch-size", "4", "--micro-batch-size", "2", "--save-steps", "2", "--no-plot"]  # fmt: skip
    ref = _cli([*common, "--out", str(tmp_path / "clean")])
    assert ref.wait(300) == 0, ref.stdout.read()
    killed_out = tmp_path / "killed"
    proc = _cli([*common, "--out", str(killed_out)])
    deadline = time.time() + 300
    while not (killed_out / "checkpoints" / "step-4" / "trainer_state.json").exists():
        assert proc.poll() is None, "run ended before it could be killed: " + proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_out / "summary.json").exists()
    again = _cli([*common, "--out", str(killed_out)])
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    assert "resuming" in output
    for part in ("policy", "value"):
        a, b = _weights(tmp_path / "clean" / part), _weights(killed_out / part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
    clean = (tmp_path / "clean" / "metrics.jsonl").read_text().splitlines()
    resumed = (killed_out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss_v"] for x in clean] == [json.loads(x)["loss_v"] for x in resumed]


def test_ddp_two_cpu_processes_match_one_process(mixed_dataset: Path, tmp_path: Path):
    common = ["--algo", "oreo", "--data", str(mixed_dataset), "--model", "tiny", "--model-cache", str(tmp_path / "cache"),
              "--epochs", "2", "--batch-size", "4", "--micro-batch-size", "1", "--no-plot",
              "--mixed-precision", "no"]  # fp32: auto is bf16 on an AVX512-BF16 CPU, where reduction order moves weights  # fmt: skip
    single = _cli([*common, "--out", str(tmp_path / "one")])
    assert single.wait(300) == 0, single.stdout.read()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/cpu-2proc.yaml",
              "--main_process_port", "29533", "-m", "oreo_agents.cli.train", *common, "--out", str(tmp_path / "two")]  # fmt: skip
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(launch, env=env, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 4
    # each process sees half of every update; all-reduced gradients make it the same update as one process
    assert [r["loss_v"] for r in one] == pytest.approx([r["loss_v"] for r in two], rel=1e-3, abs=1e-5)
    a, b = _weights(tmp_path / "one" / "value"), _weights(tmp_path / "two" / "value")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_lora_and_gradient_checkpointing(mixed_dataset: Path, tmp_path: Path):
    run = cfg(mixed_dataset, tmp_path / "lora", tmp_path / "cache", max_steps=2, lora_r=4, gradient_checkpointing=True)
    make_trainer(run).train()
    from oreo_agents.models.loading import ValueModel, load_policy

    load_policy(tmp_path / "lora" / "policy")  # adapters merged: a plain checkpoint
    value = ValueModel.from_pretrained(tmp_path / "lora" / "value")
    assert value.head.weight.abs().sum() > 0  # the head trained although the backbone only has adapters

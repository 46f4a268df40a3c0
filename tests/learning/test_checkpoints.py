"""Training checkpoints: nothing is unpickled on resume, changed settings are refused by name, damaged checkpoints fall
back to the previous intact one. Tiny SFT runs (one model, a few updates) keep each test to seconds."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import shutil
from typing import Any
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_episodes import episode, write_dataset

from oreo_agents.errors import OreoError
from oreo_agents.learning import checkpoints as C
from oreo_agents.learning import make_trainer
from oreo_agents.learning.config import TrainConfig


def cfg(data, out: Path, cache: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], out=str(out), model="tiny", model_cache=str(cache), algo="sft", batch_size=2,
                micro_batch_size=1, max_steps=3, save_steps=1, save_total_limit=5, plot=False)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def policy_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "policy" / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Payload:
    """Unpickling this creates a folder: proof that a pickle planted in a run folder was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# --- item 1: no pickle from a run folder -------------------------------------------------------------------------------
def test_resume_never_runs_a_pickle_planted_in_the_checkpoint(mixed_dataset: Path, tmp_path: Path):
    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache")
    make_trainer(run).train()
    clean = policy_weights(tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-3")  # resume from step 2 and redo update 3
    step2 = tmp_path / "run" / "checkpoints" / "step-2"
    # the format holds no pickle at all (serving/: the base model's config and tokenizer JSON)
    assert {f.suffix for f in step2.rglob("*") if f.is_file()} == {".json", ".safetensors"}
    marker = tmp_path / "payload-ran"
    # what accelerate's load_state unpickles with weights_only=False: registered objects (our schedulers), in
    # accelerate/checkpointing.py load_custom_state (its other files load with weights_only=True)
    torch.save(Payload(marker), step2 / "custom_checkpoint_0.pkl")  # the one scheduler of an SFT run
    try:
        summary = make_trainer(run).train()
    finally:
        assert not marker.exists(), "a pickle from the run folder was executed on resume"
    assert summary["updates"] == 3
    assert same(policy_weights(tmp_path / "run"), clean)  # resumed from step 2: same end as the uninterrupted run


def test_pickle_checkpoints_need_the_explicit_flag(mixed_dataset: Path, tmp_path: Path, capsys):
    """An accelerate ``save_state`` checkpoint (DeepSpeed runs, older versions) is refused unless trusted."""
    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=2)
    trainer = make_trainer(run)
    trainer.train()
    old = tmp_path / "run" / "checkpoints" / "step-2"
    shutil.rmtree(old)
    trainer.acc.save_state(str(old))  # the previous format: pickles
    (old / "trainer_state.json").write_text(json.dumps({"step": 2, "algo": "sft"}))
    with pytest.raises(OreoError, match="pickle format.*--trust-checkpoint-pickles"):
        make_trainer(run).train()
    run.trust_checkpoint_pickles = True
    assert make_trainer(run).train()["updates"] == 2
    assert "pickle checkpoint, trusted" in capsys.readouterr().out.replace("\n", "")


# --- item 5: changed settings are refused by name ----------------------------------------------------------------------
def other_model(tmp_path: Path) -> Path:
    """A copy of the built tiny model with one weight nudged: same config and path shape, other content."""
    from safetensors.torch import load_file, save_file

    built = next((tmp_path / "cache").glob("tiny-*"))
    copy = tmp_path / "other-model"
    shutil.copytree(built, copy)
    w = load_file(str(copy / "model.safetensors"))
    first = sorted(w)[0]
    w[first] = w[first] + 1e-3
    save_file(w, str(copy / "model.safetensors"), metadata={"format": "pt"})
    return copy


def test_resume_refuses_changed_settings_by_name(mixed_dataset: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = cfg(Path("data") / "mixed.parquet", Path("run"), Path("cache"), max_steps=2)
    make_trainer(run).train()
    config_yaml = (tmp_path / "run" / "config.yaml").read_text()
    other_data = write_dataset(tmp_path / "other" / "o.parquet", [episode(t, True) for t in range(6)])
    changes = {
        "learning_rate": (2e-3, "--learning-rate 0.001 -> 0.002"),
        "seed": (7, "--seed 0 -> 7"),
        "data": ([str(other_data)], "--data [mixed.parquet sha256:"),
        "model": (str(other_model(tmp_path)), "--model files sha256:"),
    }
    for key, (value, says) in changes.items():
        with pytest.raises(OreoError) as err:
            make_trainer(dataclasses.replace(run, **{key: value})).train()
        assert says in str(err.value), str(err.value)
        if key != "data":  # (a tiny model is built from the data's text: new data also names --model)
            assert str(err.value).count(" -> ") == 1, str(err.value)  # only the changed setting is named
        assert (tmp_path / "run" / "config.yaml").read_text() == config_yaml  # nothing was overwritten
    # Two settings at once: both named.
    both = dataclasses.replace(run, learning_rate=2e-3, batch_size=4)
    with pytest.raises(OreoError, match=r"--batch-size 2 -> 4.*--learning-rate 0.001 -> 0.002"):
        make_trainer(both).train()


def test_resume_accepts_the_same_run_spelled_differently(mixed_dataset: Path, tmp_path: Path, monkeypatch):
    """Absolute vs ``./x/`` paths, the built model given as a folder, and settings that do not change the trajectory."""
    monkeypatch.chdir(tmp_path)
    make_trainer(cfg("./data/", Path("run"), Path("cache"), max_steps=2)).train()
    built = next((tmp_path / "cache").glob("tiny-*"))
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-2")
    same_run = cfg(str(tmp_path / "data"), tmp_path / "run", tmp_path / "cache2", max_steps=2, model=str(built),
                   save_steps=5, log_steps=3, save_total_limit=1, plot=True)  # fmt: skip
    assert make_trainer(same_run).train()["updates"] == 2
    assert [p.name for p in C.complete_checkpoints(tmp_path / "run")] == ["step-2"]  # save_total_limit 1 took effect


# --- item 6: damaged checkpoints fall back ------------------------------------------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated trainer_state.json": lambda ck: truncate(ck / "trainer_state.json"),
    "missing optimizer file": lambda ck: (ck / "optimizer-policy.safetensors").unlink(),
    "truncated model file": lambda ck: truncate(ck / "model-policy.safetensors"),
    "flipped byte in model file": lambda ck: flip_a_byte(ck / "model-policy.safetensors"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_falls_back_to_the_previous_intact_one(damage: str, mixed_dataset: Path, tmp_path: Path, capsys):
    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache")
    make_trainer(run).train()
    clean = policy_weights(tmp_path / "run")
    ckpts = tmp_path / "run" / "checkpoints"
    DAMAGE[damage](ckpts / "step-3")
    capsys.readouterr()
    assert make_trainer(run).train()["updates"] == 3
    out = capsys.readouterr().out.replace("\n", "")  # rich wraps long paths
    assert "step-3 is damaged" in out and "falling back to step-2" in out and "resuming" in out
    assert same(policy_weights(tmp_path / "run"), clean)  # update 3 redone from step 2
    # the damaged checkpoint was replaced by a whole one
    state = C.read_marker(ckpts / "step-3")
    C.verify_files(ckpts / "step-3", state)


def test_all_checkpoints_damaged_starts_over_with_a_warning(mixed_dataset: Path, tmp_path: Path, capsys):
    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=2)
    make_trainer(run).train()
    clean = policy_weights(tmp_path / "run")
    for ck in C.complete_checkpoints(tmp_path / "run"):
        truncate(ck / "model-policy.safetensors")
    capsys.readouterr()
    make_trainer(run).train()
    assert "no intact checkpoint is left: training starts from update 0" in capsys.readouterr().out.replace("\n", "")
    assert same(policy_weights(tmp_path / "run"), clean)


def test_a_save_killed_midway_leaves_no_checkpoint(mixed_dataset: Path, tmp_path: Path):
    """The folder is written as ``.step-N.partial`` and renamed when complete; a leftover partial is ignored."""
    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=2)
    make_trainer(run).train()
    ckpts = tmp_path / "run" / "checkpoints"
    os.rename(ckpts / "step-2", ckpts / ".step-2.partial")
    assert [p.name for p in C.complete_checkpoints(tmp_path / "run")] == ["step-1"]


# --- the format itself --------------------------------------------------------------------------------------------------
def test_optimizer_scheduler_and_rng_state_round_trip_exactly(tmp_path: Path):
    model = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 11, bias=False))
    model[1].weight = model[0].weight  # tied, like an LM head
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    for _ in range(2):
        model(torch.tensor([1, 2, 3])).pow(2).sum().backward()
        opt.step()
        sched.step()
    odd = {"nan": math.nan, "inf": -math.inf, 3: (1, "x"), "t": torch.tensor(2.5, dtype=torch.bfloat16)}
    for name, obj in {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "odd": odd}.items():
        C.write_component(tmp_path, name, obj)
    model_sd = C.read_component(tmp_path, "model")
    assert set(model_sd) == {"0.weight", "1.weight"} and torch.equal(model_sd["1.weight"], model[1].weight)
    got = C.read_component(tmp_path, "optimizer")
    want = opt.state_dict()
    assert got["param_groups"] == want["param_groups"] and isinstance(got["param_groups"][0]["betas"], tuple)
    assert all(torch.equal(got["state"][0][k], want["state"][0][k]) for k in want["state"][0])
    assert C.read_component(tmp_path, "scheduler") == sched.state_dict()
    back = C.read_component(tmp_path, "odd")
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf and back[3] == (1, "x") and back["t"].dtype == torch.bfloat16
    assert {f.suffix for f in tmp_path.iterdir()} == {".json", ".safetensors"}

    C.write_component(tmp_path, "rng", C.rng_state())
    draws = (random.random(), np.random.rand(), torch.rand(3))
    C.set_rng_state(C.read_component(tmp_path, "rng"))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert draws[:2] == again[:2] and torch.equal(draws[2], again[2])


def test_objects_that_would_need_pickle_are_refused(tmp_path: Path):
    with pytest.raises(OreoError, match="checkpoint optimizer: extra holds a Payload"):
        C.write_component(tmp_path, "optimizer", {"extra": Payload(tmp_path / "x")})


def test_the_help_names_exactly_the_settings_a_resume_may_change():
    from dataclasses import fields

    help_text = next(f.metadata["help"] for f in fields(TrainConfig) if f.name == "out")
    flags = set(re.findall(r"--[a-z-]+[a-z]", help_text))
    named = {f.name for f in fields(TrainConfig) if f"--{f.name.replace('_', '-')}" in flags}
    assert named == C.FREE_SETTINGS - {"out", "trust_checkpoint_pickles"}
    assert C.FREE_SETTINGS <= {f.name for f in fields(TrainConfig)}


def test_a_failed_write_names_the_file(tmp_path: Path):
    folder = tmp_path / "gone"  # the folder does not exist: the write fails like a full disk would
    with pytest.raises(OreoError, match=r"cannot write checkpoint file .*gone/model.*earlier checkpoints are intact"):
        C.write_component(folder, "model", {"w": torch.ones(2)})


# --- serving an intermediate checkpoint (models/servable.py) ------------------------------------------------------------
def logits_of(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.tensor([ids])).logits[0]


def test_an_intermediate_checkpoint_serves_as_a_model_folder(mixed_dataset: Path, tmp_path: Path, monkeypatch):
    """``--policy <run>/checkpoints/step-N`` is exported once (JSON + safetensors only) into an HF folder; the last
    checkpoint's export is the final policy, weight for weight."""
    import pickle

    from oreo_agents.models.loading import load_policy
    from oreo_agents.models.policy import ModelPolicy
    from oreo_agents.models.servable import servable

    make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=2)).train()
    step1, step2 = (tmp_path / "run" / "checkpoints" / f"step-{k}" for k in (1, 2))
    assert json.loads((step2 / "serving" / "serving.json").read_text())["lora"] is None
    assert "serving/config.json" in json.loads((step2 / C.MARKER).read_text())["files"]  # hashed like the rest
    refuse = lambda *a, **k: (_ for _ in ()).throw(AssertionError("unpickled"))  # noqa: E731
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    served = servable(step2, cache_dir=tmp_path / "served")
    assert served.lora is None and (served.model / "config.json").is_file() and (served.model / "tokenizer.json").is_file()
    ids = [1, 5, 9, 30, 44]
    assert torch.equal(logits_of(load_policy(served.model), ids), logits_of(load_policy(tmp_path / "run" / "policy"), ids))
    stamp = (served.model / "model.safetensors").stat().st_mtime_ns
    assert servable(step2, cache_dir=tmp_path / "served") == served  # cached: not exported again
    assert (served.model / "model.safetensors").stat().st_mtime_ns == stamp
    monkeypatch.setattr("oreo_agents.models.servable.default_servable_cache", lambda: tmp_path / "served")
    policy = ModelPolicy(str(step1), temperature=0, max_new_tokens=3)  # what --policy step-1 builds
    assert policy.metadata()["checkpoint"] == str(step1)
    assert not torch.equal(logits_of(policy.backend.model, ids), logits_of(load_policy(served.model), ids))


def test_a_lora_run_keeps_its_adapter_and_checkpoints_export_base_plus_adapter(mixed_dataset: Path, tmp_path: Path):
    from oreo_agents.models.loading import load_adapter_merged, load_policy
    from oreo_agents.models.servable import servable

    make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=2, lora_r=4, learning_rate=0.05)).train()
    run = tmp_path / "run"
    final, ids = load_policy(run / "policy"), [1, 5, 9, 30, 44]
    adapter = servable(run / "policy-adapter")  # saved beside the merged policy, base named by an absolute path
    assert adapter.lora == run / "policy-adapter" and adapter.model.is_absolute()
    assert torch.allclose(logits_of(load_adapter_merged(adapter.model, adapter.lora), ids), logits_of(final, ids), atol=1e-5)
    served = servable(run / "checkpoints" / "step-2", cache_dir=tmp_path / "served")
    config = json.loads((served.lora / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["base_model_name_or_path"] == str(served.model)
    from safetensors.torch import load_file

    names = list(load_file(str(served.lora / "adapter_model.safetensors")))
    assert names and all(".lora_A.weight" in n or ".lora_B.weight" in n for n in names)  # PEFT's saved names
    merged = load_adapter_merged(served.model, served.lora)
    assert torch.allclose(logits_of(merged, ids), logits_of(final, ids), atol=1e-5)
    assert not torch.allclose(logits_of(load_policy(served.model), ids), logits_of(final, ids), atol=1e-3)  # base alone


def test_a_damaged_or_pickled_checkpoint_is_not_served(mixed_dataset: Path, tmp_path: Path):
    from oreo_agents.models.servable import servable

    make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", max_steps=1)).train()
    step1 = tmp_path / "run" / "checkpoints" / "step-1"
    flip_a_byte(step1 / "model-policy.safetensors")
    with pytest.raises(OreoError, match="model-policy.safetensors changed or was cut short"):
        servable(step1, cache_dir=tmp_path / "served")
    state = json.loads((step1 / C.MARKER).read_text())
    (step1 / C.MARKER).write_text(json.dumps({**state, "format": C.PICKLE_FORMAT}))
    with pytest.raises(OreoError, match="pickle format .* cannot be served"):
        servable(step1, cache_dir=tmp_path / "served")
    assert not (tmp_path / "served").exists() or not any((tmp_path / "served").glob("*/done.json"))


@pytest.mark.parametrize("lora_r", [0, 4])
def test_an_oreo_checkpoint_serves_its_value_model(mixed_dataset: Path, tmp_path: Path, lora_r: int, monkeypatch):
    """``--value <run>/checkpoints/step-N`` (OREO runs): the value model is exported (LoRA adapters merged) and scores
    like the value folder written at the end of the run."""
    from oreo_agents.agent.agent import load_value
    from oreo_agents.models.servable import export_value

    run = cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", algo="oreo", max_steps=2, lora_r=lora_r,
              learning_rate=0.05)
    make_trainer(run).train()
    monkeypatch.setattr("oreo_agents.models.servable.default_servable_cache", lambda: tmp_path / "served")
    step2 = tmp_path / "run" / "checkpoints" / "step-2"
    ids = torch.tensor([[1, 5, 9, 30, 44]])
    with torch.no_grad():
        final = load_value(tmp_path / "run" / "value", device="cpu")(ids)
        served = load_value(step2, device="cpu")(ids)
    assert torch.allclose(served, final, atol=1e-5) and final.abs().max() > 0
    assert export_value(step2) == tmp_path / "served" / export_value(step2).name  # cached
    sft = cfg(mixed_dataset, tmp_path / "sft", tmp_path / "cache", max_steps=1)
    make_trainer(sft).train()
    with pytest.raises(OreoError, match="holds no value model"):
        load_value(tmp_path / "sft" / "checkpoints" / "step-1")

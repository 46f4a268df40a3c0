"""fp32 master weights from a bf16 checkpoint, train mode + activation checkpointing, FSDP2 on 2 gloo processes,
backends refused by name where they cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oreo_agents.learning import distributed as dist
from oreo_agents.learning import make_trainer
from oreo_agents.learning.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def cfg(data: Path, out: Path, cache: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], out=str(out), model="tiny", model_cache=str(cache), batch_size=4, micro_batch_size=2, plot=False)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def bf16_copy(mixed_dataset: Path, tmp_path: Path) -> Path:
    """A tiny policy folder stored the way Qwen2.5 / Llama releases are: bf16 weights, ``"dtype": "bfloat16"``."""
    from oreo_agents.learning import data as D
    from oreo_agents.recording.dataset import load_episode_rows
    from oreo_agents.models.loading import load_policy, load_tokenizer, resolve_model

    rows = load_episode_rows([str(mixed_dataset)])
    src = resolve_model("tiny", cache_dir=tmp_path / "cache", texts=list(D.episode_texts(rows)))
    dst = tmp_path / "bf16-policy"
    model = load_policy(src, dtype=torch.bfloat16)
    model.save_pretrained(dst)
    load_tokenizer(src).save_pretrained(dst)
    (dst / "oreo_tiny.json").write_text((src / "oreo_tiny.json").read_text())
    assert json.loads((dst / "config.json").read_text())["dtype"] == "bfloat16"
    return dst


def test_bf16_checkpoint_trains_fp32_master_weights(mixed_dataset: Path, tmp_path: Path):
    """The paper's lr on a bf16 checkpoint: with bf16 weights + bf16 Adam two updates change a few percent of the
    weights (an update of ~lr is below bf16's resolution for most of them); fp32 masters change almost all."""
    start = bf16_copy(mixed_dataset, tmp_path)
    out = tmp_path / "run"
    make_trainer(cfg(mixed_dataset, out, tmp_path / "cache", model=str(start), learning_rate=5e-6, max_steps=2)).train()
    before, after = _weights(start), _weights(out / "policy")
    assert all(v.dtype == torch.float32 for v in after.values())  # saved as fp32 by default
    changed = sum(int((after[k] != before[k].float()).sum()) for k in before)
    total = sum(v.numel() for v in before.values())
    assert changed / total >= 0.9, f"{changed / total:.1%} of the policy's weights changed"
    value = _weights(out / "value")
    assert all(v.dtype == torch.float32 for v in value.values())


def test_save_dtype_bfloat16_writes_bf16_folders(mixed_dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    make_trainer(cfg(mixed_dataset, out, tmp_path / "cache", max_steps=1, save_dtype="bfloat16")).train()
    assert {v.dtype for v in _weights(out / "policy").values()} == {torch.bfloat16}
    assert {v.dtype for v in _weights(out / "value").values()} == {torch.bfloat16}
    assert json.loads((out / "policy" / "config.json").read_text())["dtype"] == "bfloat16"
    from oreo_agents.models.loading import ValueModel

    assert ValueModel.from_pretrained(out / "value").head.weight.dtype == torch.float32  # the head stays fp32


def saved_activation_bytes(fn) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs (parameters excluded, each storage once)."""
    seen: dict[int, int] = {}
    params: set[int] = set()

    def pack(t: torch.Tensor):
        if isinstance(t, torch.nn.Parameter) or t.data_ptr() in params:
            return t
        seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    def collect(module: torch.nn.Module):
        params.update(p.data_ptr() for p in module.parameters())

    fn(collect, pack)
    return sum(seen.values())


@pytest.mark.parametrize("algo", ["oreo", "sft"])
def test_models_train_in_train_mode_and_checkpointing_cuts_activations(algo: str, mixed_dataset: Path, tmp_path: Path):
    measured, modes = {}, {}
    for gc in (False, True):
        trainer = make_trainer(cfg(mixed_dataset, tmp_path / f"gc{gc}", tmp_path / "cache", algo=algo, gradient_checkpointing=gc,
                                   max_length=256))  # fmt: skip
        trainer.prepare_data()
        trainer.setup_models(10)
        model = next(iter(trainer.models.values()))
        modes[gc] = {m.training for m in model.modules()}
        idx = list(range(len(trainer.items)))[:4]

        def run(collect, pack, trainer=trainer, model=model, idx=idx):
            collect(model)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                trainer.micro_step(idx, 1.0)

        measured[gc] = saved_activation_bytes(run)
    assert modes == {False: {True}, True: {True}}  # every module in train() while it trains
    # 2 decoder layers per model: checkpointing keeps only each layer's input, so far less is saved for backward.
    assert measured[True] < 0.6 * measured[False], measured


def test_deepspeed_on_cpu_is_refused_by_name(monkeypatch):
    from oreo_agents.errors import OreoError
    from oreo_agents.learning.distributed import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(OreoError, match="DeepSpeed.*CUDA"):
        make_accelerator("no")


def _launch(config: str, args: list[str], port: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--num_processes", "2",
              "--main_process_port", str(port), "-m", "oreo_agents.cli.train", *args]  # fmt: skip
    return subprocess.run(launch, env=env, cwd=REPO, capture_output=True, text=True, timeout=400)


def test_fsdp2_two_cpu_processes_match_one_process(mixed_dataset: Path, tmp_path: Path):
    """configs/accelerate/fsdp.yaml as shipped (FSDP2, transformer auto-wrap, RAM-efficient loading) on 2 gloo
    processes: the policy + value module is sharded (not silently DDP), trains like one process, and saves plain fp32
    HF folders gathered from the shards."""
    common = ["--algo", "oreo", "--data", str(mixed_dataset), "--model", "tiny", "--model-cache", str(tmp_path / "cache"),
              "--epochs", "1", "--batch-size", "4", "--micro-batch-size", "1", "--no-plot",
              # fp32 both ways: equal weights test the sharding. With auto precision a CPU with AVX512-BF16 trains in bf16
              # autocast, where 2 ranks' reduction order alone moves weights past 1e-4 (seen on one: metrics equal to 1e-3).
              "--mixed-precision", "no"]  # fmt: skip
    single = subprocess.run([sys.executable, "-m", "oreo_agents.cli.train", *common, "--out", str(tmp_path / "one")],
                            env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    done = _launch("configs/accelerate/fsdp.yaml", [*common, "--out", str(tmp_path / "two")], 29547)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["backend"] == "fsdp2"
    assert len(list((tmp_path / "two" / "ref_cache").glob("share-*-of-2"))) == 2  # each rank built its share
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 2
    assert [r["loss_v"] for r in one] == pytest.approx([r["loss_v"] for r in two], rel=1e-3, abs=1e-5)
    assert [r["grad_norm"] for r in one] == pytest.approx([r["grad_norm"] for r in two], rel=1e-3)
    for part in ("policy", "value"):
        a, b = _weights(tmp_path / "one" / part), _weights(tmp_path / "two" / part)
        assert a.keys() == b.keys() and all(v.dtype == torch.float32 for v in b.values())
        assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a), part


class FakeDeepSpeedEngine:
    """Stand-in for ``deepspeed.runtime.engine.DeepSpeedEngine`` (0.18.2): the four methods accelerate 1.16's
    ``DeepSpeedEngineWrapper`` and ``Accelerator.clip_grad_norm_`` call, with the same names and arguments."""

    def __init__(self):
        self.calls: list[tuple] = []

    def set_gradient_accumulation_boundary(self, is_boundary):
        self.calls.append(("boundary", is_boundary))

    def backward(self, loss, **kwargs):
        loss.backward()
        self.calls.append(("backward",))

    def step(self):
        self.calls.append(("step",))

    def get_global_grad_norm(self):
        return 1.5


def test_deepspeed_engine_steps_once_per_update(mixed_dataset: Path, tmp_path: Path, monkeypatch):
    """accelerate's DeepSpeed backward steps the engine whenever ``sync_gradients`` is set: the trainer sets it on the
    last micro-batch only, so 4 micro-batches give one engine step (not four) and the norm comes from the engine."""
    from accelerate.utils import DistributedType
    from accelerate.utils.deepspeed import DeepSpeedEngineWrapper

    trainer = make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", algo="sft", micro_batch_size=1))
    trainer.prepare_data()
    trainer.setup_models(10)
    engine = FakeDeepSpeedEngine()
    trainer.acc.deepspeed_engine_wrapped = DeepSpeedEngineWrapper(engine)
    monkeypatch.setattr(type(trainer.acc), "distributed_type", property(lambda self: DistributedType.DEEPSPEED))
    trainer.backend = "deepspeed"
    rec = trainer.one_update([0, 1, 2, 3])
    assert engine.calls == [("boundary", False), ("backward",)] * 3 + [("boundary", True), ("backward",), ("step",)]
    assert rec["grad_norm"] == 1.5



def test_deepspeed_oreo_warns_of_joint_clipping_and_logs_the_joint_norm(mixed_dataset: Path, tmp_path: Path, monkeypatch, capsys):
    """One DeepSpeed engine clips policy and value together (measured on an H200: joint norm 8.1 vs the policy's 0.37
    under DDP): the trainer says so by name at setup, and logs the engine's norm as grad_norm_joint, not grad_norm."""
    from accelerate.utils import DistributedType
    from accelerate.utils.deepspeed import DeepSpeedEngineWrapper

    monkeypatch.setattr(dist, "check_backend", lambda acc, lora=False: "deepspeed")
    monkeypatch.setattr(dist, "prepare", lambda acc, model, opt, **kw: (model, opt))  # the engine is the stand-in below
    trainer = make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", algo="oreo", micro_batch_size=2))
    trainer.prepare_data()
    trainer.setup_models(10)
    out = " ".join(capsys.readouterr().out.split())
    assert "warning" in out and "DeepSpeed clips the policy and the value together" in out and "fsdp.yaml" in out
    trainer.acc.deepspeed_engine_wrapped = DeepSpeedEngineWrapper(FakeDeepSpeedEngine())
    monkeypatch.setattr(type(trainer.acc), "distributed_type", property(lambda self: DistributedType.DEEPSPEED))
    rec = trainer.one_update([0, 1, 2, 3])
    assert rec["grad_norm_joint"] == 1.5 and "grad_norm" not in rec and "grad_norm_v" not in rec

def test_deepspeed_prepare_sets_what_the_engine_needs():
    """No dataloader goes through ``prepare``, so accelerate cannot infer the micro-batch size ("requires you to pass at
    least one of training or evaluation dataloaders"): the trainer writes it, gas 1 and its clipping norm."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from oreo_agents.learning import distributed as dist

    ds_config = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 4,
                 "gradient_clipping": 1.0}  # fmt: skip
    seen = []
    acc = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds_config)),
                          prepare=lambda *objs: seen.append(objs) or objs)  # fmt: skip
    model, opt = torch.nn.Linear(2, 2), None
    assert dist.prepare(acc, model, opt, micro_batch_size=2, max_grad_norm=0.5) == (model, opt)
    assert ds_config == {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1,
                         "gradient_clipping": 0.5}  # fmt: skip


def test_deepspeed_gather_writes_fp32_masters_with_tied_weights(monkeypatch, tmp_path: Path):
    """``full_state_dict`` under DeepSpeed: one ``safe_get_full_fp32_param`` per parameter (a stand-in with the
    signature of deepspeed 0.18.2's ``deepspeed/utils/tensor_fragment.py``: the fp32 master of a bf16 module param), the
    tied LM head filled from the embedding's master, and the result saved as a plain HF folder."""
    import types

    from accelerate.utils import DistributedType
    from transformers import LlamaConfig, LlamaForCausalLM

    from oreo_agents.learning import distributed as dist
    from oreo_agents.models.loading import load_policy

    masters: dict[int, torch.Tensor] = {}
    fake = types.ModuleType("deepspeed.utils")
    fake.safe_get_full_fp32_param = lambda p: masters[id(p)]
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(config).to(torch.bfloat16)  # what DeepSpeed's bf16 engine holds
    for p in model.parameters():
        masters[id(p)] = p.detach().float() + 1e-4  # the optimizer's fp32 copy, finer than bf16 can say
    acc = types.SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, is_main_process=True, unwrap_model=lambda m: m)
    with monkeypatch.context() as patch:  # only around the gather: other code probes whether deepspeed is installed
        patch.setitem(sys.modules, "deepspeed", types.ModuleType("deepspeed"))
        patch.setitem(sys.modules, "deepspeed.utils", fake)
        sd = dist.full_state_dict(acc, model)
    assert sd.keys() == model.state_dict().keys()
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])
    assert torch.equal(sd["model.norm.weight"], model.model.norm.weight.float() + 1e-4)
    dist.save_causal_lm(config, sd, tmp_path / "policy", dtype=torch.float32)
    reloaded = load_policy(tmp_path / "policy")
    assert torch.equal(reloaded.model.embed_tokens.weight, sd["model.embed_tokens.weight"])


def test_auto_precision_is_bf16_only_where_native(monkeypatch, capsys):
    import oreo_agents.learning.distributed as dist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dist, "cpu_has_native", lambda mp: False)  # AVX2 only (this machine: emulated, ~5x slower)
    assert dist.auto_precision() == "no"
    dist.warn_slow_cpu_precision("bf16")
    assert "--mixed-precision bf16 on a CPU without native bf16" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setattr(dist, "cpu_has_native", lambda mp: True)  # AVX512-BF16 / AMX
    assert dist.auto_precision() == "bf16"
    dist.warn_slow_cpu_precision("bf16")
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert dist.auto_precision() == "no"

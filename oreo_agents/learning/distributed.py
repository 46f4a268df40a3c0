"""How the trainers meet accelerate's backends: DDP, FSDP2 and DeepSpeed ZeRO-2/3, on one or many processes.

Design (accelerate 1.16 ``accelerator.py``; DeepSpeed 0.18 ``runtime/engine.py``):

- One prepared module per run. FSDP2 refuses more than one model per ``prepare`` ("Only one model is supported when
  using FSDP2") and DeepSpeed one model per Accelerator, so OREO trains :class:`PolicyAndValue` (TRL's
  ``PolicyAndValueWrapper`` pattern): one forward, one AdamW with two parameter groups (policy lr, value lr), one
  backward of ``L_V + L_pi``. The two losses share no gradient (each detaches the other model's output), and Adam is
  per parameter, so one step over both groups is exactly the critic step followed by the actor step.
- fp32 master weights: trained models are loaded in float32 whatever the checkpoint's dtype; ``--mixed-precision``
  makes the compute bf16/fp16 (DDP: autocast; FSDP2: ``MixedPrecisionPolicy``; DeepSpeed: its bf16 engine with fp32
  partitions in the optimizer).
- Gradient accumulation is ours: ``sync_gradients`` is False for every micro-batch but the last of an update, which
  makes accelerate's DeepSpeed ``backward`` step the engine once per update (it steps whenever ``sync_gradients``).
- Final weights: :func:`full_state_dict` gathers the fp32 masters on the main process (FSDP2:
  ``get_model_state_dict(full_state_dict, cpu_offload)``; DeepSpeed: ``safe_get_full_fp32_param`` per parameter),
  written as plain HF folders by :func:`save_causal_lm` / the value model's ``save_pretrained``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from oreo_agents.errors import OreoError


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def make_accelerator(mixed_precision: str):
    """The Accelerator for this launch. On a machine without a GPU, several processes (``accelerate launch``) get gloo:
    DDP, or real FSDP2 when the launch config asks for FSDP (accelerate itself only enables FSDP on GPU backends and
    would silently run plain DDP there). DeepSpeed needs CUDA: refused by name rather than run as something else."""
    import logging

    from accelerate import Accelerator

    # accelerate warns on every checkpoint that tied embeddings are stored once; that is expected, not news.
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    mp = auto_precision() if mixed_precision == "auto" else mixed_precision
    if torch.cuda.is_available():
        return Accelerator(mixed_precision=mp)
    warn_slow_cpu_precision(mp)
    if _env_flag("ACCELERATE_USE_DEEPSPEED"):
        raise OreoError("the accelerate config asks for DeepSpeed, which needs CUDA GPUs; on CPU launch with "
                        "configs/accelerate/cpu-2proc.yaml (DDP) or configs/accelerate/fsdp.yaml (FSDP2 over gloo)")
    launched = int(os.environ.get("LOCAL_RANK", "-1")) != -1 or int(os.environ.get("WORLD_SIZE", "1")) > 1
    acc = Accelerator(mixed_precision=mp, cpu=launched)
    if launched and _env_flag("ACCELERATE_USE_FSDP"):
        _switch_to_fsdp_on_cpu(acc, mp)
    return acc


def cpu_has_native(mp: str) -> bool | None:
    """Whether this CPU computes ``mp`` (bf16 / fp16) natively in oneDNN (AVX512-BF16 / AMX / AVX512-FP16); None when
    torch cannot tell. Without it autocast still works, by emulation."""
    probe = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}.get(mp)
    try:
        return bool(getattr(torch.ops.mkldnn, probe)()) if probe else True
    except (AttributeError, RuntimeError):
        return None


def auto_precision() -> str:
    """``--mixed-precision auto``: bf16 where it is native (a CUDA GPU that supports it, or a CPU whose oneDNN computes
    bf16 natively: AVX512-BF16 / AMX), else fp32 (``"no"``): emulated bf16 is several times slower than fp32."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native("bf16") else "no"


def warn_slow_cpu_precision(mp: str) -> None:
    """bf16 / fp16 autocast on a CPU without native support is emulated: on an AVX2 CPU a 512 x 576 x 49152 matmul took
    45 s in bf16 against 8 s in fp32 (SmolLM2's lm_head; benchmarks/README.md). Training still runs, so say so by name."""
    if mp in ("bf16", "fp16") and cpu_has_native(mp) is False:
        from oreo_agents.console import console

        console.print(f"[yellow]warning[/]: --mixed-precision {mp} on a CPU without native {mp} "
                      f"({torch.backends.cpu.get_cpu_capability()}): it is emulated, several times slower than fp32 here; "
                      "use --mixed-precision auto (fp32 here)", soft_wrap=True)


def _switch_to_fsdp_on_cpu(acc, mp: str) -> None:
    """Turn a gloo (MULTI_CPU) accelerator into an FSDP one. accelerate's ``AcceleratorState`` sets FSDP only for GPU
    backends (state.py, ``elif self.distributed_type in [MULTI_GPU, ...]``), but its FSDP2 path (``fully_shard`` on the
    process group, DTensor-aware clipping, ``get_model_state_dict``) runs on gloo as is; both shared states carry the
    type because ``AcceleratorState()`` re-reads ``PartialState``'s on every construction."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch exported
    if plugin.fsdp_version != 2:
        raise OreoError("on CPU only FSDP2 runs (set fsdp_version: 2 in the accelerate config)")
    if mp != "no":
        plugin.set_mixed_precision(mp)
    for shared in (PartialState._shared_state, AcceleratorState._shared_state):
        shared["distributed_type"] = DistributedType.FSDP
    acc.state.fsdp_plugin = plugin


def backend(acc) -> str:
    """``ddp`` (also single-process), ``fsdp2``, ``fsdp1`` or ``deepspeed``."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.DEEPSPEED:
        return "deepspeed"
    if acc.distributed_type == DistributedType.FSDP:
        return "fsdp2" if acc.is_fsdp2 else "fsdp1"
    return "ddp"


def check_backend(acc, *, lora: bool) -> str:
    name = backend(acc)
    if name == "fsdp1":
        raise OreoError("FSDP1 is not supported: set fsdp_version: 2 in the accelerate config (configs/accelerate/fsdp.yaml)")
    if lora and name != "ddp":
        raise OreoError(f"--lora-r with {name}: LoRA adapters are merged from the live model at the end, which sharded "
                        "weights do not allow; LoRA fits one GPU per process, so launch with configs/accelerate/ddp.yaml")
    return name


def prepare(acc, model: nn.Module, optimizer: torch.optim.Optimizer, *, micro_batch_size: int, max_grad_norm: float):
    """``acc.prepare(model, optimizer)`` with what DeepSpeed needs to start: a micro-batch size (there is no
    dataloader for accelerate to read it from), accumulation left to us (gas 1, boundaries set per micro-batch), and
    the trainer's clipping norm."""
    if backend(acc) == "deepspeed":
        ds = acc.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = micro_batch_size
        ds["gradient_accumulation_steps"] = 1
        ds["gradient_clipping"] = max_grad_norm
        ds["train_batch_size"] = "auto"  # accelerate fills micro x gas x processes (accelerator.py, _prepare_deepspeed)
    return acc.prepare(model, optimizer)


@contextlib.contextmanager
def real_weights_everywhere() -> Iterator[None]:
    """Load a model with real weights on every rank: with ``fsdp_cpu_ram_efficient_loading`` transformers gives
    non-main ranks meta tensors (``is_fsdp_enabled()``), which is right for a model FSDP will shard from rank 0's copy
    but wrong for the frozen reference model, which every rank keeps whole."""
    saved = os.environ.pop("FSDP_CPU_RAM_EFFICIENT_LOADING", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = saved


def train_mode(model: nn.Module) -> nn.Module:
    """``train()`` (transformers only checkpoints activations in training mode) with dropout off, as TRL's PPO/DPO
    trainers do: log-ratios against pi_ref must not carry dropout noise. Models from ``from_pretrained`` start in
    ``eval()``."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0
    return model


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing (the variant FSDP2 and frozen inputs work with)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.25 (the old name is deprecated there)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


class PolicyAndValue(nn.Module):
    """Policy LM and value model as one module, so every backend prepares one model.

    ``forward`` returns ``(policy output, values)``; either side can be skipped (``policy=False`` for the value-only
    evaluation pass). ``_no_split_modules`` lists both models' decoder layers for FSDP2's transformer auto-wrap, and
    ``tie_weights`` re-ties the policy's embeddings after accelerate moves a model to ``meta`` for RAM-efficient loading.
    """

    def __init__(self, policy: nn.Module, value: nn.Module):
        super().__init__()
        self.policy = policy
        self.value = value
        names = list(getattr(policy, "_no_split_modules", None) or [])
        names += [n for n in getattr(value.backbone, "_no_split_modules", None) or [] if n not in names]
        self._no_split_modules = names
        self.config = policy.config  # accelerate's DeepSpeed path reads hidden_size for its bucket sizes

    def tie_weights(self, *args: Any, **kwargs: Any) -> None:
        for m in (self.policy, self.value.backbone):
            if hasattr(m, "tie_weights"):
                m.tie_weights()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, policy: bool = True, value: bool = True,
                logits_to_keep: torch.Tensor | None = None):
        keep = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **keep) if policy else None
        values = self.value(input_ids, attention_mask) if value else None
        return out, values


def full_state_dict(acc, model: nn.Module) -> dict[str, torch.Tensor]:
    """The prepared ``model``'s full fp32 state dict on the main process (``{}`` elsewhere). Collective: every rank
    must call it."""
    name = backend(acc)
    if name == "fsdp2":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return sd if acc.is_main_process else {}
    inner = acc.unwrap_model(model)
    if name == "deepspeed":
        # ZeRO keeps the fp32 masters in the optimizer's partitions; the module holds 16-bit copies (ZeRO-3: empty
        # shards). safe_get_full_fp32_param all-reduces each master (deepspeed/utils/tensor_fragment.py).
        from deepspeed.utils import safe_get_full_fp32_param

        sd = {}
        for pname, p in inner.named_parameters():
            full = safe_get_full_fp32_param(p)
            if acc.is_main_process:
                sd[pname] = (full if full is not None else p.detach()).float().cpu()
        if not acc.is_main_process:
            return {}
        every_name = dict(inner.named_parameters(remove_duplicate=False))
        for key, value in inner.state_dict().items():  # tied names (named_parameters() lists them once), buffers
            if key not in sd:
                sd[key] = sd[_tied_source(inner, key)] if key in every_name else value.detach().cpu()
        return sd
    return {k: v.detach().cpu() for k, v in inner.state_dict().items()} if acc.is_main_process else {}


def _tied_source(model: nn.Module, key: str) -> str:
    """The name ``named_parameters()`` uses for the tensor behind state-dict ``key`` (tied weights appear once)."""
    target = model.get_parameter(key)
    for pname, p in model.named_parameters():
        if p is target:
            return pname
    return key


def sub_state_dict(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def save_causal_lm(config: Any, sd: dict[str, torch.Tensor], out: Path, *, dtype: torch.dtype, base: bool = False) -> None:
    """Write ``sd`` as a plain HF folder of ``config``'s architecture in ``dtype``, through a model built on ``meta``
    (no second copy of the weights, no random initialisation). ``base=True``: a backbone (``AutoModel``)."""
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModel if base else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config, dtype=dtype)
    result = model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=False, assign=True)
    model.tie_weights()
    missing = [k for k, v in model.state_dict().items() if v.is_meta]
    if missing or result.unexpected_keys:
        raise OreoError(f"saving {out}: the gathered weights do not match the architecture "
                        f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    model.config.use_cache = True  # checkpointing turned it off for training; the saved model generates
    model.save_pretrained(out)


class ShardedRefCache:
    """pi_ref's cache built by all ranks, each its share: rank r computes episodes ``r, r + n, r + 2n, ...`` into its
    own :class:`~oreo_agents.learning.data.RefCache` folder; after a barrier every rank reads all shares (memory-mapped).
    Episode ``i`` lives in share ``i % n`` at position ``i // n``."""

    def __init__(self, shares: list[Any]):
        self.shares = shares

    @property
    def has_full(self) -> bool:
        return self.shares[0].has_full

    def _where(self, i: int) -> tuple[Any, int]:
        return self.shares[i % len(self.shares)], i // len(self.shares)

    def chosen(self, i: int):
        share, j = self._where(int(i))
        return share.chosen(j)

    def full(self, i: int):
        share, j = self._where(int(i))
        return share.full(j)


def build_ref_cache(acc, model: nn.Module, model_path: Path, items: list[dict[str, Any]], root: Path, **kwargs: Any):
    """Every rank computes its share of the cache (a rank alone would leave the others waiting at a barrier, where
    a large dataset can outlast the process group's timeout), then all read every share."""
    from oreo_agents.learning.data import RefCache

    n, r = acc.num_processes, acc.process_index
    share_root = root / f"share-{r}-of-{n}"
    RefCache.build(model, model_path, items[r::n], share_root, **kwargs)
    acc.wait_for_everyone()
    shares = [RefCache.build(model, model_path, items[k::n], root / f"share-{k}-of-{n}", **kwargs) for k in range(n)]
    return ShardedRefCache(shares) if n > 1 else shares[0]

"""The trainer family's shared base: data, accelerate, optimizers, schedule, checkpoints/resume, metrics.

Subclasses (``oreo.py``, ``baselines.py``) define which models train and the loss of one micro-batch. The loop::

    for each update (``batch_size`` trajectories over all processes):
        shard the update's trajectories over processes, split into micro-batches
        for each micro-batch: subclass.micro_step(batch, weight)   # forward + backward (DDP sync only on the last)
        clip, optimizer steps, cosine schedule, metrics line, checkpoint every ``save_steps``

The data order is a pure function of (seed, epoch), and checkpoints store the update count with the optimizer,
scheduler and RNG states, so a killed run restarted with the same command ends exactly where an uninterrupted one would.

Trained models hold fp32 master weights whatever the checkpoint's dtype (``--mixed-precision`` sets the compute dtype)
and run in ``train()`` mode; every backend (DDP, FSDP2, DeepSpeed) prepares one module: see ``distributed.py``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oreo_agents.console import console, escape
from oreo_agents.config import save_yaml
from oreo_agents.errors import OreoError
import oreo_agents.learning.checkpoints as C
import oreo_agents.learning.data as D
import oreo_agents.learning.distributed as dist
from oreo_agents.learning.config import REF_CACHE_AUTO_GB, REF_CACHE_MAX_GB, TrainConfig
from oreo_agents.learning.metrics import MetricsLog, Panel, plot_metrics
from oreo_agents.learning.vocab_chunks import logit_columns
from oreo_agents.models.loading import PRESETS, load_policy, load_tokenizer, peft_quietly, resolve_model
from oreo_agents.recording.dataset import load_episode_rows


# DeepSpeed has one engine per Accelerator and one `gradient_clipping` over all its parameters: OREO's policy and value
# (one engine, two parameter groups) are clipped together. Measured on one H200 (benchmarks/gpu_check.py, Qwen2.5-1.5B
# shape, paper recipe): joint norm 8.1 where DDP's policy norm was 0.37 -- the value's gradient sets the clip factor.
JOINT_CLIP_WARNING = (
    "DeepSpeed clips the policy and the value together (one gradient_clipping = {norm} over both; DDP and FSDP2 clip "
    "each model on its own, as the paper does): when the value's gradient dominates, the policy's gradient is scaled "
    "down with it. Adam undoes a constant scale but not a changing one; the metrics log grad_norm_joint. Launch with "
    "configs/accelerate/fsdp.yaml for per-model clipping."
)


def make_accelerator(cfg: TrainConfig):
    return dist.make_accelerator(cfg.mixed_precision)


def adam(params: Any, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay)


def cosine_with_warmup(opt: torch.optim.Optimizer, total: int, warmup_ratio: float):
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(opt, math.ceil(warmup_ratio * total), max(total, 1))


def apply_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap a backbone with LoRA adapters on every linear layer (only when ``lora_r > 0``)."""
    if cfg.lora_r <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    with peft_quietly():
        return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                                                lora_dropout=0.0))


def merged(model: Any) -> Any:
    """The plain HF model to save: LoRA adapters merged into the weights, so outputs load like any checkpoint."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


class Trainer:
    """Shared machinery; subclasses set ``algo`` and implement ``setup_models``, ``units``, ``micro_step``."""

    algo = "base"
    needs_ref = False  # whether pi_ref's log-probs are cached for this algorithm
    needs_full_ref = False  # whether the full reference distribution is cached (exact KL)
    trained_models = 1  # backbones trained side by side (OREO: policy and value)
    rows_per_unit = 1  # sequences per training unit (DPO: a chosen/rejected pair)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.acc = make_accelerator(cfg)
        self.models: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.ref: D.RefCache | dist.ShardedRefCache | None = None
        self.ref_model: torch.nn.Module | None = None
        self.backend = "ddp"  # set by prepare_trainable: ddp (also one process), fsdp2 or deepspeed
        self.group_names: list[str] = []  # the optimizer's parameter groups: "policy" (and "value")
        self.clip_groups: dict[str, list[torch.nn.Parameter]] = {}

    # --- hooks ---------------------------------------------------------------------------------------------------------
    def setup_models(self, total_updates: int) -> None:
        raise NotImplementedError

    def units(self) -> int:
        """Number of training units (episodes; DPO: pairs) one epoch iterates over."""
        return len(self.items)

    def unit_length(self, i: int) -> int:
        """Tokens of unit ``i`` (each update's micro-batches group units of similar length)."""
        return len(self.items[i]["input_ids"])

    def micro_step(self, idx: list[int], weight: float) -> dict[str, float]:
        """Forward + backward on the units ``idx``, losses scaled by ``weight``; returns metrics (unscaled)."""
        raise NotImplementedError

    def save_models(self, out: Path) -> None:
        raise NotImplementedError

    # --- data ----------------------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        cfg, acc = self.cfg, self.acc
        rows = load_episode_rows(cfg.data, split=cfg.split)
        cache = Path(cfg.model_cache) if cfg.model_cache else None
        with acc.main_process_first():  # one process builds/converts a tiny or smollm2 model, the others reuse it
            self.model_path = resolve_model(cfg.model, cache_dir=cache, texts=list(D.episode_texts(rows)) if cfg.model in PRESETS else None)
        self.tokenizer = load_tokenizer(self.model_path)
        self.rows = D.select_episodes(rows, self.algo)
        self.items = D.encode_episodes(self.rows, self.tokenizer, max_length=cfg.max_length)
        self.pad_id = int(self.tokenizer.pad_token_id)

    def warn_if_memory_short(self) -> None:
        """Say by name, before any model loads, when the longest micro-batch is estimated not to fit (learning/memory.py)."""
        from oreo_agents.learning.memory import available_bytes, memory_warning, model_shape

        shape = model_shape(self.model_path)
        if shape is None or not self.units() or not self.acc.is_local_main_process:
            return
        cfg = self.cfg
        text = memory_warning(
            shape, rows=min(cfg.micro_batch_size, self.units()) * self.rows_per_unit,
            length=max(self.unit_length(i) for i in range(self.units())), trained_models=self.trained_models,
            loaded_models=self.trained_models + int(self.needs_ref), full_finetune=cfg.lora_r <= 0,
            checkpointing=cfg.gradient_checkpointing, available=available_bytes(self.acc.device),
        )  # fmt: skip
        if text:
            console.print(f"[yellow]warning[/]: {escape(text)}", soft_wrap=True)

    def load_reference(self) -> torch.nn.Module:
        """pi_ref, frozen, in the checkpoint's own dtype, whole on every rank (never handed to FSDP/DeepSpeed)."""
        with dist.real_weights_everywhere():
            ref = load_policy(self.model_path, trust_remote_code=self.cfg.trust_remote_code)
        ref.requires_grad_(False)
        return ref.eval().to(self.acc.device)

    def build_ref_cache(self) -> None:
        """Cache pi_ref's log-probs of the recorded tokens and, for the exact KL, its whole distributions at action
        states, or keep pi_ref at hand to recompute those per micro-batch when they would not fit (``--ref-distributions``).
        Every rank computes its share of the cache."""
        self.ref, self.ref_model = None, None
        if not self.needs_ref:
            return
        reference = self.load_reference()
        full = self.needs_full_ref and self.cfg.kl_alpha > 0
        if full:
            vocab = int(reference.get_output_embeddings().weight.shape[0])
            n = sum(sum(it["action_mask"][1:]) for it in self.items)
            gb = n * vocab * 2 / 1e9
            mode = self.cfg.ref_distributions
            if mode == "auto":
                mode = "cache" if gb <= REF_CACHE_AUTO_GB else "online"
            if mode == "cache" and gb > REF_CACHE_MAX_GB:
                raise OreoError(f"the exact KL cache would take {gb:.0f} GB ({n} action tokens x vocab {vocab}); "
                                "use --ref-distributions online, lower --max-length, or --alpha 0")
            if mode == "online":
                full = False
                # LoRA: pi_ref is the base model, i.e. the policy with its adapters switched off; else the frozen copy.
                self.ref_model = None if self.cfg.lora_r > 0 else reference
                console.print(f"exact KL: pi_ref's distributions recomputed per micro-batch (a cache would take {gb:.1f} GB)")
        from rich.progress import Progress

        with Progress(console=console, transient=True, disable=not self.acc.is_main_process) as progress:
            self.ref = dist.build_ref_cache(
                self.acc, reference, self.model_path, self.items, self.out / "ref_cache",
                pad_id=self.pad_id, full=full, batch_size=self.cfg.micro_batch_size, progress=progress,
                autocast=self.acc.autocast,
            )  # fmt: skip
        if self.ref_model is None:
            del reference  # only the cache is needed from here on

    def logit_columns(self, mask: torch.Tensor) -> torch.Tensor | None:
        """The positions whose logits a loss over the state-aligned ``mask`` reads (None: all, e.g. the model cannot
        restrict them). Action states are ~15-25% of an agent episode's tokens: the LM head's matmul and the
        ``[tokens, vocab]`` logits and their gradient shrink by as much."""
        return logit_columns(mask) if getattr(self, "keeps_logit_columns", False) else None

    def batch(self, idx: list[int]) -> dict[str, torch.Tensor]:
        b = D.collate([self.items[i] for i in idx], pad_id=self.pad_id, ref=self.ref)
        return {k: v.to(self.acc.device) for k, v in b.items()}

    def ref_full(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, V]`` reference log-distributions at the batch's action states (row order = ``batch['mask'].bool()``)."""
        assert self.ref is not None
        if self.ref.has_full:
            rows = [torch.from_numpy(self.ref.full(int(i))) for i in batch["index"].cpu()]
            return torch.cat(rows).to(self.acc.device)
        if self.ref_model is not None:
            model, adapters_off = self.ref_model, contextlib.nullcontext()
        else:
            model = self.policy_module()
            adapters_off = model.disable_adapter()
        columns = self.logit_columns(batch["mask"])
        keep = {} if columns is None else {"logits_to_keep": columns}
        with torch.no_grad(), adapters_off, self.acc.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **keep).logits
        mask = batch["mask"].bool() if columns is None else batch["mask"][:, columns].bool()
        return torch.log_softmax(logits[mask].float(), dim=-1)

    def update_indices(self, step: int, updates_per_epoch: int) -> tuple[int, list[int]]:
        """(epoch, this process's units) for update ``step``: a seeded permutation per epoch, sharded by rank."""
        epoch, u = divmod(step, updates_per_epoch)
        perm = np.random.default_rng(self.cfg.seed + epoch).permutation(self.units())
        chunk = perm[u * self.cfg.batch_size : (u + 1) * self.cfg.batch_size].tolist()
        return epoch, chunk[self.acc.process_index :: self.acc.num_processes]

    # --- checkpoints (format, fingerprint, fallback: checkpoints.py) ---------------------------------------------------
    def checkpoints(self) -> list[Path]:
        return C.complete_checkpoints(self.out)

    def save_checkpoint(self, step: int) -> None:
        C.save(self.out, step, acc=self.acc, models=self.models, optimizers=self.optimizers, schedulers=self.schedulers,
               algo=self.algo, fp=self.fingerprint, keep=self.cfg.save_total_limit, serving=self.serving_info())  # fmt: skip

    def serving_info(self) -> dict[str, Any] | None:
        """What a checkpoint needs to be served (``--policy <out>/checkpoints/step-N``): the base model's files, which
        state dict holds the policy, and the LoRA config of a LoRA run (see ``models/servable.py``)."""
        from oreo_agents.models.servable import peft_config_dict

        name = next(iter(self.models), "")
        if name not in ("policy", "policy_value"):
            return None
        return {"base_model": self.model_path, "component": f"model-{name}",
                "prefix": "policy." if name == "policy_value" else "", "lora": peft_config_dict(self.policy_module())}

    def resume(self) -> int:
        return C.resume(self.out, acc=self.acc, models=self.models, optimizers=self.optimizers, schedulers=self.schedulers,
                        algo=self.algo, fp=self.fingerprint, trust_pickles=self.cfg.trust_checkpoint_pickles)  # fmt: skip

    # --- the loop ------------------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        torch.manual_seed(cfg.seed)
        self.prepare_data()
        # Before any model loads or config.yaml is rewritten: resuming with changed settings is refused by name.
        self.fingerprint = C.check_settings(self.out, self.algo, C.fingerprint(cfg, self.model_path, acc))
        per_update = cfg.batch_size
        updates_per_epoch = math.ceil(self.units() / per_update)
        total = updates_per_epoch * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        self.warn_if_memory_short()
        self.setup_models(total)
        for s in self.schedulers.values():
            acc.register_for_checkpointing(s)
        if acc.is_main_process:
            save_yaml(cfg, self.out / "config.yaml")
        step = self.resume()
        log = MetricsLog(self.out / "metrics.jsonl", resume_step=step) if acc.is_main_process else None
        title = f"{self.algo} {self.out.name}"
        with Panel(title, total, every=cfg.log_steps, enabled=acc.is_main_process) as panel:
            while step < total:
                t0 = time.perf_counter()
                epoch, idx = self.update_indices(step, updates_per_epoch)
                rec = self.one_update(idx)
                step += 1
                tokens = float(acc.reduce(torch.tensor(rec.pop("tokens", 0.0), device=acc.device), reduction="sum"))
                rec = {k: float(acc.reduce(torch.tensor(v, device=acc.device), reduction="mean")) for k, v in sorted(rec.items())}
                rec.update(step=step, epoch=round(step / updates_per_epoch, 4), tokens_per_s=tokens / (time.perf_counter() - t0))
                for name, lr in zip(self.group_names, next(iter(self.schedulers.values())).get_last_lr()):
                    rec["lr" + _suffix(name)] = lr
                if log is not None:
                    log.write(rec)
                panel.update(rec)
                if step % cfg.save_steps == 0 or step == total:
                    self.save_checkpoint(step)
        return self.finish(log)

    def one_update(self, idx: list[int]) -> dict[str, float]:
        """Accumulate gradients over the micro-batches of ``idx`` (DDP all-reduce only on the last), then step."""
        cfg, acc = self.cfg, self.acc
        micro = D.length_grouped_micro_batches(idx, self.unit_length, cfg.micro_batch_size)
        totals: dict[str, float] = {}
        for m, mb in enumerate(micro):
            weight = len(mb) / max(len(idx), 1)
            last = m == len(micro) - 1
            # accelerate's DeepSpeed backward steps the engine whenever sync_gradients is set: only on the last.
            acc.sync_gradients = last
            with contextlib.ExitStack() as stack:
                if not last and self.backend == "ddp":  # FSDP2 reduce-scatters every micro-batch: grads stay sharded
                    for model in self.models.values():
                        stack.enter_context(acc.no_sync(model))
                metrics = self.micro_step(mb, weight)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + (v if k == "tokens" else v * weight)
        if self.backend == "deepspeed":
            # The engine clipped (jointly over both models, `gradient_clipping`) and stepped inside the last backward.
            norm = acc.clip_grad_norm_([], cfg.max_grad_norm)
            key = "grad_norm" if len(self.clip_groups) == 1 else "grad_norm_joint"  # not comparable to DDP's grad_norm
            totals[key] = float(norm) if norm is not None else float("nan")
        else:
            for name, params in self.clip_groups.items():  # each model clipped on its own, as in the paper
                totals["grad_norm" + _suffix(name)] = float(acc.clip_grad_norm_(params, cfg.max_grad_norm))
        for name, opt in self.optimizers.items():
            opt.step()
            self.schedulers[name].step()
            opt.zero_grad(set_to_none=True)
        return totals

    def finish(self, log: MetricsLog | None) -> dict[str, Any]:
        acc = self.acc
        acc.wait_for_everyone()
        summary: dict[str, Any] = {"algo": self.algo, "episodes": len(self.items), "model": str(self.model_path),
                                   "processes": acc.num_processes, "backend": self.backend}  # fmt: skip
        summary.update(self.evaluate())
        self.save_models(self.out)  # every rank: sharded weights are gathered collectively, the main process writes
        if acc.is_main_process:
            records = log.read() if log is not None else []
            summary["updates"] = records[-1]["step"] if records else 0
            if self.cfg.plot:
                plot_metrics(records, self.out / "metrics.png", f"{self.algo}: {self.out}")
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        acc.wait_for_everyone()
        return summary

    def evaluate(self) -> dict[str, Any]:
        """Extra end-of-run numbers for summary.json (OREO: how V separates successes from failures)."""
        return {}

    # --- models --------------------------------------------------------------------------------------------------------
    def load_policy_for_training(self) -> torch.nn.Module:
        """The policy with fp32 master weights whatever the checkpoint's dtype, in train mode."""
        policy = load_policy(self.model_path, dtype=torch.float32, trust_remote_code=self.cfg.trust_remote_code)
        # transformers' causal LMs take logits_to_keep (a 1-D tensor: these positions): the LM head then projects only
        # the states the losses read. A model without it (custom code) computes every position's logits.
        self.keeps_logit_columns = "logits_to_keep" in inspect.signature(policy.forward).parameters
        if self.cfg.gradient_checkpointing:
            dist.enable_gradient_checkpointing(policy)
        return dist.train_mode(policy)

    def prepare_trainable(self, name: str, model: torch.nn.Module, groups: dict[str, tuple[torch.nn.Module, float]], total_updates: int) -> None:
        """One AdamW over ``groups`` (name -> (submodule, lr)), prepared with ``model`` by accelerate; one cosine schedule
        (each group keeps its own peak lr); one clipping group per named submodule."""
        cfg, acc = self.cfg, self.acc
        self.backend = dist.check_backend(acc, lora=cfg.lora_r > 0)
        param_groups = [{"params": [p for p in sub.parameters() if p.requires_grad], "lr": lr} for sub, lr in groups.values()]
        opt = adam(param_groups, cfg.learning_rate, cfg)
        model, opt = dist.prepare(acc, model, opt, micro_batch_size=cfg.micro_batch_size, max_grad_norm=cfg.max_grad_norm)
        self.models, self.optimizers = {name: model}, {name: opt}
        # Schedulers stay unprepared: accelerate would step them once per process.
        self.schedulers = {name: cosine_with_warmup(opt, total_updates, cfg.warmup_ratio)}
        self.group_names = list(groups)
        # After prepare the groups hold the parameters the backend trains (FSDP2: the sharded DTensors).
        self.clip_groups = {g: list(pg["params"]) for g, pg in zip(groups, opt.param_groups)}
        if self.backend == "deepspeed" and len(groups) > 1 and acc.is_main_process:
            console.print(f"[yellow]warning[/]: {escape(JOINT_CLIP_WARNING.format(norm=cfg.max_grad_norm))}", soft_wrap=True)

    def policy_module(self) -> torch.nn.Module:
        inner = self.acc.unwrap_model(next(iter(self.models.values())))
        return inner.policy if isinstance(inner, dist.PolicyAndValue) else inner

    def gathered_weights(self) -> dict[str, torch.Tensor]:
        """Full fp32 state dict of the trained module on the main process ({} elsewhere); collective."""
        if self.cfg.lora_r > 0:
            return {}  # LoRA (DDP only): the adapters are merged from the live model instead
        return dist.full_state_dict(self.acc, next(iter(self.models.values())))

    def save_policy(self, out: Path, weights: dict[str, torch.Tensor]) -> None:
        """``out/policy`` as a plain HF folder in ``--save-dtype`` (main process only)."""
        if not self.acc.is_main_process:
            return
        policy = self.policy_module()
        if self.cfg.lora_r > 0:
            # The adapter as PEFT saves it (adapter_config.json + adapter_model.safetensors), before merging changes the
            # weights: vLLM serves it unmerged on the base (--policy <out>/policy-adapter).
            for config in policy.peft_config.values():  # an absolute base path: the adapter serves from any cwd
                config.base_model_name_or_path = str(Path(self.model_path).resolve())
            policy.save_pretrained(str(out / "policy-adapter"))
            policy = merged(policy)
            weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
        elif isinstance(self.acc.unwrap_model(next(iter(self.models.values()))), dist.PolicyAndValue):
            weights = dist.sub_state_dict(weights, "policy.")
        dist.save_causal_lm(policy.config, weights, out / "policy", dtype=save_dtype(self.cfg))
        self.tokenizer.save_pretrained(out / "policy")
        for marker in ("oreo_tiny.json",):  # keep the tokenizer-loading hint of from-scratch models
            if (self.model_path / marker).is_file():
                shutil.copy(self.model_path / marker, out / "policy" / marker)


def save_dtype(cfg: TrainConfig) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.save_dtype]


def _suffix(group: str) -> str:
    """Metric-name suffix of a parameter group: '' for the policy, '_v' for the value model."""
    return "" if group == "policy" else "_" + group[0]

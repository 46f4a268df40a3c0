"""The trainer family's shared base: data, accelerate, optimizers, schedule, checkpoints/resume, metrics.

Subclasses (``oreo.py``, ``baselines.py``) define which models train and the loss of one micro-batch. The loop::

    for each update (``batch_size`` trajectories over all processes):
        shard the update's trajectories over processes, split into micro-batches
        for each micro-batch: subclass.micro_step(batch, weight)   # forward + backward (DDP sync only on the last)
        clip, optimizer steps, cosine schedule, metrics line, checkpoint every ``save_steps``

The data order is a pure function of (seed, epoch), and checkpoints store the update count with the optimizer,
scheduler and RNG states, so a killed run restarted with the same command ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oreo_agents.cli.console import console
from oreo_agents.config import save_yaml
from oreo_agents.errors import OreoError
from oreo_agents.learning import data as D
from oreo_agents.learning.config import REF_CACHE_AUTO_GB, REF_CACHE_MAX_GB, TrainConfig
from oreo_agents.learning.metrics import MetricsLog, Panel, plot_metrics
from oreo_agents.learning.models import PRESETS, load_policy, load_tokenizer, resolve_model


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` that never trains (pi_ref for the exact KL when it is recomputed per micro-batch)."""
    import copy

    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


def make_accelerator(cfg: TrainConfig):
    import logging

    from accelerate import Accelerator

    # accelerate warns on every checkpoint that tied embeddings are stored once; that is expected, not news.
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Launched with several processes on a machine without a GPU (`accelerate launch --multi_gpu` runs torchrun):
    # accelerate needs cpu=True to pick gloo DDP instead of silently running N independent copies.
    import os

    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(mixed_precision=mp, cpu=cpu)


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

    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear", lora_dropout=0.0))


def merged(model: Any) -> Any:
    """The plain HF model to save: LoRA adapters merged into the weights, so outputs load like any checkpoint."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


class Trainer:
    """Shared machinery; subclasses set ``algo`` and implement ``setup_models``, ``units``, ``micro_step``."""

    algo = "base"
    needs_ref = False  # whether pi_ref's log-probs are cached for this algorithm
    needs_full_ref = False  # whether the full reference distribution is cached (exact KL)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.acc = make_accelerator(cfg)
        self.models: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.ref: D.RefCache | None = None

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
        rows = D.load_episodes(cfg.data, split=cfg.split)
        cache = Path(cfg.model_cache) if cfg.model_cache else None
        with acc.main_process_first():  # one process builds/converts a tiny or smollm2 model, the others reuse it
            self.model_path = resolve_model(cfg.model, cache_dir=cache, texts=list(D.episode_texts(rows)) if cfg.model in PRESETS else None)
        self.tokenizer = load_tokenizer(self.model_path)
        self.rows = D.select_episodes(rows, self.algo)
        self.items = D.encode_episodes(self.rows, self.tokenizer, max_length=cfg.max_length)
        self.pad_id = int(self.tokenizer.pad_token_id)

    def build_ref_cache(self, policy: torch.nn.Module) -> None:
        """Cache pi_ref's log-probs of the recorded tokens and, for the exact KL, its whole distributions at action
        states, or keep pi_ref at hand to recompute those per micro-batch when they would not fit (``--ref-distributions``)."""
        self.ref, self.ref_model = None, None
        if not self.needs_ref:
            return
        full = self.needs_full_ref and self.cfg.kl_alpha > 0
        if full:
            vocab = int(policy.get_output_embeddings().weight.shape[0])
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
                # LoRA: pi_ref is the base model, i.e. the policy with its adapters switched off; else a frozen copy.
                self.ref_model = None if self.cfg.lora_r > 0 else frozen_copy(policy).to(self.acc.device)
                console.print(f"exact KL: pi_ref's distributions recomputed per micro-batch (a cache would take {gb:.1f} GB)")
        from rich.progress import Progress

        with self.acc.main_process_first(), Progress(console=console, transient=True, disable=not self.acc.is_main_process) as progress:
            self.ref = D.RefCache.build(
                policy.to(self.acc.device), self.model_path, self.items, self.out / "ref_cache",
                pad_id=self.pad_id, full=full, batch_size=self.cfg.micro_batch_size, progress=progress,
                autocast=self.acc.autocast,
            )  # fmt: skip

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
            model = self.acc.unwrap_model(self.models["policy"])
            adapters_off = model.disable_adapter()
        with torch.no_grad(), adapters_off, self.acc.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        return torch.log_softmax(logits[batch["mask"].bool()].float(), dim=-1)

    def update_indices(self, step: int, updates_per_epoch: int) -> tuple[int, list[int]]:
        """(epoch, this process's units) for update ``step``: a seeded permutation per epoch, sharded by rank."""
        epoch, u = divmod(step, updates_per_epoch)
        perm = np.random.default_rng(self.cfg.seed + epoch).permutation(self.units())
        chunk = perm[u * self.cfg.batch_size : (u + 1) * self.cfg.batch_size].tolist()
        return epoch, chunk[self.acc.process_index :: self.acc.num_processes]

    # --- checkpoints ---------------------------------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        root = self.out / "checkpoints"
        done = [p for p in root.glob("step-*") if (p / "trainer_state.json").is_file()] if root.is_dir() else []
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self, step: int) -> None:
        ckpt = self.out / "checkpoints" / f"step-{step}"
        self.acc.save_state(str(ckpt))  # models, optimizers, registered schedulers, every RNG
        if self.acc.is_main_process:
            # Written last: a checkpoint without it (killed mid-save) is ignored on resume.
            (ckpt / "trainer_state.json").write_text(json.dumps({"step": step, "algo": self.algo}))
            for old in self.checkpoints()[: -self.cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    def resume(self) -> int:
        ckpts = self.checkpoints()
        if not ckpts:
            return 0
        state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
        if state.get("algo") != self.algo:
            raise OreoError(f"{self.out} holds a --algo {state.get('algo')} run; use another --out for --algo {self.algo}")
        self.acc.load_state(str(ckpts[-1]))
        console.print(f"resuming {self.out} from update {state['step']}")
        return int(state["step"])

    # --- the loop ------------------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        torch.manual_seed(cfg.seed)
        self.prepare_data()
        per_update = cfg.batch_size
        updates_per_epoch = math.ceil(self.units() / per_update)
        total = updates_per_epoch * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
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
                rec["lr"] = self.schedulers["policy"].get_last_lr()[0]
                if "value" in self.schedulers:
                    rec["lr_v"] = self.schedulers["value"].get_last_lr()[0]
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
            with contextlib.ExitStack() as stack:
                if m < len(micro) - 1:
                    for model in self.models.values():
                        stack.enter_context(acc.no_sync(model))
                metrics = self.micro_step(mb, weight)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + (v if k == "tokens" else v * weight)
        for name, model in self.models.items():
            norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            totals[f"grad_norm{'' if name == 'policy' else '_' + name[0]}"] = float(norm)
        # Value first, then policy: the policy loss already used the values from before this value step.
        for name in sorted(self.optimizers, key=lambda n: n != "value"):
            self.optimizers[name].step()
            self.schedulers[name].step()
            self.optimizers[name].zero_grad(set_to_none=True)
        return totals

    def finish(self, log: MetricsLog | None) -> dict[str, Any]:
        acc = self.acc
        acc.wait_for_everyone()
        summary: dict[str, Any] = {"algo": self.algo, "episodes": len(self.items), "model": str(self.model_path), "processes": acc.num_processes}
        summary.update(self.evaluate())
        if acc.is_main_process:
            self.save_models(self.out)
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

    def load_policy_for_training(self) -> torch.nn.Module:
        policy = load_policy(self.model_path, trust_remote_code=self.cfg.trust_remote_code)
        if self.cfg.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
            policy.config.use_cache = False
        return policy

    def save_policy(self, out: Path) -> None:
        policy = merged(self.acc.unwrap_model(self.models["policy"]))
        policy.save_pretrained(out / "policy")
        self.tokenizer.save_pretrained(out / "policy")
        for marker in ("oreo_tiny.json",):  # keep the tokenizer-loading hint of from-scratch models
            if (self.model_path / marker).is_file():
                shutil.copy(self.model_path / marker, out / "policy" / marker)

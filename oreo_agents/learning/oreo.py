"""OREO: joint policy + value training with the soft-Bellman losses of :mod:`.losses` (token, step or response level).

Per micro-batch: one policy forward (log-probs, and the full distribution at action states for the exact KL) and one
value forward; pi_ref's log-probs come from the cache. L_V uses detached log-ratios and L_pi detached values, so one
backward of ``L_V + L_pi`` gives each model exactly its own gradient. Policy and value train as one module
(:class:`~oreo_agents.learning.distributed.PolicyAndValue`) with one AdamW of two parameter groups (own learning rates,
one cosine shape, each model clipped on its own): Adam is per parameter, so the one step equals the value step followed
by the policy step (whose loss used the values from before the value step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from oreo_agents.learning import distributed as dist
from oreo_agents.learning import losses as L
from oreo_agents.models.loading import ValueModel, is_value_dir, write_value_head
from oreo_agents.learning.trainer import Trainer, apply_lora, merged, save_dtype
from oreo_agents.learning.vocab_chunks import logprobs_and_kl


class OREOTrainer(Trainer):
    algo = "oreo"
    needs_ref = True
    needs_full_ref = True

    def setup_models(self, total_updates: int) -> None:
        cfg = self.cfg
        self.build_ref_cache()
        policy = self.load_policy_for_training()
        value_path = Path(cfg.value_model) if cfg.value_model else self.model_path
        load = ValueModel.from_pretrained if is_value_dir(value_path) else ValueModel.from_base
        value = load(value_path, dtype=torch.float32, trust_remote_code=cfg.trust_remote_code)  # fp32 masters
        if cfg.gradient_checkpointing:
            dist.enable_gradient_checkpointing(value.backbone)
        policy = apply_lora(policy, cfg)
        value.backbone = apply_lora(value.backbone, cfg)  # the head is outside the adapters: fully trainable
        both = dist.PolicyAndValue(policy, dist.train_mode(value))
        # One module, one AdamW with a group per model: what FSDP2 and DeepSpeed can prepare (see distributed.py).
        self.prepare_trainable("policy_value", both, {"policy": (policy, cfg.learning_rate), "value": (value, cfg.value_lr)}, total_updates)

    def losses(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(L_V, L_pi + alpha * L_reg, metrics) of one batch."""
        cfg = self.cfg
        out, values = self.models["policy_value"](b["input_ids"], b["attention_mask"])
        logits = out.logits
        mask, ref = b["mask"], b["ref_logp"]
        # Taken-token log-probs and, for L_reg, the exact per-state KL (losses.kl_regulariser's summand) in one pass over
        # chunks of positions: no [B, T, V] fp32 tensor (vocab_chunks).
        ref_full = self.ref_full(b) if cfg.kl_alpha > 0 else None
        logp, kl_tok = logprobs_and_kl(logits, b["input_ids"], mask, ref_full)
        # Aborted / --max-length-cut episodes did not end where their tokens end: bootstrap from V there, not from R.
        cut_state = b["attention_mask"].sum(-1) - 1
        rewards = L.terminal_returns(b["rewards"], values, cut_state, b["truncated"])
        if cfg.loss_level == "token":
            states = mask
            loss_pi = L.oreo_policy_loss_token(logp, ref, values, rewards, mask, cfg.beta)
        elif cfg.loss_level == "step":
            states = L.step_start_mask(b["step_ids"])
            loss_pi = L.oreo_policy_loss_step(logp, ref, values, rewards, b["step_ids"], cfg.beta)
        else:
            # The policy residual reads V(s_0) only; V still learns every action state, which search and the agent read.
            states = mask
            loss_pi = L.oreo_policy_loss_response(logp, ref, values, rewards, mask, cfg.beta)
        # V is also regressed right after each reply: that is where value-guided agents read it (docs/learning.md).
        value_mask = (states + b["reply_end"]).clamp(max=1)
        # ...except at a truncated episode's cut, whose target is V there itself.
        at_cut = torch.nn.functional.one_hot(cut_state, mask.shape[1]).to(mask.dtype) * b["truncated"][:, None].to(mask.dtype)
        value_mask = value_mask * (1 - at_cut)
        loss_v = L.oreo_value_loss(values, logp, ref, rewards, mask, cfg.beta, value_mask)
        kl = L.per_sequence_mean(kl_tok, mask) if cfg.kl_alpha > 0 else torch.zeros((), device=logits.device)
        with torch.no_grad():
            vm = value_mask.bool()
            metrics = {
                "loss_v": float(loss_v.detach()),
                "loss_pi": float(loss_pi.detach()),
                "kl": float(kl.detach()),
                "mean_v": float(values[vm].mean()) if vm.any() else 0.0,
                "return": float(b["rewards"].mean()),
                "logratio": float(((logp - ref) * mask).sum() / mask.sum().clamp(min=1)),
                "tokens": float(b["attention_mask"].sum()),
            }
        return loss_v, loss_pi + cfg.kl_alpha * kl, metrics

    def micro_step(self, idx: list[int], weight: float) -> dict[str, float]:
        loss_v, loss_pi, metrics = self.losses(self.batch(idx))
        # Disjoint graphs (each loss detaches the other model's output): one backward = both models' own gradients.
        self.acc.backward((loss_v + loss_pi) * weight)
        metrics["loss"] = metrics["loss_v"] + metrics["loss_pi"]
        return metrics

    def save_models(self, out: Path) -> None:
        weights = self.gathered_weights()  # collective: every rank
        self.save_policy(out, weights)
        if not self.acc.is_main_process:
            return
        value = self.acc.unwrap_model(self.models["policy_value"]).value
        if self.cfg.lora_r > 0:
            backbone = merged(value.backbone)
            weights = {f"value.backbone.{k}": v for k, v in backbone.state_dict().items()} | {"value.head.weight": value.head.weight}
        dist.save_causal_lm(value.config, dist.sub_state_dict(weights, "value.backbone."), out / "value", dtype=save_dtype(self.cfg), base=True)
        write_value_head(out / "value", weights["value.head.weight"], int(value.config.hidden_size), tokenizer=self.tokenizer)

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Mean V over each training episode's action states: successes should sit above failures after training."""
        model = self.models["policy_value"]  # called whole: under FSDP2 only the root's hooks gather the shards
        model.eval()
        per_episode: list[tuple[bool, float]] = []
        for s in range(0, len(self.items), self.cfg.micro_batch_size):
            idx = list(range(s, min(s + self.cfg.micro_batch_size, len(self.items))))
            b = self.batch(idx)
            _, v = model(b["input_ids"], b["attention_mask"], policy=False)
            m = b["mask"]
            means = (v * m).sum(-1) / m.sum(-1).clamp(min=1)
            per_episode += list(zip(b["success"].tolist(), means.tolist()))
        dist.train_mode(model)
        wins = [v for ok, v in per_episode if ok]
        fails = [v for ok, v in per_episode if not ok]
        out: dict[str, Any] = {"value_mean_success": _mean(wins), "value_mean_failure": _mean(fails)}
        if wins and fails:  # AUC: P(V of a random success > V of a random failure)
            out["value_auc"] = sum((w > f) + 0.5 * (w == f) for w in wins for f in fails) / (len(wins) * len(fails))
        return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None

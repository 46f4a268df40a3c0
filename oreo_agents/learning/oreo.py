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
from typing import Any, Callable

import torch

from oreo_agents.errors import OreoError
import oreo_agents.learning.distributed as dist
import oreo_agents.learning.losses as L
from oreo_agents.learning.trainer import Trainer, apply_lora, merged, save_dtype
from oreo_agents.learning.vocab_chunks import logprobs_and_kl
from oreo_agents.models.loading import ValueModel, is_value_dir, write_value_head
from oreo_agents.stats import auc


class OREOTrainer(Trainer):
    algo = "oreo"
    needs_ref = True
    needs_full_ref = True
    trained_models = 2

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
        columns = self.logit_columns(b["mask"])  # every loss reads log-probs at action states only
        out, values = self.models["policy_value"](b["input_ids"], b["attention_mask"], logits_to_keep=columns)
        # Taken-token log-probs and, for L_reg, the exact per-state KL (losses.exact_kl) in one pass over chunks of
        # positions: no [B, T, V] fp32 tensor (vocab_chunks).
        ref_full = self.ref_full(b) if cfg.kl_alpha > 0 else None
        logp, kl_states = logprobs_and_kl(out.logits, b["input_ids"], b["mask"], ref_full, columns=columns)
        loss_v, loss_pi, kl, value_mask = oreo_losses(logp, kl_states, values, b, level=cfg.loss_level, beta=cfg.beta,
                                                      kl_alpha=cfg.kl_alpha)  # fmt: skip
        mask = b["mask"]
        with torch.no_grad():
            vm = value_mask.bool()
            metrics = {
                "loss_v": float(loss_v.detach()),
                "loss_pi": float(loss_pi.detach()),
                "kl": float(kl.detach()),
                "mean_v": float(values[vm].mean()) if vm.any() else 0.0,
                "return": float(b["rewards"].mean()),
                "logratio": float(((logp - b["ref_logp"]) * mask).sum() / mask.sum().clamp(min=1)),
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
        value_auc = auc([v for _, v in per_episode], [ok for ok, _ in per_episode])
        if value_auc is not None:  # P(V of a random success > V of a random failure); undefined without both
            out["value_auc"] = value_auc
        return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


# --- the losses of one batch, by loss level ---------------------------------------------------------------------------
# Each level of the paper: its policy loss L_pi and the states whose V it regresses (besides the states right after each
# reply, see value_states). The one place a level is defined; the trainer and the tests call it.
Level = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _token_level(logp, ref_logp, values, returns, mask, step_ids, beta):
    return L.oreo_policy_loss_token(logp, ref_logp, values, returns, mask, beta), mask


def _step_level(logp, ref_logp, values, returns, mask, step_ids, beta):
    starts = L.step_start_mask(step_ids)  # built once: the step loss reads V there, and V is regressed there
    return L.oreo_policy_loss_step(logp, ref_logp, values, returns, step_ids, beta, starts=starts), starts


def _response_level(logp, ref_logp, values, returns, mask, step_ids, beta):
    # The policy residual reads V(s_0) only; V still learns every action state, which search and the agent read.
    return L.oreo_policy_loss_response(logp, ref_logp, values, returns, mask, beta), mask


LEVELS: dict[str, Level] = {"token": _token_level, "step": _step_level, "response": _response_level}


def value_states(level_states: torch.Tensor, reply_end: torch.Tensor, cut_state: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """The states L_V regresses: the level's own, plus the state right after each reply (where value-guided agents read
    V, docs/learning.md), except a truncated episode's cut, whose target is V there itself."""
    states = (level_states + reply_end).clamp(max=1)
    at_cut = torch.nn.functional.one_hot(cut_state, states.shape[1]).to(states.dtype) * truncated[:, None].to(states.dtype)
    return states * (1 - at_cut)


def oreo_losses(
    logp: torch.Tensor, kl_states: torch.Tensor, values: torch.Tensor, b: dict[str, torch.Tensor], *, level: str,
    beta: float, kl_alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_V, L_pi, L_reg, the value states) of a collated batch ``b`` from the policy's taken-token log-probs ``logp``,
    its per-state KL ``kl_states`` (:func:`.losses.exact_kl`; unused when ``kl_alpha`` is 0) and the values."""
    if level not in LEVELS:
        raise OreoError(f"--loss-level: unknown level '{level}' (choose {', '.join(LEVELS)})")
    mask, ref = b["mask"], b["ref_logp"]
    # Aborted / --max-length-cut episodes did not end where their tokens end: bootstrap from V there, not from R.
    cut_state = b["attention_mask"].sum(-1) - 1
    returns = L.terminal_returns(b["rewards"], values, cut_state, b["truncated"])
    loss_pi, states = LEVELS[level](logp, ref, values, returns, mask, b["step_ids"], beta)
    value_mask = value_states(states, b["reply_end"], cut_state, b["truncated"])
    loss_v = L.oreo_value_loss(values, logp, ref, returns, mask, beta, value_mask)
    kl = L.kl_regulariser_from_states(kl_states, mask) if kl_alpha > 0 else torch.zeros((), device=logp.device)
    return loss_v, loss_pi, kl, value_mask

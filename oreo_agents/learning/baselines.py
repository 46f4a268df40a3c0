"""Baselines in the same trainer family (same data loading, schedule, checkpoints, metrics):

- ``sft``: NLL of the action tokens of successful episodes (expert demonstrations are successful episodes);
- ``rft``: rejection-sampling fine-tuning = SFT on the successful episodes of the policy's own rollouts
  (``metadata.policy`` model/agent; collect them with ``oreo-agents collect --policy model`` first);
- ``dpo``: success vs failure pairs of the same ``task_id``, with pi_ref's sequence log-probs from the cache.

All three train the policy alone: :class:`PolicyTrainer` holds what they share (one model, its forward, its saving).
"""

from __future__ import annotations

from pathlib import Path

import torch

import oreo_agents.learning.data as D
import oreo_agents.learning.losses as L
from oreo_agents.learning.trainer import Trainer, apply_lora
from oreo_agents.learning.vocab_chunks import logprobs_and_kl


class PolicyTrainer(Trainer):
    """A trainer of the policy alone: one model (``models["policy"]``, LoRA-wrapped when asked), one AdamW, saved as
    ``out/policy``. Subclasses define ``micro_step`` on top of :meth:`policy_logprobs`."""

    def setup_models(self, total_updates: int) -> None:
        policy = apply_lora(self.load_policy_for_training(), self.cfg)
        self.prepare_trainable("policy", policy, {"policy": (policy, self.cfg.learning_rate)}, total_updates)

    def policy_logprobs(self, b: dict[str, torch.Tensor], *, actions_only: bool = True) -> torch.Tensor:
        """State-aligned log-probs of the batch's taken tokens under the trained policy (one forward, with gradient);
        ``actions_only``: exact at action states (``b["mask"]``), 0 elsewhere, and only those logits are computed."""
        columns = self.logit_columns(b["mask"]) if actions_only else None
        keep = {} if columns is None else {"logits_to_keep": columns}
        logits = self.models["policy"](input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False, **keep).logits
        if columns is None:
            return D.token_logprobs(logits, b["input_ids"])
        return logprobs_and_kl(logits, b["input_ids"], columns=columns)[0]

    def save_models(self, out: Path) -> None:
        self.save_policy(out, self.gathered_weights())


class SFTTrainer(PolicyTrainer):
    algo = "sft"

    def micro_step(self, idx: list[int], weight: float) -> dict[str, float]:
        b = self.batch(idx)
        logp = self.policy_logprobs(b, actions_only=self.cfg.observation_loss_weight == 0)  # else every token is read
        loss = L.sft_loss(logp, L.sft_token_weights(b["mask"], b["attention_mask"], self.cfg.observation_loss_weight))
        self.acc.backward(loss * weight)
        metrics = {"loss": float(loss.detach()), "return": float(b["rewards"].mean()), "tokens": float(b["attention_mask"].sum())}
        if self.cfg.observation_loss_weight:  # "loss" then mixes in observations: keep the replies' own NLL comparable
            metrics["action_loss"] = float(L.sft_loss(logp.detach(), b["mask"]))
        return metrics


class RFTTrainer(SFTTrainer):
    """SFT on other episodes: :func:`.data.select_episodes` picks the policy's own successes for ``algo = "rft"``."""

    algo = "rft"


class DPOTrainer(PolicyTrainer):
    algo = "dpo"
    needs_ref = True
    rows_per_unit = 2

    def prepare_data(self) -> None:
        super().prepare_data()
        self.pairs = D.dpo_pairs(self.rows, seed=self.cfg.seed)

    def setup_models(self, total_updates: int) -> None:
        self.build_ref_cache()
        super().setup_models(total_updates)

    def units(self) -> int:
        return len(self.pairs)

    def unit_length(self, i: int) -> int:  # a pair is padded to its longer side
        return max(len(self.items[j]["input_ids"]) for j in self.pairs[i])

    def micro_step(self, idx: list[int], weight: float) -> dict[str, float]:
        chosen = [self.pairs[i][0] for i in idx]
        rejected = [self.pairs[i][1] for i in idx]
        b = self.batch(chosen + rejected)  # one forward for both sides
        seq = (self.policy_logprobs(b) * b["mask"]).sum(-1)
        ref = (b["ref_logp"] * b["mask"]).sum(-1)
        n = len(idx)
        loss = L.dpo_loss(seq[:n], ref[:n], seq[n:], ref[n:], self.cfg.dpo_beta)
        self.acc.backward(loss * weight)
        with torch.no_grad():
            margin = (seq[:n] - ref[:n]) - (seq[n:] - ref[n:])
        return {
            "loss": float(loss.detach()),
            "margin": float(margin.mean()),
            "accuracy": float((margin > 0).float().mean()),
            "tokens": float(b["attention_mask"].sum()),
        }

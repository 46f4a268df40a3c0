"""The OREO trainer's loss of one batch (``oreo.oreo_losses``, what ``OREOTrainer.losses`` calls) against the equations of
``losses.py``: each level's table entry, the value states, and the exact KL from the chunked pass = ``kl_regulariser``."""

from __future__ import annotations

import pytest
import torch

from oreo_agents.errors import OreoError
from oreo_agents.learning import losses as L
from oreo_agents.learning.oreo import LEVELS, oreo_losses, value_states
from oreo_agents.learning.vocab_chunks import logprobs_and_kl

B, T, V = 2, 7, 11
BETA = 0.1


def batch() -> dict[str, torch.Tensor]:
    """Two episodes of two replies each (states aligned as collate makes them); the second is truncated at token 5."""
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[0, 1, 1, 0, 1, 0, 0], [1, 0, 1, 1, 1, 0, 0]], dtype=torch.float32)
    step_ids = torch.tensor([[-1, 0, 0, -1, 1, -1, -1], [0, -1, 1, 1, 1, -1, -1]])
    reply_end = torch.tensor([[0, 0, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 1, 0]], dtype=torch.float32)
    attention = torch.tensor([[1] * 7, [1, 1, 1, 1, 1, 1, 0]])
    return dict(
        input_ids=torch.randint(0, V, (B, T), generator=g),
        attention_mask=attention,
        mask=mask,
        step_ids=step_ids,
        reply_end=reply_end,
        rewards=torch.tensor([1.0, 0.0]),
        truncated=torch.tensor([False, True]),
        ref_logp=-torch.rand(B, T, generator=g) * mask,
    )


def test_value_states_add_reply_ends_and_drop_a_truncated_cut():
    b = batch()
    cut = b["attention_mask"].sum(-1) - 1  # [6, 5]
    got = value_states(b["mask"], b["reply_end"], cut, b["truncated"])
    assert got.tolist() == [[0, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]]  # row 1: state 5 ends a reply but is the cut


@pytest.mark.parametrize("level", ["token", "step", "response"])
def test_each_level_is_its_equation_and_the_kl_is_kl_regulariser(level):
    b = batch()
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(B, T, V, generator=g, requires_grad=True)
    values = torch.rand(B, T, generator=g)
    full = torch.log_softmax(logits.detach(), -1)
    ref_full = torch.log_softmax(torch.randn(B, T, V, generator=g), -1)
    logp, kl_states = logprobs_and_kl(logits, b["input_ids"], b["mask"], ref_full[b["mask"].bool()])
    loss_v, loss_pi, kl, vmask = oreo_losses(logp, kl_states, values, b, level=level, beta=BETA, kl_alpha=0.5)

    returns = torch.tensor([1.0, float(values[1, 5])])  # the truncated episode bootstraps from V at its cut
    policy = {
        "token": lambda: L.oreo_policy_loss_token(logp, b["ref_logp"], values, returns, b["mask"], BETA),
        "step": lambda: L.oreo_policy_loss_step(logp, b["ref_logp"], values, returns, b["step_ids"], BETA),
        "response": lambda: L.oreo_policy_loss_response(logp, b["ref_logp"], values, returns, b["mask"], BETA),
    }[level]()
    states = L.step_start_mask(b["step_ids"]) if level == "step" else b["mask"]
    want_vmask = value_states(states, b["reply_end"], b["attention_mask"].sum(-1) - 1, b["truncated"])
    assert torch.equal(vmask, want_vmask)
    assert loss_pi.item() == pytest.approx(policy.item(), rel=1e-6)
    assert loss_v.item() == pytest.approx(L.oreo_value_loss(values, logp, b["ref_logp"], returns, b["mask"], BETA, want_vmask).item(), rel=1e-6)
    # The chunked pass's KL, averaged by the trainer, is the regulariser of losses.py on the whole distributions.
    assert kl.item() == pytest.approx(L.kl_regulariser(full, ref_full, b["mask"]).item(), rel=1e-5)
    assert kl.item() > 0


def test_step_level_passes_its_step_starts_once():
    b = batch()
    logp, values = -torch.rand(B, T), torch.rand(B, T)
    starts = L.step_start_mask(b["step_ids"])
    with_starts = L.oreo_policy_loss_step(logp, b["ref_logp"], values, b["rewards"], b["step_ids"], BETA, starts=starts)
    without = L.oreo_policy_loss_step(logp, b["ref_logp"], values, b["rewards"], b["step_ids"], BETA)
    assert with_starts.item() == without.item()
    assert LEVELS["step"](logp, b["ref_logp"], values, b["rewards"], b["mask"], b["step_ids"], BETA)[1].tolist() == starts.tolist()


def test_no_kl_without_alpha_and_unknown_levels_are_refused():
    b = batch()
    logp, values = -torch.rand(B, T), torch.rand(B, T)
    assert oreo_losses(logp, torch.ones(B, T), values, b, level="token", beta=BETA, kl_alpha=0.0)[2].item() == 0
    with pytest.raises(OreoError, match="--loss-level: unknown level 'turn'"):
        oreo_losses(logp, torch.zeros(B, T), values, b, level="turn", beta=BETA, kl_alpha=0.0)

"""OREO and baseline losses: one pure function per equation of the spec (docs/learning.md, "Losses").

Every function takes plain tensors and returns a scalar, so each can be checked by hand. Layout: ``[B, T]`` tensors are
*aligned on states*: column ``t`` is the state ``s_t`` (the prefix that ends with token ``t``), so

- ``values[:, t]``   = V(s_t), the value head's output at token t;
- ``logp[:, t]``     = log pi(a_t | s_t), the policy's log-prob of token t+1 (the action chosen in s_t);
- ``ref_logp[:, t]`` = log pi_ref(a_t | s_t);
- ``mask[:, t]``     = 1 when token t+1 is an action (a reply token), 0 for prompt/observation/padding.

``rewards[b]`` is the episode's terminal reward R (sparse, undiscounted, so R_t = R for every t; a truncated episode
uses V at its cut instead, :func:`terminal_returns`). Per-trajectory means
(the ``1/T sum_t``) are averaged over the trajectories of the batch that have any masked position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_suffix_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``out[:, t] = sum_{i >= t} mask_i * x_i`` (a reverse cumulative sum along the last dim)."""
    y = x * mask
    return y.flip(-1).cumsum(-1).flip(-1)


def per_sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean_b ( 1/T_b * sum_t mask[b,t] * x[b,t] )`` over rows with ``T_b = sum_t mask[b,t] > 0``."""
    mask = mask.to(x.dtype)
    n = mask.sum(-1)
    per_row = (x * mask).sum(-1) / n.clamp(min=1)
    valid = n > 0
    if not bool(valid.any()):
        return (x * 0).sum()  # keeps the graph (DDP needs every parameter to take part) and is 0
    return per_row[valid].mean()


def terminal_returns(rewards: torch.Tensor, values: torch.Tensor, cut_state: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """The return every OREO target telescopes to: R for a finished episode, V at the cut for a truncated one::

        R_b = R_b                    if episode b finished (success, failure, invalid action, env step limit)
        R_b = stopgrad(V(s_cut_b))   if it was cut (aborted, or longer than --max-length): no terminal reward at the cut

    ``cut_state[b]`` is the index of the state right after the last kept reply (the last real token).
    """
    v_cut = values.detach().gather(1, cut_state[:, None].long()).squeeze(1)
    return torch.where(truncated.bool(), v_cut.to(rewards.dtype), rewards)


def oreo_value_loss(
    values: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    value_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Value loss (soft Bellman consistency, telescoped to the episode end)::

        L_V = 1/T * sum_t ( V(s_t) - R + beta * sum_{i>=t} logratio_i )^2,   logratio_i = log pi(a_i|s_i) - log pi_ref(a_i|s_i)

    The log-ratios are detached: this loss moves V only. ``value_mask`` picks the states that are regressed (default:
    the action states ``mask``). The trainer adds the state right after each reply (target ``R - beta * sum`` over later
    actions, where the current log-ratio is 0 because it is not an action state) so that V read at a reply's last token —
    what value-guided agents score candidates with — is trained too; step/response levels pass their own states.
    """
    logratio = (logp - ref_logp).detach()
    target = rewards[:, None] - beta * masked_suffix_sum(logratio, mask)
    return per_sequence_mean((values - target) ** 2, mask if value_mask is None else value_mask)


def oreo_policy_loss_token(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Token-level policy loss (without the KL term; add ``alpha * kl_regulariser``)::

        L_pi = 1/T * sum_t ( V(s_t) - R + beta * logratio_t + stopgrad(beta * sum_{i>t} logratio_i) )^2

    V is detached and so are the later log-ratios: each residual moves only the current token's log-prob.
    """
    logratio = (logp - ref_logp) * mask
    later = masked_suffix_sum(logratio.detach(), mask) - logratio.detach()
    residual = values.detach() - rewards[:, None] + beta * logratio + beta * later
    return per_sequence_mean(residual**2, mask)


def step_start_mask(step_ids: torch.Tensor) -> torch.Tensor:
    """1 at the state where each step's first action token is chosen (``step_ids`` = -1 off actions, else k = 0..K-1)."""
    prev = torch.cat([torch.full_like(step_ids[:, :1], -1), step_ids[:, :-1]], dim=1)
    return ((step_ids >= 0) & (step_ids != prev)).to(torch.float32)


def oreo_policy_loss_step(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    step_ids: torch.Tensor,
    beta: float,
    starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Step-level policy loss: an action is a whole step (ALFWorld: one reply; math: one line)::

        L_pi = 1/K * sum_k ( V(s_k) - R + beta * sum_{i in step k} logratio_i + stopgrad(beta * sum_{i in steps > k} logratio_i) )^2

    ``s_k`` is the state just before step k's first token; ``step_ids[b, t]`` is the step of action state t (-1 for
    non-action states). Every token of step k carries gradient through its own residual; later steps are detached.
    ``starts`` is :func:`step_start_mask` of ``step_ids`` when the caller has it already (it regresses V there too).
    """
    mask = (step_ids >= 0).to(logp.dtype)
    n_steps = int(step_ids.max().item()) + 1 if bool((step_ids >= 0).any()) else 1
    onehot = F.one_hot(step_ids.clamp(min=0), n_steps).to(logp.dtype) * mask[..., None]  # [B, T, K]
    logratio = (logp - ref_logp) * mask
    step_lr = torch.einsum("btk,bt->bk", onehot, logratio)  # [B, K]
    present = (onehot.sum(1) > 0).to(logp.dtype)
    later = masked_suffix_sum(step_lr.detach(), present) - step_lr.detach()
    starts = step_start_mask(step_ids) if starts is None else starts
    v_start = torch.einsum("btk,bt->bk", onehot * starts[..., None], values.detach())
    residual = v_start - rewards[:, None] + beta * step_lr + beta * later
    return per_sequence_mean(residual**2, present)


def first_action_mask(mask: torch.Tensor) -> torch.Tensor:
    """1 at s_0, the state where a trajectory's first action token is chosen (the first masked position), else 0."""
    on = mask > 0
    return (on & (on.to(torch.long).cumsum(-1) == 1)).to(mask.dtype)


def oreo_policy_loss_response(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Response-level policy loss: only the t = 0 residual, with all of the trajectory's actions as one action at s_0::

        L_pi = mean_b ( V(s_0) - R + beta * sum_t logratio_t )^2

    ``s_0`` is the state before the first action token, also on multi-turn episodes (observation gaps between the
    replies): V at later reply starts takes no part (the official ``traj_loss`` reads V(s_0) only). V is detached;
    every action token carries gradient through the one residual.
    """
    v0 = (values.detach() * first_action_mask(mask)).sum(-1)
    total = ((logp - ref_logp) * mask).sum(-1)
    residual = v0 - rewards + beta * total
    return per_sequence_mean(residual[:, None] ** 2, (mask.sum(-1, keepdim=True) > 0).to(logp.dtype))


def exact_kl(logp_full: torch.Tensor, ref_logp_full: torch.Tensor) -> torch.Tensor:
    """Per-state KL over the vocabulary, ``[B, T]``::

        KL_t = KL( pi(.|s_t) || pi_ref(.|s_t) ) = sum_v pi(v|s_t) (log pi(v|s_t) - log pi_ref(v|s_t))

    ``logp_full``/``ref_logp_full`` are ``[B, T, V]`` log-distributions (log-softmax); gradient flows into pi only. The
    trainer gets the same numbers from :func:`oreo_agents.learning.vocab_chunks.logprobs_and_kl`, chunk by chunk.
    """
    return (logp_full.exp() * (logp_full - ref_logp_full.detach())).sum(-1)


def kl_regulariser_from_states(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_reg = 1/T * sum_t KL_t`` over the action states, from per-state KLs ``[B, T]`` (:func:`exact_kl`)."""
    return per_sequence_mean(kl, mask)


def kl_regulariser(logp_full: torch.Tensor, ref_logp_full: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact KL over the vocabulary at action states::

        L_reg = 1/T * sum_t KL( pi(.|s_t) || pi_ref(.|s_t) ) = 1/T * sum_t sum_v pi(v|s_t) (log pi(v|s_t) - log pi_ref(v|s_t))

    ``logp_full``/``ref_logp_full`` are ``[B, T, V]`` log-distributions (log-softmax); gradient flows into pi only.
    """
    return kl_regulariser_from_states(exact_kl(logp_full, ref_logp_full), mask)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the action tokens, averaged over all action tokens of the batch::

        L_SFT = - sum_{b,t} mask * log pi(a_t|s_t) / sum_{b,t} mask
    """
    mask = mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


def sft_token_weights(action_mask: torch.Tensor, attention_mask: torch.Tensor, observation_weight: float) -> torch.Tensor:
    """Per-state weights for :func:`sft_loss`: 1 where the next token is an action, ``observation_weight`` where it is
    any other real token (prompt, observation), 0 on padding. Weight 0 is the usual completion-only SFT."""
    if observation_weight == 0:
        return action_mask
    next_is_real = torch.nn.functional.pad(attention_mask[:, 1:].to(action_mask.dtype), (0, 1))
    return action_mask + observation_weight * (next_is_real - action_mask)


def dpo_loss(
    chosen_logp: torch.Tensor,
    chosen_ref_logp: torch.Tensor,
    rejected_logp: torch.Tensor,
    rejected_ref_logp: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO on (success, failure) pairs of one task; inputs are per-sequence sums of action-token log-probs ``[P]``::

        L_DPO = - mean log sigmoid( beta * ((log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))) )
    """
    margin = (chosen_logp - chosen_ref_logp) - (rejected_logp - rejected_ref_logp)
    return -F.logsigmoid(beta * margin).mean()

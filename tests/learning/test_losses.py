"""Each loss against values computed by hand, and the stop-gradients of OREO's two losses."""

from __future__ import annotations

import math

import pytest
import torch

from oreo_agents.learning import losses as L

# One trajectory, 3 states: actions at states 0 and 1, state 2 is not an action state.
# logratio = logp - ref = [0.5, -1.0, 0];  beta = 0.1;  R = 1.
LOGP = [-1.0, -2.0, 0.0]
REF = [-1.5, -1.0, 0.0]
VALUES = [0.2, 0.4, 0.0]
MASK = [1.0, 1.0, 0.0]
BETA = 0.1


def t(x, grad=False):
    return torch.tensor([x], dtype=torch.float64, requires_grad=grad)


R = torch.tensor([1.0], dtype=torch.float64)


def test_masked_suffix_sum():
    assert L.masked_suffix_sum(t([1.0, 2.0, 3.0]), t([1.0, 0.0, 1.0])).tolist() == [[4.0, 3.0, 3.0]]


def test_value_loss_by_hand():
    # targets: R - beta * sum_{i>=t} logratio_i = 1 - 0.1 * (-0.5) = 1.05 ; 1 - 0.1 * (-1.0) = 1.1
    expected = ((0.2 - 1.05) ** 2 + (0.4 - 1.1) ** 2) / 2  # 0.60625
    got = L.oreo_value_loss(t(VALUES), t(LOGP), t(REF), R, t(MASK), BETA)
    assert got.item() == pytest.approx(expected)


def test_token_policy_loss_by_hand():
    # residual_t = V_t - R + beta*lr_t + beta*sum_{i>t} lr_i : 0.2-1+0.05-0.1 = -0.85 ; 0.4-1-0.1 = -0.7
    got = L.oreo_policy_loss_token(t(LOGP), t(REF), t(VALUES), R, t(MASK), BETA)
    assert got.item() == pytest.approx((0.85**2 + 0.7**2) / 2)


def test_policy_loss_moves_only_the_current_token():
    logp, values = t(LOGP, grad=True), t(VALUES, grad=True)
    L.oreo_policy_loss_token(logp, t(REF), values, R, t(MASK), BETA).backward()
    # dL/dlogp_t = 2/T * residual_t * beta: only residual t reaches token t (later tokens are stop-gradient'ed).
    assert logp.grad.tolist()[0] == pytest.approx([-0.085, -0.07, 0.0])
    assert values.grad is None  # V is detached in the policy loss


def test_value_loss_does_not_touch_the_policy():
    logp, values = t(LOGP, grad=True), t(VALUES, grad=True)
    L.oreo_value_loss(values, logp, t(REF), R, t(MASK), BETA).backward()
    assert logp.grad is None
    assert values.grad.tolist()[0] == pytest.approx([-0.85, -0.7, 0.0])  # 2/T * (V_t - target_t)


def test_value_mask_selects_regressed_states():
    vm = t([0.0, 0.0, 1.0])  # only the state after the reply: target = R - beta * 0 = 1
    got = L.oreo_value_loss(t(VALUES), t(LOGP), t(REF), R, t(MASK), BETA, value_mask=vm)
    assert got.item() == pytest.approx((0.0 - 1.0) ** 2)


def test_step_policy_loss_by_hand():
    logp, ref = t([-1.0, -2.0, -0.8, 0.0], grad=True), t([-1.5, -1.0, -1.0, 0.0])  # lr = [0.5, -1, 0.2, 0]
    values = t([0.2, 0.9, 0.4, 0.0])
    steps = torch.tensor([[0, 0, 1, -1]])
    # step 0: V(s_0)=0.2, in-step lr -0.5, later 0.2 -> 0.2-1-0.05+0.02 = -0.83 ; step 1: V=0.4 -> 0.4-1+0.02 = -0.58
    loss = L.oreo_policy_loss_step(logp, ref, values, R, steps, BETA)
    assert loss.item() == pytest.approx((0.83**2 + 0.58**2) / 2)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-0.083, -0.083, -0.058, 0.0])  # every token of a step: its own residual


def test_response_policy_loss_by_hand():
    got = L.oreo_policy_loss_response(t([-1.0, -2.0, -0.8, 0.0]), t([-1.5, -1.0, -1.0, 0.0]), t([0.2, 0.9, 0.4, 0.0]), R, t([1.0, 1.0, 1.0, 0.0]), BETA)
    assert got.item() == pytest.approx((0.2 - 1 + 0.1 * -0.3) ** 2)


def test_response_policy_loss_reads_v_at_s0_only_on_multi_turn_masks():
    # Two replies with an observation between them: actions at states 1-2 and 5-6; V at the second reply's start (9.0)
    # must take no part, only V(s_0) = V at state 1 (0.3). lr = [0, 0.5, -1, 0, 0, 0.2, 0.1, 0].
    logp = t([0.0, -1.0, -2.0, 0.0, 0.0, -0.8, -0.4, 0.0], grad=True)
    ref = t([0.0, -1.5, -1.0, 0.0, 0.0, -1.0, -0.5, 0.0])
    values = t([5.0, 0.3, 0.9, 7.0, 8.0, 9.0, 0.4, 0.0])
    mask = t([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    residual = 0.3 - 1 + 0.1 * (0.5 - 1.0 + 0.2 + 0.1)  # -0.72
    loss = L.oreo_policy_loss_response(logp, ref, values, R, mask, BETA)
    assert loss.item() == pytest.approx(residual**2, abs=1e-12)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([0, 2 * residual * BETA, 2 * residual * BETA, 0, 0, 2 * residual * BETA, 2 * residual * BETA, 0])


def test_response_policy_loss_matches_an_independent_reference():
    g = torch.Generator().manual_seed(0)
    B, T = 4, 24
    logp, ref, values = (torch.randn(B, T, generator=g, dtype=torch.float64) for _ in range(3))
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.float64)
    for b, replies in enumerate([[(2, 5), (8, 10), (15, 20)], [(0, 3), (6, 7)], [(4, 23)], []]):  # row 3: no action
        for a, e in replies:
            mask[b, a:e] = 1
    per_row = []
    for b in range(B):
        acts = [i for i in range(T) if mask[b, i]]
        if acts:  # (V(s_0) - R + beta * sum over every action of the trajectory)^2, s_0 = the first action state
            per_row.append((values[b, acts[0]] - rewards[b] + BETA * sum(logp[b, i] - ref[b, i] for i in acts)) ** 2)
    expected = sum(per_row) / len(per_row)
    got = L.oreo_policy_loss_response(logp, ref, values, rewards, mask, BETA)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_truncated_episodes_bootstrap_from_v_at_the_cut_not_from_r():
    # Row 0 was cut after state 2 (aborted or past --max-length): its return is V(s_2) = 0.7, detached; row 1 finished.
    values = torch.tensor([[0.1, 0.2, 0.7, 0.0], [0.3, 0.4, 0.5, 0.9]], dtype=torch.float64, requires_grad=True)
    got = L.terminal_returns(torch.tensor([1.0, 1.0], dtype=torch.float64), values, torch.tensor([2, 3]), torch.tensor([True, False]))
    assert got.tolist() == pytest.approx([0.7, 1.0])
    assert not got.requires_grad
    # In the value loss the cut episode's targets telescope to V(s_cut): 0.7 - beta * sum of later log-ratios.
    loss = L.oreo_value_loss(t([0.2, 0.4, 0.0]), t(LOGP), t(REF), got[:1], t(MASK), BETA)
    assert loss.item() == pytest.approx(((0.2 - 0.75) ** 2 + (0.4 - 0.8) ** 2) / 2)


def test_per_sequence_mean_averages_trajectories_not_tokens():
    x = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert L.per_sequence_mean(x, m).item() == pytest.approx((1.0 + 4.0) / 2)


def test_kl_exact_over_vocabulary():
    pi = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    ref = torch.log(torch.tensor([[[0.25, 0.75], [0.1, 0.9]]]))
    mask = torch.tensor([[1.0, 0.0]])  # second state is not an action state
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert L.kl_regulariser(pi, ref, mask).item() == pytest.approx(expected, rel=1e-5)
    assert L.kl_regulariser(ref, ref, mask).item() == pytest.approx(0.0, abs=1e-7)


def test_sft_loss_by_hand():
    assert L.sft_loss(t([-1.0, -2.0, -3.0]), t([1.0, 1.0, 0.0])).item() == pytest.approx(1.5)


def test_sft_token_weights_cover_observations_but_not_padding():
    # tokens: prompt prompt action action obs pad; state t predicts token t+1
    action_next = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0]])
    assert torch.equal(L.sft_token_weights(action_next, attention, 0.0), action_next)
    assert L.sft_token_weights(action_next, attention, 0.5).tolist() == [[0.5, 1.0, 1.0, 0.5, 0.0, 0.0]]


def test_dpo_loss_by_hand():
    # chosen ratio +1, rejected ratio -1: margin 2, beta 0.5 -> -log sigmoid(1)
    got = L.dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), 0.5)
    assert got.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))))

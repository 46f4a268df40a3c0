"""The value lens's metrics against numbers worked out by hand on small examples (no torch)."""

from __future__ import annotations

import math

import pytest

from oreo_agents.agent import value_metrics as M


def test_auc_counts_pairs_with_ties_as_half():
    # positives 0.9, 0.4; negatives 0.4, 0.1, 0.7.
    # 0.9 beats all three (3); 0.4 ties 0.4 (0.5), beats 0.1 (1), loses to 0.7 (0)  ->  4.5 of 6 pairs.
    assert M.auc([0.9, 0.4, 0.4, 0.1, 0.7], [True, True, False, False, False]) == pytest.approx(0.75)
    assert M.auc([0.1, 0.2], [True, False]) == 0.0  # perfectly wrong
    assert M.auc([0.3, 0.3, 0.3], [True, False, True]) == 0.5  # V cannot tell them apart
    assert M.auc([0.3, 0.8], [False, False]) is None  # one class only: undefined, not 0.5
    with pytest.raises(ValueError):
        M.auc([0.1], [True, False])


def test_auc_agrees_with_the_pair_count_definition():
    scores = [0.11, 0.52, 0.52, 0.93, 0.20, 0.52, 0.74, 0.05]
    labels = [False, True, False, True, False, True, False, True]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert M.auc(scores, labels) == pytest.approx(pairs)


def test_reliability_bins_and_ece_by_hand():
    # Two bins [0, .5) and [.5, 1]; V is clipped to [0, 1] first (1.2 -> 1.0, -0.3 -> 0.0).
    preds = [0.05, 0.15, 0.12, 0.95, 1.2, -0.3]
    labels = [False, True, False, True, True, False]
    low, high = M.reliability_bins(preds, labels, n_bins=2)
    assert (low.lo, low.hi, low.count) == (0.0, 0.5, 4)
    assert low.mean_prediction == pytest.approx((0.05 + 0.15 + 0.12 + 0.0) / 4)  # 0.08
    assert low.success_rate == pytest.approx(0.25)
    assert (high.count, high.mean_prediction, high.success_rate) == (2, pytest.approx(0.975), 1.0)
    # ECE = 4/6 * |0.08 - 0.25| + 2/6 * |0.975 - 1|
    assert M.expected_calibration_error(preds, labels, n_bins=2) == pytest.approx(4 / 6 * 0.17 + 2 / 6 * 0.025)


def test_reliability_empty_bins_and_perfect_calibration():
    bins = M.reliability_bins([0.0, 1.0], [False, True], n_bins=4)
    assert [b.count for b in bins] == [1, 0, 0, 1]  # 1.0 belongs to the last bin
    assert math.isnan(bins[1].mean_prediction) and math.isnan(bins[1].success_rate)
    assert M.expected_calibration_error([0.0, 1.0], [False, True], n_bins=4) == 0.0
    assert M.expected_calibration_error([], []) is None
    # Always saying 1.0 on a 25% task: off by 0.75 everywhere.
    assert M.expected_calibration_error([1.0] * 4, [True, False, False, False]) == pytest.approx(0.75)


def test_advantages_are_after_minus_before_and_decisive_steps_rank_by_size():
    before, after = [0.2, 0.5, 0.45], [0.5, 0.4, 0.9]
    assert M.step_advantages(before, after) == pytest.approx([0.3, -0.1, 0.45])
    assert M.decisive_steps([0.3, -0.1, 0.45], top=2) == [2, 0]
    assert M.decisive_steps([0.2, -0.2, 0.1], top=2) == [0, 1]  # equal |A|: the earlier step first
    assert M.decisive_steps([-0.6, 0.1], top=5) == [0, 1]
    with pytest.raises(ValueError):
        M.step_advantages([0.1], [0.2, 0.3])


def test_curves_by_step():
    means = M.mean_by_step([[0.1, 0.5], [0.3], []], length=3)
    assert means[0] == (pytest.approx(0.2), 2) and means[1] == (0.5, 1)
    assert math.isnan(means[2][0]) and means[2][1] == 0
    # step 0: 0.9 (success) above 0.2 and 0.5 -> 1.0; step 1: only 0.8 (success) vs 0.9 (failure) -> 0.0
    assert M.auc_by_step([[0.9, 0.8], [0.2, 0.9], [0.5]], [True, False, False]) == [1.0, 0.0]
    assert M.auc_by_step([[0.9], [0.2, 0.4]], [True, False]) == [1.0, None]  # step 1: failures only


def test_metrics_and_report_import_without_torch():
    import subprocess
    import sys

    from tests.test_import_separation import BLOCK_TORCH

    code = BLOCK_TORCH + "import oreo_agents.agent.value_metrics, oreo_agents.agent.report\nprint('OK')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]

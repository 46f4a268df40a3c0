"""The shared statistics, each checked against a value worked out by hand."""

from __future__ import annotations

import pytest

from oreo_agents.stats import mcnemar_exact, paired_bootstrap, paired_difference, wilson


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0  # nothing tells the agents apart
    assert mcnemar_exact(2, 0) == pytest.approx(0.5)  # 2 * (1/2)^2
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)  # 2 * 1/32: five wins of five is not yet 5%
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)  # 2 * (1 + 7) / 128
    assert mcnemar_exact(1, 6) == mcnemar_exact(6, 1)  # two-sided
    assert mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)  # (1 + 12 + 66) / 2^12, = scipy binomtest 0.0386
    assert mcnemar_exact(3, 3) == 1.0  # capped


def test_paired_bootstrap_by_hand():
    assert paired_bootstrap([True, False, True], [True, False, True]) == (0.0, 0.0)  # same outcomes: no difference
    assert paired_bootstrap([True] * 5, [False] * 5) == (1.0, 1.0)
    # diffs [1, 1, 0, 0]: a resampled mean is Binomial(4, 1/2) / 4, P(0) = P(4) = 1/16 > 2.5%, so the 95% interval is [0, 1]
    assert paired_bootstrap([1, 1, 1, 0], [0, 0, 1, 0]) == (0.0, 1.0)
    with pytest.raises(ValueError):
        paired_bootstrap([True], [True, False])


def test_pairing_separates_agents_that_independent_intervals_cannot():
    """48 tasks; b solves 12, a solves the same 12 plus 5 more. Wilson intervals overlap widely; the paired interval
    excludes 0 (P(no discordant task drawn in 48) = (43/48)^48 ~ 0.5% < 2.5%), while McNemar's exact p = 2/32 stays above 5%."""
    b = [True] * 12 + [False] * 36
    a = [True] * 17 + [False] * 31
    lo_a, _ = wilson(17, 48)
    _, hi_b = wilson(12, 48)
    assert lo_a < hi_b  # independent intervals overlap
    d = paired_difference(a, b)
    assert (d.n, d.a_successes, d.b_successes, d.only_a, d.only_b) == (48, 17, 12, 5, 0)
    assert d.difference == pytest.approx(5 / 48)
    assert d.ci_low > 0 and d.ci_high <= 10 / 48
    assert d.p_value == pytest.approx(0.0625)
    assert paired_difference(a, b) == d  # seeded: the report reproduces

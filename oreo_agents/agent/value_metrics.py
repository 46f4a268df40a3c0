"""What a learned value V says about episodes, one function per quantity (no torch; checked by hand in the tests).

OREO trains V(s) to predict the (KL-regularised) return from state s; with ALFWorld's sparse reward that is the chance
that the episode ends in success. These functions measure how well it does so on recorded episodes:

- :func:`~oreo_agents.stats.auc`: does V rank successful episodes above failed ones? (0.5 = chance, 1 = perfect ranking)
- :func:`reliability_bins` / :func:`expected_calibration_error`: when V says 0.8, do 80% of those episodes succeed?
- :func:`step_advantages`: A_t = V(after step t) - V(before step t), the credit V gives each action;
  :func:`decisive_steps` lists the steps that moved V most.
- :func:`mean_by_step` / :func:`auc_by_step`: V along the episode, for the curves of successes and failures.

"Before step t" is the state just before reply t (the context the policy reads), "after step t" the state right after
reply t's last token: the state a value-guided agent scores a candidate at (``agent.selection.value_at_ends``), so A_t
is exactly what best-of-K selection ranks candidates by.

    >>> auc([0.9, 0.2, 0.6], [True, False, False])
    1.0
    >>> step_advantages([0.5, 0.75], [0.75, 1.0])
    [0.25, 0.25]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from oreo_agents.stats import auc


def as_probability(v: float) -> float:
    """V read as a success probability: clipped to [0, 1] (OREO's V is a soft value and can leave that range)."""
    return min(1.0, max(0.0, v))


@dataclass
class ReliabilityBin:
    """One bin of a reliability diagram: predictions in [lo, hi), their mean, and the observed success rate."""

    lo: float
    hi: float
    count: int
    mean_prediction: float  # NaN when empty
    success_rate: float  # NaN when empty


def reliability_bins(predictions: Sequence[float], labels: Sequence[bool], n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of the predictions (clipped, see :func:`as_probability`); 1.0 falls in the last bin."""
    if len(predictions) != len(labels):
        raise ValueError(f"reliability_bins: {len(predictions)} predictions for {len(labels)} labels")
    if n_bins < 1:
        raise ValueError(f"reliability_bins: n_bins must be at least 1, got {n_bins}")
    sums = [0.0] * n_bins
    wins = [0] * n_bins
    counts = [0] * n_bins
    for v, y in zip(predictions, labels):
        p = as_probability(v)
        b = min(int(p * n_bins), n_bins - 1)
        sums[b] += p
        wins[b] += int(bool(y))
        counts[b] += 1
    return [
        ReliabilityBin(b / n_bins, (b + 1) / n_bins, n, sums[b] / n if n else math.nan, wins[b] / n if n else math.nan)
        for b, n in enumerate(counts)
    ]


def expected_calibration_error(predictions: Sequence[float], labels: Sequence[bool], n_bins: int = 10) -> float | None:
    """ECE = sum over bins of (bin count / total) * |mean prediction - success rate|; None without predictions."""
    bins = reliability_bins(predictions, labels, n_bins)
    total = sum(b.count for b in bins)
    if total == 0:
        return None
    return sum(b.count / total * abs(b.mean_prediction - b.success_rate) for b in bins if b.count)


def step_advantages(v_before: Sequence[float], v_after: Sequence[float]) -> list[float]:
    """A_t = V(after step t) - V(before step t) for every step of one episode."""
    if len(v_before) != len(v_after):
        raise ValueError(f"step_advantages: {len(v_before)} values before, {len(v_after)} after")
    return [a - b for b, a in zip(v_before, v_after)]


def decisive_steps(advantages: Sequence[float], top: int = 3) -> list[int]:
    """The steps that moved V most: indices of the ``top`` largest |A_t|, largest first (ties: the earlier step)."""
    ranked = sorted(range(len(advantages)), key=lambda t: (-abs(advantages[t]), t))
    return ranked[: max(0, top)]


def mean_by_step(curves: Sequence[Sequence[float]], length: int | None = None) -> list[tuple[float, int]]:
    """(mean, count) of the t-th value over the curves that reach step t, for t = 0 .. ``length`` - 1 (default: longest).

    A step no curve reaches gives (NaN, 0).
    """
    length = max((len(c) for c in curves), default=0) if length is None else length
    out = []
    for t in range(length):
        xs = [c[t] for c in curves if len(c) > t]
        out.append((sum(xs) / len(xs), len(xs)) if xs else (math.nan, 0))
    return out


def auc_by_step(curves: Sequence[Sequence[float]], labels: Sequence[bool], length: int | None = None) -> list[float | None]:
    """AUC of the t-th value for predicting the episode's label, among the episodes that reach step t."""
    length = max((len(c) for c in curves), default=0) if length is None else length
    out = []
    for t in range(length):
        pairs = [(c[t], y) for c, y in zip(curves, labels) if len(c) > t]
        out.append(auc([v for v, _ in pairs], [y for _, y in pairs]))
    return out

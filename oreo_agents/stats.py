"""Statistics the reports share, torch-free and checked by hand in ``tests/test_stats.py``: intervals of a success rate
(Wilson, percentile bootstrap) and the AUC of a score for a binary outcome (the value lens and the trainer's value AUC).
"""

from __future__ import annotations

import math
import random
from typing import Sequence


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp so the interval always contains p (float rounding can push an end past it at 0% / 100%).
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def bootstrap(outcomes: Sequence[bool], *, samples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes (seeded: reports reproduce)."""
    n = len(outcomes)
    if n == 0:
        return (0.0, 1.0)
    rng = random.Random(seed)
    xs = [int(x) for x in outcomes]
    means = sorted(sum(rng.choices(xs, k=n)) / n for _ in range(samples))
    lo = means[int((1 - level) / 2 * (samples - 1))]
    hi = means[int((1 + level) / 2 * (samples - 1))]
    return (lo, hi)


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties counting 1/2.

    Computed from average ranks (Mann-Whitney U): ``(sum of positive ranks - P(P+1)/2) / (P * N)``. None when either
    class is empty (the AUC is undefined, not 0.5).
    """
    if len(scores) != len(labels):
        raise ValueError(f"auc: {len(scores)} scores for {len(labels)} labels")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # tied scores share the average of their ranks (1-based)
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)

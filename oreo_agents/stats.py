"""Statistics the reports share, torch-free and checked by hand in ``tests/test_stats.py``: intervals of a success rate
(Wilson, percentile bootstrap), the AUC of a score for a binary outcome (the value lens and the trainer's value AUC), and
paired comparisons of two agents on the same tasks (paired bootstrap of the difference, McNemar's exact test).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
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


# --- paired comparisons ------------------------------------------------------------------------------------------------
# Two agents evaluated on the same tasks with the same seeds are compared task by task: what differs between them is
# only the discordant tasks (one solved, the other not). With 24-48 tasks the independent Wilson intervals are ~+-13
# points wide; the paired difference is far tighter whenever the agents agree on most tasks.
@dataclass(frozen=True)
class PairedDifference:
    """Success of ``a`` minus success of ``b`` over the ``n`` tasks both played."""

    n: int
    a_successes: int
    b_successes: int
    only_a: int  # tasks a solved and b did not
    only_b: int  # tasks b solved and a did not
    difference: float  # (a_successes - b_successes) / n
    ci_low: float  # paired percentile bootstrap over tasks
    ci_high: float
    p_value: float  # McNemar's exact test (two-sided binomial test on the discordant tasks)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant task is a fair coin flip between a and b,
    so p = P(a split at least as uneven as observed) = min(1, 2 * P(Binomial(only_a + only_b, 1/2) <= min(only_a, only_b))).
    No discordant task: p = 1 (nothing tells the agents apart)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_bootstrap(a: Sequence[bool], b: Sequence[bool], *, samples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b), resampling tasks (pairs stay together; seeded)."""
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap: {len(a)} outcomes of a for {len(b)} of b")
    n = len(a)
    if n == 0:
        return (-1.0, 1.0)
    diffs = [int(x) - int(y) for x, y in zip(a, b)]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    return (means[int((1 - level) / 2 * (samples - 1))], means[int((1 + level) / 2 * (samples - 1))])


def paired_difference(a: Sequence[bool], b: Sequence[bool], *, samples: int = 10_000, seed: int = 0) -> PairedDifference:
    """Paired comparison of two agents' outcomes on the same tasks, in the same order."""
    lo, hi = paired_bootstrap(a, b, samples=samples, seed=seed)
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = len(a)
    ka, kb = sum(map(bool, a)), sum(map(bool, b))
    return PairedDifference(n, ka, kb, only_a, only_b, (ka - kb) / n if n else 0.0, lo, hi, mcnemar_exact(only_a, only_b))

"""The numbers of an evaluation: one :class:`Outcome` per episode, and :class:`Row` s (success rate with a 95%
confidence interval per agent, split and task type) summarized from them. Both :mod:`~oreo_agents.agent.evaluate`
(which produces them) and :mod:`~oreo_agents.agent.report` (which reads them) import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from oreo_agents.errors import OreoError
from oreo_agents.stats import bootstrap, wilson

ALL = "all"
COLUMNS = ("agent", "select", "split", "task_type", "n", "successes", "rate", "ci_low", "ci_high", "mean_length")


@dataclass
class Outcome:
    """One evaluated episode."""

    index: int
    task_id: str
    split: str
    task_type: str
    success: bool
    reward: float
    length: int
    termination: str


@dataclass
class Row:
    """One line of the report: an agent (label, selection) on a split and task type (``all`` = every type)."""

    agent: str
    select: str
    split: str
    task_type: str
    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float
    mean_length: float


def summarize(outcomes: Sequence[Outcome], *, label: str, select: str, ci: str = "wilson") -> list[Row]:
    if ci not in ("wilson", "bootstrap"):
        raise OreoError(f"--ci {ci}: choose wilson or bootstrap")
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.split or "-", ALL), []).append(o)
        groups.setdefault((o.split or "-", o.task_type or "-"), []).append(o)
    rows = []
    for (split, task_type), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != ALL, kv[0][1])):
        k, n = sum(o.success for o in group), len(group)
        lo, hi = wilson(k, n) if ci == "wilson" else bootstrap([o.success for o in group])
        rows.append(Row(label, select, split, task_type, n, k, k / n, lo, hi, sum(o.length for o in group) / n))
    return rows

"""The :class:`Problem` record every math source yields (the generator, GSM8K / MATH files, reasoning-gym), and the
expert's actions for it. Below both :mod:`.problems` (the loaders) and :mod:`.generator`, which build Problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem: the question, the reference answer and the reference solution as steps (one line each).

    ``steps`` end with the final-answer step (``#### x`` for ``"gsm8k"`` format, a step holding ``\\boxed{x}`` for
    ``"boxed"``), so replaying them in the env solves the problem: they are the expert's actions.
    """

    id: str
    question: str
    answer: str
    steps: tuple[str, ...]
    answer_format: str = "gsm8k"  # "gsm8k" (#### number, strict numeric check) or "boxed" (\boxed{...}, math-verify)
    source: str = "embedded"
    difficulty: int | None = None  # generator level, or MATH's Level 1-5
    task_type: str = ""  # e.g. arith-L2, gsm8k, math-algebra-L3, rg-gsm_symbolic
    split: str = "train"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def expert_steps(problem: Problem) -> list[str]:
    """The reference solution as env actions: one line per step, the last one giving the final answer.

    For the recorder's expert policy (SFT data). Each step is a single line; only the last one is a final-answer step.
    """
    return list(problem.steps)

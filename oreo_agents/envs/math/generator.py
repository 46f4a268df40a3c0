"""The embedded problem source: seeded multi-step arithmetic word problems with worked solutions.

A problem is a short story about one person's count of one kind of item; every sentence after the first changes the
count once, and the solution has one line per change, then ``#### <answer>``::

    >>> p = generate_problems(1, level=2, split="train", seed=0)[0]
    >>> print(p.question)                                                    # doctest: +SKIP
    Mia has 14 shells. Mia sells 5 shells. Mia finds 11 more shells. How many shells does Mia have now?
    >>> print("\\n".join(p.steps))                                           # doctest: +SKIP
    Mia has 14 - 5 = 9 shells.
    Mia has 9 + 11 = 20 shells.
    #### 20

Difficulty (:data:`LEVELS`) sets the number of operations, the number sizes and which operations appear. Level 1 is one
addition or subtraction of single digits in a fixed sentence frame with a small vocabulary — a 2-20M-parameter model
trained from scratch learns it in minutes on a CPU. Level 5 chains 5-6 operations (``+ - * /`` and "bags of k" that take
two steps) over numbers up to 1000, so one slip anywhere loses the answer: room for search and RL.

Splits never overlap: a question belongs to ``test`` iff the SHA-256 of its text is 0 mod 5, whatever the seed, so
train and test problems differ in text (arithmetic facts are shared, as in GSM8K). Same ``(level, split, seed, n)``
gives the same problems on every machine (``random.Random`` with a string seed).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from oreo_agents.envs.math.problem import Problem
from oreo_agents.errors import OreoError

SPLITS = ("train", "test")
TEST_MODULUS = 5  # 1 in 5 question texts is a test question


@dataclass(frozen=True)
class Level:
    """How hard the generated problems are."""

    level: int
    num_ops: tuple[int, int]  # inclusive range of count-changing sentences
    max_start: int  # the starting count is in [2, max_start]
    max_operand: int  # added / removed amounts, items per bag
    max_factor: int  # "k times as many", "k equal piles", number of bags
    max_value: int  # the running count never exceeds this
    operations: tuple[str, ...]
    vocabulary: int  # 1: 6 names/items, 1 frame per operation; 2: 9 and 2; 3: all 12 and 3


LEVELS: dict[int, Level] = {
    1: Level(1, (1, 1), 9, 9, 2, 18, ("add", "sub"), 1),
    2: Level(2, (2, 2), 20, 20, 2, 60, ("add", "sub"), 2),
    3: Level(3, (3, 3), 30, 30, 5, 500, ("add", "sub", "mul"), 3),
    4: Level(4, (4, 4), 100, 100, 9, 5_000, ("add", "sub", "mul", "div", "bags"), 3),
    5: Level(5, (5, 6), 1_000, 1_000, 12, 100_000, ("add", "sub", "mul", "div", "bags"), 3),
}

NAMES = ("Tom", "Ann", "Sam", "Mia", "Ben", "Eva", "Max", "Lily", "Leo", "Zoe", "Omar", "Nina")
ITEMS = (
    ("apple", "apples"),
    ("pen", "pens"),
    ("book", "books"),
    ("card", "cards"),
    ("egg", "eggs"),
    ("coin", "coins"),
    ("shell", "shells"),
    ("stamp", "stamps"),
    ("marble", "marbles"),
    ("sticker", "stickers"),
    ("cookie", "cookies"),
    ("flower", "flowers"),
)
# Sentence frames per operation, easiest first; level.vocabulary says how many are used.
FRAMES: dict[str, tuple[str, ...]] = {
    "add": ("{P} buys {n} more {items}.", "{P} finds {n} more {items}.", "{Q} gives {P} {n} more {items}."),
    "sub": ("{P} sells {n} {items}.", "{P} gives {n} {items} to {Q}.", "{P} loses {n} {items}."),
    "mul": ("{P} ends up with {n} times as many {items} as before.",) * 3,
    "div": ("{P} puts the {items} into {n} equal piles and keeps one pile.",) * 3,
    "bags": ("{P} buys {g} bags with {k} {items} in each bag.",) * 3,
}
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def split_of(question: str) -> str:
    """``"test"`` for 1 in ``TEST_MODULUS`` question texts (by SHA-256), else ``"train"``."""
    digest = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big")
    return "test" if digest % TEST_MODULUS == 0 else "train"


def _noun(items: tuple[str, str], count: int) -> str:
    return items[0] if count == 1 else items[1]


def _operation(rng: random.Random, lv: Level, count: int) -> tuple[str, dict[str, int], int] | None:
    """One random count change valid at ``count``: (kind, numbers, new count), or None if the pick does not fit."""
    kind = rng.choice(lv.operations)
    if kind == "add":
        top = min(lv.max_operand, lv.max_value - count)
        return None if top < 2 else (kind, {"n": (n := rng.randint(2, top))}, count + n)
    if kind == "sub":
        top = min(lv.max_operand, count - 1)
        return None if top < 1 else (kind, {"n": (n := rng.randint(1, top))}, count - n)
    if kind == "mul":
        top = min(lv.max_factor, lv.max_value // max(count, 1))
        return None if top < 2 else (kind, {"n": (n := rng.randint(2, top))}, count * n)
    if kind == "div":
        divisors = [d for d in range(2, lv.max_factor + 1) if count % d == 0 and count // d >= 1]
        return None if not divisors else (kind, {"n": (n := rng.choice(divisors))}, count // n)
    # bags: g bags of k items, added to the count (two solution lines)
    g = rng.randint(2, lv.max_factor)
    top = min(lv.max_operand, (lv.max_value - count) // g)
    return None if top < 2 else (kind, {"g": g, "k": (k := rng.randint(2, top))}, count + g * k)


def make_problem(rng: random.Random, level: int) -> Problem:
    """One random problem of ``level`` (its split is decided by :func:`split_of`, not here)."""
    lv = LEVELS[level]
    width = {1: 6, 2: 9}.get(lv.vocabulary, len(NAMES))  # names / items in use
    person, other = rng.sample(NAMES[:width], 2)
    items = rng.choice(ITEMS[:width])
    count = rng.randint(2, lv.max_start)
    sentences = [f"{person} has {count} {_noun(items, count)}."]
    steps: list[str] = []
    num_ops = rng.randint(*lv.num_ops)
    while len(sentences) <= num_ops:
        picked = _operation(rng, lv, count)
        if picked is None:
            continue
        kind, nums, new = picked
        frame = rng.choice(FRAMES[kind][: lv.vocabulary])
        amount = nums.get("k", nums["n"] if kind in ("add", "sub") else 2)  # the count the item noun agrees with
        sentences.append(frame.format(P=person, Q=other, items=_noun(items, amount), **nums))
        if kind == "bags":
            bagged = nums["g"] * nums["k"]
            steps.append(f"The bags hold {nums['g']} * {nums['k']} = {bagged} {_noun(items, bagged)}.")
            steps.append(f"{person} has {count} + {bagged} = {new} {_noun(items, new)}.")
        else:
            steps.append(f"{person} has {count} {SYMBOL[kind]} {nums['n']} = {new} {_noun(items, new)}.")
        count = new
    sentences.append(f"How many {items[1]} does {person} have now?")
    question = " ".join(sentences)
    digest = hashlib.sha256(question.encode()).hexdigest()[:12]
    return Problem(
        id=f"arith-L{level}-{digest}",
        question=question,
        answer=str(count),
        steps=tuple(steps + [f"#### {count}"]),
        answer_format="gsm8k",
        source="embedded",
        difficulty=level,
        task_type=f"arith-L{level}",
        split=split_of(question),
    )


def generate_problems(
    n: int, *, level: int = 1, split: str = "train", seed: int = 0, at_most: bool = False
) -> list[Problem]:
    """``n`` distinct problems of ``level`` from ``split``; deterministic in ``(n, level, split, seed)``.

    Raises :class:`OreoError` for an unknown level/split, or when the level has fewer than ``n`` distinct problems in
    that split (level 1 holds about 2,900 train and 720 test questions) — unless ``at_most``, which returns every
    problem found before the space ran dry (the env's default size uses this, so defaults work on every split).
    """
    if level not in LEVELS:
        raise OreoError(f"difficulty must be one of {sorted(LEVELS)} for the embedded source (got {level!r})")
    if split not in SPLITS:
        raise OreoError(f"split must be 'train' or 'test' for the embedded source (got {split!r})")
    rng = random.Random(f"oreo-arith|{level}|{split}|{seed}")
    seen: set[str] = set()
    problems: list[Problem] = []
    misses = 0
    # Rejection sampling; a long run of duplicates means the level's problem space in this split is exhausted.
    while len(problems) < n:
        problem = make_problem(rng, level)
        if problem.split != split or problem.question in seen:
            misses += 1
            if misses > 20_000:
                if at_most:
                    return problems
                raise OreoError(
                    f"{n} problems are more than level {level} holds in split '{split}' (found {len(problems)})"
                )
            continue
        misses = 0
        seen.add(problem.question)
        problems.append(problem)
    return problems

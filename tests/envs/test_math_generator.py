"""The embedded generator: determinism, disjoint splits, correct worked solutions, difficulty that grows."""

from __future__ import annotations

import re
from statistics import mean

import pytest

from oreo_agents.envs.math.answers import extract_final_answer
from oreo_agents.envs.math.generator import LEVELS, generate_problems, split_of
from oreo_agents.envs.math.problems import expert_steps, load_problems
from oreo_agents.errors import OreoError

STEP_RE = re.compile(r"^(?:\w+ has|The bags hold) (\d+) ([-+*/]) (\d+) = (\d+) \w+\.$")
APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def test_same_arguments_same_problems():
    a = generate_problems(50, level=3, split="train", seed=5)
    b = generate_problems(50, level=3, split="train", seed=5)
    assert a == b
    assert [p.question for p in generate_problems(50, level=3, split="train", seed=6)] != [p.question for p in a]
    assert generate_problems(20, level=3, split="train", seed=5) == a[:20]  # a prefix: N does not reshuffle


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_splits_are_disjoint(level):
    train = generate_problems(400, level=level, split="train", seed=0)
    test = generate_problems(100, level=level, split="test", seed=0)
    other_seed = generate_problems(400, level=level, split="train", seed=1)
    test_questions = {p.question for p in test}
    assert not test_questions & {p.question for p in train + other_seed}
    assert all(p.split == "train" == split_of(p.question) for p in train)
    assert all(p.split == "test" == split_of(p.question) for p in test)
    assert len({p.id for p in train}) == 400  # distinct problems, distinct ids


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_worked_solutions_are_correct(level):
    for p in generate_problems(150, level=level, split="train", seed=2):
        steps = expert_steps(p)
        assert all("\n" not in s for s in steps)
        assert extract_final_answer(steps[-1], "gsm8k") == p.answer
        assert all(extract_final_answer(s, "gsm8k") is None for s in steps[:-1])
        count = int(re.match(r"\w+ has (\d+) ", p.question).group(1))
        for step in steps[:-1]:
            a, op, b, result = STEP_RE.match(step).groups()
            assert APPLY[op](int(a), int(b)) == int(result)
            if op == "/":
                assert int(a) % int(b) == 0
            if step.startswith("The bags"):
                continue
            assert int(a) == count  # each line continues from the previous count
            count = int(result)
            assert 1 <= count <= LEVELS[level].max_value
        assert str(count) == p.answer
        assert p.task_type == f"arith-L{level}" and p.difficulty == level and p.answer_format == "gsm8k"


def test_difficulty_grows_with_level():
    stats = {}
    for level in sorted(LEVELS):
        problems = generate_problems(200, level=level, split="train", seed=0)
        stats[level] = (
            mean(len(p.steps) for p in problems),
            max(int(p.answer) for p in problems),
            len({w for p in problems for w in re.findall(r"[A-Za-z]+", p.question + " ".join(p.steps))}),
        )
    steps, biggest, vocab = zip(*(stats[k] for k in sorted(stats)))
    assert list(steps) == sorted(steps) and steps[0] == 2 and steps[-1] > 6
    assert list(biggest) == sorted(biggest) and biggest[0] <= 18
    assert vocab[0] <= 30 < vocab[-1]  # level 1: a small vocabulary for a from-scratch model
    ops = {op for p in generate_problems(300, level=5, split="train") for s in p.steps for op in re.findall(r" ([-+*/]) ", s)}
    assert ops == {"+", "-", "*", "/"}
    ops1 = {op for p in generate_problems(300, level=1, split="train") for s in p.steps for op in re.findall(r" ([-+*/]) ", s)}
    assert ops1 == {"+", "-"}


def test_exhausted_level_and_bad_arguments_are_clear_errors():
    with pytest.raises(OreoError, match="5000 problems are more than level 1 holds in split 'test'"):
        generate_problems(5000, level=1, split="test")
    with pytest.raises(OreoError, match="difficulty must be one of"):
        generate_problems(5, level=0)
    with pytest.raises(OreoError, match="split must be 'train' or 'test'"):
        generate_problems(5, split="valid")


def test_load_problems_embedded_defaults():
    problems = load_problems("embedded", split="test", difficulty=2, num_problems=7, seed=3)
    assert len(problems) == 7 and all(p.split == "test" and p.source == "embedded" for p in problems)
    with pytest.raises(OreoError, match="num_problems must be >= 1"):
        load_problems("embedded", num_problems=0)

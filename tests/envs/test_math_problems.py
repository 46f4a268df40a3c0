"""GSM8K / MATH loaders on small files written here, reasoning-gym, and their one-line errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oreo_agents.envs.math.env import MathEnv
from oreo_agents.envs.math.problems import expert_steps, load_problems, math_steps
from oreo_agents.errors import DataNotFoundError, OreoError, SchemaError

GSM8K_ROWS = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "A house costs $1,000 more than a car that costs $18,500. What does the house cost?",
        "answer": "The house costs 18,500 + 1,000 = $<<18500+1000=19500>>19,500.\n#### 19,500",
    },
]
MATH_ROWS = [
    {
        "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
        "solution": "Write both over 4: $\\frac{2}{4} + \\frac{1}{4}$. This is $\\frac{3}{4}$.\n"
        "So the answer is $\\boxed{\\frac{3}{4}}$.",
        "level": "Level 2",
        "type": "Prealgebra",
    },
    {
        "problem": "Solve $x^2 = 4$ for $x > 0$.",
        "solution": "Taking roots, $x = \\pm 2$, and we first guess $\\boxed{-2}$. But $x>0$, so\n$$\nx = 2.\n$$\n"
        "The answer is $\\boxed{2}$. Indeed $2^2 = 4$.",
        "level": "Level 1",
        "type": "Intermediate Algebra",
    },
]


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_gsm8k_jsonl(tmp_path):
    problems = load_problems("gsm8k", path=write_jsonl(tmp_path / "test.jsonl", GSM8K_ROWS), split="test")
    first, second = problems
    assert first.answer == "72" and first.task_type == "gsm8k" and first.answer_format == "gsm8k"
    assert expert_steps(first) == [
        "Natalia sold 48/2 = 24 clips in May.",  # calculator annotations stripped
        "Natalia sold 48+24 = 72 clips altogether in April and May.",
        "#### 72",
    ]
    assert first.id == "gsm8k-test-0" and first.split == "test"
    assert second.answer == "19,500"


def test_gsm8k_parquet_in_a_folder_picks_the_split(tmp_path):
    folder = tmp_path / "gsm8k" / "main"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(GSM8K_ROWS), folder / "test-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(GSM8K_ROWS[:1]), folder / "train-00000-of-00001.parquet")
    assert len(load_problems("gsm8k", path=tmp_path / "gsm8k", split="test")) == 2
    assert len(load_problems("gsm8k", path=tmp_path / "gsm8k", split="train")) == 1
    with pytest.raises(DataNotFoundError, match="no .jsonl/.parquet file for split 'valid'"):
        load_problems("gsm8k", path=tmp_path / "gsm8k", split="valid")


def test_gsm8k_env_expert_wins_and_numeric_variants_count(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", GSM8K_ROWS)
    env = MathEnv(source="gsm8k", data_path=str(path), split="test", expert=True)
    _, info = env.reset(options={"task": 1})
    assert env.step(info["expert_action"])[1] == 0.0
    _, reward, terminated, _, info = env.step("#### $19500.00")
    assert (reward, terminated, info["parsed_answer"]) == (1.0, True, "$19500.00")


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataNotFoundError, match=f"{missing}: no such file or folder"):
        load_problems("gsm8k", path=missing)


@pytest.mark.parametrize("field", ["question", "answer"])
def test_gsm8k_missing_field_names_file_and_field(tmp_path, field):
    rows = [{k: v for k, v in GSM8K_ROWS[0].items() if k != field}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SchemaError, match=f"{path} \\(record 0\\): field '{field}' is missing"):
        load_problems("gsm8k", path=path)


def test_gsm8k_answer_without_final_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "no final line"}])
    with pytest.raises(SchemaError, match="field 'answer' has no '#### <answer>' line"):
        load_problems("gsm8k", path=path)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GSM8K_ROWS[0]) + "\n{not json\n")
    with pytest.raises(SchemaError, match=f"{path}:2: not valid JSON"):
        load_problems("gsm8k", path=path)


def test_unreadable_parquet_names_file(tmp_path):
    path = tmp_path / "test.parquet"
    path.write_text("not parquet")
    with pytest.raises(SchemaError, match=f"{path}: not a readable Parquet file"):
        load_problems("gsm8k", path=path)


def test_math_jsonl_steps_levels_and_types(tmp_path):
    problems = load_problems("math", path=write_jsonl(tmp_path / "math.jsonl", MATH_ROWS), split="test")
    first, second = problems
    assert first.answer == "\\frac{3}{4}" and first.answer_format == "boxed"
    assert first.task_type == "math-prealgebra-L2" and first.difficulty == 2
    assert expert_steps(first) == [
        "Write both over 4: $\\frac{2}{4} + \\frac{1}{4}$.",
        "This is $\\frac{3}{4}$.",
        "So the answer is $\\boxed{\\frac{3}{4}}$.",
    ]
    steps = expert_steps(second)
    assert second.answer == "2" and second.task_type == "math-intermediate_algebra-L1"
    assert "$$ x = 2. $$" in " ".join(steps)  # display math kept in one step
    assert steps[-1] == "The answer is $\\boxed{2}$."  # sentences after the last box dropped
    assert all("\\boxed" not in s for s in steps[:-1])  # an early box would end the episode too soon
    env = MathEnv(problems=problems, expert=True)
    for k in range(2):
        _, info = env.reset(options={"task": k})
        while True:
            _, reward, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                break
        assert reward == 1.0


def test_math500_layout_with_answer_subject_and_int_level(tmp_path):
    rows = [{"problem": "p", "solution": "Thus $\\boxed{5}$.", "answer": "5", "subject": "Number Theory", "level": 4,
             "unique_id": "test/number_theory/1.json"}]
    (problem,) = load_problems("math", path=write_jsonl(tmp_path / "math500.jsonl", rows), split="test")
    assert problem.id == "test/number_theory/1.json" and problem.task_type == "math-number_theory-L4"


def test_math_errors_name_the_field(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p"}])
    with pytest.raises(SchemaError, match=f"{path} \\(record 0\\): field 'solution' is missing"):
        load_problems("math", path=path)
    path = write_jsonl(tmp_path / "m2.jsonl", [{"problem": "p", "solution": "No box here."}])
    with pytest.raises(SchemaError, match="field 'solution' has no \\\\boxed"):
        load_problems("math", path=path)


def test_math_steps_unclosed_box_is_unwrapped():
    assert math_steps("First $\\boxed{1$. Then $\\boxed{2}$.") == ["First $1$.", "Then $\\boxed{2}$."]


def test_hub_failure_is_one_line_error():
    with pytest.raises(DataNotFoundError, match="gsm8k: no local file given .* could not be loaded"):
        load_problems("gsm8k", split="test", hub_name="oreo-agents-nonexistent/nothing-here")


def test_reasoning_gym_source():
    pytest.importorskip("reasoning_gym")
    train = load_problems("reasoning-gym:gsm_symbolic", split="train", num_problems=6, seed=1)
    test = load_problems("reasoning-gym:gsm_symbolic", split="test", num_problems=6, seed=1)
    assert not {p.question for p in train} & {p.question for p in test}
    assert all(p.steps[-1] == f"#### {p.answer}" and p.task_type == "rg-gsm_symbolic" for p in train)
    env = MathEnv(problems=train, expert=True)
    for k in range(len(train)):
        _, info = env.reset(options={"task": k})
        while True:
            _, reward, terminated, truncated, info = env.step(info["expert_action"])
            if terminated or truncated:
                break
        assert reward == 1.0
    with pytest.raises(OreoError, match="reasoning-gym dataset 'no_such_task'"):
        load_problems("reasoning-gym:no_such_task", num_problems=2)

"""Math problems and their sources: the embedded generator, GSM8K / MATH files or hub datasets, reasoning-gym.

Every source yields :class:`Problem` objects; :func:`load_problems` picks the source by name::

    >>> problems = load_problems("embedded", split="train", difficulty=1, num_problems=2, seed=0)
    >>> problems[0].answer_format, len(expert_steps(problems[0])) >= 2
    ('gsm8k', True)
    >>> load_problems("gsm8k", path="my/gsm8k/test.jsonl", split="test")   # doctest: +SKIP

Published field layouts read here:

- GSM8K (``openai/gsm8k``): ``question``; ``answer`` = solution lines then ``#### <number>``; calculator annotations
  ``<<48/2=24>>`` are stripped from the steps.
- MATH (``hendrycks/competition_math`` and its mirrors): ``problem``; ``solution`` with the answer in ``\\boxed{}``;
  ``level`` (``"Level 3"`` or ``3``) and ``type`` (or ``subject``) are optional; ``answer`` is used when present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from oreo_agents.envs.math.answers import extract_final_answer, last_boxed
from oreo_agents.envs.math.problem import Problem, expert_steps  # re-exported: the names callers know this module by
from oreo_agents.errors import DataNotFoundError, OreoError, SchemaError

SOURCES = ("embedded", "gsm8k", "math", "reasoning-gym:<name>")
HUB_NAMES = {"gsm8k": ("openai/gsm8k", "main"), "math": ("EleutherAI/hendrycks_math", None)}
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


# --- step splitting ---------------------------------------------------------------------------------------------------
_CALC_RE = re.compile(r"<<[^<>]*>>")
_SENTENCE_RE = re.compile(r"(?<=\.)\s+(?=\S)|(?<=\.\$)\s+(?=\S)")  # OREO's MATH delimiters: "\n", ". ", ".$ "


def _single_line(text: str) -> str:
    return " ".join(text.split())


def gsm8k_steps(answer_field: str) -> tuple[list[str], str]:
    """(steps, final answer) of a GSM8K ``answer`` field; raises ValueError when it has no ``####`` line."""
    lines = [_single_line(_CALC_RE.sub("", line)) for line in answer_field.replace("\r", "").split("\n")]
    lines = [line for line in lines if line]
    for k, line in enumerate(lines):
        final = extract_final_answer(line, "gsm8k")
        if final is not None:
            return lines[:k] + [f"#### {final}"], final
    raise ValueError("no '#### <answer>' line")


def math_steps(solution: str) -> list[str]:
    """Split a MATH solution into steps at newlines and sentence ends, ending at the step holding the last ``\\boxed``.

    Earlier ``\\boxed{x}`` are unwrapped to ``x`` (they would end the episode too early); sentences after the last box
    are dropped. Display math spanning lines is kept in one step (a newline inside ``$$...$$`` or ``\\[...\\]`` does
    not split).
    """
    blocks: list[str] = []
    current: list[str] = []
    in_dollars, depth = False, 0
    for line in solution.replace("\r", "").split("\n"):
        current.append(line)
        in_dollars ^= line.count("$$") % 2 == 1
        depth += line.count("\\[") - line.count("\\]") + line.count("\\begin{") - line.count("\\end{")
        if not in_dollars and depth <= 0:
            blocks.append(" ".join(current))
            current, depth = [], 0
    if current:
        blocks.append(" ".join(current))
    steps = []
    for block in blocks:
        steps += [_single_line(s) for s in _SENTENCE_RE.split(block) if s.strip()]
    last = max((k for k, s in enumerate(steps) if last_boxed(s) is not None), default=None)
    if last is None:
        raise ValueError("no \\boxed{...} answer in the solution")
    steps = steps[: last + 1]
    for k in range(last):
        steps[k] = _unbox(steps[k])
    return steps


def _unbox(step: str) -> str:
    """``\\boxed{x}`` -> ``x`` everywhere in ``step`` (an unclosed box just loses its ``\\boxed{``)."""
    while match := re.search(r"\\(?:boxed|fbox)\s*\{", step):
        depth, end = 1, None
        for i in range(match.end(), len(step)):
            depth += {"{": 1, "}": -1}.get(step[i], 0)
            if depth == 0:
                end = i
                break
        if end is None:
            step = step[: match.start()] + step[match.end() :]
        else:
            step = step[: match.start()] + step[match.end() : end] + step[end + 1 :]
    return step


# --- file reading -----------------------------------------------------------------------------------------------------
def _find_file(path: str | Path, split: str) -> Path:
    """A file, or the file for ``split`` inside a folder (``test.jsonl``, ``main/test-00000-of-00001.parquet``...)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        found = sorted(
            f for f in p.rglob("*") if f.is_file() and f.suffix in (".jsonl", ".parquet", ".json") and split in f.name
        )
        if found:
            return found[0]
        raise DataNotFoundError(f"{p}: no .jsonl/.parquet file for split '{split}' in this folder")
    raise DataNotFoundError(f"{p}: no such file or folder")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a jsonl / json-list / Parquet file as dicts; errors name the file (and line)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow's errors are long; keep one line naming the file
            raise SchemaError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from exc
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
    if not all(isinstance(r, dict) for r in rows):
        raise SchemaError(f"{path}: every record must be a JSON object")
    return rows


def _require(row: dict[str, Any], name: str, where: str) -> str:
    if name not in row or row[name] is None:
        raise SchemaError(f"{where}: field '{name}' is missing (fields present: {', '.join(sorted(row)) or 'none'})")
    return str(row[name])


# --- GSM8K / MATH -----------------------------------------------------------------------------------------------------
def gsm8k_problems(rows: Iterable[dict[str, Any]], *, split: str, origin: str) -> list[Problem]:
    problems = []
    for n, row in enumerate(rows):
        where = f"{origin} (record {n})"
        question = _require(row, "question", where).strip()
        answer_field = _require(row, "answer", where)  # outside the try: SchemaError is a ValueError
        try:
            steps, final = gsm8k_steps(answer_field)
        except ValueError:
            raise SchemaError(f"{where}: field 'answer' has no '#### <answer>' line") from None
        problems.append(
            Problem(
                id=str(row.get("id") or f"gsm8k-{split}-{n}"),
                question=question,
                answer=final,
                steps=tuple(steps),
                answer_format="gsm8k",
                source="gsm8k",
                task_type="gsm8k",
                split=split,
            )
        )
    return problems


def _level(value: Any) -> int | None:
    match = re.search(r"\d+", str(value)) if value is not None else None
    return int(match.group(0)) if match else None


def math_problems(rows: Iterable[dict[str, Any]], *, split: str, origin: str) -> list[Problem]:
    problems = []
    for n, row in enumerate(rows):
        where = f"{origin} (record {n})"
        question = _require(row, "problem", where).strip()
        solution = _require(row, "solution", where)
        try:
            steps = math_steps(solution)
        except ValueError:
            raise SchemaError(f"{where}: field 'solution' has no \\boxed{{...}} answer") from None
        answer = str(row["answer"]).strip() if row.get("answer") not in (None, "") else last_boxed(steps[-1]) or ""
        level = _level(row.get("level"))
        subject = str(row.get("type") or row.get("subject") or "unknown")
        slug = re.sub(r"[^a-z0-9]+", "_", subject.lower()).strip("_")
        problems.append(
            Problem(
                id=str(row.get("unique_id") or row.get("id") or f"math-{split}-{n}"),
                question=question,
                answer=answer,
                steps=tuple(steps),
                answer_format="boxed",
                source="math",
                difficulty=level,
                task_type=f"math-{slug}-L{level}" if level is not None else f"math-{slug}",
                split=split,
                metadata={"type": subject},
            )
        )
    return problems


def _hub_rows(source: str, split: str, hub_name: str | None) -> tuple[list[dict[str, Any]], str]:
    """Rows of the published dataset through ``datasets`` (needs network or a filled HF cache)."""
    try:
        from datasets import load_dataset

        name, config = (hub_name, None) if hub_name else HUB_NAMES[source]
        if source == "math" and not hub_name:
            rows = []
            for subject in MATH_SUBJECTS:
                rows += load_dataset(name, subject, split=split).to_list()
            return rows, name
        return load_dataset(name, config, split=split).to_list(), name
    except OreoError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataNotFoundError(
            f"{source}: no local file given (data_path=...) and the hub dataset could not be loaded ({first[:200]})"
        ) from exc


def file_problems(source: str, path: str | Path | None, split: str, hub_name: str | None = None) -> list[Problem]:
    """GSM8K (``source="gsm8k"``) or MATH (``"math"``) problems from a local file/folder, else from the hub."""
    if path is not None:
        file = _find_file(path, split)
        rows, origin = read_records(file), str(file)
    else:
        rows, origin = _hub_rows(source, split, hub_name)
    build = gsm8k_problems if source == "gsm8k" else math_problems
    return build(rows, split=split, origin=origin)


# --- reasoning-gym ----------------------------------------------------------------------------------------------------
def reasoning_gym_problems(name: str, *, split: str, num_problems: int, seed: int) -> list[Problem]:
    """Problems from a reasoning-gym generator (e.g. ``gsm_symbolic``); train/test use different seeds, test drops
    any question that also appears in the train set of the same size and seed."""
    try:
        import reasoning_gym
    except ImportError:
        raise OreoError("source 'reasoning-gym:...' needs the reasoning-gym package: pip install reasoning-gym") from None

    def make(which: str) -> list[dict[str, Any]]:
        offset = 0 if which == "train" else 1_000_003
        try:
            return list(reasoning_gym.create_dataset(name, size=num_problems, seed=seed + offset))
        except Exception as exc:
            raise OreoError(f"reasoning-gym dataset '{name}' could not be created ({exc})") from None

    rows = make(split)
    if split != "train":
        seen = {row["question"] for row in make("train")}
        rows = [row for row in rows if row["question"] not in seen]
    problems = []
    for n, row in enumerate(rows):
        answer = str(row["answer"]).strip()
        cot = (row.get("metadata") or {}).get("answer_cot")
        steps = [_single_line(line) for line in str(cot or "").split("\n") if line.strip()]
        steps = [s for s in steps if extract_final_answer(s, "gsm8k") is None] + [f"#### {answer}"]
        problems.append(
            Problem(
                id=f"rg-{name}-{split}-{seed}-{n}",
                question=_single_line(row["question"]) if "\n" not in row["question"] else row["question"].strip(),
                answer=answer,
                steps=tuple(steps),
                answer_format="gsm8k",
                source=f"reasoning-gym:{name}",
                task_type=f"rg-{name}",
                split=split,
            )
        )
    return problems


DEFAULT_GENERATED = 1000  # problems a generator makes when num_problems is not given (fewer if the level runs dry)


# --- dispatcher -------------------------------------------------------------------------------------------------------
def load_problems(
    source: str = "embedded",
    *,
    path: str | Path | None = None,
    split: str = "train",
    difficulty: int = 1,
    num_problems: int | None = None,
    seed: int = 0,
    hub_name: str | None = None,
) -> list[Problem]:
    """Problems of one source and split. ``num_problems`` keeps the first N (files) or generates N (generators)."""
    if num_problems is not None and num_problems < 1:
        raise OreoError(f"num_problems must be >= 1 (got {num_problems})")
    if source == "embedded":
        from oreo_agents.envs.math.generator import generate_problems

        # The default size is "1000, or all the level holds in this split" (level 1's test split holds ~720).
        problems = generate_problems(
            num_problems or DEFAULT_GENERATED, level=difficulty, split=split, seed=seed, at_most=num_problems is None
        )
    elif source in ("gsm8k", "math"):
        problems = file_problems(source, path, split, hub_name)
    elif source.startswith("reasoning-gym:") and source.split(":", 1)[1]:
        problems = reasoning_gym_problems(
            source.split(":", 1)[1], split=split, num_problems=num_problems or DEFAULT_GENERATED, seed=seed
        )
    else:
        raise OreoError(f"unknown math source '{source}' (known: {', '.join(SOURCES)})")
    problems = problems[:num_problems] if num_problems else problems
    if not problems:
        raise OreoError(f"math source '{source}' ({path or split}) holds no problems")
    return problems


__all__ = ["Problem", "expert_steps", "load_problems"]

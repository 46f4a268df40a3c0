"""``oreo_agents/Math-v0``: one math word problem per episode, one reasoning step per action.

    >>> import gymnasium as gym, oreo_agents
    >>> env = gym.make("oreo_agents/Math-v0", difficulty=1, num_tasks=50, expert=True)
    >>> obs, info = env.reset(seed=0)
    >>> obs == info["goal"]                       # the observation is the problem, then the steps so far
    True
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])   # "#### <answer>"
    >>> reward, terminated, info["won"]
    (1.0, True, True)

Rules:

- The action is one solution step. Only its first non-blank line is used (the shared prompt format generates one line
  per step); it is cleaned like every env's actions (:func:`oreo_agents.envs.core.sanitize_action`), and characters
  beyond the Basic Multilingual Plane become U+FFFD (the spaces' charset is the BMP's printable text). A blank step
  changes nothing but still counts toward ``max_steps``.
- The episode terminates on a final-answer step: ``#### x`` (every source) or ``\\boxed{x}`` (``"boxed"`` sources:
  MATH). Reward 1.0 iff the answer is correct (:func:`oreo_agents.envs.math.answers.check_answer`), else 0.0; 0.0 on
  every other step. It is truncated after ``max_steps`` steps without a final answer
  (:class:`~oreo_agents.envs.base.TextEnv`).
- ``info``: the :mod:`oreo_agents.envs.core` keys (``task_id`` = problem id, ``task_type`` e.g. ``arith-L2``,
  ``gsm8k``, ``math-algebra-L3``; ``goal`` = the question; ``split``; ``won``; ``admissible_commands`` = []), plus
  ``expert_action`` (the next reference step) only with ``expert=True``, ``reference_answer`` only with
  ``reveal_answer=True``, and ``parsed_answer`` (the extracted final answer, None when truncated) once the episode ends.

Branching (for step-level beam search): the whole state is a few strings, so copying it is cheap.
``env.unwrapped.clone()`` is an independent env at the same point of the same episode; ``get_state()`` /
``set_state(state)`` snapshot and restore in place::

    >>> base = env.unwrapped
    >>> _ = base.reset(options={"task": 0})
    >>> branches = [base.clone() for _ in range(3)]       # three continuations of one partial solution
    >>> snapshot = base.get_state(); _ = base.step("a wrong turn"); base.set_state(snapshot)
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Sequence

import gymnasium as gym
from gymnasium import spaces

from oreo_agents.envs.base import TextEnv
from oreo_agents.envs.core import (
    INFO_ADMISSIBLE,
    INFO_EXPERT,
    INFO_GOAL,
    INFO_SPLIT,
    INFO_TASK_ID,
    INFO_TASK_TYPE,
    INFO_WON,
    TEXT_SPACE_MAX_LENGTH,
    sanitize_action,
)
from oreo_agents.envs.math.answers import VERIFY_TIMEOUT_S, check_answer, extract_final_answer
from oreo_agents.envs.math.problems import Problem, expert_steps, load_problems
from oreo_agents.errors import OreoError

INFO_REFERENCE = "reference_answer"
INFO_PARSED = "parsed_answer"
MAX_STEP_CHARS = 2_000
DEFAULT_MAX_STEPS = 20  # OREO's math beam search stops at 20 steps


@lru_cache(maxsize=1)
def _charset() -> str:
    """Every printable character of the Basic Multilingual Plane (plus ASCII whitespace): GSM8K/MATH text and model
    output use ``×``, ``−``, ``€``..., and an observation must lie in the observation space."""
    chars = {chr(i) for i in range(0x10000) if not 0xD800 <= i < 0xE000 and chr(i).isprintable()}
    return "".join(sorted(chars | set(string.printable)))


def to_bmp(text: str) -> str:
    """``text`` with every character beyond the Basic Multilingual Plane (emoji, ``𝟏𝟖``) replaced by U+FFFD, so an
    observation built from it lies in the observation space (whose charset is the BMP's printable characters)."""
    return text if text.isascii() else "".join(ch if ord(ch) < 0x10000 else "\ufffd" for ch in text)


def math_text_space(max_length: int = TEXT_SPACE_MAX_LENGTH) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=0, charset=_charset())


@dataclass(frozen=True)
class MathState:
    """A snapshot of an episode: immutable, so sharing it between branches is safe. ``num_steps`` and ``done`` are the
    step counter's (:class:`~oreo_agents.envs.base.TextEnv`): :meth:`MathEnv.get_state` fills them in and
    :meth:`MathEnv.set_state` restores them, so a restored branch keeps its place toward ``max_steps``."""

    problem_index: int
    steps: tuple[str, ...] = ()
    num_steps: int = 0  # actions taken (blank ones included)
    done: bool = False
    parsed_answer: str | None = None
    won: bool = False


class MathEnv(TextEnv):
    """Math word problems as a multi-step text env (see the module docstring for the rules and an example).

    Args:
        source: ``"embedded"`` (the seeded generator), ``"gsm8k"``, ``"math"``, or ``"reasoning-gym:<name>"``.
        data_path: a local GSM8K/MATH jsonl/Parquet file or folder; without it ``gsm8k``/``math`` load from the hub.
        split: ``"train"`` or ``"test"``.
        difficulty: generator level 1-5 (``embedded`` only).
        num_tasks: keep / generate this many problems (default: all of a file or of ``problems``, 1000 generated).
        max_steps: truncate after this many steps.
        expert: put the next reference step in ``info["expert_action"]``.
        reveal_answer: put the reference answer in ``info["reference_answer"]``.
        seed: generator seed (``embedded``, ``reasoning-gym``); ``reset(seed=...)`` seeds the problem choice.
        problems: use these problems instead of loading a source.
        verify_timeout: seconds allowed to math-verify per answer (``"boxed"`` sources).

    ``reset(options={"task": k})`` plays problem ``k`` (an index, or a problem id).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}
    renamed_options = {"num_problems": "num_tasks", "path": "data_path", "data_dir": "data_path"}

    def __init__(
        self,
        source: str = "embedded",
        data_path: str | None = None,
        split: str = "train",
        difficulty: int = 1,
        num_tasks: int | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        expert: bool = False,
        reveal_answer: bool = False,
        seed: int = 0,
        problems: Sequence[Problem] | None = None,
        hub_name: str | None = None,
        verify_timeout: float = VERIFY_TIMEOUT_S,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(max_steps=max_steps, render_mode=render_mode)
        if num_tasks is not None and num_tasks < 1:
            raise OreoError(f"num_tasks must be >= 1 (got {num_tasks})")
        if problems is None:
            problems = load_problems(
                source,
                path=data_path,
                split=split,
                difficulty=difficulty,
                num_problems=num_tasks,
                seed=seed,
                hub_name=hub_name,
            )
        elif num_tasks is not None:
            problems = list(problems)[:num_tasks]
        if not problems:
            raise OreoError("MathEnv needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        self._index = {p.id: k for k, p in enumerate(self.problems)}
        self.source, self.split = source, split
        self.expert, self.reveal_answer, self.verify_timeout = expert, reveal_answer, verify_timeout
        self.observation_space = math_text_space()
        self.action_space = math_text_space()
        self._state: MathState | None = None

    # --- problems -----------------------------------------------------------------------------------------------
    @property
    def problem(self) -> Problem:
        """The problem of the current episode."""
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before using the env")
        return self.problems[self._state.problem_index]

    def problem_index(self, key: int | str) -> int:
        """The index of a problem given by index or id; OreoError names the bad key."""
        if isinstance(key, str) and key in self._index:
            return self._index[key]
        if isinstance(key, int) and not isinstance(key, bool) and -len(self.problems) <= key < len(self.problems):
            return key % len(self.problems)
        raise OreoError(f"reset option task={key!r}: no such problem (give an index below {len(self.problems)} or an id)")

    # --- the episode (TextEnv calls these from reset / step) ----------------------------------------------------
    def _begin(self, task: Any) -> tuple[str, dict[str, Any]]:
        """Start an episode on ``task`` (index or id), else on a problem drawn with ``np_random``."""
        index = int(self.np_random.integers(len(self.problems))) if task is None else self.problem_index(task)
        self._state = MathState(problem_index=index)
        return self._observation(), self._info()

    def _advance(self, action: Any) -> tuple[str, float, bool, dict[str, Any]]:
        state = self._state
        text = action if isinstance(action, str) else str(action)
        lines = [line for line in text.replace("\r", "\n").split("\n") if line.strip()]
        step = to_bmp(sanitize_action(lines[0] if lines else "", max_length=MAX_STEP_CHARS))
        problem = self.problem
        answer = extract_final_answer(step, problem.answer_format) if step else None
        won = answer is not None and check_answer(
            answer, problem.answer, problem.answer_format, timeout=self.verify_timeout
        )
        self._state = replace(state, steps=state.steps + ((step,) if step else ()), parsed_answer=answer, won=won)
        return self._observation(), float(won), answer is not None, {}

    def render(self) -> str | None:
        """``"ansi"``: the state as text; ``"human"``: print it (Gymnasium's convention for text envs)."""
        if self.render_mode is None or self._state is None:
            return None
        lines = [self._observation()]
        if self.episode_over:
            lines.append(f"[answer: {self._state.parsed_answer!r}, correct: {self._state.won}]")
        if self.render_mode == "human":
            print("\n".join(lines))
            return None
        return "\n".join(lines)

    # --- branching ----------------------------------------------------------------------------------------------
    def get_state(self) -> MathState:
        """An immutable snapshot of the episode (restore it with :meth:`set_state`, on this env or a sibling)."""
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before get_state()")
        counters = (self.elapsed_steps, bool(self.episode_over))
        if (self._state.num_steps, self._state.done) != counters:  # bring the snapshot up to the step counter
            self._state = replace(self._state, num_steps=counters[0], done=counters[1])
        return self._state

    def set_state(self, state: MathState) -> None:
        """Continue from ``state`` (from :meth:`get_state` of an env over the same problems)."""
        if not isinstance(state, MathState) or not 0 <= state.problem_index < len(self.problems):
            raise OreoError("set_state: not a MathState of this env's problems")
        self._state = state
        self.elapsed_steps, self.episode_over = state.num_steps, state.done

    def clone(self) -> "MathEnv":
        """An independent env at the same state; problems and spaces are shared (read-only), the RNG is copied."""
        twin = copy.copy(self)
        twin._np_random = copy.deepcopy(self._np_random)
        return twin

    # --- observation / info -------------------------------------------------------------------------------------
    def _observation(self) -> str:
        assert self._state is not None
        return "\n".join((to_bmp(self.problem.question),) + self._state.steps)

    def _info(self) -> dict[str, Any]:
        state, problem = self._state, self.problem
        assert state is not None
        info: dict[str, Any] = {
            INFO_ADMISSIBLE: [],
            INFO_TASK_ID: problem.id,
            INFO_TASK_TYPE: problem.task_type,
            INFO_GOAL: problem.question,
            INFO_SPLIT: problem.split,
            INFO_WON: state.won,
        }
        if self.expert:
            reference = expert_steps(problem)
            info[INFO_EXPERT] = None if self.episode_over else reference[min(self.elapsed_steps, len(reference) - 1)]
        if self.reveal_answer:
            info[INFO_REFERENCE] = problem.answer
        if self.episode_over:
            info[INFO_PARSED] = state.parsed_answer
        return info

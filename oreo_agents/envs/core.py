"""What every oreo_agents text env shares: the ``info`` keys, the text spaces, the termination vocabulary.

Every env here is a ``gymnasium.Env[str, str]``: observations and actions are text. ``reset`` returns the first
observation and an ``info`` dict; ``step`` returns the usual 5-tuple. Rewards are sparse and terminal (1.0 / 0.0, or
a score in [0, 1] for the web shop), ``terminated`` means the task ended (won, answered, bought), ``truncated`` means the
step limit was hit. A malformed action is an ordinary step with the game's feedback, never an exception.

Keys every env puts in ``info`` (constants below, so wrappers and policies never spell them twice):

- ``admissible_commands`` — list[str], the actions the game accepts now (math: empty — any line is a step).
- ``task_id`` — str, a stable id of the game / problem / instruction.
- ``task_type`` — str, e.g. ``pick_heat_then_place_in_recep``, ``arithmetic-3``, ``webshop``.
- ``goal`` — str, the task in words.
- ``split`` — str, ``train`` / ``valid_seen`` / ``valid_unseen`` (ALFWorld) or ``train`` / ``test``.
- ``won`` — bool, whether the task is achieved (math: answer correct; web shop: reward == 1).
- ``expert_action`` — str | None, the expert's next action, present only when the env was built with
  ``expert=True`` (agents must not peek by accident).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # gymnasium (and numpy) load with the envs themselves, not with this vocabulary module
    from gymnasium import spaces

INFO_ADMISSIBLE = "admissible_commands"
INFO_TASK_ID = "task_id"
INFO_TASK_TYPE = "task_type"
INFO_GOAL = "goal"
INFO_SPLIT = "split"
INFO_WON = "won"
INFO_EXPERT = "expert_action"

# Why an episode ended; the recorder stores one of these per episode.
TERMINATION_SUCCESS = "success"  # terminated with the task achieved
TERMINATION_FAILURE = "failure"  # terminated without achieving it (wrong answer, bad purchase)
TERMINATION_TRUNCATED = "truncated"  # step limit
TERMINATION_INVALID = "invalid_action"  # the policy's reply could not be parsed into an action (OREO: reward 0)
TERMINATION_ABORTED = "aborted"  # stopped from outside (e.g. context length exceeded)

# The reset option that picks a task (by index, or by id / game folder) in every env: ``reset(options={"task": 3})``.
TASK_OPTION = "task"
# Envs that list their tasks, by the attribute holding the list. collect cycles tasks in order, eval plays each once and
# play's --game picks one: all read this one table.
TASK_LISTS = ("game_files", "problems", "tasks")

TEXT_SPACE_MAX_LENGTH = 100_000
# Printable text plus the whitespace the games use; declared honestly so check_env can sample valid strings.
TEXT_CHARSET = frozenset(string.printable)


def text_space(max_length: int = TEXT_SPACE_MAX_LENGTH) -> spaces.Text:
    """The observation/action space of a text env: printable strings up to ``max_length`` characters."""
    from gymnasium import spaces

    return spaces.Text(max_length=max_length, min_length=0, charset="".join(sorted(TEXT_CHARSET)))


def sanitize_action(action: object, max_length: int = 1_000) -> str:
    """Coerce whatever a policy sent into a printable single-line command the games can parse.

    Non-strings become their ``str``; control characters and newlines become spaces; the result is stripped and cut to
    ``max_length``. The env then answers it like any other command (usually "Nothing happens.").
    """
    text = action if isinstance(action, str) else str(action)
    text = "".join(ch if ch.isprintable() else " " for ch in text[: max_length * 4])
    return " ".join(text.split())[:max_length]


def task_list(env: object) -> tuple[str, int] | None:
    """(reset option, number of tasks) of an env that lists its tasks (see ``TASK_LISTS``), else None."""
    base = getattr(env, "unwrapped", env)
    for attr in TASK_LISTS:
        items = getattr(base, attr, None)
        if items is not None and hasattr(items, "__len__"):
            return TASK_OPTION, len(items)
    return None


def task_reset_options(env: object, index: int) -> dict[str, int] | None:
    """Reset options that play task ``index`` (modulo the task count); None when the env cannot be told (the reset
    seed then picks the task)."""
    found = task_list(env)
    if found is None or found[1] == 0:
        return None
    option, n = found
    return {option: index % n}

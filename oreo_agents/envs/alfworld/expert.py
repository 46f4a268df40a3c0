"""ALFWorld's handcoded expert, with its "move"/"put" state-tracking bug fixed here (site-packages stays untouched).

alfworld >= 0.4.0 renamed the placing command from "put O in/on R" to "move O to R", but the handcoded expert's state
tracking still looks for "put" in the last action; after placing an object it never empties its inventory, so most
pick_two games become unsolvable for it. :class:`HandcodedExpert` builds each task policy as a subclass whose
``update_state_tracking`` sees "move ..." as the "put ..." it expects.

It also keeps the expert deterministic: the stock policy breaks ties with the global ``random`` module; here those
draws come from the expert's own seeded stream, and the global ``random`` state is left as it was.

    >>> expert = HandcodedExpert(seed=0)                       # doctest: +SKIP
    >>> expert.reset(game_file, state)                         # textworld state right after env.reset()
    >>> action = expert.next_action(state, last_command)       # after each env.step(last_command)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout, HandCodedTWAgent

# What AlfredExpert falls back to when the expert has nothing admissible to say.
FALLBACK_ACTION = "look"


class _MoveIsPut:
    """Mixin for a handcoded task policy: treat "move O to R" as the "put O ..." its state tracking was written for."""

    def update_state_tracking(self, game_state: Any, last_action: str) -> None:
        if last_action.startswith("move "):
            last_action = "put " + last_action[len("move ") :]
        super().update_state_tracking(game_state, last_action)  # type: ignore[misc]


_FIXED_POLICIES: dict[type, type] = {}


class _FixedTWAgent(HandCodedTWAgent):
    def get_task_policy(self, task_param: dict) -> type:
        base = super().get_task_policy(task_param)
        if base not in _FIXED_POLICIES:
            _FIXED_POLICIES[base] = type("Fixed" + base.__name__, (_MoveIsPut, base), {})
        return _FIXED_POLICIES[base]


class HandcodedExpert:
    """Next-command oracle for one game at a time, as alfworld's ``AlfredExpert`` wrapper drives it.

    Needs ``traj_data.json`` beside the game file and the textworld state's ``facts``, ``feedback`` and
    ``admissible_commands``. When the expert gives up or proposes an inadmissible command it answers "look".
    """

    def __init__(self, seed: int = 0, max_steps: int = 200) -> None:
        self.max_steps = max_steps
        self._rng = random.Random(seed)
        self._agent: _FixedTWAgent | None = None
        self.task_params: dict[str, Any] = {}

    def reset(self, game_file: str | Path, state: Any, seed: int | None = None) -> str:
        """Start a game from its first state; returns the first expert action (always "look", as in ALFWorld)."""
        if seed is not None:
            self._rng.seed(seed)
        self._agent = _FixedTWAgent(max_steps=self.max_steps)
        self._with_rng(self._agent.reset, str(game_file))
        self.task_params = dict(self._agent.task_params)
        self._agent.observe(state["feedback"])
        return FALLBACK_ACTION

    def next_action(self, state: Any, last_command: str) -> str:
        """The expert's next command after ``last_command`` produced ``state``."""
        if self._agent is None:
            raise RuntimeError("HandcodedExpert.next_action called before reset")
        try:
            action = self._with_rng(self._agent.act, state, 0, state["won"], last_command)
        except (HandCodedAgentFailed, HandCodedAgentTimeout, IndexError, KeyError):
            # The stock policy indexes empty lists when its heuristics run dry; that is "no advice", not a crash.
            return FALLBACK_ACTION
        return action if action in state["admissible_commands"] else FALLBACK_ACTION

    def _with_rng(self, fn: Any, *args: Any) -> Any:
        saved = random.getstate()
        random.setstate(self._rng.getstate())
        try:
            return fn(*args)
        finally:
            self._rng.setstate(random.getstate())
            random.setstate(saved)


def read_task(game_file: str | Path) -> dict[str, Any]:
    """``traj_data.json`` beside a game file: task type, pddl params and goal annotations."""
    return json.loads((Path(game_file).parent / "traj_data.json").read_text())

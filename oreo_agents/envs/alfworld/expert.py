"""The ALFWorld env's expert: alfworld's handcoded expert while play follows it, the engine's planner from any other state.

:class:`ALFWorldExpert` is what ``info["expert_action"]`` reads. The handcoded expert plans from its own memory of what
it did and saw, so after a command it did not choose (one ``look`` before every expert step) its memory is wrong and
it stops winning (0 of 12 games here; 7 of 12 when the extra command is invalid). The noisy-expert policy and
DAgger-style relabelling need the right next command from *any* state, so once play leaves the handcoded expert's
script (or it gives up), the expert asks the engine itself: Fast Downward replans from the game's current facts
(textworld's ``PddlState.replan``, what ALFWorld's own "planner" expert reads as ``policy_commands``). A plan is reused
while play follows it and kept per (game, facts), so a replan happens only when an off-plan command changed the state.
Plain expert play is unchanged (the handcoded expert's exploring transcripts, and its speed).

The handcoded part keeps its "move"/"put" state-tracking bug fixed here (site-packages stays untouched):

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

import hashlib
import json
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

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

    def next_action(self, state: Any, last_command: str, fallback: str | None = FALLBACK_ACTION) -> str | None:
        """The expert's next command after ``last_command`` produced ``state``; ``fallback`` when it has no advice."""
        if self._agent is None:
            raise RuntimeError("HandcodedExpert.next_action called before reset")
        try:
            action = self._with_rng(self._agent.act, state, 0, state["won"], last_command)
        except (HandCodedAgentFailed, HandCodedAgentTimeout, IndexError, KeyError):
            # The stock policy indexes empty lists when its heuristics run dry; that is "no advice", not a crash.
            return fallback
        return action if action in state["admissible_commands"] else fallback

    def _with_rng(self, fn: Any, *args: Any) -> Any:
        saved = random.getstate()
        random.setstate(self._rng.getstate())
        try:
            return fn(*args)
        finally:
            self._rng.setstate(random.getstate())
            random.setstate(saved)


MAX_CACHED_PLANS = 4096
_PLANS: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # (game, facts) digest -> the engine's plan from there


def state_key(game_file: str | Path, state: Any) -> str:
    """A digest of the game and its current facts: two states with the same key have the same plans."""
    h = hashlib.sha1(str(game_file).encode())
    for fact in sorted(map(str, state["_facts"])):
        h.update(b"\0" + fact.encode())
    return h.hexdigest()


class ALFWorldExpert:
    """``info["expert_action"]`` from any state: the handcoded expert while every command so far was its own, then the
    engine's plan from the current facts (see the module docstring).

    Args:
        planner: returns the engine's plan (commands) from the game's current state, e.g. ``TextGame.plan``.
        seed: the handcoded expert's tie-break seed.
    """

    def __init__(self, planner: Callable[[], list[str]], seed: int = 0, max_steps: int = 200) -> None:
        self._handcoded = HandcodedExpert(seed=seed, max_steps=max_steps)
        self._planner = planner
        self._game = ""
        self._on_script = True
        self._suggested: str | None = None
        self._key = ""
        self._plan: tuple[str, ...] = ()
        self._plan_key: str | None = None
        self.replans = 0  # planner calls (the slow part: up to ~20 s in a big kitchen), for measurements

    @property
    def on_script(self) -> bool:
        """True while every command of the episode was the handcoded expert's suggestion."""
        return self._on_script

    def reset(self, game_file: str | Path, state: Any, seed: int | None = None) -> str:
        self._game = str(game_file)
        self._on_script = True
        self._key = state_key(self._game, state)
        self._plan, self._plan_key = (), None
        self._suggested = self._handcoded.reset(game_file, state, seed=seed)
        return self._suggested

    def next_action(self, state: Any, last_command: str) -> str:
        """The next command after ``last_command`` produced ``state`` (``FALLBACK_ACTION`` once the game has no plan,
        e.g. after a win)."""
        previous, self._key = self._key, state_key(self._game, state)
        if self._on_script and last_command == self._suggested:
            action = self._handcoded.next_action(state, last_command, fallback=None)
            if action is not None:
                self._suggested = action
                return action
        self._on_script = False  # its memory no longer matches the game: from here on the game state decides
        plan = self._plan_from(previous, last_command)
        self._suggested = plan[0] if plan and plan[0] in state["admissible_commands"] else FALLBACK_ACTION
        return self._suggested

    def _plan_from(self, previous: str, last_command: str) -> tuple[str, ...]:
        key = self._key
        if self._plan and previous == self._plan_key and last_command == self._plan[0] and key != previous:
            plan = self._plan[1:]  # the plan's first command was played: the rest is a plan from here (deterministic)
        elif key == self._plan_key:
            plan = self._plan  # the command changed nothing (look, examine, an invalid command)
        elif key in _PLANS:
            plan = _PLANS[key]
            _PLANS.move_to_end(key)
        else:
            plan = tuple(self._planner())
            self.replans += 1
        _PLANS[key] = plan
        while len(_PLANS) > MAX_CACHED_PLANS:
            _PLANS.popitem(last=False)
        self._plan, self._plan_key = plan, key
        return plan


def read_task(game_file: str | Path) -> dict[str, Any]:
    """``traj_data.json`` beside a game file: task type, pddl params and goal annotations."""
    return json.loads((Path(game_file).parent / "traj_data.json").read_text())

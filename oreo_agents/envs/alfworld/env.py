"""ALFWorld as a Gymnasium env: alfworld's real text engine (textworld PDDL + ALFWorld's domain and grammar).

    >>> import gymnasium as gym, oreo_agents
    >>> env = gym.make("oreo_agents/ALFWorld-v0", split="train", expert=True)   # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                          # doctest: +SKIP
    >>> obs.splitlines()[-1]                                                   # doctest: +SKIP
    'Your task is to: put a hot potato in sinkbasin.'
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])  # doctest: +SKIP

Games come from (first that applies): ``games=[...]`` (explicit game files), ``data_path=`` or ``$ALFWORLD_DATA`` (real
ALFWorld data), else the embedded set generated offline on first use (see :mod:`.games`). Reward is 1.0 on the step
that wins, else 0.0; ``terminated`` on a win, ``truncated`` at ``max_steps``. Any action string is a normal step:
unknown commands get the game's "Nothing happens.".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

from oreo_agents.envs.alfworld.engine import CachedPddlEnv
from oreo_agents.envs.alfworld.expert import ALFWorldExpert, read_task
from oreo_agents.envs.alfworld.games import DEFAULT_NUM_GAMES, resolve_games, task_id_of
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
    text_space,
)
from oreo_agents.errors import OreoError

INFO_GAME_FILE = "game_file"
BANNER = "-= Welcome to TextWorld, ALFRED! =-"
# Older ALFWorld grammars answered "go to" with "You arrive at loc 12. ..."; agents built on ALFWorld strip it.
_ARRIVE_LOC = re.compile(r"^You arrive at loc \d+\.\s*")


def clean_observation(text: str) -> str:
    """The text an ALFWorld agent reads: banner and "You arrive at loc N." removed, whitespace tidied."""
    text = text.replace(BANNER, "")
    text = _ARRIVE_LOC.sub("", text.strip())
    return text.strip()


def goal_of(intro: str) -> str:
    """The task sentence of a first observation ("put a hot potato in sinkbasin")."""
    marker = "Your task is to: "
    return intro.split(marker, 1)[1].strip().rstrip(".") if marker in intro else ""


class TextGame:
    """One textworld PDDL game session with ALFWorld's name demangling; the engine under :class:`ALFWorldEnv`.

    >>> game = TextGame(facts=True); state = game.load_and_reset("…/game.tw-pddl")   # doctest: +SKIP
    >>> state = game.step("go to fridge 1"); state["feedback"], state["won"]           # doctest: +SKIP
    """

    def __init__(self, facts: bool = False) -> None:
        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=facts)
        self._env = AlfredDemangler(shuffle=False)(CachedPddlEnv(infos))
        self.game_file: str | None = None

    def load_and_reset(self, game_file: str | Path) -> Any:
        game_file = str(game_file)
        if game_file != self.game_file:
            self._env.load(game_file)
            self.game_file = game_file
        return self._env.reset()

    def step(self, command: str) -> Any:
        state, _, _ = self._env.step(command)
        return state

    def plan(self) -> list[str]:
        """The engine's own plan from the current state: Fast Downward's ``replan`` on the current facts, as textworld
        computes ``policy_commands`` and ALFWorld's "planner" expert reads them. Commands, [] when no plan exists."""
        inner = self._env.unwrapped  # CachedPddlEnv: its entity names were demangled in place by AlfredDemangler
        return list(inner._pddl_state.replan(inner._entity_infos))

    def close(self) -> None:
        # Like stock textworld, leave Fast Downward's library loaded: unloading it while ctypes objects that point
        # into it are still alive crashes the interpreter at exit.
        self.game_file = None


class ALFWorldEnv(gym.Env[str, str]):
    """ALFWorld text games as a ``gymnasium.Env[str, str]`` (registered as ``oreo_agents/ALFWorld-v0``).

    Args:
        split: ``train``, ``valid_seen`` or ``valid_unseen``.
        data_path: real ALFWorld data root (holding ``json_2.1.1/<split>/...``); default ``$ALFWORLD_DATA``.
        task_types: keep only these task types (names such as ``pick_two_obj_and_place``).
        max_steps: step limit; the step that reaches it is ``truncated``.
        expert: put the expert's next command in ``info["expert_action"]``: alfworld's handcoded expert while play
            follows it, the engine's planner from the current state once play leaves it (right from any state; see
            :mod:`.expert`).
        games: explicit game files (``game.tw-pddl``), overriding every other source.
        num_games: how many embedded games to use (generated on first use when missing).
        seed: the embedded game set's generation seed (the episode seed goes to ``reset``).
        root: embedded games root; default ``$OREO_AGENTS_DATA/alfworld/embedded`` or ``./envs/alfworld/embedded``.
        render_mode: ``"ansi"`` returns the transcript so far.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        split: str = "train",
        data_path: str | Path | None = None,
        task_types: Sequence[str] | None = None,
        max_steps: int = 50,
        expert: bool = False,
        games: Sequence[str | Path] | None = None,
        num_games: int = DEFAULT_NUM_GAMES,
        seed: int = 0,
        root: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        if max_steps < 1:
            raise OreoError(f"max_steps must be >= 1, got {max_steps}")
        if render_mode not in (None, "ansi"):
            raise OreoError(f"render_mode {render_mode!r} is not supported; use 'ansi' or None")
        self.split = split
        self.max_steps = int(max_steps)
        self.expert = bool(expert)
        self.render_mode = render_mode
        self.game_files = resolve_games(
            split=split, data_path=data_path, task_types=task_types, games=games, num_games=num_games, seed=seed,
            root=root,
        )
        self.observation_space = text_space(TEXT_SPACE_MAX_LENGTH)
        self.action_space = text_space(1_000)
        self._game = TextGame(facts=self.expert)
        self._expert = ALFWorldExpert(self._game.plan) if self.expert else None
        self._state: Any = None
        self._task: dict[str, Any] = {}
        self._goal = ""
        self._steps = 0
        self._won = False
        self._transcript: list[str] = []
        self._game_file: Path | None = None

    # -- gymnasium API -------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        game_file = self._pick_game((options or {}).get("game"))
        self._state = self._game.load_and_reset(game_file)
        self._game_file = game_file
        self._task = read_task(game_file)
        self._steps, self._won = 0, bool(self._state["won"])
        obs = clean_observation(self._state["feedback"])
        self._goal = goal_of(obs)
        self._expert_action = None
        if self._expert is not None:
            # The expert's tie-breaks follow the episode seed, so expert transcripts reproduce with reset(seed=...).
            self._expert_action = self._expert.reset(game_file, self._state, seed=int(self.np_random.integers(2**31)))
        self._transcript = [obs]
        return obs, self._info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise OreoError("ALFWorldEnv.step called before reset")
        command = sanitize_action(action)
        was_won = self._won
        self._state = self._game.step(command)
        self._steps += 1
        self._won = bool(self._state["won"])
        obs = clean_observation(self._state["feedback"])
        if self._expert is not None:
            self._expert_action = self._expert.next_action(self._state, command)
        reward = 1.0 if self._won and not was_won else 0.0
        terminated = self._won
        truncated = not terminated and self._steps >= self.max_steps
        self._transcript += [f"> {command}", obs]
        return obs, reward, terminated, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "\n".join(self._transcript) + "\n"
        return None

    def close(self) -> None:
        self._game.close()
        super().close()

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _pick_game(self, choice: Any) -> Path:
        if choice is None:
            return self.game_files[int(self.np_random.integers(len(self.game_files)))]
        if isinstance(choice, (int,)) and not isinstance(choice, bool):
            if not -len(self.game_files) <= choice < len(self.game_files):
                raise OreoError(f"reset option game={choice} is out of range: this env has {len(self.game_files)} games")
            return self.game_files[choice]
        path = Path(choice)
        if path.is_dir():
            path = path / "game.tw-pddl"
        if not path.is_file():
            raise OreoError(f"reset option game={choice}: no game file there (expected a game.tw-pddl or its folder)")
        return path

    def _info(self) -> dict[str, Any]:
        info = {
            INFO_ADMISSIBLE: list(self._state["admissible_commands"]),
            INFO_TASK_ID: task_id_of(self._game_file),
            INFO_TASK_TYPE: self._task.get("task_type", ""),
            INFO_GOAL: self._goal,
            INFO_SPLIT: self.split,
            INFO_WON: self._won,
            INFO_GAME_FILE: str(self._game_file),
            "steps": self._steps,
        }
        if self.expert:
            info[INFO_EXPERT] = self._expert_action
        return info

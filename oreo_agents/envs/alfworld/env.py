"""ALFWorld as a Gymnasium env: alfworld's real text engine (textworld PDDL + ALFWorld's domain and grammar).

    >>> import gymnasium as gym, oreo_agents
    >>> env = gym.make("oreo_agents/ALFWorld-v0", split="train", expert=True)   # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                          # doctest: +SKIP
    >>> obs.splitlines()[-1]                                                   # doctest: +SKIP
    'Your task is to: put a hot potato in sinkbasin.'
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])  # doctest: +SKIP

Games come from (first that applies): ``games=[...]`` (explicit game files), ``data_path=`` or ``$ALFWORLD_DATA`` (real
ALFWorld data), else the embedded set generated offline on first use (see :mod:`.games`). Reward is 1.0 on the step
that wins, else 0.0; ``terminated`` on a win, ``truncated`` at ``max_steps`` (:class:`~oreo_agents.envs.base.TextEnv`).
Any action string is a normal step: unknown commands get the game's "Nothing happens.".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.envs.alfworld.engine import TextGame
from oreo_agents.envs.alfworld.expert import ALFWorldExpert, read_task
from oreo_agents.envs.alfworld.games import resolve_games, task_id_of
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


class ALFWorldEnv(TextEnv):
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
        num_tasks: how many games to play: the first N of the real data or of ``games``; the size of the embedded set
            (default 12, generated on first use when missing).
        seed: the embedded game set's generation seed (the episode seed goes to ``reset``).
        games_root: embedded games root; default ``$OREO_AGENTS_DATA/alfworld/embedded`` or ``./envs/alfworld/embedded``.
        render_mode: ``"ansi"`` returns the transcript so far.
        compiled_cache: folder of compiled games (see :mod:`.compiled`), so a game's first play in a new process costs
            what a repeat does; default ``$OREO_AGENTS_CACHE/alfworld-compiled`` or
            ``~/.cache/oreo-agents/alfworld-compiled``; ``"none"`` or False keeps compiled games in memory only.

    ``reset(options={"task": i})`` plays game ``i`` (or ``{"task": "<game folder or game.tw-pddl>"}``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    renamed_options = {"num_games": "num_tasks", "root": "games_root", "data_dir": "data_path", "path": "data_path"}

    def __init__(
        self,
        split: str = "train",
        data_path: str | Path | None = None,
        task_types: Sequence[str] | None = None,
        max_steps: int = 50,
        expert: bool = False,
        games: Sequence[str | Path] | None = None,
        num_tasks: int | None = None,
        seed: int = 0,
        games_root: str | Path | None = None,
        render_mode: str | None = None,
        compiled_cache: str | Path | bool | None = None,
    ) -> None:
        super().__init__(max_steps=max_steps, render_mode=render_mode)
        self.split = split
        self.expert = bool(expert)
        self.game_files = resolve_games(
            split=split, data_path=data_path, task_types=task_types, games=games, num_games=num_tasks, seed=seed,
            root=games_root,
        )
        self.observation_space = text_space(TEXT_SPACE_MAX_LENGTH)
        self.action_space = text_space(1_000)
        self._game = TextGame(facts=self.expert, compiled_cache=compiled_cache)
        self._expert = ALFWorldExpert(self._game.plan) if self.expert else None
        self._state: Any = None
        self._task: dict[str, Any] = {}
        self._goal = ""
        self._won = False
        self._transcript: list[str] = []
        self._game_file: Path | None = None

    # -- the episode (TextEnv calls these from reset / step) -----------------------------------------------------------

    def _begin(self, task: Any) -> tuple[str, dict[str, Any]]:
        game_file = self._pick_game(task)
        self._state = self._game.load_and_reset(game_file)
        self._game_file = game_file
        self._task = read_task(game_file)
        self._won = bool(self._state["won"])
        obs = clean_observation(self._state["feedback"])
        self._goal = goal_of(obs)
        self._expert_action = None
        if self._expert is not None:
            # The expert's tie-breaks follow the episode seed, so expert transcripts reproduce with reset(seed=...).
            self._expert_action = self._expert.reset(game_file, self._state, seed=int(self.np_random.integers(2**31)))
        self._transcript = [obs]
        return obs, self._info()

    def _advance(self, action: Any) -> tuple[str, float, bool, dict[str, Any]]:
        command = sanitize_action(action)
        was_won = self._won
        self._state = self._game.step(command)
        self._won = bool(self._state["won"])
        obs = clean_observation(self._state["feedback"])
        if self._expert is not None:
            self._expert_action = self._expert.next_action(self._state, command)
        reward = 1.0 if self._won and not was_won else 0.0
        self._transcript += [f"> {command}", obs]
        return obs, reward, self._won, {}

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
                raise OreoError(f"reset option task={choice} is out of range: this env has {len(self.game_files)} games")
            return self.game_files[choice]
        path = Path(choice)
        if path.is_dir():
            path = path / "game.tw-pddl"
        if not path.is_file():
            raise OreoError(f"reset option task={choice}: no game file there (expected a game.tw-pddl or its folder)")
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
            "steps": self.elapsed_steps,
        }
        if self.expert:
            info[INFO_EXPERT] = self._expert_action
        return info

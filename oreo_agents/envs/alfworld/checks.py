"""What ``oreo-agents games list`` and ``games check`` report about a game set: each game's description, and the
(fixed) handcoded expert's wins per task type when it plays every game."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from oreo_agents.envs.alfworld.games import task_id_of


@dataclass(frozen=True)
class GameSummary:
    task_id: str
    task_type: str
    goal: str
    walkthrough_steps: int


def describe_games(files: Iterable[Path]) -> list[GameSummary]:
    """Task id, task type, goal and walkthrough length of each game file (``game.tw-pddl`` beside ``traj_data.json``)."""
    out = []
    for f in files:
        game = json.loads(f.read_text())
        traj = json.loads((f.parent / "traj_data.json").read_text())
        goal = game["grammar"].split("Your task is to: ", 1)[-1].split(".", 1)[0]
        out.append(GameSummary(task_id_of(f), traj["task_type"], goal, len(game.get("walkthrough") or [])))
    return out


@dataclass
class ExpertCheck:
    """The expert's games, wins and steps per task type."""

    games: Counter = field(default_factory=Counter)
    won: Counter = field(default_factory=Counter)
    steps: Counter = field(default_factory=Counter)


def check_with_expert(files: Sequence[Path], split: str, max_steps: int,
                      track: Callable[[Iterable[int]], Iterable[int]] = iter) -> ExpertCheck:
    """Play every game with the handcoded expert (``track`` wraps the loop, e.g. in a progress bar)."""
    from oreo_agents.envs.alfworld.env import ALFWorldEnv

    env = ALFWorldEnv(games=list(files), split=split, expert=True, max_steps=max_steps)
    result = ExpertCheck()
    try:
        for i in track(range(len(files))):
            _, info = env.reset(seed=i, options={"task": i})
            done, n = False, 0
            while not done:
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                done, n = terminated or truncated, n + 1
            result.games[info["task_type"]] += 1
            result.won[info["task_type"]] += int(info["won"])
            result.steps[info["task_type"]] += n
    finally:
        env.close()
    return result

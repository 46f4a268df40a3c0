"""``oreo-agents games``: generate, list and check ALFWorld game sets (the embedded set, or real ALFWorld data).

    oreo-agents games generate --split train --num-games 60 --seed 0
    oreo-agents games list --split valid_unseen
    oreo-agents games check --split train --data-path ~/alfworld-data
"""

from __future__ import annotations

from pathlib import Path

import click

from oreo_agents.console import console, escape, user_errors
from oreo_agents.envs.alfworld.games import SPLITS, TASK_TYPES  # a stdlib-only module: --help stays fast

_split = click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True, help="ALFWorld split.")
_types = click.option("--task-type", "task_types", type=click.Choice(TASK_TYPES), multiple=True,
                      help="Keep only this task type (repeatable). Default: all six.")
_out = click.option("--out", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
                    help="Embedded games root. Default: $OREO_AGENTS_DATA/alfworld/embedded or ./envs/alfworld/embedded.")
_data = click.option("--data-path", type=click.Path(path_type=Path), default=None,
                     help="Real ALFWorld data root (holding json_2.1.1/<split>/...) instead of the embedded set.")


@click.group("games")
def games() -> None:
    """Generate, list and check ALFWorld game sets."""


@games.command("generate")
@_split
@click.option("--num-games", type=click.IntRange(min=1), default=12, show_default=True,
              help="Games in the set (task types round-robin); existing games are kept, missing ones generated.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generation seed (one seed per games root).")
@_types
@_out
@user_errors
def generate(split: str, num_games: int, seed: int, task_types: tuple[str, ...], root: Path | None) -> None:
    """Generate N solvable games of a split offline from the FloorPlan layouts shipped with alfworld."""
    import time

    from oreo_agents.envs.alfworld.games import default_root, ensure_games

    root = root or default_root()
    start = time.perf_counter()
    files = ensure_games(root, split=split, num_games=num_games, seed=seed, task_types=task_types or None)
    console.print(f"{len(files)} {split} games ready under {root} ({time.perf_counter() - start:.1f} s)", markup=False)


def _resolve(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None) -> list[Path]:
    from oreo_agents.envs.alfworld.games import default_root, list_games

    return list_games(data_path or root or default_root(), split, task_types or None)


@games.command("list")
@_split
@_types
@_out
@_data
@user_errors
def list_cmd(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None) -> None:
    """List the games of a split (task id, task type, goal, walkthrough length)."""
    import json

    from rich.table import Table

    from oreo_agents.envs.alfworld.games import task_id_of

    files = _resolve(split, task_types, root, data_path)
    table = Table(title=f"{len(files)} {split} games")
    for col in ("task id", "task type", "goal", "walkthrough"):
        table.add_column(col)
    for f in files:
        game = json.loads(f.read_text())
        traj = json.loads((f.parent / "traj_data.json").read_text())
        goal = game["grammar"].split("Your task is to: ", 1)[-1].split(".", 1)[0]
        table.add_row(escape(task_id_of(f)), escape(traj["task_type"]), escape(goal), str(len(game.get("walkthrough") or [])))
    console.print(table)


@games.command("check")
@_split
@_types
@_out
@_data
@click.option("--max-steps", type=click.IntRange(min=1), default=50, show_default=True, help="Step limit per game.")
@user_errors
def check(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None, max_steps: int) -> None:
    """Play every game with the (fixed) handcoded expert and report wins per task type."""
    from collections import Counter

    import gymnasium as gym
    from rich.progress import track
    from rich.table import Table

    import oreo_agents  # noqa: F401

    files = _resolve(split, task_types, root, data_path)
    if not files:
        from oreo_agents.errors import DataNotFoundError

        raise DataNotFoundError(f"no {split} games to check; run `oreo-agents games generate --split {split}` first")
    env = gym.make("oreo_agents/ALFWorld-v0", games=files, split=split, expert=True, max_steps=max_steps)
    total, won, steps = Counter(), Counter(), Counter()
    for i in track(range(len(files)), description="expert playing", console=console):
        _, info = env.reset(seed=i, options={"task": i})
        done, n = False, 0
        while not done:
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            done, n = terminated or truncated, n + 1
        total[info["task_type"]] += 1
        won[info["task_type"]] += int(info["won"])
        steps[info["task_type"]] += n
    env.close()
    table = Table(title=f"handcoded expert on {len(files)} {split} games (step limit {max_steps})")
    for col in ("task type", "games", "won", "success", "mean steps"):
        table.add_column(col, justify="right" if col != "task type" else "left")
    for t in sorted(total):
        table.add_row(escape(t), str(total[t]), str(won[t]), f"{won[t] / total[t]:.0%}", f"{steps[t] / total[t]:.1f}")
    table.add_row("all", str(sum(total.values())), str(sum(won.values())),
                  f"{sum(won.values()) / sum(total.values()):.0%}", f"{sum(steps.values()) / sum(total.values()):.1f}")
    console.print(table)

"""``oreo-agents games``: generate, list and check ALFWorld game sets (the embedded set, or real ALFWorld data).

    oreo-agents games generate --split train --num-tasks 60 --seed 0
    oreo-agents games list --split valid_unseen
    oreo-agents games check --split train --data-path ~/alfworld-data
    oreo-agents games compile --split train --jobs 8
"""

from __future__ import annotations

from pathlib import Path

import click

from oreo_agents.console import user_errors
from oreo_agents.envs.alfworld.games import (  # a stdlib-only module: --help stays fast
    SPLITS,
    TASK_TYPES,
)

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
@click.option("--num-tasks", "--num-games", "num_games", type=click.IntRange(min=1), default=12, show_default=True,
              help="Games in the set (task types round-robin); existing games are kept, missing ones generated.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generation seed (one seed per games root).")
@_types
@_out
@user_errors
def generate(split: str, num_games: int, seed: int, task_types: tuple[str, ...], root: Path | None) -> None:
    """Generate N solvable games of a split offline from the FloorPlan layouts shipped with alfworld."""
    from oreo_agents.pipeline.games import generate_games

    generate_games(split, num_games, seed, task_types, root)


@games.command("list")
@_split
@_types
@_out
@_data
@user_errors
def list_cmd(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None) -> None:
    """List the games of a split (task id, task type, goal, walkthrough length)."""
    from oreo_agents.pipeline.games import list_games_table

    list_games_table(split, task_types, root, data_path)


@games.command("check")
@_split
@_types
@_out
@_data
@click.option("--max-steps", type=click.IntRange(min=1), default=50, show_default=True, help="Step limit per game.")
@user_errors
def check(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None, max_steps: int) -> None:
    """Play every game with the (fixed) handcoded expert and report wins per task type."""
    from oreo_agents.pipeline.games import check_games

    check_games(split, task_types, root, data_path, max_steps)

@games.command("compile")
@_split
@_types
@_out
@_data
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Games compiled at once, each in its own worker process.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Compiled-game cache folder. Default: $OREO_AGENTS_CACHE/alfworld-compiled or "
                   "~/.cache/oreo-agents/alfworld-compiled (what envs read by default).")
@user_errors
def compile_cmd(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None, jobs: int,
                cache_dir: Path | None) -> None:
    """Compile every game of a split into the compiled-game cache (resumable: cached games are skipped), so every
    later process plays each game's first episode as fast as a repeat."""
    from oreo_agents.pipeline.games import compile_games

    compile_games(split, task_types, root, data_path, jobs, cache_dir)

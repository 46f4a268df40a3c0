"""``oreo-agents games``: generate, list and check ALFWorld game sets (the embedded set, or real ALFWorld data).

    oreo-agents games generate --split train --num-tasks 60 --seed 0
    oreo-agents games list --split valid_unseen
    oreo-agents games check --split train --data-path ~/alfworld-data
"""

from __future__ import annotations

from pathlib import Path

import click

from oreo_agents.console import console, escape, user_errors
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
    from rich.table import Table

    from oreo_agents.envs.alfworld.checks import describe_games

    games = describe_games(_resolve(split, task_types, root, data_path))
    table = Table(title=f"{len(games)} {split} games")
    for col in ("task id", "task type", "goal", "walkthrough"):
        table.add_column(col)
    for g in games:
        table.add_row(escape(g.task_id), escape(g.task_type), escape(g.goal), str(g.walkthrough_steps))
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
    from rich.progress import track
    from rich.table import Table

    from oreo_agents.envs.alfworld.checks import check_with_expert

    files = _resolve(split, task_types, root, data_path)
    if not files:
        from oreo_agents.errors import DataNotFoundError

        raise DataNotFoundError(f"no {split} games to check; run `oreo-agents games generate --split {split}` first")
    r = check_with_expert(files, split, max_steps, lambda it: track(it, description="expert playing", console=console))
    table = Table(title=f"handcoded expert on {len(files)} {split} games (step limit {max_steps})")
    for col in ("task type", "games", "won", "success", "mean steps"):
        table.add_column(col, justify="right" if col != "task type" else "left")
    for t in sorted(r.games):
        table.add_row(escape(t), str(r.games[t]), str(r.won[t]), f"{r.won[t] / r.games[t]:.0%}", f"{r.steps[t] / r.games[t]:.1f}")
    n, won, steps = sum(r.games.values()), sum(r.won.values()), sum(r.steps.values())
    table.add_row("all", str(n), str(won), f"{won / n:.0%}", f"{steps / n:.1f}")
    console.print(table)

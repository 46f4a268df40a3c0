"""``oreo-agents games`` as library functions: generate an embedded ALFWorld game set, list a set's games, check every
game with the handcoded expert (tables printed on the one console)."""

from __future__ import annotations

from pathlib import Path

from oreo_agents.console import console, escape


def generate_games(split: str, num_games: int, seed: int, task_types: tuple[str, ...], root: Path | None) -> None:
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


def list_games_table(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None) -> None:
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


def check_games(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None, max_steps: int) -> None:
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


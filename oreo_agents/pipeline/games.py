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



def compile_games(split: str, task_types: tuple[str, ...], root: Path | None, data_path: Path | None, jobs: int,
                  cache_dir: Path | None) -> dict[str, int]:
    """Warm the compiled-game cache for every game of a split, so no process pays a game's first-play cost again.

    Resumable: games already in the cache (made by this engine) are skipped. ``jobs`` > 1 compiles that many games at
    once in worker processes. Returns counts: ``compiled``, ``cached`` (skipped), ``games``.
    """
    import time

    from rich.progress import track

    from oreo_agents.envs.alfworld.compiled import default_compiled_dir
    from oreo_agents.errors import DataNotFoundError, OreoError

    files = _resolve(split, task_types, root, data_path)
    if not files:
        raise DataNotFoundError(f"no {split} games to compile; run `oreo-agents games generate --split {split}` first")
    directory = Path(cache_dir) if cache_dir is not None else default_compiled_dir()
    start, counts, failed = time.perf_counter(), {"compiled": 0, "cached": 0, "games": len(files)}, []
    for game_file, outcome in track(_compile_all(files, directory, jobs), total=len(files), console=console,
                                    description=f"compiling {len(files)} {split} games"):
        if isinstance(outcome, BaseException):
            failed.append(f"{game_file}: {type(outcome).__name__}: {outcome}")
        else:
            counts["compiled" if outcome else "cached"] += 1
    console.print(f"{counts['compiled']} {split} games compiled, {counts['cached']} already cached, in {directory} "
                  f"({time.perf_counter() - start:.1f} s)", markup=False)
    if failed:
        raise OreoError(f"{len(failed)} of {len(files)} games failed to compile (the others are cached); first: {failed[0]}")
    return counts


def _compile_all(files: list[Path], directory: Path, jobs: int):
    """(game file, True compiled | False already cached | the exception) per game, in completion order."""
    import json

    from oreo_agents.envs.alfworld.compiled import CompiledCache, game_key

    cache, todo = CompiledCache(directory), []
    for f in files:  # the cheap check here, so a resumed warm-up does not even import the engine for cached games
        try:
            data = json.loads(Path(f).read_text())
            cached = cache.is_current(game_key(data["pddl_domain"], data["grammar"], data["pddl_problem"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            yield f, exc
            continue
        if cached:
            yield f, False
        else:
            todo.append(f)
    if not todo:
        return
    from oreo_agents.envs.alfworld.engine import compile_game

    if jobs <= 1:
        for f in todo:
            try:
                yield f, compile_game(f, directory)
            except Exception as exc:  # one bad game must not stop the warm-up of the others
                yield f, exc
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a worker must not inherit a parent's loaded Fast Downward library (a C global state per process).
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(compile_game, str(f), str(directory)): f for f in todo}
        for future in as_completed(futures):
            exc = future.exception()
            yield futures[future], exc if exc is not None else future.result()

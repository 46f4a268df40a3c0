"""Where ALFWorld games come from: real ALFWorld data, or the embedded set generated offline (and cached).

Layout (ALFWorld's own): ``<root>/json_2.1.1/<split>/<task_type>-<Obj>-<MRecep>-<Recep>-<scene>/trial_<id>/`` holding
``traj_data.json``, ``initial_state.pddl`` and ``game.tw-pddl``. A root may also hold the ``<split>/`` folders
directly. Walking a split follows ``AlfredTWEnv``: skip paths containing 'movable' or 'Sliced', keep requested task
types, require a ``game.tw-pddl`` marked ``solvable``.

    >>> files = ensure_games(split="train", num_games=12)   # generates what is missing   # doctest: +SKIP
    >>> files = list_games(data_path="~/alfworld/data", split="valid_unseen")               # doctest: +SKIP

The embedded root (``$OREO_AGENTS_DATA/alfworld/embedded``, else ``./envs/alfworld/embedded``) carries a
``gameset.json`` manifest: alfworld version, grammar hash, seed, and the games per split and task type.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

from oreo_agents.envs.alfworld.gamefiles import (  # re-exported: the names callers know this module by
    DATA_DIR,
    GAME_FILE,
    MANIFEST,
    SPLITS,
    TASK_TYPES,
    engine_fingerprint,
)
from oreo_agents.errors import DataNotFoundError, OreoError

DEFAULT_NUM_GAMES = 12  # two of each task type: a fresh machine generates these in about a minute
HOW_TO_GET_GAMES = (
    "point ALFWORLD_DATA (or --data-path) at real ALFWorld data (run `alfworld-download` where there is network), "
    "or generate games offline with `oreo-agents games generate --split train --num-games 12`"
)


def default_root() -> Path:
    """The embedded games root: ``$OREO_AGENTS_DATA/alfworld/embedded`` or ``./envs/alfworld/embedded``."""
    base = os.environ.get("OREO_AGENTS_DATA")
    return (Path(base) if base else Path("envs")) / "alfworld" / "embedded"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise OreoError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    return split


def check_task_types(task_types: Sequence[str] | None) -> tuple[str, ...]:
    if not task_types:
        return TASK_TYPES
    bad = [t for t in task_types if t not in TASK_TYPES]
    if bad:
        raise OreoError(f"unknown task type {bad[0]!r}: choose from {', '.join(TASK_TYPES)}")
    return tuple(t for t in TASK_TYPES if t in set(task_types))


def split_dir(root: Path, split: str) -> Path | None:
    """``root/json_2.1.1/<split>`` or ``root/<split>``, whichever exists."""
    for candidate in (root / DATA_DIR / split, root / split):
        if candidate.is_dir():
            return candidate
    return None


def list_games(
    data_path: str | Path | None = None, split: str = "train", task_types: Sequence[str] | None = None
) -> list[Path]:
    """Game files of one split under a data root (real ALFWorld data or an embedded root), sorted."""
    check_split(split)
    wanted = set(check_task_types(task_types))
    root = Path(os.path.expandvars(str(data_path))).expanduser() if data_path else default_root()
    if not root.exists():
        raise DataNotFoundError(f"ALFWorld data not found: {root} does not exist; {HOW_TO_GET_GAMES}")
    base = split_dir(root, split)
    if base is None:
        raise DataNotFoundError(
            f"ALFWorld data at {root} has no split {split!r} (expected {root / DATA_DIR / split}); {HOW_TO_GET_GAMES}"
        )
    found = []
    for traj in sorted(base.rglob("traj_data.json")):
        trial = traj.parent
        if "movable" in str(trial) or "Sliced" in str(trial):
            continue  # AlfredTWEnv skips these too: the text engine does not support them
        game = trial / GAME_FILE
        if not game.is_file():
            continue
        try:
            task_type = json.loads(traj.read_text())["task_type"]
            solvable = json.loads(game.read_text()).get("solvable", False)
        except (json.JSONDecodeError, KeyError) as exc:
            raise DataNotFoundError(f"ALFWorld game {trial} is unreadable ({exc!r}); regenerate or re-download it")
        if task_type in wanted and solvable:
            found.append(game)
    return found


def task_id_of(game_file: Path | None) -> str:
    """A stable game id: ``<split>/<task folder>/<trial>`` from a game file path."""
    if game_file is None:
        return ""
    parts = Path(game_file).parts
    return "/".join(parts[-4:-1])


# -- the embedded set -----------------------------------------------------------------------------------------------


def read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataNotFoundError(f"games manifest {path} is not valid JSON ({exc}); delete it to regenerate") from exc


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    # Several processes (vector envs, test workers) may ask for the same set at once: one generates, the others wait.
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def plan_games(num_games: int, task_types: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """Which (task type, k-th game of that type) make up a set of ``num_games``: task types taken round-robin."""
    types = check_task_types(task_types)
    return [(types[i % len(types)], i // len(types)) for i in range(num_games)]


def ensure_games(
    root: str | Path | None = None,
    split: str = "train",
    num_games: int = DEFAULT_NUM_GAMES,
    seed: int = 0,
    task_types: Sequence[str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Game files of an embedded set, generating (and caching under ``root``) whichever are missing.

    Game (task type, k) of a split is a pure function of (seed, split, task type, k), so asking for more games later
    extends the set without changing the games already there.
    """
    from oreo_agents.envs.alfworld import generator

    check_split(split)
    if num_games < 1:
        raise OreoError(f"num_games must be >= 1, got {num_games}")
    root = Path(root) if root is not None else default_root()
    plan = plan_games(num_games, task_types)
    with _locked(root):
        manifest = read_manifest(root) or generator.new_manifest(seed)
        fingerprint = engine_fingerprint()
        if manifest.get("seed") != seed:
            raise OreoError(
                f"games root {root} holds games generated with seed {manifest.get('seed')}, not {seed}; "
                f"pass another root (--out / root=) for seed {seed}"
            )
        if manifest.get("grammar_sha256") != fingerprint["grammar_sha256"]:
            raise OreoError(
                f"games root {root} was generated with another alfworld grammar (alfworld "
                f"{manifest.get('alfworld_version')}); delete it or pass another root to regenerate"
            )
        games = manifest["splits"].setdefault(split, {})
        missing = [(t, k) for t, k in plan if len(games.get(t, [])) <= k or not (root / games[t][k]).is_file()]
        if missing:
            generator.generate_into(root, manifest, split, missing, seed=seed, progress=progress)
        return [root / manifest["splits"][split][t][k] for t, k in plan]


def _alfworld_data_env(split: str) -> str | None:
    """``$ALFWORLD_DATA`` when the user set it. Importing alfworld sets it to ``~/.cache/alfworld`` (and creates that
    folder) when unset, so that default counts only when real data is actually there."""
    value = os.environ.get("ALFWORLD_DATA")
    if not value:
        return None
    path = Path(os.path.expandvars(value)).expanduser()
    if path == Path("~/.cache/alfworld").expanduser() and split_dir(path, split) is None:
        return None
    return value


def resolve_games(
    split: str = "train",
    data_path: str | Path | None = None,
    task_types: Sequence[str] | None = None,
    games: Sequence[str | Path] | None = None,
    num_games: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
) -> list[Path]:
    """The env's game list: explicit files, else real data (``data_path`` / ``$ALFWORLD_DATA``), else embedded.

    ``num_games`` keeps the first N explicit or real games (default all) or sizes the embedded set (default
    ``DEFAULT_NUM_GAMES``)."""
    check_split(split)
    if num_games is not None and num_games < 1:
        raise OreoError(f"num_tasks must be >= 1, got {num_games}")
    if games:
        files = []
        for g in games:
            path = Path(g)
            path = path / GAME_FILE if path.is_dir() else path
            if not path.is_file():
                raise DataNotFoundError(f"ALFWorld game file not found: {g}; {HOW_TO_GET_GAMES}")
            if not (path.parent / "traj_data.json").is_file():
                raise DataNotFoundError(f"ALFWorld game {g} has no traj_data.json beside it")
            files.append(path)
        return files[:num_games]
    data_path = data_path or _alfworld_data_env(split)
    if data_path:
        files = list_games(data_path, split, task_types)
        if not files:
            raise DataNotFoundError(
                f"no playable {split} games under {data_path} for task types {', '.join(check_task_types(task_types))}"
                f"; {HOW_TO_GET_GAMES}"
            )
        return files[:num_games]
    return ensure_games(root, split, num_games or DEFAULT_NUM_GAMES, seed, task_types)

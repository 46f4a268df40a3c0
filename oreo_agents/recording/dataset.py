"""Read a recorded episode dataset back: as episode rows (the learner, the value lens), as a ``datasets.Dataset`` with
the explicit Features, or streamed row by row. The one place datasets are found and checked.

A path may be a dataset folder written by ``oreo-agents collect`` (``<out>/data/shard-*.parquet``: its committed shards),
a folder of such folders or of Parquet files from elsewhere (searched recursively; hidden files skipped), or one
Parquet file; several paths add up (``--data a b``)::

    >>> from oreo_agents.recording import load_episodes
    >>> ds = load_episodes("datasets/alfworld-expert")            # doctest: +SKIP
    >>> ds.features == episode_features()                          # doctest: +SKIP
    True
    >>> rows = load_episode_rows(["datasets/alfworld-expert"], split="train")   # list of dicts  # doctest: +SKIP

Files that lack a column the caller needs are refused with the file and the missing columns named. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.recording.schema import REQUIRED_COLUMNS
from oreo_agents.recording.writer import DATA_DIR, shard_paths

PathLike = str | os.PathLike
# What training and the value lens read of each episode (the prompt format needs env_id and goal), and of each step.
EPISODE_ROW_COLUMNS = tuple(dict.fromkeys(REQUIRED_COLUMNS + ("env_id", "goal")))
EPISODE_ROW_STEP_FIELDS = ("action", "observation")
SOURCE_KEY = "_source_file"  # added to each row by load_episode_rows: the Parquet file it came from, for error messages


def parquet_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """The Parquet files of one dataset path or several (see the module docstring), in order."""
    many = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not many:
        raise DataNotFoundError("no dataset given: pass --data <parquet file or folder>")
    files: list[Path] = []
    for p in map(Path, many):
        if p.is_file():
            if p.suffix != ".parquet":
                raise DataNotFoundError(f"{p} is not a .parquet file")
            files.append(p)
            continue
        if not p.is_dir():
            raise DataNotFoundError(f"dataset not found: {p} (give a folder written by `oreo-agents collect` or a .parquet file)")
        found = _folder_files(p)
        if not found:
            raise DataNotFoundError(f"no Parquet files in {p} (expected {p / DATA_DIR}/shard-*.parquet)")
        files += found
    return files


def _folder_files(folder: Path) -> list[Path]:
    """A collect folder's committed shards; else the folder's own .parquet files and its subfolders', in path order."""
    shards = shard_paths(folder)
    if shards:
        return shards
    files: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):  # a shard being written, an editor's or the OS's own file
            continue
        if child.is_dir():
            files += _folder_files(child)
        elif child.suffix == ".parquet":
            files.append(child)
    return files


def validate_columns(
    files: Sequence[Path], required: Sequence[str] = REQUIRED_COLUMNS, step_fields: Sequence[str] = ()
) -> None:
    """Refuse files that lack ``required`` columns (or ``steps`` entries lacking ``step_fields``), naming them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as exc:  # noqa: BLE001 - a corrupt/non-Parquet file is the user's input
            raise SchemaError(f"dataset file {f} is not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from exc
        missing = [c for c in required if c not in schema.names]
        if missing:
            raise SchemaError(f"dataset file {f} lacks the field(s) {', '.join(missing)} (is it an oreo-agents episode "
                              f"dataset? one needs {', '.join(required)})")  # fmt: skip
        if step_fields and "steps" in schema.names:
            steps_type = schema.field("steps").type
            if not (pa.types.is_list(steps_type) or pa.types.is_large_list(steps_type)):
                raise SchemaError(f"dataset file {f}: column 'steps' must be a list of structs, found {steps_type}")
            if pa.types.is_null(steps_type.value_type):
                continue  # no episode has a step: none lacks a field
            if not pa.types.is_struct(steps_type.value_type):
                raise SchemaError(f"dataset file {f}: column 'steps' must be a list of structs, found {steps_type}")
            names = {steps_type.value_type.field(i).name for i in range(steps_type.value_type.num_fields)}
            lacking = [s for s in step_fields if s not in names]
            if lacking:
                raise SchemaError(f"dataset file {f}: steps lack the field(s) {', '.join(lacking)}")


def load_episode_rows(
    paths: PathLike | Sequence[PathLike],
    *,
    split: str = "",
    required: Sequence[str] = EPISODE_ROW_COLUMNS,
    step_fields: Sequence[str] = EPISODE_ROW_STEP_FIELDS,
) -> list[dict[str, Any]]:
    """Episode rows (dicts, each with :data:`SOURCE_KEY`) of ``split`` ('' = all) from Parquet files/folders, checked
    for the columns and step fields training and the value lens read. No episodes at all is an error naming the data."""
    import datasets

    files = parquet_files(paths)
    validate_columns(files, required, step_fields)
    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            ds = datasets.Dataset.from_parquet(str(f), keep_in_memory=True)
        except Exception as exc:  # noqa: BLE001 - a corrupt/non-Parquet file is the user's input
            raise SchemaError(f"dataset file {f} is not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from exc
        for row in ds:
            if split and row.get("split") != split:
                continue
            row[SOURCE_KEY] = str(f)
            rows.append(row)
    if not rows:
        where = f" of split '{split}'" if split else ""
        shown = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        raise SchemaError(f"dataset {', '.join(map(str, shown))} holds no episodes{where}")
    return rows


def load_episodes(path: PathLike | Sequence[PathLike], *, required: Sequence[str] = REQUIRED_COLUMNS):
    """Load a recorded dataset as a ``datasets.Dataset``.

    Files written by the recorder carry every column and come back with exactly :func:`episode_features`; files from
    elsewhere need at least ``required`` and keep their own types for the rest.
    """
    from datasets import load_dataset

    from oreo_agents.recording.schema import episode_features

    files = parquet_files(path)
    validate_columns(files, required)
    import pyarrow.parquet as pq

    features = episode_features()
    full = all(set(features) <= set(pq.read_schema(f).names) for f in files)
    kwargs: dict[str, Any] = {"features": features} if full else {}
    return load_dataset("parquet", data_files=[str(f) for f in files], split="train", **kwargs)


def iter_episodes(
    path: PathLike | Sequence[PathLike], *, columns: Sequence[str] | None = None, batch_size: int = 64
) -> Iterator[dict[str, Any]]:
    """Stream episode rows as dicts, a batch at a time (memory stays flat however large the dataset)."""
    import pyarrow.parquet as pq

    files = parquet_files(path)
    validate_columns(files, list(columns) if columns else REQUIRED_COLUMNS)
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
            yield from batch.to_pylist()


def count_episodes(path: PathLike | Sequence[PathLike]) -> int:
    """Number of episodes, from the Parquet footers (reads no rows)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(path))

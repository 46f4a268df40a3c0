"""Read a recorded episode dataset back: as a ``datasets.Dataset`` with the explicit Features, or streamed row by row.

A path may be a dataset folder written by ``oreo-agents collect`` (``<out>/data/shard-*.parquet``), its ``data``
folder, a folder of Parquet files from elsewhere, or one Parquet file::

    >>> from oreo_agents.recording import load_episodes
    >>> ds = load_episodes("datasets/alfworld-expert")            # doctest: +SKIP
    >>> ds.features == episode_features()                          # doctest: +SKIP
    True

Files that lack a column the caller needs are refused with the file and the missing columns named.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.recording.schema import REQUIRED_COLUMNS
from oreo_agents.recording.writer import DATA_DIR, shard_paths


def parquet_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of a dataset path (see the module docstring), in order."""
    p = Path(path)
    if p.is_file():
        if p.suffix != ".parquet":
            raise DataNotFoundError(f"{p} is not a .parquet file")
        return [p]
    if not p.is_dir():
        raise DataNotFoundError(f"dataset not found: {p} (give a folder written by `oreo-agents collect` or a .parquet file)")
    files = shard_paths(p)
    if not files:
        base = p / DATA_DIR if (p / DATA_DIR).is_dir() else p
        files = sorted(f for f in base.glob("*.parquet") if not f.name.startswith("."))
    if not files:
        raise DataNotFoundError(f"no Parquet files in {p} (expected {p / DATA_DIR}/shard-*.parquet)")
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
        except Exception as exc:
            raise SchemaError(f"{f} is not a readable Parquet file: {exc}") from exc
        missing = [c for c in required if c not in schema.names]
        if missing:
            raise SchemaError(f"{f} lacks column(s) {', '.join(missing)} (an episode dataset needs {', '.join(required)})")
        if step_fields and "steps" in schema.names:
            steps_type = schema.field("steps").type
            if not (pa.types.is_list(steps_type) or pa.types.is_large_list(steps_type)) or not pa.types.is_struct(
                steps_type.value_type
            ):
                raise SchemaError(f"{f}: column 'steps' must be a list of structs, found {steps_type}")
            names = {steps_type.value_type.field(i).name for i in range(steps_type.value_type.num_fields)}
            lacking = [s for s in step_fields if s not in names]
            if lacking:
                raise SchemaError(f"{f}: 'steps' entries lack field(s) {', '.join(lacking)}")


def load_episodes(path: str | os.PathLike, *, required: Sequence[str] = REQUIRED_COLUMNS):
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
    path: str | os.PathLike, *, columns: Sequence[str] | None = None, batch_size: int = 64
) -> Iterator[dict[str, Any]]:
    """Stream episode rows as dicts, a batch at a time (memory stays flat however large the dataset)."""
    import pyarrow.parquet as pq

    files = parquet_files(path)
    validate_columns(files, list(columns) if columns else REQUIRED_COLUMNS)
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
            yield from batch.to_pylist()


def count_episodes(path: str | os.PathLike) -> int:
    """Number of episodes, from the Parquet footers (reads no rows)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(path))

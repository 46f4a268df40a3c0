"""Loading recorded datasets: errors name the file and the missing columns."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.recording import iter_episodes, load_episodes


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "episodes.parquet"
    pq.write_table(pa.table({"episode_id": ["a"], "task_id": ["t"], "steps": [[]]}), path)
    with pytest.raises(SchemaError, match=r"episodes.parquet lacks the field\(s\) initial_observation, total_reward, success"):
        load_episodes(path)


def test_not_found_and_empty_folders(tmp_path):
    with pytest.raises(DataNotFoundError, match="dataset not found"):
        load_episodes(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no Parquet files"):
        load_episodes(tmp_path / "empty")


def test_stream_reads_only_asked_columns(toy_dataset):
    rows = list(iter_episodes(toy_dataset, columns=["episode_id", "success"], batch_size=7))
    assert len(rows) == 40 and set(rows[0]) == {"episode_id", "success"}
    assert len({r["episode_id"] for r in rows}) == 40

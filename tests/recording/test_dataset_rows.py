"""The one episode loader (``load_episode_rows``, what training and the value lens read): which files a path means,
the checks every row passes, the split filter, and no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.recording.dataset import SOURCE_KEY, load_episode_rows, parquet_files


def test_a_folder_of_datasets_reads_each_ones_committed_shards(toy_dataset, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(toy_dataset, root / "b-collect")
    (root / "a-loose").mkdir()
    one = pq.read_table(parquet_files(toy_dataset)[0]).slice(0, 2)
    pq.write_table(one, root / "a-loose" / "two.parquet")
    (root / "b-collect" / "data" / "notes.parquet").write_text("not a shard, not even Parquet")  # no committed shard
    (root / "a-loose" / ".half-written.parquet").write_text("hidden: skipped")
    files = parquet_files(root)
    assert files[0] == root / "a-loose" / "two.parquet" and all(f.name.startswith("shard-") for f in files[1:])
    rows = load_episode_rows([root])
    assert len(rows) == 2 + 40 and len(files) == 1 + len(parquet_files(toy_dataset))
    assert rows[0][SOURCE_KEY] == str(root / "a-loose" / "two.parquet") and rows[-1][SOURCE_KEY] == str(files[-1])
    assert all(isinstance(s, dict) and "action" in s for r in rows for s in r["steps"])  # rows, steps as dicts


def test_several_paths_add_up_and_a_split_filters(toy_dataset):
    splits = {r["split"] for r in load_episode_rows(toy_dataset)}
    some = sorted(splits)[0]
    assert len(load_episode_rows([toy_dataset, toy_dataset])) == 80
    assert {r["split"] for r in load_episode_rows([toy_dataset], split=some)} == {some}
    with pytest.raises(SchemaError, match=r"holds no episodes of split 'nope'"):
        load_episode_rows([toy_dataset], split="nope")


def test_errors_name_the_path_and_the_missing_fields(tmp_path):
    with pytest.raises(DataNotFoundError, match="no dataset given: pass --data"):
        load_episode_rows([])
    with pytest.raises(DataNotFoundError, match="dataset not found: .*nope"):
        load_episode_rows([tmp_path / "nope"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataNotFoundError, match=r"notes.txt is not a .parquet file"):
        load_episode_rows([tmp_path / "notes.txt"])
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match=r"broken.parquet is not a readable Parquet file"):
        load_episode_rows([tmp_path / "broken.parquet"])
    cols = {c: ["x"] for c in ("episode_id", "task_id", "env_id", "goal", "initial_observation")}
    cols.update(total_reward=[1.0], success=[True], steps=[[{"action": "go"}]])
    pq.write_table(pa.table(cols), tmp_path / "no-obs.parquet")
    with pytest.raises(SchemaError, match=r"no-obs.parquet: steps lack the field\(s\) observation"):
        load_episode_rows([tmp_path / "no-obs.parquet"])
    del cols["goal"]
    pq.write_table(pa.table(cols), tmp_path / "no-goal.parquet")
    with pytest.raises(SchemaError, match=r"no-goal.parquet lacks the field\(s\) goal"):
        load_episode_rows([tmp_path / "no-goal.parquet"])


def test_loading_rows_imports_no_torch(toy_dataset):
    code = (f"import sys; from oreo_agents.recording.dataset import load_episode_rows; "
            f"assert len(load_episode_rows([{str(toy_dataset)!r}])) == 40; assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True)

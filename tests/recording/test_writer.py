"""ShardWriter: schema round-trip through datasets and pandas, atomic shards, resume, refusals."""

from __future__ import annotations

import json
import math
import re

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.recording import (
    EpisodeMetadata,
    EpisodeRecord,
    ShardWriter,
    StepRecord,
    count_episodes,
    episode_features,
    load_episodes,
    shard_paths,
)


def _record(i: int, *, won: bool = True) -> EpisodeRecord:
    steps = [
        StepRecord(action="go to desk 1", observation="You arrive at desk 1.", reward=0.0, reply=" go to desk 1\n",
                   prompt_token_ids=[1, 2, 3], completion_token_ids=[7, 8, 2], completion_logprobs=[-0.1, -0.2, -0.3],
                   value=0.5),
        StepRecord(action="take pen 1 from desk 1", observation="You pick up the pen 1." if won else "Nothing happens.",
                   reward=1.0 if won else 0.0, won=won),
    ]
    return EpisodeRecord(
        env_id="oreo_agents/ALFWorld-v0", task_id=f"task-{i % 3}", split="train", task_type="pick_and_place_simple",
        goal="put a pen on the desk", initial_observation="You are in the middle of a room.", steps=steps,
        termination="success" if won else "failure",
        metadata=EpisodeMetadata(policy="model", checkpoint="runs/sft", sampling='{"temperature": 1.0}', seed=7,
                                 env_version="alfworld 0.4.2", grammar_hash="abc", tokenizer="tok@1", package_version="0.1.0"),
        sample_index=i,
    )


def test_schema_round_trip_datasets_and_pandas(tmp_path):
    import pandas as pd
    from datasets import load_dataset

    records = [_record(i, won=i % 2 == 0) for i in range(7)]
    with ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=3) as writer:
        for r in records:
            assert writer.add(r)
    shards = shard_paths(tmp_path / "ds")
    assert len(shards) == 3 and all(re.fullmatch(r"shard-\d{14}-[0-9a-f]{6}-0000[0-2]\.parquet", p.name) for p in shards)

    ds = load_dataset("parquet", data_dir=str(tmp_path / "ds" / "data"), split="train")
    assert ds.features == episode_features()  # the Features travel inside the Parquet files
    assert len(ds) == 7
    expected = {r.to_row()["episode_id"]: r.to_row() for r in records}
    for row in ds:
        want = expected[row["episode_id"]]
        for key in ("task_id", "termination", "success", "length", "metadata", "initial_observation"):
            assert row[key] == want[key], key
        assert math.isclose(row["total_reward"], want["total_reward"])
        s0 = row["steps"][0]
        assert s0["prompt_token_ids"] == [1, 2, 3] and s0["completion_token_ids"] == [7, 8, 2]
        assert s0["reply"] == " go to desk 1\n" and s0["completion_logprobs"] == pytest.approx([-0.1, -0.2, -0.3])
        assert math.isnan(row["steps"][1]["value"]) and row["steps"][1]["reply"] == row["steps"][1]["action"]

    frame = pd.read_parquet(tmp_path / "ds" / "data")
    assert len(frame) == 7 and set(frame.columns) == set(episode_features())
    assert frame["success"].sum() == 4

    loaded = load_episodes(tmp_path / "ds")
    assert loaded.features == episode_features() and len(loaded) == 7 and count_episodes(tmp_path / "ds") == 7
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["settings"] == {"k": 1} and manifest["schema_version"] == 1


def test_reopen_skips_committed_ids_and_counts_buffered_as_done(tmp_path):
    writer = ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2)
    for i in range(5):
        writer.add(_record(i))
    # 4 committed in two shards, 1 still buffered: a kill now would lose only the buffered one.
    assert count_episodes(tmp_path / "ds") == 4
    assert not writer.add(_record(0))  # duplicates are dropped
    del writer  # simulate a crash: no close()

    again = ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2)
    assert again.num_episodes == 4 and again.is_done(_record(3).to_row()["episode_id"])
    assert not again.is_done(_record(4).to_row()["episode_id"])
    assert again.add(_record(4)) and not again.add(_record(1))
    again.close(complete=True)
    ids = load_episodes(tmp_path / "ds")["episode_id"]
    assert len(ids) == 5 == len(set(ids))
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["status"] == "complete"


def test_leftover_temp_shard_from_a_kill_is_removed(tmp_path):
    with ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=1) as writer:
        writer.add(_record(0))
    partial = tmp_path / "ds" / "data" / ".shard-00001.tmp-999"
    partial.write_bytes(b"PAR1 half a file")
    writer = ShardWriter(tmp_path / "ds", {"k": 1})
    assert not partial.exists() and writer.num_episodes == 1


def test_mismatched_settings_are_refused_naming_the_keys(tmp_path):
    ShardWriter(tmp_path / "ds", {"policy": "expert", "seed": 0}).close()
    with pytest.raises(OreoError, match=r"seed: 0 -> 1"):
        ShardWriter(tmp_path / "ds", {"policy": "expert", "seed": 1})


def test_no_resume_refuses_a_folder_with_episodes(tmp_path):
    with ShardWriter(tmp_path / "ds", {"k": 1}) as writer:
        writer.add(_record(0))
    with pytest.raises(OreoError, match="already holds 1 episodes"):
        ShardWriter(tmp_path / "ds", {"k": 1}, resume=False)


def test_bad_output_paths(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OreoError, match="is a file"):
        ShardWriter(a_file, {})
    with pytest.raises(OreoError, match="cannot create output folder"):
        ShardWriter(a_file / "sub", {})
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("mine")
    with pytest.raises(OreoError, match="not a recorded dataset"):
        ShardWriter(other, {})

"""ShardWriter: schema round-trip through datasets and pandas, atomic shards, resume, refusals."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys

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


# --- issue #14: concurrent writers, manifest first, damaged manifests, settings by content -----------------------------


def test_a_second_writer_of_the_same_plan_is_refused_naming_the_first(tmp_path):
    first = ShardWriter(tmp_path / "ds", {"k": 1})
    with pytest.raises(OreoError, match=rf"another collector is writing this dataset: pid {os.getpid()} on "):
        ShardWriter(tmp_path / "ds", {"k": 1})
    first.close()
    ShardWriter(tmp_path / "ds", {"k": 1}).close()  # free again once the first is done


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    """The holder is another process; once it is killed -9 (no cleanup at all) the folder is free again."""
    code = (
        "import sys, time\nfrom oreo_agents.recording import ShardWriter\n"
        f"w = ShardWriter({str(tmp_path / 'ds')!r}, {{'k': 1}})\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(OreoError, match=rf"pid {proc.pid} on "):
            ShardWriter(tmp_path / "ds", {"k": 1})
    finally:
        proc.kill()
        proc.wait()
    ShardWriter(tmp_path / "ds", {"k": 1}).close()


def test_share_writers_cooperate_and_a_duplicate_share_is_refused(tmp_path):
    """Writers of disjoint shares run together into one folder; their shards never collide, resume sees them all."""
    a = ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2, share="0-of-2")
    b = ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2, share="1-of-2")
    with pytest.raises(OreoError, match="writing share 0-of-2 of this dataset"):
        ShardWriter(tmp_path / "ds", {"k": 1}, share="0-of-2")
    with pytest.raises(OreoError, match="another collector is writing this dataset"):
        ShardWriter(tmp_path / "ds", {"k": 1})  # the whole plan overlaps every share
    for i in range(10):  # interleaved flushes: each writer names its own shards
        (a if i % 2 == 0 else b).add(_record(i))
    a.close()
    b.close()
    assert count_episodes(tmp_path / "ds") == 10 and len(shard_paths(tmp_path / "ds")) == 6
    names = [p.name for p in shard_paths(tmp_path / "ds")]
    assert sum(n.startswith("shard-0-of-2-") for n in names) == 3 == sum(n.startswith("shard-1-of-2-") for n in names)
    whole = ShardWriter(tmp_path / "ds", {"k": 1})
    assert whole.num_episodes == 10 and all(whole.is_done(_record(i).to_row()["episode_id"]) for i in range(10))
    whole.close()


def test_without_flock_a_lock_file_names_the_holder_and_stale_ones_are_taken_over(tmp_path, monkeypatch):
    """Filesystems without flock: an O_EXCL file with pid/host; a dead pid on this host is stale."""
    import errno

    from oreo_agents.recording import locks

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_flock)
    first = ShardWriter(tmp_path / "ds", {"k": 1})
    with pytest.raises(OreoError, match=rf"pid {os.getpid()} on .*delete it if that process is gone"):
        ShardWriter(tmp_path / "ds", {"k": 1})
    first.close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    sentinel = tmp_path / "ds" / ".locks" / "dataset.pid"
    sentinel.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "share": None}))
    ShardWriter(tmp_path / "ds", {"k": 1}).close()  # its pid is gone: stale, taken over
    sentinel.write_text(json.dumps({"pid": 1, "host": "elsewhere", "share": None}))
    with pytest.raises(OreoError, match="pid 1 on elsewhere"):
        ShardWriter(tmp_path / "ds", {"k": 1})


def test_a_writer_interrupted_while_opening_leaves_a_resumable_folder(tmp_path, monkeypatch):
    """Ctrl-C in the first moments (data/ made, nothing recorded yet): the rerun resumes instead of refusing."""
    from oreo_agents.recording import writer as writer_module

    def interrupted(out):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "shard_paths", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ShardWriter(tmp_path / "ds", {"k": 1})
    monkeypatch.undo()
    assert (tmp_path / "ds" / "manifest.json").is_file()
    with ShardWriter(tmp_path / "ds", {"k": 1}) as again:
        again.add(_record(0))
    assert count_episodes(tmp_path / "ds") == 1


@pytest.mark.parametrize("content", [b"\x89\xfe\x00garbage\xff", b"[]", b'{"settings": []}', b"{trunc"])
def test_a_damaged_manifest_is_one_error_naming_the_file(tmp_path, content):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_bytes(content)
    with pytest.raises(OreoError, match=r"manifest\.json is not .*the dataset folder is damaged"):
        ShardWriter(tmp_path / "ds", {"k": 1})


def test_paths_compare_resolved_and_fingerprints_missing_from_old_manifests_are_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    ShardWriter(tmp_path / "ds", {"model": "./m/"}, path_keys=["model"]).close()
    again = ShardWriter(tmp_path / "ds", {"model": str(tmp_path / "m"), "model_weights_sha256": "aa"},
                        path_keys=["model"], unverified_keys=["model_weights_sha256"])
    assert again.unverified == ["model_weights_sha256"]
    assert again.settings["model"] == "./m/"  # the stored spelling is kept (episode ids may derive from it)
    again.close()
    with pytest.raises(OreoError, match=r"model_weights_sha256: 'aa' -> 'bb'"):
        ShardWriter(tmp_path / "ds", {"model": "m", "model_weights_sha256": "bb"}, path_keys=["model"],
                    unverified_keys=["model_weights_sha256"])


def test_old_datasets_with_numbered_shards_still_load_and_resume(tmp_path):
    with ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2) as writer:
        for i in range(4):
            writer.add(_record(i))
    for k, shard in enumerate(shard_paths(tmp_path / "ds")):  # the names older versions wrote
        shard.rename(shard.with_name(f"shard-{k:05d}.parquet"))
    with ShardWriter(tmp_path / "ds", {"k": 1}, shard_size=2) as writer:
        assert writer.num_episodes == 4 and writer.add(_record(4)) and not writer.add(_record(1))
    names = [p.name for p in shard_paths(tmp_path / "ds")]
    assert names[:2] == ["shard-00000.parquet", "shard-00001.parquet"] and len(names) == 3
    assert count_episodes(tmp_path / "ds") == 5

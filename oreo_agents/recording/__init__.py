"""Recording: text-env episodes -> Parquet datasets (and back), plus SFT / DPO / KTO exports.

No torch here. The pieces::

    RecordEpisode      gymnasium.Wrapper: builds an EpisodeRecord per episode (any text env)
    ShardWriter        atomic Parquet shards + manifest; resume skips committed episode ids; one writer per plan/share
    DatasetLock        the advisory locks that keep two writers of the same episodes apart (locks.py)
    fingerprints       content hashes of the env's task data and of model weights, for the manifest
    plan_episodes      the deterministic plan of a collection (the loop: oreo_agents.pipeline.collect)
    load_episodes      a recorded folder as a datasets.Dataset with the explicit Features
    exports            SFT (messages / prompt-completion), DPO pairs, KTO rows

See docs/recording.md for the dataset format and the ``oreo-agents collect`` / ``export`` commands.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module. Resolved on first use (PEP 562): importing oreo_agents.recording.schema (which turns.py does)
# must not pull in the rest of the package.
_EXPORTS = {
    "CollectProgress": "collect",
    "CollectSummary": "collect",
    "PlannedEpisode": "collect",
    "plan_episodes": "collect",
    "count_episodes": "dataset",
    "iter_episodes": "dataset",
    "load_episodes": "dataset",
    "parquet_files": "dataset",
    "validate_columns": "dataset",
    "INFO_EPISODE_ID": "recorder",
    "RecordEpisode": "recorder",
    "EpisodeMetadata": "schema",
    "EpisodeRecord": "schema",
    "StepRecord": "schema",
    "episode_features": "schema",
    "DatasetLock": "locks",
    "ShardWriter": "writer",
    "read_manifest": "writer",
    "settings_differences": "writer",
    "settings_hash": "writer",
    "shard_paths": "writer",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'oreo_agents.recording' has no attribute '{name}'")
    return getattr(importlib.import_module(f"oreo_agents.recording.{_EXPORTS[name]}"), name)


__all__ = [
    "INFO_EPISODE_ID",
    "CollectProgress",
    "DatasetLock",
    "CollectSummary",
    "EpisodeMetadata",
    "EpisodeRecord",
    "PlannedEpisode",
    "RecordEpisode",
    "ShardWriter",
    "StepRecord",
    "count_episodes",
    "episode_features",
    "iter_episodes",
    "load_episodes",
    "parquet_files",
    "plan_episodes",
    "read_manifest",
    "settings_differences",
    "settings_hash",
    "shard_paths",
    "validate_columns",
]

"""The episodes an evaluated agent plays, kept so that a killed evaluation resumes where it stopped (as collect does).

Each (policy, selection) writes its episodes into ``<out>/episodes/<agent>/``, a recorded dataset whose manifest holds
what decides them: the eval options that change an episode, and by content hash the policy's and value's weights (an
adapter's base too) and each split's env data. Episode ``i`` of a split has a fixed id (:func:`eval_episode_id`);
shards are committed every :data:`EVAL_SHARD_SIZE` episodes. A rerun with the same settings reads the committed
outcomes back and plays only the rest; other settings (a retrained checkpoint in the same folder, another
``--max-steps``) or ``--no-resume`` start the agent over. Eval folders are output: replacing one loses no data.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Callable

from oreo_agents.agent.rows import Outcome
from oreo_agents.console import console, escape
from oreo_agents.errors import OreoError

EVAL_SHARD_SIZE = 4  # episodes a kill can lose at most, per agent; a shard file per 4 episodes costs nothing here
SOURCE = "eval"

# EvalConfig fields that do not change what an episode contains: how many are played and where, how they are
# reported, and the per-agent lists (each agent's own policy/value/selection are stored on their own).
_NOT_CONTENT = {"policy", "value", "select", "episodes", "num_envs", "ci", "out", "resume", "device",
                "gpu_memory_utilization"}  # fmt: skip


def eval_episode_id(policy: str, mode: str, seed: int, split: str, index: int) -> str:
    """The record id of episode ``index`` of ``split`` played by (``policy``, ``mode``) at ``seed``."""
    return hashlib.sha256(f"{SOURCE}|{policy}|{mode}|seed={seed}|{split}|{index}".encode()).hexdigest()[:16]


def episode_ids(cfg: Any, policy: str, mode: str, split: str) -> Callable[[int], str]:
    return lambda i: eval_episode_id(policy, mode, cfg.seed, split, i)


def episode_settings(cfg: Any, policy: str, mode: str, value: str | None, env_data: dict[str, str | None]) -> dict[str, Any]:
    """What decides the episodes of one agent (see the module docstring): ``env_data`` holds each split's data hash
    (``recording.fingerprints.env_data_fingerprint``; None for an env whose data cannot be seen)."""
    from oreo_agents.config import to_dict
    from oreo_agents.pipeline.collect import PATH_SETTINGS, _resolved, weights_fingerprints
    from oreo_agents.pipeline.options import ENV_WORKER_OPTIONS, RAY_OPTIONS, is_model_policy
    from oreo_agents.recording.fingerprints import DigestCache

    settings = {k: v for k, v in to_dict(cfg).items() if k not in _NOT_CONTENT | set(ENV_WORKER_OPTIONS) | set(RAY_OPTIONS)}
    settings.update(source=SOURCE, policy=policy, select=mode, value=value, split=list(env_data))
    for key in PATH_SETTINGS:
        if key in settings:
            settings[key] = _resolved(settings[key])
    if is_model_policy(policy):
        settings["policy"] = _resolved(policy)
    settings.update(weights_fingerprints(policy if is_model_policy(policy) else None, value, DigestCache()))
    if any(v is not None for v in env_data.values()):
        settings["env_data_sha256"] = dict(env_data)
    return settings


def open_episodes(folder: Path, settings: dict[str, Any], *, resume: bool) -> Any:
    """The agent's episode writer: the folder resumed when its manifest holds these settings, else started afresh
    (a folder not written by eval is refused: it may be someone's data)."""
    from oreo_agents.pipeline.collect import PATH_SETTINGS
    from oreo_agents.recording.writer import ShardWriter, read_manifest, settings_differences

    if folder.exists():
        manifest = read_manifest(folder) or {}
        stored = manifest.get("settings") or {}
        if stored.get("source") != SOURCE:
            raise OreoError(f"{folder} exists and was not written by eval; choose another --out")
        diffs, _ = settings_differences(stored, settings, path_keys=set(PATH_SETTINGS), unverified_keys=set())
        if diffs or not resume:
            why = "--no-resume" if not diffs else f"played with other settings ({'; '.join(diffs)[:200]})"
            console.print(f"[dim]{escape(str(folder))}: {escape(why)}; playing its episodes again[/]", soft_wrap=True)
            shutil.rmtree(folder)
    return ShardWriter(folder, settings, resume=True, shard_size=EVAL_SHARD_SIZE, path_keys=PATH_SETTINGS,
                       unverified_keys=set())


def played_outcomes(folder: Path, split: str, ids: Callable[[int], str], total: int) -> dict[int, Outcome]:
    """The outcomes of the episodes of ``split`` already committed in ``folder``, by episode index."""
    from oreo_agents.recording.writer import shard_paths

    shards = shard_paths(folder)
    if not shards:
        return {}
    import pyarrow.parquet as pq

    index = {ids(i): i for i in range(total)}
    done: dict[int, Outcome] = {}
    columns = ["episode_id", "task_id", "split", "task_type", "success", "total_reward", "steps", "termination"]
    for shard in shards:
        for row in pq.read_table(shard, columns=columns).to_pylist():
            i = index.get(row["episode_id"])
            if i is not None:
                done[i] = Outcome(i, row["task_id"], row["split"], row["task_type"], bool(row["success"]),
                                  float(row["total_reward"]), len(row["steps"]), row["termination"])
    return done

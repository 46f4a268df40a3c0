"""Same settings, same episodes: expert, random and noisy-expert episodes recorded before the architecture refactor
(``tests/data/golden_episodes.json``: actions, observations, rewards, terminations) are what ``collect`` records now.

The golden file was written by ``oreo-agents collect --env E --policy P --episodes 4 --split train --max-steps 12
--seed 3`` (ALFWorld: ``--num-tasks 4`` on the session's test games) at commit a1c22f0; any change to an env, a
policy, the recorder or the rollout loop that alters an episode fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_episodes.json").read_text())


def _episodes(folder: Path) -> list[dict]:
    rows = [r for f in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return [{"episode_id": r["episode_id"], "task_id": r["task_id"], "termination": r["termination"], "success": r["success"],
             "steps": [[s["action"], s["observation"], round(float(s["reward"]), 6), s["won"]] for s in r["steps"]]}
            for r in sorted(rows, key=lambda r: r["episode_id"])]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_collect_records_the_golden_episodes(name, tmp_path, alfworld_games_root):
    from oreo_agents.cli.app import cli

    env, policy = name.split("-", 1)
    args = ["collect", "--env", env, "--policy", policy, "--episodes", "4", "--split", "train", "--max-steps", "12",
            "--seed", "3", "--out", str(tmp_path / name)]
    if env == "alfworld":
        args += ["--games-root", str(alfworld_games_root), "--num-tasks", "4"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = _episodes(tmp_path / name)
    assert [e["episode_id"] for e in got] == [e["episode_id"] for e in GOLDEN[name]]
    for mine, gold in zip(got, GOLDEN[name]):
        assert mine == gold, f"{name} {gold['episode_id']}: first differing step " + str(
            next((i for i, (a, b) in enumerate(zip(mine["steps"], gold["steps"])) if a != b), "count"))

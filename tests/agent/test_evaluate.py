"""Evaluation: outcomes on the real envs, confidence intervals, and the Markdown / CSV / PNG reports."""

from __future__ import annotations

import csv

import gymnasium as gym
import pytest

import oreo_agents  # noqa: F401
from oreo_agents.agent.evaluate import run_episodes, summarize, write_reports
from oreo_agents.stats import bootstrap, wilson
from oreo_agents.policies import make_policy


def test_wilson_and_bootstrap_intervals():
    lo, hi = wilson(8, 10)
    assert round(lo, 3) == 0.490 and round(hi, 3) == 0.943  # Wilson 95% for 8/10, computed by hand
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0 and wilson(0, 0) == (0.0, 1.0)
    blo, bhi = bootstrap([True] * 8 + [False] * 2, seed=0)
    assert blo <= 0.8 <= bhi and bootstrap([True] * 4) == (1.0, 1.0)


def test_expert_on_math_and_alfworld_and_report_files(alfworld_games_root, tmp_path):
    math_out = run_episodes(lambda: gym.make("oreo_agents/Math-v0", split="test", num_tasks=5, expert=True),
                            make_policy("expert"), num_envs=3)
    assert len(math_out) == 5 and all(o.success for o in math_out)
    alf_out = run_episodes(
        lambda: gym.make("oreo_agents/ALFWorld-v0", data_path=str(alfworld_games_root), split="valid_unseen", expert=True),
        make_policy("expert"), num_envs=2,
    )
    assert len(alf_out) == 2 and all(o.success and o.split == "valid_unseen" for o in alf_out)
    rnd = run_episodes(
        lambda: gym.make("oreo_agents/ALFWorld-v0", data_path=str(alfworld_games_root), split="valid_unseen", max_steps=3),
        make_policy("random", seed=0), num_envs=2,
    )
    assert all(o.termination == "truncated" and o.length == 3 for o in rnd)  # no game is solvable in 3 steps
    rows = summarize(math_out, label="expert", select="greedy") + summarize(rnd, label="random", select="greedy")
    top = [r for r in rows if r.task_type == "all"]
    assert [(r.agent, r.split, r.n, r.successes) for r in top] == [("expert", "test", 5, 5), ("random", "valid_unseen", 2, 0)]
    paths = write_reports(rows, tmp_path / "eval", metric="accuracy")
    with paths["csv"].open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) and float(table[0]["rate"]) == 1.0
    md = paths["md"].read_text()
    assert "| expert | greedy | test | all | 5 | 100.0% |" in md and "random" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 5000


@pytest.mark.parametrize("ci", ["wilson", "bootstrap"])
def test_summary_groups_by_split_and_task_type(ci):
    from oreo_agents.agent.evaluate import Outcome

    outs = [Outcome(i, f"t{i}", "valid_seen", "a" if i % 2 else "b", i < 3, float(i < 3), 5, "x") for i in range(6)]
    rows = summarize(outs, label="m", select="value", ci=ci)
    assert [(r.task_type, r.n, r.successes) for r in rows] == [("all", 6, 3), ("a", 3, 1), ("b", 3, 2)]
    assert all(r.ci_low <= r.rate <= r.ci_high for r in rows)


def test_eval_plays_every_listed_task_once_on_the_web_shop():
    """Envs that list their tasks (here WebShop's ``tasks``) are played by index, each once: not drawn by reset seed."""
    import gymnasium as gym

    from oreo_agents.agent.evaluate import episode_count, run_episodes
    from oreo_agents.policies import make_policy

    def make_env():
        return gym.make("oreo_agents/WebShop-v0", split="test", num_products=200, expert=True)

    n = episode_count(make_env())
    outcomes = run_episodes(make_env, make_policy("expert"), num_envs=3)
    assert len(outcomes) == n and len({o.task_id for o in outcomes}) == n

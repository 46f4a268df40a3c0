"""The expert check: the replay reproduces a real ALFWorld episode and names the expert's action at each state, only
the states where the agent left it are scored (by the same V and log-probs an agent would compute), the shares are
counted by hand, and `value-report --policy` writes the section from an eval-like dataset."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from oreo_agents import envs  # noqa: E402
from oreo_agents.agent.expert_check import (  # noqa: E402
    ExpertCheck,
    check_episodes,
    expert_actions,
    markdown,
    prefers_expert,
    summarize_checks,
)
from oreo_agents.agent.selection import policy_logprobs, value_at_ends  # noqa: E402
from oreo_agents.cli.app import cli  # noqa: E402
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.models.loading import load_policy  # noqa: E402
from oreo_agents.prompting import context_ids, encode_text, format_for, reply_terminator_ids  # noqa: E402
from tests.models.tiny_lm import build_value  # noqa: E402

ALF = "oreo_agents/ALFWorld-v0"
WRONG = "inventory"  # never the expert's next action in a pick-and-place game


def _check(v_a: float, v_e: float, lp_a: float = 0.0, lp_e: float = 0.0, success: bool = False, split: str = "s",
           episode: str = "e") -> ExpertCheck:
    return ExpertCheck(episode, split, success, 0, "look", "go to desk 1", v_a, v_e, lp_a, lp_e)


def test_shares_count_wins_and_half_ties_by_hand():
    checks = [_check(0.1, 0.5, lp_a=-1, lp_e=-3), _check(0.5, 0.1, lp_a=-1, lp_e=-3), _check(0.2, 0.2, lp_a=-4, lp_e=-1),
              _check(0.0, 0.3, success=True, split="t", episode="f", lp_a=-1, lp_e=-2)]
    assert prefers_expert(checks, "v") == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert prefers_expert(checks, "logprob") == pytest.approx(1 / 4)
    assert prefers_expert([], "v") is None
    s = summarize_checks(checks)
    assert (s["states"], s["episodes"]) == (4, 2)
    assert s["mean_v_margin"] == pytest.approx((0.4 - 0.4 + 0 + 0.3) / 4)
    assert s["in_successes"]["states"] == 1 and s["in_successes"]["v_prefers_expert"] == 1.0
    assert s["in_failures"]["v_prefers_expert"] == pytest.approx(1.5 / 3)
    assert set(s["splits"]) == {"s", "t"}
    assert s["examples"][0]["v_action"] == 0.5  # where V preferred the agent's action most comes first
    text = markdown(s)
    assert "| all: 4 (2) | 62%" in text and "in failed episodes: 3 (1) | 50%" in text


def _play(env, actions_or_expert: list[str | None]) -> dict:
    """A recorded-like row of one ALFWorld episode: None in the list takes the expert's action."""
    obs, info = env.reset(seed=0, options={"task": 0})
    row = dict(episode_id="ep0", env_id=ALF, task_id=info["task_id"], split="train", task_type=info["task_type"],
               goal=info["goal"], initial_observation=obs, steps=[], success=False, termination="truncated")
    for a in actions_or_expert:
        action = a or info["expert_action"]
        obs, reward, terminated, truncated, info = env.step(action)
        row["steps"].append(dict(action=action, reply=action, observation=obs, reward=float(reward),
                                 won=bool(info.get("won")), prompt_token_ids=[], completion_token_ids=[],
                                 completion_logprobs=[], value=math.nan))
        if terminated or truncated:
            break
    return row


@pytest.fixture(scope="module")
def episode(alfworld_games_root):
    env = envs.make(ALF, games_root=alfworld_games_root, num_tasks=2, max_steps=30, expert=True)
    path = _play(env, [None, WRONG, None, WRONG])
    replay = envs.make(ALF, games_root=alfworld_games_root, num_tasks=2, max_steps=30, expert=True)
    return path, replay


def test_the_replay_names_the_experts_action_at_every_recorded_state(episode):
    row, replay = episode
    expert = expert_actions(replay, row)
    assert len(expert) == 4
    assert expert[0] == row["steps"][0]["action"] and expert[2] == row["steps"][2]["action"]
    assert expert[1] not in (None, WRONG) and expert[3] not in (None, WRONG)
    tampered = {**row, "steps": [dict(s) for s in row["steps"]]}
    tampered["steps"][1]["observation"] = "You fly away."
    with pytest.raises(OreoError, match="step 1"):
        expert_actions(replay, tampered)
    with pytest.raises(OreoError, match="not among"):
        expert_actions(replay, {**row, "task_id": "train/nowhere/trial_0"})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base, value, tok, value_dir = build_value(tmp_path_factory.mktemp("expert-check"))
    return value, load_policy(base).eval(), tok, base, value_dir


def test_only_the_states_off_the_experts_path_are_scored_as_an_agent_would(episode, tiny):
    row, replay = episode
    value, lm, tok, _, _ = tiny
    checks = check_episodes(value, lm, tok, [row], lambda r: replay)
    assert [c.step for c in checks] == [1, 3] and all(c.action == WRONG for c in checks)
    fmt = format_for(ALF)
    for c in checks:  # the same numbers as one uncached forward over that state's context and the two replies
        context, _ = context_ids(fmt, tok, goal=row["goal"], initial_observation=row["initial_observation"],
                                 steps=row["steps"][: c.step])
        conts = [encode_text(tok, fmt.reply_text(a)) + reply_terminator_ids(fmt, tok) for a in (WRONG, c.expert_action)]
        (v_a, v_e), = value_at_ends(value, [context], [conts])
        (lp_a, lp_e), = policy_logprobs(lm, [context], [conts])
        assert (c.v_action, c.v_expert) == pytest.approx((v_a, v_e), abs=1e-4)
        assert (c.logprob_action, c.logprob_expert) == pytest.approx((sum(lp_a), sum(lp_e)), abs=1e-3)


def test_value_report_with_policy_adds_the_expert_check(episode, tiny, alfworld_games_root, tmp_path):
    from oreo_agents.recording.writer import ShardWriter

    row, _ = episode
    _, _, _, base, value_dir = tiny
    settings = {"source": "eval", "games_root": str(alfworld_games_root), "num_tasks": 2, "max_steps": 30}
    meta = dict(policy="m", checkpoint="", sampling="{}", seed=0, env_version="", grammar_hash="", tokenizer="",
                package_version="", extra="{}")
    with ShardWriter(tmp_path / "data", settings=settings) as writer:
        writer.add({**row, "total_reward": 0.0, "length": len(row["steps"]), "metadata": meta})
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["value-report", "--value", str(value_dir), "--policy", str(base),
                                      "--data", str(tmp_path / "data"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "expert check" in result.output and "on 2 states" in result.output
    summary = json.loads((out / "expert_check.json").read_text())
    assert summary["states"] == 2 and summary["episodes"] == 1
    assert "## The expert check" in (out / "value_report.md").read_text()

"""The value lens on a tiny model: V read at the right positions, the report's files, and the value-report command."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from oreo_agents.agent.value_lens import score_episodes, summarize_lens  # noqa: E402
from oreo_agents.agent.value_report import FILES, write_value_report  # noqa: E402
from oreo_agents.cli.app import cli  # noqa: E402
from oreo_agents.prompting import encode_episode, format_for  # noqa: E402
from tests.models.tiny_lm import build_value  # noqa: E402

ALF = "oreo_agents/ALFWorld-v0"


def _row(i: int, actions: list[str], success: bool, split: str = "valid_unseen") -> dict:
    steps = [dict(action=a, reply=a, observation=f"You arrive at loc {i + k}. Nothing happens.", reward=0.0, won=False,
                  prompt_token_ids=[], completion_token_ids=[], completion_logprobs=[], value=math.nan)
             for k, a in enumerate(actions)]
    steps[-1]["won"], steps[-1]["reward"] = success, float(success)
    return dict(episode_id=f"ep{i}", env_id=ALF, task_id=f"game-{i}", split=split, task_type="pick_and_place_simple",
                goal="put a mug in cabinet", initial_observation=f"You are in a room {i}. You see a cabinet 1.",
                steps=steps, total_reward=float(success), success=success, length=len(steps),
                termination="success" if success else "truncated")


ROWS = [_row(0, ["go to cabinet 1", "open cabinet 1", "take mug 1 from cabinet 1"], True),
        _row(1, ["look", "look"], False),
        _row(2, ["go to cabinet 1"], True, split="train"),
        _row(3, ["inventory", "go to cabinet 1", "look", "look"], False, split="train")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _, value, tok, value_dir = build_value(tmp_path_factory.mktemp("lens"))
    return value, tok, value_dir


def test_values_are_read_just_before_and_right_after_each_reply(model):
    value, tok, _ = model
    episodes = score_episodes(value, tok, ROWS, batch_size=3)  # batches mix lengths: padding must not change V
    assert [e.episode_id for e in episodes] == ["ep0", "ep1", "ep2", "ep3"]
    for row, e in zip(ROWS, episodes):
        enc = encode_episode(format_for(ALF), tok, goal=row["goal"], initial_observation=row["initial_observation"],
                             steps=row["steps"])
        ids = torch.tensor([enc.input_ids])
        with torch.no_grad():
            full = value(ids, torch.ones_like(ids))[0]
        assert e.v_before == pytest.approx([float(full[s - 1]) for s in enc.step_starts], abs=1e-5)
        assert e.v_after == pytest.approx([float(full[t - 1]) for t in enc.step_ends], abs=1e-5)
        assert e.advantages == pytest.approx([a - b for a, b in zip(e.v_after, e.v_before)])
        assert e.actions == [s["action"] for s in row["steps"]] and e.success == row["success"]


def test_summary_and_report_files(model, tmp_path):
    value, tok, _ = model
    episodes = score_episodes(value, tok, ROWS)
    summary = summarize_lens(episodes, bins=5, top=2)
    assert summary["episodes"] == 4 and summary["successes"] == 2 and summary["states"] == 10
    assert 0.0 <= summary["auc_v0"] <= 1.0 and 0.0 <= summary["ece"] <= 1.0
    assert summary["splits"]["train"]["episodes"] == 2 and len(summary["auc_by_step"]) == 4
    assert summary["auc_by_step"][3] is None  # only one episode (a failure) reaches step 3
    assert [len(d["steps"]) for d in summary["decisive"]] == [2, 2, 1, 2]
    first = summary["decisive"][0]["steps"][0]
    assert abs(first["advantage"]) == max(abs(a) for a in episodes[0].advantages)
    write_value_report(episodes, tmp_path, title="toy", bins=5, top=2)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 100, name
    data = json.loads((tmp_path / "value_report.json").read_text())  # strict JSON: no NaN
    assert data["auc_v0"] == summary["auc_v0"] and len(data["episode_values"]) == 4
    html = (tmp_path / "value_trace.html").read_text()
    assert "success" in html and "failure" in html and "rgba(" in html  # coloured by A_t
    text = (tmp_path / "value_trace.txt").read_text()
    assert "SUCCESS" in text and "FAILURE" in text and "decisive" in text
    assert "AUC of V(s_0)" in (tmp_path / "value_report.md").read_text()


def test_value_report_command_on_a_recorded_dataset(model, tmp_path):
    from oreo_agents.recording.writer import ShardWriter

    _, _, value_dir = model
    with ShardWriter(tmp_path / "data", settings={"test": 1}) as writer:
        for row in ROWS:
            writer.add({**row, "metadata": dict(policy="expert", checkpoint="", sampling="{}", seed=0, env_version="",
                                                grammar_hash="", tokenizer="", package_version="", extra="{}")})
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["value-report", "--value", str(value_dir), "--data", str(tmp_path / "data"),
                                      "--split", "train", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AUC of V(s0)" in result.output and "ECE" in result.output
    assert json.loads((out / "value_report.json").read_text())["episodes"] == 2  # the train split only
    bad = CliRunner().invoke(cli, ["value-report", "--value", str(tmp_path / "nope"), "--data", str(tmp_path / "data")])
    assert bad.exit_code == 2 and "--value" in bad.output and "Traceback" not in bad.output

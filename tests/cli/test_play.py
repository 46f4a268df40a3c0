"""``oreo-agents play`` and ``oreo-agents eval`` run end to end in a non-interactive terminal (CliRunner)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from oreo_agents.cli.app import cli


def test_play_expert_alfworld_plain_lines_trace_and_svg(alfworld_games_root, tmp_path):
    trace, svg = tmp_path / "trace.jsonl", tmp_path / "play.svg"
    result = CliRunner().invoke(cli, [
        "play", "--env", "alfworld", "--policy", "expert", "--data-path", str(alfworld_games_root),
        "--split", "valid_unseen", "--game", "0", "--save-trace", str(trace), "--export", str(svg),
    ])
    assert result.exit_code == 0, result.output
    assert "goal:" in result.output and "episode 1: success" in result.output
    assert "played 1 episode(s): success 1/1" in result.output
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert rows and rows[-1]["done"] == "success" and rows[-1]["reward"] == 1.0
    assert all(r["candidates"][0]["chosen"] and r["action"] == r["candidates"][0]["action"] for r in rows)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    text = svg.read_text()
    assert text.startswith("<svg") and "goal" in text and "observation" in text  # the rendered frames


def test_play_model_with_value_candidates_and_html(tmp_path):
    torch = pytest.importorskip("torch")
    from oreo_agents.models.loading import ValueModel
    from tests.models.tiny_lm import build

    tiny = build(tmp_path)
    value = ValueModel.from_base(tiny)
    torch.nn.init.normal_(value.head.weight)
    value.save_pretrained(tmp_path / "value")
    trace, html = tmp_path / "t.jsonl", tmp_path / "play.html"
    result = CliRunner().invoke(cli, [
        "play", "--env", "math", "--policy", str(tiny), "--value", str(tmp_path / "value"), "--select", "value",
        "--k", "3", "--max-new-tokens", "6", "--max-steps", "2", "--num-tasks", "3", "--seed", "1",
        "--save-trace", str(trace), "--export", str(html),
    ])
    assert result.exit_code == 0, result.output
    assert "candidate:" in result.output and "V " in result.output
    assert "V before" in result.output and "A_t" in result.output  # the chosen action's advantage, every step
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    for r in rows:
        assert len(r["candidates"]) == 3 and sum(c["chosen"] for c in r["candidates"]) == 1
        chosen = next(c for c in r["candidates"] if c["chosen"])
        assert chosen["value"] == max(c["value"] for c in r["candidates"])
        assert r["v_after"] == chosen["value"] and r["v_before"] is not None
        assert r["advantage"] == pytest.approx(r["v_after"] - r["v_before"])
    page = html.read_text()
    assert "<html" in page.lower() and "A_t" in page  # the rendered live view shows it too


def test_play_and_eval_errors_are_one_line(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli, ["play", "--env", "math", "--policy", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "--policy" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(cli, ["play", "--env", "math", "--policy", "expert", "--export", "x.txt"])
    assert bad.exit_code == 2 and "--export" in bad.output
    bad = runner.invoke(cli, ["eval", "--env", "alfworld", "--policy", "expert", "--select", "beam"])
    assert bad.exit_code == 2 and "--select beam" in bad.output


def test_eval_command_writes_reports(alfworld_games_root, tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, [
        "eval", "--env", "alfworld", "--policy", "expert", "--policy", "random", "--data-path", str(alfworld_games_root),
        "--split", "valid_unseen", "--num-envs", "2", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "success rate" in result.output and "100.0%" in result.output
    assert {p.name for p in out.iterdir()} >= {"eval.md", "eval.csv", "eval.png", "outcomes.jsonl"}
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert [(o["agent"], o["success"]) for o in outcomes][:2] == [("expert", True), ("expert", True)]
    assert len(outcomes) == 4 and "| expert | greedy | valid_unseen | all | 2 | 100.0% |" in (out / "eval.md").read_text()


def test_eval_with_a_value_model_saves_episodes_and_writes_the_value_lens(tmp_path):
    torch = pytest.importorskip("torch")
    from oreo_agents.models.loading import ValueModel, load_tokenizer
    from tests.models.tiny_lm import build

    tiny = build(tmp_path)
    value = ValueModel.from_base(tiny)
    torch.nn.init.normal_(value.head.weight)
    value.save_pretrained(tmp_path / "value", tokenizer=load_tokenizer(tiny))
    out = tmp_path / "ev"
    args = ["eval", "--env", "math", "--policy", str(tiny), "--value", str(tmp_path / "value"), "--select", "greedy",
            "--max-new-tokens", "6", "--max-steps", "2", "--num-tasks", "3", "--num-envs", "3", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "value lens" in result.output and "AUC of V(s0)" in result.output
    episodes = list((out / "episodes").iterdir())
    assert len(episodes) == 1 and list(episodes[0].glob("data/*.parquet"))  # a recorded dataset, reusable
    report = json.loads((out / "value" / "value_report.json").read_text())
    assert report["episodes"] == 3 and (out / "value" / "value_curves.png").is_file()
    again = CliRunner().invoke(cli, args)  # rerunning eval into the same --out replaces its own episodes
    assert again.exit_code == 0, again.output

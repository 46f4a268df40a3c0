"""`oreo-agents games` list / check on the shared fixture set, and its one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from oreo_agents.cli.app import cli


def test_games_list_and_check(alfworld_games_root):
    runner = CliRunner()
    res = runner.invoke(cli, ["games", "list", "--split", "valid_unseen", "--out", str(alfworld_games_root)])
    assert res.exit_code == 0, res.output
    assert "2 valid_unseen games" in res.output
    res = runner.invoke(cli, ["games", "check", "--split", "valid_unseen", "--out", str(alfworld_games_root)])
    assert res.exit_code == 0, res.output
    assert "100%" in res.output and "│ all " in res.output


def test_games_generate_is_a_noop_when_the_set_exists(alfworld_games_root):
    res = CliRunner().invoke(cli, ["games", "generate", "--split", "train", "--num-games", "6", "--out",
                                   str(alfworld_games_root)])
    assert res.exit_code == 0, res.output
    assert "6 train games ready" in res.output and "generating" not in res.output


def test_games_bad_data_path_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["games", "list", "--data-path", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert str(tmp_path / "missing") in res.output and "Traceback" not in res.output

"""The CLI entry point: every command is listed, and `--help` imports none of the heavy stack."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from oreo_agents.cli.app import COMMANDS, cli


def test_help_lists_all_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_help_imports_no_heavy_module():
    code = (
        "import sys; from oreo_agents.cli.app import cli\n"
        "try:\n    cli(['--help'], prog_name='oreo-agents')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'alfworld', 'textworld', 'accelerate') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_every_command_module_loads_and_has_help():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"`oreo-agents {name} --help` failed: {result.output}"
        assert "Usage:" in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "frobnicate" in result.output


# --- issue #14 item 11: user text in rich messages is escaped ---------------------------------------------------------
def test_markup_in_an_env_name_is_printed_not_parsed(tmp_path):
    result = CliRunner().invoke(cli, ["collect", "--env", "foo[/]", "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2, result.output  # was a MarkupError traceback
    assert "foo[/]" in result.output and "Traceback" not in result.output


def test_bracketed_words_in_error_messages_survive():
    from oreo_agents.console import err_console, user_errors
    from oreo_agents.errors import OreoError

    @user_errors
    def fail():
        raise OreoError("no dataset at runs/[old]/data [bold]here[/bold]")

    with err_console.capture() as capture:
        try:
            fail()
        except SystemExit as exc:
            assert exc.code == 2
    assert "runs/[old]/data [bold]here[/bold]" in capture.get()


def test_collect_summary_prints_paths_and_task_types_as_written():
    from oreo_agents.pipeline.collect import CollectConfig, print_summary
    from oreo_agents.console import console
    from oreo_agents.recording.collect import CollectSummary

    summary = CollectSummary(recorded=1, successes=1, steps=3, seconds=1.0, by_task_type={"[red]t": [1, 1]})
    with console.capture() as capture:
        print_summary(CollectConfig(out="runs/[old]"), summary, total=1)
    text = capture.get()
    assert "runs/[old]" in text and "[red]t" in text


def test_play_frame_shows_game_text_with_brackets():
    from rich.console import Console

    from oreo_agents.pipeline.play import PlayStep, render
    from oreo_agents.turns import Candidate, Decision

    decision = Decision("click[b]", reply="r", candidates=[Candidate("r", "click[b]", 0.0, 0.0, chosen=True)])
    event = PlayStep(episode=1, episodes=1, task="t", goal="buy [red] shoes", decision=decision,
                     observation="search[red shoes]", reward=0.0, step=1, done="", wins=0, played=0)
    out = Console(width=120, record=True)
    with out.capture() as capture:
        out.print(render(event, 5))
    text = capture.get()
    assert "buy [red] shoes" in text and "search[red shoes]" in text and "click[b]" in text

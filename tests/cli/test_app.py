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

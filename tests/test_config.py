"""Config dataclasses: defaults < YAML < flags, unknown keys named, help text from field metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from oreo_agents.config import ConfigError, build_config, config_options, from_dict, load_yaml, save_yaml


@dataclass
class DemoConfig:
    env: str = field(default="alfworld", metadata={"help": "Environment family."})
    episodes: int = field(default=10, metadata={"help": "Episodes to record."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    resume: bool = field(default=True, metadata={"help": "Resume a partial run."})
    task_types: list[str] = field(default_factory=list, metadata={"help": "Task types to keep."})
    data_path: str | None = field(default=None, metadata={"help": "Real data root."})


@click.command()
@config_options(DemoConfig)
def demo(**kwargs):
    cfg = build_config(DemoConfig, kwargs)
    click.echo(repr(cfg))


def run(*args):
    result = CliRunner().invoke(demo, list(args))
    return result


def test_defaults_when_nothing_given():
    out = run().output
    assert "DemoConfig(env='alfworld', episodes=10, temperature=1.0, resume=True, task_types=[], data_path=None)" in out


def test_yaml_then_flags_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("env: math\nepisodes: 5\ntask-types: [a, b]\nresume: false\n")
    out = run("--config", str(cfg_file), "--episodes", "7").output
    assert "env='math'" in out and "episodes=7" in out and "task_types=['a', 'b']" in out and "resume=False" in out


def test_repeated_flag_builds_list_and_bool_flag_pair():
    out = run("--task-types", "x", "--task-types", "y", "--no-resume").output
    assert "task_types=['x', 'y']" in out and "resume=False" in out


def test_unknown_yaml_key_is_named(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("episodez: 5\n")
    result = run("--config", str(cfg_file))
    assert result.exit_code == 2
    assert "unknown option 'episodez'" in result.output and str(cfg_file) in result.output


def test_missing_and_malformed_yaml_files(tmp_path):
    assert "config file not found" in run("--config", str(tmp_path / "nope.yaml")).output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert "must hold a mapping" in run("--config", str(bad)).output


def test_help_lists_every_field_with_its_help():
    out = run("--help").output
    for flag, text in [("--episodes", "Episodes to record."), ("--task-types", "Task types"), ("--resume / --no-resume", "")]:
        assert flag in out and text in out


def test_round_trip_through_yaml(tmp_path):
    cfg = DemoConfig(env="webshop", episodes=3, task_types=["t"])
    save_yaml(cfg, tmp_path / "saved.yaml")
    out = run("--config", str(tmp_path / "saved.yaml")).output
    assert "env='webshop'" in out and "episodes=3" in out and "task_types=['t']" in out


def test_from_dict_rejects_unknown_keys():
    assert from_dict(DemoConfig, {"episodes": 2}).episodes == 2
    with pytest.raises(ConfigError, match="unknown option"):
        from_dict(DemoConfig, {"nope": 1}, source="run.yaml")


def test_every_shipped_recipe_loads_into_its_command_config():
    """configs/<command>-*.yaml: every key is an option of that command and every value passes its checks."""
    from pathlib import Path

    from oreo_agents.cli.collect import CollectConfig
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.pipeline.compare import CompareConfig

    classes = {"collect": CollectConfig, "train": TrainConfig, "compare": CompareConfig}
    recipes = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(recipes) >= 10
    for path in recipes:
        cfg = build_config(classes[path.name.split("-")[0]], {"config_file": path})  # raises on an unknown key
        for key, value in load_yaml(path).items():
            assert getattr(cfg, key) == value, (path.name, key)

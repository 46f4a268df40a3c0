"""Config dataclasses: defaults < YAML < flags, unknown keys named, help text from field metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from oreo_agents.cli.flags import config_options
from oreo_agents.config import ConfigError, FieldKind, build_config, convert, from_dict, load_yaml, save_yaml
from oreo_agents.console import user_errors


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
@user_errors
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

    from oreo_agents.pipeline.collect import CollectConfig
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.pipeline.compare import CompareConfig

    classes = {"collect": CollectConfig, "train": TrainConfig, "compare": CompareConfig}
    recipes = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(recipes) >= 10
    for path in recipes:
        cfg = build_config(classes[path.name.split("-")[0]], {"config_file": path})  # raises on an unknown key
        for key, value in load_yaml(path).items():
            assert getattr(cfg, key) == value, (path.name, key)


# --- issue #14 item 9: YAML values go through the flags' click types and choices --------------------------------------
BAD_VALUES = [
    ("collect", "k", "three", "is not a valid integer"),
    ("collect", "temperature", "hot", "is not a valid float"),
    ("collect", "max_steps", "ten", "is not a valid integer"),
    ("collect", "seed", "x", "is not a valid integer"),
    ("collect", "resume", "maybe", "is not a valid boolean"),
    ("collect", "select", "oracle", "is not one of"),
    ("collect", "episodes", 3.5, "is not a valid integer"),
    ("collect", "episodes", True, "is not a valid integer"),
    ("collect", "episodes", None, "null is not allowed"),
    ("collect", "policy", ["expert"], "expected one value, got a list"),
    ("train", "algo", "nonsense", "is not one of 'oreo', 'sft', 'rft', 'dpo'"),
    ("train", "loss_level", "galaxy", "is not one of"),
    ("train", "mixed_precision", "tpu", "is not one of"),
    ("train", "learning_rate", "fast", "is not a valid float"),
    ("train", "batch_size", "three", "is not a valid integer"),
    ("train", "data", [1, {"a": 1}], "expected one value, got a mapping"),
]


def _config_class(command):
    from oreo_agents.pipeline.collect import CollectConfig
    from oreo_agents.learning.config import TrainConfig

    return {"collect": CollectConfig, "train": TrainConfig}[command]


@pytest.mark.parametrize("command,key,value,message", BAD_VALUES)
def test_bad_yaml_value_is_one_error_naming_file_and_key(tmp_path, command, key, value, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({key: value}))
    with pytest.raises(ConfigError) as err:
        build_config(_config_class(command), {"config_file": path})
    assert f"--config {path}: key '{key}'" in str(err.value) and message in str(err.value)


def test_yaml_strings_parse_like_flags_and_numbers_must_fit(tmp_path):
    from oreo_agents.learning.config import TrainConfig

    path = tmp_path / "ok.yaml"
    path.write_text("learning_rate: 5e-7\nbatch_size: '16'\nepochs: 2.0\nbeta: 1\ngradient_checkpointing: 'yes'\ndata: one.parquet\n")
    cfg = build_config(TrainConfig, {"config_file": path})
    assert cfg.learning_rate == 5e-7 and isinstance(cfg.learning_rate, float)  # YAML 1.1 reads 5e-7 as a string
    assert cfg.batch_size == 16 and cfg.epochs == 2 and isinstance(cfg.epochs, int)
    assert cfg.beta == 1.0 and cfg.gradient_checkpointing is True and cfg.data == ["one.parquet"]


def test_bad_value_is_reported_before_any_data_is_read(tmp_path):
    from oreo_agents.cli.app import cli

    path = tmp_path / "c.yaml"
    path.write_text(f"batch_size: three\ndata: {tmp_path / 'missing.parquet'}\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(path)])
    assert result.exit_code == 2 and "key 'batch_size': 'three' is not a valid integer" in result.output
    assert "missing.parquet" not in result.output and "Traceback" not in result.output


def test_from_dict_checks_values_too():
    with pytest.raises(ConfigError, match="run.yaml: key 'episodes': 'ten' is not a valid integer"):
        from_dict(DemoConfig, {"episodes": "ten"}, source="run.yaml")


# --- the click-free parser agrees with click's types, value for value ------------------------------------------------
PARITY = [
    (int, ["5", " 7 ", "-3", "5e3", "3.0", "ten", "", "0x10", 4, 4.0]),
    (float, ["5e-7", "1", " 2.5 ", "inf", "nan", "hot", "", 3, 3.5]),
    (bool, ["yes", "No", " TRUE ", "0", "1", "on", "off", "t", "f", "y", "n", "", "maybe", True, False]),
    (str, ["x", "", "3", 3, 2.5]),
]


@pytest.mark.parametrize("tp,values", PARITY)
def test_yaml_values_parse_exactly_as_click_parses_the_flag(tp, values):
    """config.convert (no click) and click 8.4's type give the same value, or both refuse with the same message."""
    import math

    for value in values:
        try:
            theirs = ("ok", click.types.convert_type(tp).convert(value, None, None))
        except click.BadParameter as exc:
            theirs = ("error", exc.message)
        try:
            mine = ("ok", convert(value, FieldKind(tp), "k"))
        except ConfigError as exc:
            mine = ("error", str(exc).removeprefix("k: "))
        if theirs[0] == "ok" and mine[0] == "ok" and isinstance(theirs[1], float) and math.isnan(theirs[1]):
            assert math.isnan(mine[1])
            continue
        assert mine == theirs, (tp, value)
        assert type(mine[1]) is type(theirs[1])


def test_choices_parse_and_refuse_like_click():
    import enum

    class Mode(enum.Enum):
        GREEDY = "greedy"
        VALUE = "value"

    kind = FieldKind(str, choices=("greedy", "value"), enum=Mode)
    assert convert("value", kind, "k") is Mode.VALUE and convert(Mode.GREEDY, kind, "k") is Mode.GREEDY
    with pytest.raises(click.BadParameter) as theirs:
        click.Choice(["greedy", "value"]).convert("best", None, None)
    with pytest.raises(ConfigError) as mine:
        convert("best", kind, "k")
    assert str(mine.value) == f"k: {theirs.value.message}"


def test_config_module_imports_without_click():
    import subprocess
    import sys

    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'click':\n"
            "            raise ImportError('click is blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import oreo_agents.config, oreo_agents.console\nprint('OK')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


def test_dpo_has_its_own_beta_and_refuses_oreos():
    from oreo_agents.learning.config import TrainConfig

    assert build_config(TrainConfig, {"algo": "dpo", "dpo_beta": 0.2}).dpo_beta == 0.2
    with pytest.raises(ConfigError, match="--beta 0.1 is OREO's KL strength and does nothing for --algo dpo: set --dpo-beta"):
        build_config(TrainConfig, {"algo": "dpo", "beta": 0.1})


def test_every_rebuildable_cache_follows_OREO_AGENTS_CACHE(monkeypatch, tmp_path):
    from oreo_agents.config import default_cache_root
    from oreo_agents.envs.alfworld.compiled import default_compiled_dir
    from oreo_agents.models.loading import default_cache_dir

    monkeypatch.setenv("OREO_AGENTS_CACHE", str(tmp_path))
    assert (default_cache_root(), default_cache_dir(), default_compiled_dir()) == (
        tmp_path, tmp_path / "models", tmp_path / "alfworld-compiled")
    monkeypatch.delenv("OREO_AGENTS_CACHE")
    assert default_cache_dir() == default_cache_root() / "models" and ".cache" in str(default_cache_dir())

"""Command configs: one dataclass per command, loadable from YAML, overridable by flags (TRL style).

Each field carries its help text in ``metadata={"help": ...}``. :func:`config_options` turns a dataclass into click
options (``--field-name``), so the flags, the YAML keys and the docs come from one place::

    @dataclass
    class CollectConfig:
        env: str = field(default="alfworld", metadata={"help": "Environment family: alfworld, math or webshop."})

    @click.command()
    @config_options(CollectConfig)
    def collect(**kwargs):
        cfg = build_config(CollectConfig, kwargs)   # defaults < --config YAML < explicit flags

Precedence is defaults, then the YAML file given with ``--config``, then flags given on the command line. Unknown YAML
keys are an error that names the file and the key (a typo must not silently fall back to a default), and every YAML
value goes through the same click type and choices as its flag before the command reads any data:
``--config run.yaml: key 'k': 'three' is not a valid integer.``
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

T = TypeVar("T")


class ConfigError(click.UsageError):
    """A bad config file, key or value; click prints it as a one-line usage error."""


def _field_type(tp: Any) -> tuple[Any, bool]:
    """Map a dataclass annotation to (click type, is_multiple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X] / X | None
        non_none = [a for a in args if a is not type(None)]
        return _field_type(non_none[0]) if len(non_none) == 1 else (str, False)
    if origin in (list, tuple):
        inner, _ = _field_type(args[0]) if args else (str, False)
        return inner, True
    if origin is typing.Literal:
        return click.Choice([str(a) for a in args]), False
    if tp in (int, float, str, bool):
        return tp, False
    return str, False


def config_options(config_cls: type) -> Any:
    """Decorator adding ``--config`` and one click option per dataclass field (default None = "not given")."""

    def decorate(func: Any) -> Any:
        hints = typing.get_type_hints(config_cls)
        for f in reversed(dataclasses.fields(config_cls)):
            if not f.init or f.metadata.get("cli") is False:
                continue
            tp, multiple = _field_type(hints[f.name])
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata.get("help", "")
            default = _default_of(f)
            if default is not None and default != [] and default != "":
                help_text += f"  [default: {default}]"
            if tp is bool:
                option = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)
            else:
                option = click.option(flag, f.name, type=tp, multiple=multiple, default=None, help=help_text)
            func = option(func)
        func = click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="YAML file with any of these options (flags given here override it).",
        )(func)
        return func

    return decorate


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _convert(value: Any, tp: Any, where: str) -> Any:
    """One YAML scalar through the flag's click type: strings are parsed as the flag would parse them ("5e-7" is a
    float, "yes" a bool); YAML's own numbers and booleans must fit the type exactly (no silent 3.5 -> 3, true -> 1)."""
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{where}: expected one value, got a {'list' if isinstance(value, list) else 'mapping'}")
    if tp is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
        raise ConfigError(f"{where}: {value!r} is not a valid integer.")
    if tp is float and isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a valid float.")
    if tp is bool and not isinstance(value, (bool, str)):
        raise ConfigError(f"{where}: {value!r} is not a valid boolean.")
    param_type = click.types.convert_type(tp)
    if isinstance(param_type, click.Choice):
        value = str(value)
    try:
        return param_type.convert(value, None, None)
    except click.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def check_values(config_cls: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` (YAML / stored keys -> values) with each value converted by its field's click type; ConfigError names
    the source, the key and the value that does not fit. None keeps a field's default meaning ("not set")."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown option '{key}' for {config_cls.__name__}")
        where = f"{source}: key '{key}'"
        tp, multiple = _field_type(hints[key])
        if value is None:
            if _accepts_none(hints[key]):
                out[key] = None
                continue
            raise ConfigError(f"{where}: needs a value (null is not allowed here)")
        if multiple:
            items = value if isinstance(value, list) else [value]
            out[key] = [_convert(v, tp, f"{where}[{i}]" if isinstance(value, list) else where) for i, v in enumerate(items)]
        else:
            out[key] = _convert(value, tp, where)
    return out


def _accepts_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(config_cls: type[T], cli_kwargs: dict[str, Any]) -> T:
    """Merge dataclass defaults < YAML (``config_file`` in ``cli_kwargs``) < flags that were given."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values: dict[str, Any] = {}
    config_file = cli_kwargs.pop("config_file", None)
    if config_file is not None:
        values.update(check_values(config_cls, load_yaml(Path(config_file)), f"--config {config_file}"))
    for key, value in cli_kwargs.items():
        if key in names and value is not None and value != ():
            values[key] = list(value) if isinstance(value, tuple) else value
    try:
        cfg = config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


def from_dict(config_cls: type[T], data: dict[str, Any], *, source: str = "config") -> T:
    """Build a config from a mapping (e.g. one stored in a run folder), rejecting unknown keys by name."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)} for {config_cls.__name__}")
    return config_cls(**check_values(config_cls, data, source))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-safe dict of a config (paths as strings)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = str(v) if isinstance(v, Path) else v
    return out


def save_yaml(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))

"""Command configs: one dataclass per command, loadable from YAML, overridable by flags (TRL style).

Each field carries its help text in ``metadata={"help": ...}``; :func:`oreo_agents.cli.flags.config_options` turns a
dataclass into click options (``--field-name``), so the flags, the YAML keys and the docs come from one place::

    @dataclass
    class CollectConfig:
        env: str = field(default="alfworld", metadata={"help": "Environment family: alfworld, math or webshop."})

    @click.command()
    @config_options(CollectConfig)
    def collect(**kwargs):
        cfg = build_config(CollectConfig, kwargs)   # defaults < --config YAML < explicit flags

Precedence is defaults, then the YAML file given with ``--config``, then flags given on the command line. Unknown YAML
keys are an error that names the file and the key (a typo must not silently fall back to a default), and every YAML
value is parsed exactly as its flag would be before the command reads any data:
``--config run.yaml: key 'k': 'three' is not a valid integer.``

This module does not import click: the learner saves and reloads its config through it. YAML values are converted by
:func:`convert`, which follows click 8.4's parameter types (``click/types.py``: ``_NumberParamTypeBase.convert``,
``BoolParamType.bool_states``, ``Choice.get_invalid_choice_message``) message for message; ``tests/test_config.py``
checks the two agree value by value.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from oreo_agents.errors import OreoError

T = TypeVar("T")


class ConfigError(OreoError):
    """A bad config file, key or value (the CLI prints it as one line and exits with status 2)."""


@dataclasses.dataclass(frozen=True)
class FieldKind:
    """How a field's values are parsed: ``base`` is int, float, str or bool; ``choices`` lists the allowed strings of a
    Literal or Enum field (``enum`` then converts them); ``multiple`` for list fields (a repeatable flag)."""

    base: type
    multiple: bool = False
    choices: tuple[str, ...] = ()
    enum: type | None = None



CACHE_ENV = "OREO_AGENTS_CACHE"


def default_cache_root() -> Path:
    """``$OREO_AGENTS_CACHE`` or ``~/.cache/oreo-agents``: where oreo-agents keeps what it can rebuild (converted and
    from-scratch models under ``models/``, compiled ALFWorld games under ``alfworld-compiled/``)."""
    base = os.environ.get(CACHE_ENV)
    return Path(base).expanduser() if base else Path.home() / ".cache" / "oreo-agents"


def field_kind(tp: Any) -> FieldKind:
    """Map a dataclass annotation to its :class:`FieldKind`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X] / X | None
        non_none = [a for a in args if a is not type(None)]
        return field_kind(non_none[0]) if len(non_none) == 1 else FieldKind(str)
    if origin in (list, tuple):
        inner = field_kind(args[0]) if args else FieldKind(str)
        return dataclasses.replace(inner, multiple=True)
    if origin is typing.Literal:
        return FieldKind(str, choices=tuple(str(a) for a in args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return FieldKind(str, choices=tuple(str(m.value) for m in tp), enum=tp)
    if tp in (int, float, str, bool):
        return FieldKind(tp)
    return FieldKind(str)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


BOOL_STATES = {"1": True, "0": False, "yes": True, "no": False, "true": True, "false": False, "on": True, "off": False,
               "t": True, "f": False, "y": True, "n": False, "": False}  # click 8.4 BoolParamType.bool_states


def convert(value: Any, kind: FieldKind, where: str) -> Any:
    """One YAML scalar parsed as its flag would be: strings as the flag's string ("5e-7" is a float, "yes" a bool);
    YAML's own numbers and booleans must fit the type exactly (no silent 3.5 -> 3, true -> 1)."""
    tp = kind.base
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{where}: expected one value, got a {'list' if isinstance(value, list) else 'mapping'}")
    if tp is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
        raise ConfigError(f"{where}: {value!r} is not a valid integer.")
    if tp is float and isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a valid float.")
    if tp is bool and not isinstance(value, (bool, str)):
        raise ConfigError(f"{where}: {value!r} is not a valid boolean.")
    if kind.choices:
        text = value.value if isinstance(value, enum.Enum) else str(value)
        if text not in kind.choices:
            choices = ", ".join(map(repr, kind.choices))
            raise ConfigError(f"{where}: {text!r} is not {'one of ' if len(kind.choices) > 1 else ''}{choices}.")
        return kind.enum(text) if kind.enum else text
    if tp in (int, float):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a valid {'integer' if tp is int else 'float'}.") from None
    if tp is bool:
        state = value if isinstance(value, bool) else BOOL_STATES.get(value.strip().lower())
        if state is None:
            raise ConfigError(f"{where}: {value!r} is not a valid boolean. Recognized values: {', '.join(sorted(BOOL_STATES))}")
        return state
    return value.decode() if isinstance(value, bytes) else str(value)


def check_values(config_cls: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` (YAML / stored keys -> values) with each value converted as its flag would be; ConfigError names
    the source, the key and the value that does not fit. None keeps a field's default meaning ("not set")."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown option '{key}' for {config_cls.__name__}")
        where = f"{source}: key '{key}'"
        kind = field_kind(hints[key])
        if value is None:
            if _accepts_none(hints[key]):
                out[key] = None
                continue
            raise ConfigError(f"{where}: needs a value (null is not allowed here)")
        if kind.multiple:
            items = value if isinstance(value, list) else [value]
            out[key] = [convert(v, kind, f"{where}[{i}]" if isinstance(value, list) else where) for i, v in enumerate(items)]
        else:
            out[key] = convert(value, kind, where)
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
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in cli_kwargs.items()
             if k in names and v is not None and v != ()}
    values.update(check_values(config_cls, given, "flags"))  # already parsed by click; Enum fields become members
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
        out[f.name] = [_plain(x) for x in v] if isinstance(v, list) else _plain(v)
    return out


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, Path) else v.value if isinstance(v, enum.Enum) else v


def save_yaml(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))

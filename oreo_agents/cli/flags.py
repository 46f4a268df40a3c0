"""Config dataclasses as click options: one ``--field-name`` per field, help from the field's metadata.

The parsing rules live in :mod:`oreo_agents.config` (click-free, shared with YAML files); this module only maps each
field's :class:`~oreo_agents.config.FieldKind` to the click type that parses the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import click

from oreo_agents.config import FieldKind, default_of, field_kind


def click_type(kind: FieldKind) -> Any:
    return click.Choice(kind.choices) if kind.choices else kind.base


def config_options(config_cls: type) -> Any:
    """Decorator adding ``--config`` and one click option per dataclass field (default None = "not given")."""

    def decorate(func: Any) -> Any:
        hints = typing.get_type_hints(config_cls)
        for f in reversed(dataclasses.fields(config_cls)):
            if not f.init or f.metadata.get("cli") is False:
                continue
            kind = field_kind(hints[f.name])
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata.get("help", "")
            default = default_of(f)
            if default is not None and default != [] and default != "":
                help_text += f"  [default: {getattr(default, 'value', default)}]"
            if kind.base is bool and not kind.multiple:
                option = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)
            else:
                option = click.option(flag, f.name, type=click_type(kind), multiple=kind.multiple, default=None, help=help_text)
            func = option(func)
        return click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="YAML file with any of these options (flags given here override it).",
        )(func)

    return decorate

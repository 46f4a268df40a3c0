"""``oreo-agents iterate``: iterative OREO from a given policy — collect, train, repeat; each round resumable."""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.loops import IterateConfig


@click.command()
@config_options(IterateConfig)
@user_errors
def iterate(**kwargs: Any) -> None:
    """Iterative OREO: each round samples rollouts with the current policy and trains OREO from it.

    \b
    Round r writes datasets/<...>/round-r/rollouts and runs/<...>/round-r/oreo/{policy,value}; at the end every round
    is evaluated (greedy, and value-guided with --k candidates) on the held-out split.
    Example:
      oreo-agents iterate --policy runs/quickstart/sft/policy --rounds 3 --out runs/iterate --datasets datasets/iterate
    """
    from oreo_agents.pipeline.loops import run_iterate

    run_iterate(build_config(IterateConfig, kwargs))

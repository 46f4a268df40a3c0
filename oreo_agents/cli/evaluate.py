"""``oreo-agents eval``: the click wiring of :func:`oreo_agents.pipeline.evaluate.run_eval` (success rate / accuracy
by split and task type for several agents, with confidence intervals)."""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.evaluate import EvalConfig, print_table, run_eval

__all__ = ["EvalConfig", "evaluate", "print_table", "run_eval"]


@click.command("eval")
@config_options(EvalConfig)
@user_errors
def evaluate(**kwargs: Any) -> None:
    """Success rate (ALFWorld, web shop) or accuracy (math) by split and task type, with 95% confidence intervals.

    \b
    Examples:
      oreo-agents eval --env alfworld --policy expert --split valid_unseen
      oreo-agents eval --policy runs/sft/policy --policy runs/oreo/policy --value runs/oreo/value \\
          --select greedy --select value --k 4 --num-envs 8 --out runs/eval
      oreo-agents eval --env math --policy runs/oreo/policy --value runs/oreo/value --select beam --k 3
    """
    run_eval(build_config(EvalConfig, kwargs))

"""``oreo-agents compare``: the paper's comparison at small scale, several seeds, pooled report."""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.compare import CompareConfig


@click.command()
@config_options(CompareConfig)
@user_errors
def compare(**kwargs: Any) -> None:
    """SFT vs rejection sampling vs DPO vs OREO (+ value selection / beam search, + iterative rounds), several seeds.

    \b
    Every method starts from the same SFT checkpoint (per seed) and trains on the same rollouts; each is evaluated on
    the held-out splits. Writes <out>/compare.md (pooled over seeds, Wilson 95% CI, per-seed rates) and a plot.
    Recipes:
      oreo-agents compare --config configs/compare-alfworld.yaml
      oreo-agents compare --config configs/compare-math.yaml
    Rerunning the same command resumes.
    """
    from oreo_agents.pipeline.compare import run_compare

    run_compare(build_config(CompareConfig, kwargs))

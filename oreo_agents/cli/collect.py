"""``oreo-agents collect``: record episodes from an env with a policy into a Parquet dataset (resumable).

The work is :func:`oreo_agents.pipeline.collect.run_collect`; this module is the command's click wiring.
"""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.collect import CollectConfig, run_collect


@click.command("collect")
@config_options(CollectConfig)
@user_errors
def collect(**kwargs: Any) -> None:
    """Record episodes from an env with a policy into a Parquet dataset.

    \b
    Examples:
      oreo-agents collect --env alfworld --policy expert --episodes 200 --split train --out datasets/alfworld-expert
      oreo-agents collect --env math --policy runs/sft/policy --samples-per-task 10 --num-envs 8 \\
          --temperature 1.0 --out datasets/math-sft-samples
      oreo-agents collect --config configs/collect-alfworld-expert.yaml --episodes 400   # flags override the file

    Rerunning the same command resumes: episodes already written are skipped, none is written twice.
    """
    cfg = build_config(CollectConfig, kwargs)
    if not cfg.out:
        raise OreoError("--out is required: the dataset folder to write (e.g. datasets/alfworld-expert)")
    run_collect(cfg)

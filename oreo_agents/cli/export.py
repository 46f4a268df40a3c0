"""``oreo-agents export``: SFT / DPO / KTO views of a recorded dataset, as files other trainers (TRL) read."""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.export import ExportConfig, run_export


@click.command("export")
@config_options(ExportConfig)
@user_errors
def export(**kwargs: Any) -> None:
    """Export a recorded dataset as an SFT, DPO or KTO view (TRL's dataset formats).

    \b
    Examples:
      oreo-agents export --dataset datasets/alfworld-expert --view sft --out exports/alfworld-sft.jsonl
      oreo-agents export --dataset datasets/alfworld-samples --view dpo --max-pairs-per-task 4 --out exports/dpo.parquet
      oreo-agents export --dataset datasets/math-samples --view kto --out exports/kto.parquet
    """
    run_export(build_config(ExportConfig, kwargs))

"""``oreo-agents quickstart``: the whole OREO loop on embedded data, resumable stage by stage."""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.loops import QuickstartConfig


@click.command()
@config_options(QuickstartConfig)
@user_errors
def quickstart(**kwargs: Any) -> None:
    """Generate games, collect expert data, SFT a tiny model, sample rollouts, train OREO, evaluate — offline.

    \b
    Stages (each skipped when its `<stage>.done.json` exists, so rerunning resumes):
      games -> expert demos -> SFT -> rollouts of the SFT policy -> OREO -> eval -> value lens
      (SFT greedy vs OREO greedy vs OREO + value-guided selection, on the training games and on unseen games;
       then what OREO's value learned: AUC, calibration and A_t per step on the OREO agent's episodes)
    Examples:
      oreo-agents quickstart
      oreo-agents quickstart --rounds 3 --out runs/qs3 --datasets datasets/qs3   # iterative OREO
      oreo-agents quickstart --env math --train-tasks 200 --eval-tasks 100
    """
    from oreo_agents.pipeline.loops import run_quickstart

    run_quickstart(build_config(QuickstartConfig, kwargs))

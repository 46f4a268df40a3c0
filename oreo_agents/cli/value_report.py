"""``oreo-agents value-report``: what a trained value model says about recorded episodes (OREO's credit assignment).

Reads recorded episodes (``collect`` output, or the ``episodes/`` folders ``eval`` writes), runs the value model over
each, and writes ``value_report.md`` / ``.json``, ``value_curves.png``, ``value_calibration.png`` and
``value_trace.html`` / ``.txt`` (see :mod:`oreo_agents.agent.value_report`).
"""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import user_errors
from oreo_agents.pipeline.value_report import ValueReportConfig, run_value_report


@click.command("value-report")
@config_options(ValueReportConfig)
@user_errors
def value_report(**kwargs: Any) -> None:
    """AUC, calibration (ECE), V along successes vs failures, and per-step advantages A_t of a value model.

    \b
    Examples:
      oreo-agents value-report --value runs/quickstart/round-1/oreo/value --data runs/quickstart/eval/oreo
      oreo-agents value-report --value runs/oreo/value --data datasets/heldout-rollouts --split valid_unseen
    """
    run_value_report(build_config(ValueReportConfig, kwargs))

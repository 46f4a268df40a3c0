"""``value-report`` as a library function: what a trained value model says about recorded episodes (the value lens of
:mod:`oreo_agents.agent.value_report` over a dataset, with its config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oreo_agents.console import console
from oreo_agents.errors import OreoError


@dataclass
class ValueReportConfig:
    """Settings of ``value-report`` (YAML keys of ``--config`` and flags are these field names)."""

    value: str = field(default="", metadata={"help": "Value model folder saved by `train --algo oreo` (e.g. runs/oreo/value)."})
    data: list[str] = field(default_factory=list, metadata={"help": "Recorded episodes: Parquet files or folders, searched recursively (repeatable)."})
    split: str = field(default="", metadata={"help": "Only episodes of this split (default: all)."})
    out: str = field(default="runs/value-report", metadata={"help": "Folder for the report files."})
    bins: int = field(default=10, metadata={"help": "Bins of the reliability diagram (equal width over [0, 1])."})
    top: int = field(default=3, metadata={"help": "Decisive steps listed per episode (largest |A_t|)."})
    batch_size: int = field(default=8, metadata={"help": "Episodes per value forward."})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cpu or cuda."})

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise OreoError(f"--bins must be at least 1, got {self.bins}")
        if self.top < 0:
            raise OreoError(f"--top must be >= 0, got {self.top}")
        if self.batch_size < 1:
            raise OreoError(f"--batch-size must be at least 1, got {self.batch_size}")


def run_value_report(cfg: ValueReportConfig) -> dict[str, Any]:
    from oreo_agents.agent.evaluate import quiet_third_party_progress
    from oreo_agents.agent.value_report import headline, value_report_for
    from oreo_agents.recording.dataset import load_episode_rows as load_episodes

    if not cfg.value:
        raise OreoError("--value is required: a value model folder (e.g. runs/quickstart/round-1/oreo/value)")
    if not cfg.data:
        raise OreoError("--data is required: recorded episodes (a dataset folder or Parquet files)")
    quiet_third_party_progress()
    rows = load_episodes(cfg.data, split=cfg.split)
    title = f"{Path(cfg.value)} on {', '.join(cfg.data)}" + (f" ({cfg.split})" if cfg.split else "")
    summary = value_report_for(cfg.value, rows, Path(cfg.out), title=title, device=cfg.device, bins=cfg.bins,
                               top=cfg.top, batch_size=cfg.batch_size)
    console.print(f"[bold]value lens[/]: {headline(summary)}", soft_wrap=True)
    console.print(f"report: {Path(cfg.out) / 'value_report.md'} (plots, value_trace.html)", soft_wrap=True, markup=False)
    return summary


"""``oreo-agents train``: OREO (policy + value) or a baseline (SFT, RFT, DPO) on recorded episodes.

    oreo-agents train --algo sft  --data datasets/alfworld-expert --model tiny --out runs/sft
    oreo-agents train --algo oreo --data datasets/alfworld-sft-rollouts --model runs/sft/policy --out runs/oreo
    accelerate launch --config_file configs/accelerate/ddp.yaml -m oreo_agents.cli.train --config configs/train-oreo-paper.yaml ...

Rerunning the same command on the same --out resumes from the last checkpoint.
"""

from __future__ import annotations

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import console, escape, user_errors
from oreo_agents.learning.config import TrainConfig


@click.command(help=__doc__.split("\n\n")[0])
@config_options(TrainConfig)
@user_errors
def train(**kwargs) -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local folders only
    cfg = build_config(TrainConfig, kwargs)
    from oreo_agents.learning import make_trainer

    trainer = make_trainer(cfg)
    summary = trainer.train()
    if trainer.acc.is_main_process:
        console.print(f"[green]done[/]: {cfg.algo} -> {escape(str(cfg.out))}  ({summary.get('updates', 0)} updates)")
        for key in ("value_mean_success", "value_mean_failure", "value_auc"):
            if summary.get(key) is not None:
                console.print(f"  {key}: {summary[key]:.3f}")


if __name__ == "__main__":  # `accelerate launch -m oreo_agents.cli.train ...`
    train()

"""``quickstart`` (the whole loop from nothing) and ``iterate`` (more OREO rounds from a checkpoint).

Folders of a quickstart (``--out runs/quickstart``, ``--datasets datasets/quickstart``)::

    datasets/quickstart/expert/              expert demonstrations on the train games
    runs/quickstart/sft/policy/              the SFT policy = pi_ref of round 1
    datasets/quickstart/round-1/rollouts/    samples of the round's starting policy on the train games
    runs/quickstart/round-1/oreo/{policy,value}/
    runs/quickstart/eval/eval.{md,csv,png}   the comparison table (training games and held-out splits)
    runs/quickstart/eval/value/              the value lens: OREO's V on the OREO agent's eval episodes
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oreo_agents.console import console, escape
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.stages import (
    AgentSpec,
    LoopConfig,
    StartConfig,
    collect_stage,
    ensure_eval_tasks,
    eval_splits_of,
    eval_stage,
    metric_of,
    oreo_round,
    print_verdict,
    sft_stage,
    stage,
    value_stage,
)


@dataclass
class QuickstartConfig(StartConfig):
    """Options of ``oreo-agents quickstart`` (the defaults finish in minutes on 2 CPU cores)."""


@dataclass
class IterateConfig(LoopConfig):
    policy: str = field(default="", metadata={"help": "Policy of round 1 (e.g. runs/quickstart/sft/policy): samples the rollouts and is pi_ref."})
    value: str = field(default="", metadata={"help": "Value model to start round 1 from (default: a fresh head on the policy)."})
    out: str = field(default="runs/iterate", metadata={"help": "Folder for each round's models and evals."})
    datasets: str = field(default="datasets/iterate", metadata={"help": "Folder for each round's rollouts."})
    rounds: int = field(default=3, metadata={"help": "OREO rounds (the paper reports 3)."})


def prepare_tasks(cfg: LoopConfig) -> None:
    if cfg.env == "alfworld":
        stage(Path(cfg.out) / "games.done.json",
              f"generate {cfg.train_tasks} train + {cfg.eval_tasks} games per held-out split ({', '.join(eval_splits_of(cfg))})",
              lambda: (ensure_eval_tasks(cfg), {"games_root": cfg.games_root or "default"})[1])


def expert_stage(cfg: LoopConfig) -> Path:
    data = Path(cfg.datasets) / "expert"
    stage(Path(cfg.out) / "expert.done.json", f"collect expert demonstrations on {cfg.train_tasks} train tasks",
          lambda: collect_stage(cfg, data, policy="expert"))
    return data


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    from oreo_agents.agent.evaluate import quiet_third_party_progress

    started = time.perf_counter()
    quiet_third_party_progress()
    prepare_tasks(cfg)
    sft = sft_stage(cfg, expert_stage(cfg))
    policy, value = sft, None
    agents = [AgentSpec("sft", sft)]
    for r in range(1, cfg.rounds + 1):
        policy, value = oreo_round(cfg, r, policy, value)
        name = "oreo" if cfg.rounds == 1 else f"oreo-round-{r}"
        agents += [AgentSpec(name, policy), AgentSpec(name, policy, value, "value", cfg.k)]
    out = Path(cfg.out)
    done_before = (out / "eval.done.json").is_file()
    summary = stage(out / "eval.done.json", f"evaluate SFT vs OREO vs OREO + value selection (K={cfg.k})",
                    lambda: eval_stage(cfg, out / "eval", agents))
    if done_before and summary.get("rows"):  # a rerun still ends with the verdict
        from oreo_agents.agent.evaluate import Row

        print_verdict([Row(**r) for r in summary["rows"]], metric_of(cfg))
    oreo = agents[-2]  # the last round's OREO policy, greedy: the lens reads V on the episodes it played itself
    stage(out / "value.done.json", "value lens: what OREO's value learned (AUC, calibration, A_t per step)",
          lambda: value_stage(out / "eval", oreo, value))
    console.print(f"\n[bold]quickstart finished[/] in {time.perf_counter() - started:.0f} s this run — report: {escape(str(summary['report']))}")
    console.print(f"play the result:  oreo-agents play --policy {policy} --value {value} --select value --k {cfg.k}", soft_wrap=True, markup=False)
    return summary


def run_iterate(cfg: IterateConfig) -> dict[str, Any]:
    from oreo_agents.agent.evaluate import quiet_third_party_progress

    quiet_third_party_progress()
    if not cfg.policy:
        raise OreoError("--policy is required: the policy folder that starts round 1 (e.g. runs/quickstart/sft/policy)")
    if not Path(cfg.policy).is_dir():
        raise OreoError(f"--policy {cfg.policy}: no such model folder")
    prepare_tasks(cfg)
    policy, value = cfg.policy, cfg.value or None
    agents = [AgentSpec("round-0", policy)]
    for r in range(1, cfg.rounds + 1):
        policy, value = oreo_round(cfg, r, policy, value)
        agents += [AgentSpec(f"round-{r}", policy), AgentSpec(f"round-{r}", policy, value, "value", cfg.k)]
    out = Path(cfg.out)
    return stage(out / "eval.done.json", f"evaluate {len(agents)} agents on {', '.join(eval_splits_of(cfg))}",
                 lambda: eval_stage(cfg, out / "eval", agents))

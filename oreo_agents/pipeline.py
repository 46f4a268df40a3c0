"""The whole OREO loop as resumable stages: games -> expert data -> SFT -> rollouts -> OREO -> eval (-> again).

``oreo-agents quickstart`` and ``oreo-agents iterate`` are thin wrappers over :func:`run_quickstart` and
:func:`run_iterate`. Every stage writes a ``<name>.done.json`` marker beside its output when it completes, so a killed
run rerun with the same command skips the finished stages and resumes the unfinished one (``collect`` and ``train``
resume mid-stage on their own).

Folders (``--out runs/quickstart``, ``--datasets datasets/quickstart``)::

    datasets/quickstart/expert/              expert demonstrations on the train games
    runs/quickstart/sft/policy/              the SFT policy = pi_ref of round 1
    datasets/quickstart/round-1/rollouts/    samples of the round's starting policy on the train games
    runs/quickstart/round-1/oreo/{policy,value}/
    runs/quickstart/eval/eval.{md,csv,png}   the comparison table
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from oreo_agents.cli.console import console
from oreo_agents.errors import OreoError


@dataclass
class LoopConfig:
    """Options shared by ``quickstart`` and ``iterate`` (YAML keys = flags = field names)."""

    env: str = field(default="alfworld", metadata={"help": "Env family: alfworld or math (webshop works too)."})
    out: str = field(default="runs/quickstart", metadata={"help": "Folder for models, checkpoints, metrics and eval reports."})
    datasets: str = field(default="datasets/quickstart", metadata={"help": "Folder for the recorded datasets."})
    games_root: str | None = field(default=None, metadata={"help": "ALFWorld: embedded games root (default ./envs/alfworld/embedded)."})
    train_tasks: int = field(default=18, metadata={"help": "Training games / problems (the paper: all 3,553 ALFWorld train games)."})
    eval_tasks: int = field(default=12, metadata={"help": "Held-out games / problems per eval split."})
    eval_split: str = field(default="", metadata={"help": "Held-out split (default valid_unseen for ALFWorld, test otherwise)."})
    max_steps: int = field(default=30, metadata={"help": "Episode step limit (the paper: 40 for ALFWorld)."})
    samples_per_task: int = field(default=4, metadata={"help": "Rollouts per training task each round (paper: 5 ALFWorld, 10 math)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts."})
    beta: float = field(default=0.03, metadata={"help": "OREO beta (paper 0.03)."})
    oreo_epochs: int = field(default=3, metadata={"help": "OREO epochs per round (paper: 3 ALFWorld, 1 math)."})
    learning_rate: float = field(default=3e-4, metadata={"help": "OREO learning rate for policy and value (tiny model; paper 5e-6)."})
    k: int = field(default=4, metadata={"help": "Candidates per turn for value-guided selection at eval."})
    num_envs: int = field(default=8, metadata={"help": "Envs stepped together when the model collects / is evaluated."})
    seed: int = field(default=0, metadata={"help": "Seed of games, sampling and training."})
    rounds: int = field(default=1, metadata={"help": "OREO rounds: each collects with the current policy, then trains again."})


@dataclass
class QuickstartConfig(LoopConfig):
    model: str = field(default="tiny", metadata={"help": "Starting model: tiny / small (built from scratch on the data), smollm2, or a HF folder."})
    sft_epochs: int = field(default=12, metadata={"help": "SFT epochs on the expert demonstrations."})
    sft_learning_rate: float = field(default=2e-3, metadata={"help": "SFT learning rate (tiny model; paper 2e-5 at 1.5B)."})


@dataclass
class IterateConfig(LoopConfig):
    policy: str = field(default="", metadata={"help": "Policy of round 1 (e.g. runs/quickstart/sft/policy): samples the rollouts and is pi_ref."})
    value: str = field(default="", metadata={"help": "Value model to start round 1 from (default: a fresh head on the policy)."})
    out: str = field(default="runs/iterate", metadata={"help": "Folder for each round's models and evals."})
    datasets: str = field(default="datasets/iterate", metadata={"help": "Folder for each round's rollouts."})


# --- stage bookkeeping -------------------------------------------------------------------------------------------------
def stage(marker: Path, title: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` unless ``marker`` says it finished before; then write the marker with its summary."""
    if marker.is_file():
        summary = json.loads(marker.read_text())
        console.print(f"[dim]✓ {title} (done before: {marker})[/]")
        return summary
    console.rule(f"[bold]{title}")
    started = time.perf_counter()
    summary = work()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"[green]✓ {title}[/] in {summary['seconds']:.0f} s")
    return summary


def eval_split_of(cfg: LoopConfig) -> str:
    return cfg.eval_split or ("valid_unseen" if cfg.env == "alfworld" else "test")


# --- stages ---------------------------------------------------------------------------------------------------------------
def collect_stage(cfg: LoopConfig, out: Path, *, policy: str, model: str | None = None, samples: int = 1) -> dict[str, Any]:
    from oreo_agents.cli.collect import CollectConfig, run_collect

    collect_cfg = CollectConfig(
        env=cfg.env, split="train", games_root=cfg.games_root, max_steps=cfg.max_steps, num_tasks=cfg.train_tasks,
        policy=policy, model=model, temperature=cfg.temperature, samples_per_task=samples,
        episodes=cfg.train_tasks * samples, num_envs=cfg.num_envs if policy == "model" else 1, seed=cfg.seed, out=str(out),
    )
    summary = run_collect(collect_cfg)
    return {"dataset": str(out), "episodes": summary.recorded + summary.skipped, "success_rate": summary.success_rate}


def train_stage(cfg: LoopConfig, out: Path, *, algo: str, data: list[Path], model: str, **overrides: Any) -> dict[str, Any]:
    from oreo_agents.learning.baselines import make_trainer
    from oreo_agents.learning.config import TrainConfig

    train_cfg = TrainConfig(algo=algo, data=[str(d) for d in data], model=model, out=str(out), seed=cfg.seed, **overrides)
    result = make_trainer(train_cfg).train()
    keep = ("updates", "value_mean_success", "value_mean_failure", "value_auc")
    return {"run": str(out), **{k: result.get(k) for k in keep if k in result}}


def eval_stage(cfg: LoopConfig, out: Path, agents: list[tuple[str, str, str | None, str]]) -> dict[str, Any]:
    """Evaluate (label, policy dir, value dir or None, selection mode) agents on the held-out split; one combined report."""
    from oreo_agents.agent.evaluate import write_reports
    from oreo_agents.cli.evaluate import EvalConfig, run_eval

    rows = []
    for label, policy, value, select in agents:
        eval_cfg = EvalConfig(
            env=cfg.env, policy=[policy], value=[value] if value else [], select=[select], k=cfg.k,
            split=[eval_split_of(cfg)], games_root=cfg.games_root, num_tasks=cfg.eval_tasks, max_steps=cfg.max_steps,
            num_envs=cfg.num_envs, seed=cfg.seed, temperature=cfg.temperature, out=str(out / f"{label}-{select}"),
        )
        for row in run_eval(eval_cfg):
            row.agent = label
            rows.append(row)
    metric = "accuracy" if cfg.env == "math" else "success rate"
    paths = write_reports(rows, out, metric=metric, title=f"{cfg.env}: {eval_split_of(cfg)} ({cfg.eval_tasks} tasks)")
    overall = {f"{r.agent} [{r.select}]": round(r.rate, 4) for r in rows if r.task_type == "all"}
    return {"report": str(paths["md"]), "success": overall}


def oreo_round(cfg: LoopConfig, r: int, policy: str, value: str | None) -> tuple[str, str]:
    """One round of (iterative) OREO: sample rollouts with ``policy``, train OREO from it; returns the new (policy, value)."""
    out, data = Path(cfg.out) / f"round-{r}", Path(cfg.datasets) / f"round-{r}"
    rollouts = data / "rollouts"
    stage(out / "rollouts.done.json", f"round {r}: collect {cfg.samples_per_task} rollouts per task with {policy}",
          lambda: collect_stage(cfg, rollouts, policy="model", model=policy, samples=cfg.samples_per_task))
    extra = {"value_model": value} if value else {}
    stage(out / "oreo.done.json", f"round {r}: train OREO (beta {cfg.beta})",
          lambda: train_stage(cfg, out / "oreo", algo="oreo", data=[rollouts], model=policy, beta=cfg.beta,
                              epochs=cfg.oreo_epochs, learning_rate=cfg.learning_rate, **extra))
    return str(out / "oreo" / "policy"), str(out / "oreo" / "value")


def ensure_eval_tasks(cfg: LoopConfig) -> None:
    """Generate the embedded ALFWorld games both splits need up front, so the first use does not look like a hang."""
    if cfg.env != "alfworld":
        return
    from oreo_agents.envs.alfworld import ensure_games

    ensure_games(cfg.games_root, "train", cfg.train_tasks, seed=cfg.seed)
    ensure_games(cfg.games_root, eval_split_of(cfg), cfg.eval_tasks, seed=cfg.seed)


# --- the two commands ------------------------------------------------------------------------------------------------------
def run_iterate(cfg: IterateConfig) -> dict[str, Any]:
    if not cfg.policy:
        raise OreoError("--policy is required: the policy folder that starts round 1 (e.g. runs/quickstart/sft/policy)")
    if not Path(cfg.policy).is_dir():
        raise OreoError(f"--policy {cfg.policy}: no such model folder")
    ensure_eval_tasks(cfg)
    policy, value = cfg.policy, cfg.value or None
    agents: list[tuple[str, str, str | None, str]] = [("round-0", policy, None, "greedy")]
    for r in range(1, cfg.rounds + 1):
        policy, value = oreo_round(cfg, r, policy, value)
        agents += [(f"round-{r}", policy, None, "greedy"), (f"round-{r}", policy, value, "value")]
    out = Path(cfg.out)
    return stage(out / "eval.done.json", f"evaluate {len(agents)} agents on {eval_split_of(cfg)}",
                 lambda: eval_stage(cfg, out / "eval", agents))


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    out, data = Path(cfg.out), Path(cfg.datasets)
    started = time.perf_counter()
    if cfg.env == "alfworld":
        stage(out / "games.done.json", f"generate {cfg.train_tasks} train + {cfg.eval_tasks} {eval_split_of(cfg)} ALFWorld games",
              lambda: (ensure_eval_tasks(cfg), {"games_root": cfg.games_root or "default"})[1])
    stage(out / "expert.done.json", f"collect expert demonstrations on {cfg.train_tasks} train tasks",
          lambda: collect_stage(cfg, data / "expert", policy="expert"))
    stage(out / "sft.done.json", f"SFT the {cfg.model} model on the demonstrations",
          lambda: train_stage(cfg, out / "sft", algo="sft", data=[data / "expert"], model=cfg.model,
                              epochs=cfg.sft_epochs, learning_rate=cfg.sft_learning_rate))
    sft = str(out / "sft" / "policy")
    policy, value = sft, None
    agents: list[tuple[str, str, str | None, str]] = [("sft", sft, None, "greedy")]
    for r in range(1, cfg.rounds + 1):
        policy, value = oreo_round(cfg, r, policy, value)
        name = "oreo" if cfg.rounds == 1 else f"oreo-round-{r}"
        agents += [(name, policy, None, "greedy"), (name, policy, value, "value")]
    summary = stage(out / "eval.done.json", f"evaluate SFT vs OREO vs OREO + value selection (K={cfg.k})",
                    lambda: eval_stage(cfg, out / "eval", agents))
    console.print(f"\n[bold]quickstart finished[/] in {time.perf_counter() - started:.0f} s this run — report: {summary['report']}")
    console.print(f"play the result:  oreo-agents play --policy {policy} --value {value} --select value --k {cfg.k}")
    return summary


__all__ = ["IterateConfig", "LoopConfig", "QuickstartConfig", "run_iterate", "run_quickstart"]

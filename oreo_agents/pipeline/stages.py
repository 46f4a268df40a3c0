"""Stages of the OREO loop, each resumable: collect, train, evaluate, one OREO round.

Every stage writes a ``<name>.done.json`` marker (its summary) when it completes; a rerun of the same command skips
the stages with a marker and resumes the interrupted one (``collect`` and ``train`` also resume mid-stage on their own).
The commands built from these stages live in :mod:`oreo_agents.pipeline.loops` (quickstart, iterate) and
:mod:`oreo_agents.pipeline.compare` (the paper's comparison at small scale).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from oreo_agents.console import console, escape
from oreo_agents.errors import OreoError
from oreo_agents.learning.config import MixedPrecision
from oreo_agents.pipeline.options import ENV_WORKER_OPTIONS, RAY_OPTIONS, EnvWorkerOptions


@dataclass
class LoopConfig(EnvWorkerOptions):
    """Options shared by ``quickstart``, ``iterate`` and ``compare`` (YAML keys = flags = field names)."""

    env: str = field(default="alfworld", metadata={"help": "Env family: alfworld or math (webshop works too)."})
    out: str = field(default="runs/quickstart", metadata={"help": "Folder for models, checkpoints, metrics and eval reports."})
    datasets: str = field(default="datasets/quickstart", metadata={"help": "Folder for the recorded datasets."})
    games_root: str | None = field(default=None, metadata={"help": "ALFWorld: embedded games root (default ./envs/alfworld/embedded)."})
    task_types: list[str] = field(
        default_factory=list, metadata={"help": "ALFWorld: only these task types, for training and evaluation (repeatable; default all six)."}
    )
    train_tasks: int = field(default=24, metadata={"help": "Training games / problems (the paper: all 3,553 ALFWorld train games)."})
    eval_tasks: int = field(default=12, metadata={"help": "Held-out games / problems per eval split."})
    eval_splits: list[str] = field(
        default_factory=list, metadata={"help": "Held-out splits (repeatable; default valid_seen + valid_unseen for ALFWorld, test otherwise)."}
    )
    max_steps: int = field(default=30, metadata={"help": "Episode step limit (the paper: 40 for ALFWorld; the generated games need at most 50 expert steps)."})
    samples_per_task: int = field(default=4, metadata={"help": "Rollouts per training task each round (paper: 5 ALFWorld, 10 math)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of rollouts and value-guided candidates (tiny model: 0.7 keeps some successes)."})
    beta: float = field(default=0.03, metadata={"help": "OREO beta (paper 0.03)."})
    oreo_epochs: int = field(default=3, metadata={"help": "OREO epochs per round (paper: 3 ALFWorld, 1 math)."})
    learning_rate: float = field(default=3e-4, metadata={"help": "OREO learning rate for policy and value (tiny model; paper 5e-6)."})
    k: int = field(default=4, metadata={"help": "Candidates per turn for value-guided selection at eval."})
    eval_train_games: bool = field(
        default=True, metadata={"help": "Also evaluate every agent on its training games (in-distribution), beside the held-out splits."}
    )
    num_envs: int = field(default=8, metadata={"help": "Envs stepped together when the model collects / is evaluated."})
    seed: int = field(default=0, metadata={"help": "Seed of games, sampling and training."})
    rounds: int = field(default=1, metadata={"help": "OREO rounds: each collects with the current policy, then trains again."})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank for every training stage (0 = full fine-tuning, as the paper)."})
    mixed_precision: MixedPrecision = field(
        default="auto", metadata={"help": "Training precision: auto (bf16 where it is native: GPUs that support it, CPUs with AVX512-BF16 / AMX; else fp32), no, bf16, fp16 (on a CPU without native bf16 / fp16, e.g. AVX2 only, these are emulated and several times slower: the learner warns)."}
    )
    micro_batch_size: int = field(
        default=4, metadata={"help": "Episodes per forward/backward when training OREO and the baselines (gradient accumulation makes up the "
                             "batch of 8). Saved activations grow with it: 1 for long episodes on a CPU (no padding either)."}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in every training stage's backward (far less memory, ~30% slower)."}
    )
    save_steps: int = field(
        default=50, metadata={"help": "Checkpoint every N updates in every training stage: a killed stage resumes from its last checkpoint."}
    )

    def __post_init__(self) -> None:
        self.check_env_workers()
        for name in ("micro_batch_size", "save_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise OreoError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


@dataclass
class StartConfig(LoopConfig):
    """The starting model and its SFT on expert demonstrations (quickstart, compare)."""

    model: str = field(default="tiny", metadata={"help": "Starting model: tiny / small (built from scratch on the data), smollm2, or a HF folder."})
    sft_epochs: int = field(default=40, metadata={"help": "SFT epochs on the expert demonstrations (paper: 3 at 1.5B)."})
    sft_batch_size: int = field(default=4, metadata={"help": "SFT episodes per update (small batches: a tiny model needs many updates)."})
    sft_learning_rate: float = field(default=2e-3, metadata={"help": "SFT learning rate (tiny model; paper 2e-5 at 1.5B)."})
    sft_observation_loss_weight: float = field(
        default=0.0, metadata={"help": "SFT loss weight of observation tokens (0 = replies only; a from-scratch model reads the game better with 1)."}
    )


# --- stage bookkeeping -------------------------------------------------------------------------------------------------
def stage(marker: Path, title: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` unless ``marker`` says it finished before; then write the marker with its summary."""
    if marker.is_file():
        summary = json.loads(marker.read_text())
        console.print(f"[dim]✓ {escape(title)} (done before: {escape(str(marker))})[/]", soft_wrap=True)
        return summary
    console.rule(f"[bold]{escape(title)}")
    started = time.perf_counter()
    summary = work()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"[green]✓ {escape(title)}[/] in {summary['seconds']:.0f} s")
    return summary


def stage_times(out: Path) -> list[tuple[str, float]]:
    """``(stage, seconds)`` of every finished stage under ``out``, in the order they finished: each ``<stage>.done.json``
    marker and each agent evaluation's ``rows.done.json`` (labelled by its folder) that recorded its time."""
    found = []
    for marker in out.rglob("*.done.json"):
        try:
            seconds = json.loads(marker.read_text()).get("seconds")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(seconds, (int, float)):
            rel = marker.relative_to(out)
            label = str(rel.parent) if marker.name == "rows.done.json" else str(rel)[: -len(".done.json")]
            found.append((marker.stat().st_mtime, label, float(seconds)))
    return [(label, seconds) for _, label, seconds in sorted(found)]


def eval_splits_of(cfg: LoopConfig) -> list[str]:
    return cfg.eval_splits or (["valid_seen", "valid_unseen"] if cfg.env == "alfworld" else ["test"])


# --- stages ---------------------------------------------------------------------------------------------------------------
def collect_stage(cfg: LoopConfig, out: Path, *, policy: str, samples: int = 1) -> dict[str, Any]:
    """Collect with ``policy`` (expert, random, noisy-expert or a model folder) into ``out``."""
    from oreo_agents.pipeline.collect import CollectConfig, run_collect
    from oreo_agents.pipeline.options import is_model_policy

    collect_cfg = CollectConfig(
        env=cfg.env, split="train", games_root=cfg.games_root, task_types=list(cfg.task_types), max_steps=cfg.max_steps,
        num_tasks=cfg.train_tasks,
        policy=policy, temperature=cfg.temperature, samples_per_task=samples,
        episodes=cfg.train_tasks * samples, num_envs=cfg.num_envs if is_model_policy(policy) else 1, seed=cfg.seed, out=str(out),
        **cfg.env_worker_kwargs(),
    )
    summary = run_collect(collect_cfg)
    return {"dataset": str(out), "episodes": summary.recorded + summary.skipped, "success_rate": summary.success_rate}


def train_stage(cfg: LoopConfig, out: Path, *, algo: str, data: list[Path], model: str, **overrides: Any) -> dict[str, Any]:
    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig

    overrides.setdefault("micro_batch_size", cfg.micro_batch_size)
    train_cfg = TrainConfig(algo=algo, data=[str(d) for d in data], model=model, out=str(out), seed=cfg.seed,
                            mixed_precision=cfg.mixed_precision, lora_r=cfg.lora_r,
                            gradient_checkpointing=cfg.gradient_checkpointing, save_steps=cfg.save_steps, **overrides)
    result = make_trainer(train_cfg).train()
    keep = ("updates", "value_mean_success", "value_mean_failure", "value_auc")
    return {"run": str(out), **{k: result.get(k) for k in keep if k in result}}


@dataclass
class AgentSpec:
    """One evaluated agent: a policy folder, optionally a value folder, a selection mode and its K (or beam width)."""

    label: str
    policy: str
    value: str | None = None
    select: str = "greedy"
    k: int = 4

    @property
    def name(self) -> str:
        """Short enough for an 80-column table: ``oreo``, ``oreo+V K=4`` (V: value-guided best-of-K)."""
        if self.select == "greedy":
            return self.label
        return f"{self.label}+{'V' if self.select == 'value' else self.select} K={self.k}"

    @property
    def folder(self) -> str:
        return self.name.replace("+", "-").replace(" ", "").replace("=", "")


def where_free(settings: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's settings without where its envs and agents ran (env workers, Ray) and whether it resumed: the
    same episodes either way, and a marker written before one of those options existed still matches."""
    skip = (*ENV_WORKER_OPTIONS, *RAY_OPTIONS, "resume")
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in skip}))


def eval_rows(cfg: LoopConfig, out: Path, agents: list[AgentSpec], *, train_games: bool = False) -> list[Any]:
    """Evaluation rows (``agent.evaluate.Row``) of every agent on the held-out splits, labelled by :attr:`AgentSpec.name`.

    With ``train_games`` each agent also plays the ``cfg.train_tasks`` games it was trained on (split ``train``), as
    itself (greedy agents greedily): how well it learned what it saw, beside how far that carries. Episodes are saved
    under ``out/<agent>/{held-out,train-games}/episodes/`` (the value lens reads them).
    """
    from oreo_agents.agent.evaluate import Row
    from oreo_agents.pipeline.evaluate import EvalConfig, run_eval

    runs = [("held-out", eval_splits_of(cfg), cfg.eval_tasks)] + ([("train-games", ["train"], cfg.train_tasks)] if train_games else [])
    rows = []
    for agent in agents:
        for where, splits, tasks in runs:
            eval_cfg = EvalConfig(
                env=cfg.env, policy=[agent.policy], value=[agent.value] if agent.value else [], select=[agent.select],
                k=agent.k, split=splits, games_root=cfg.games_root, task_types=list(cfg.task_types), num_tasks=tasks,
                max_steps=cfg.max_steps, num_envs=cfg.num_envs, seed=cfg.seed, temperature=cfg.temperature,
                out=str(out / agent.folder / where), **cfg.env_worker_kwargs(),
            )
            # One marker per (agent, where): a killed evaluation of many agents resumes at the agent it was playing.
            marker = out / agent.folder / where / "rows.done.json"
            settings = where_free(eval_cfg.__dict__)
            done = json.loads(marker.read_text()) if marker.is_file() else None
            if done is not None and where_free(done.get("settings") or {}) == settings:
                console.print(f"[dim]✓ {escape(agent.name)} on {escape(where)} (done before: {escape(str(marker))})[/]", soft_wrap=True)
                rows += [Row(**d) for d in done["rows"]]
                continue
            if done is not None:
                console.print(f"[yellow]{escape(str(marker))}: evaluated with other settings; evaluating again[/]", soft_wrap=True)
            started = time.perf_counter()
            agent_rows = run_eval(eval_cfg, report=False)
            for row in agent_rows:
                row.agent = agent.name
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"settings": settings, "rows": [r.__dict__ for r in agent_rows],
                                          "seconds": round(time.perf_counter() - started, 1)}, indent=1))
            rows += agent_rows
    return rows


def metric_of(cfg: LoopConfig) -> str:
    return "accuracy" if cfg.env == "math" else "success rate"


def eval_stage(cfg: LoopConfig, out: Path, agents: list[AgentSpec]) -> dict[str, Any]:
    """Evaluate agents on the held-out splits (and their training games); one report (eval.md/csv/png) and the verdict."""
    from oreo_agents.agent.evaluate import write_reports

    rows = eval_rows(cfg, out, agents, train_games=cfg.eval_train_games)
    metric = metric_of(cfg)
    seen = f"{cfg.train_tasks} training games and " if cfg.eval_train_games else ""
    paths = write_reports(rows, out, metric=metric, title=f"{cfg.env}: {seen}{cfg.eval_tasks} held-out tasks per split")
    print_verdict(rows, metric)
    console.print(f"report: {paths['md']} (figures {paths['png'].name}, {paths['types'].name})", soft_wrap=True, markup=False)
    overall = {f"{r.agent} | {r.split}": round(r.rate, 4) for r in rows if r.task_type == "all"}
    return {"report": str(paths["md"]), "success": overall, "rows": [r.__dict__ for r in rows if r.task_type == "all"]}


def print_verdict(rows: list[Any], metric: str) -> None:
    """The agents x splits table (80 columns) and its one-line reading, computed from the numbers."""
    from oreo_agents.agent.report import reading, verdict_table

    console.print(verdict_table(rows, metric=metric))
    text = reading(rows)
    if text:
        console.print(f"[bold]Reading:[/] {escape(text)}", soft_wrap=False)


def value_stage(out: Path, agent: AgentSpec, value: str) -> dict[str, Any]:
    """The value lens for ``value`` on the episodes ``agent`` played in the eval stage (training games and held out)."""
    from oreo_agents.agent.value_report import headline, value_report_for
    from oreo_agents.recording.dataset import load_episode_rows as load_episodes

    rows = load_episodes([out / agent.folder])
    summary = value_report_for(value, rows, out / "value", title=f"{agent.name}: its value model on its eval episodes")
    console.print(f"[bold]value lens[/]: {headline(summary)}", soft_wrap=True)
    console.print(f"  {escape(str(out / 'value' / 'value_report.md'))}: V along successes vs failures (value_curves.png), "
                  "calibration, and A_t per step (value_trace.html)", soft_wrap=True)
    keep = ("episodes", "successes", "auc_v0", "auc_states", "auc_last", "ece", "ece_v0")
    result = {"report": str(out / "value" / "value_report.md"), **{k: summary[k] for k in keep}}
    from oreo_agents.pipeline.value_report import expert_check_for

    check = expert_check_for(agent.policy, value, rows, out / "value")  # ALFWorld only: does V prefer the expert's?
    if check is not None:
        result["expert_check"] = {k: check[k] for k in ("states", "episodes", "v_prefers_expert", "v_ci",
                                                        "policy_prefers_expert", "mean_v_margin")}
    return result


def sft_stage(cfg: StartConfig, expert_data: Path) -> str:
    """SFT ``cfg.model`` on the expert demonstrations; returns the policy folder (pi_ref of round 1)."""
    out = Path(cfg.out) / "sft"
    stage(Path(cfg.out) / "sft.done.json", f"SFT the {cfg.model} model on the demonstrations (seed {cfg.seed})",
          lambda: train_stage(cfg, out, algo="sft", data=[expert_data], model=cfg.model, epochs=cfg.sft_epochs,
                              learning_rate=cfg.sft_learning_rate, batch_size=cfg.sft_batch_size,
                              micro_batch_size=cfg.sft_batch_size,
                              observation_loss_weight=cfg.sft_observation_loss_weight))
    return str(out / "policy")


def oreo_round(cfg: LoopConfig, r: int, policy: str, value: str | None) -> tuple[str, str]:
    """One round of (iterative) OREO: sample rollouts with ``policy``, train OREO from it; returns the new (policy, value)."""
    out, data = Path(cfg.out) / f"round-{r}", Path(cfg.datasets) / f"round-{r}"
    rollouts = data / "rollouts"
    stage(out / "rollouts.done.json", f"round {r}: collect {cfg.samples_per_task} rollouts per task with {policy}",
          lambda: collect_stage(cfg, rollouts, policy=policy, samples=cfg.samples_per_task))
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

    # Game seed 0 is the env's default, which collect and eval build their envs with; --seed varies training only.
    ensure_games(cfg.games_root, "train", cfg.train_tasks, seed=0, task_types=cfg.task_types)
    for split in eval_splits_of(cfg):
        ensure_games(cfg.games_root, split, cfg.eval_tasks, seed=0, task_types=cfg.task_types)



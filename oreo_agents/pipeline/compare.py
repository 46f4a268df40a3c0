"""The paper's comparison at small scale: SFT, rejection sampling, DPO, OREO, OREO + value-guided selection (or step
beam search on math) and iterative OREO rounds, each trained with several seeds and evaluated on held-out tasks.

Per seed ``s`` (folders ``<out>/seed-s``, ``<datasets>/seed-s``)::

    expert demos (shared) -> SFT(s) -> rollouts of SFT(s) -> RFT(s), DPO(s), OREO round 1(s) -> rounds 2..R(s)
                                                            RFT(s) -> RFT rounds 2..R(s) (own rollouts, as OREO's)

All baselines start from the same SFT checkpoint and train on the same rollouts as OREO's first round, as in the paper.
Results pool the seeds: success counts over seeds x tasks with a Wilson 95% interval, plus each seed's rate, in
``<out>/compare.md``, ``compare.csv`` and ``compare.png``. Every stage resumes like the quickstart's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oreo_agents.console import console, escape
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.loops import expert_stage, prepare_tasks
from oreo_agents.pipeline.stages import (
    AgentSpec,
    StartConfig,
    collect_stage,
    eval_rows,
    metric_of,
    oreo_round,
    sft_stage,
    stage,
    stage_times,
    train_stage,
    value_stage,
)


@dataclass
class CompareConfig(StartConfig):
    out: str = field(default="runs/compare", metadata={"help": "Folder for every seed's runs and the pooled report."})
    datasets: str = field(default="datasets/compare", metadata={"help": "Folder for the demonstrations and every seed's rollouts."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Training / sampling seeds (repeatable)."})
    baselines: list[str] = field(default_factory=lambda: ["rft", "dpo"], metadata={"help": "Baselines besides SFT: rft, dpo (repeatable)."})
    ks: list[int] = field(
        default_factory=list, metadata={"help": "K of value-guided selection (ALFWorld, default 2 3 4 5) or beam width (math, default 3)."}
    )
    rounds: int = field(
        default=3, metadata={"help": "Iterative rounds (round 1 = plain OREO; the paper reports 3); RFT gets as many, as the control."}
    )
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO beta (paper 0.1)."})
    dpo_learning_rate: float = field(default=1e-4, metadata={"help": "DPO learning rate (tiny model; paper 5e-7)."})


def ks_of(cfg: CompareConfig) -> list[int]:
    return cfg.ks or ([3] if cfg.env == "math" else [2, 3, 4, 5])


def baseline_stage(cfg: CompareConfig, algo: str, start: str, rollouts: Path, *, folder: Path | None = None,
                   title: str = "") -> str | None:
    """RFT or DPO from ``start`` on ``rollouts``, trained into ``folder`` (default ``<out>/<algo>``, marker beside it);
    the policy folder, or None (recorded) when the data cannot train it."""
    out = folder or Path(cfg.out) / algo
    overrides = {"epochs": cfg.oreo_epochs, "learning_rate": cfg.learning_rate}
    if algo == "dpo":
        overrides.update(dpo_beta=cfg.dpo_beta, learning_rate=cfg.dpo_learning_rate)

    def work() -> dict[str, Any]:
        try:
            return train_stage(cfg, out, algo=algo, data=[rollouts], model=start, **overrides)
        except OreoError as exc:  # e.g. no successful rollout (RFT) or no success/failure pair (DPO)
            console.print(f"[yellow]{algo} skipped[/]: {escape(str(exc))}")
            return {"skipped": str(exc)}

    title = title or f"{algo.upper()} from SFT on the round-1 rollouts"
    summary = stage(out.with_name(out.name + ".done.json"), f"{title} (seed {cfg.seed})", work)
    return None if "skipped" in summary else str(out / "policy")


def seed_agents(cfg: CompareConfig, expert_data: Path) -> list[AgentSpec]:
    """Train everything for one seed; the agents to evaluate."""
    sft = sft_stage(cfg, expert_data)
    agents = [AgentSpec("SFT", sft)]
    policy, value = oreo_round(cfg, 1, sft, None)
    rollouts = Path(cfg.datasets) / "round-1" / "rollouts"
    trained = {algo: baseline_stage(cfg, algo, sft, rollouts) for algo in cfg.baselines}
    agents += [AgentSpec({"rft": "RFT", "dpo": "DPO"}[algo], path) for algo, path in trained.items() if path]
    agents.append(AgentSpec("OREO", policy))
    select = "beam" if cfg.env == "math" else "value"
    agents += [AgentSpec("OREO", policy, value, select, k) for k in ks_of(cfg)]
    for r in range(2, cfg.rounds + 1):
        policy, value = oreo_round(cfg, r, policy, value)
        agents.append(AgentSpec(f"OREO round {r}", policy))
    rft = trained.get("rft")
    for r in range(2, cfg.rounds + 1):  # the control for iterative OREO: as many rounds of its own data
        if rft is None:  # RFT could not train (no successful rollout): nothing to iterate on
            break
        rft = rft_round(cfg, r, rft)
        if rft is not None:
            agents.append(AgentSpec(f"RFT round {r}", rft))
    return agents


def rft_round(cfg: CompareConfig, r: int, policy: str) -> str | None:
    """Iterative rejection sampling: rollouts of the previous round's RFT policy, then RFT from it on their successes.

    The control that iterative OREO is judged against: same rounds, same rollouts per task, same data source (the
    policy's own samples), only the learning rule differs.
    """
    rollouts = Path(cfg.datasets) / f"rft-round-{r}" / "rollouts"
    stage(Path(cfg.out) / f"rft-round-{r}" / "rollouts.done.json",
          f"RFT round {r}: collect {cfg.samples_per_task} rollouts per task with {policy}",
          lambda: collect_stage(cfg, rollouts, policy=policy, samples=cfg.samples_per_task))
    return baseline_stage(cfg, "rft", policy, rollouts, folder=Path(cfg.out) / f"rft-round-{r}" / "rft",
                          title=f"RFT round {r}: RFT on its successes")


def pool(rows_by_seed: dict[int, list[Any]]) -> tuple[list[Any], dict[tuple[str, str], list[float]]]:
    """Pooled rows (successes and n summed over seeds, Wilson CI) and each (agent, split)'s per-seed rates."""
    from oreo_agents.agent.evaluate import Row
    from oreo_agents.stats import wilson

    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for rows in rows_by_seed.values():
        for r in rows:
            groups.setdefault((r.agent, r.select, r.split, r.task_type), []).append(r)
    pooled, per_seed = [], {}
    for (agent, select, split, task_type), rs in groups.items():
        k, n = sum(r.successes for r in rs), sum(r.n for r in rs)
        lo, hi = wilson(k, n)
        pooled.append(Row(agent, select, split, task_type, n, k, k / n, lo, hi, sum(r.mean_length * r.n for r in rs) / n))
        if task_type == "all":
            per_seed[(agent, split)] = [r.rate for r in rs]
    return pooled, per_seed


def write_compare(cfg: CompareConfig, pooled: list[Any], per_seed: dict[tuple[str, str], list[float]]) -> Path:
    from oreo_agents.agent.evaluate import write_reports

    out = Path(cfg.out)
    paths = write_reports(pooled, out / "pooled", metric=metric_of(cfg), title=f"{cfg.env}: seeds {cfg.seeds} pooled")
    lines = [f"# {cfg.env}: SFT vs baselines vs OREO ({len(cfg.seeds)} seeds, {cfg.eval_tasks} tasks per split)", "",
             f"| agent | split | {metric_of(cfg)} (pooled) | 95% CI | per seed | mean ± sd |", "|---|---|---:|---|---|---|"]
    for r in pooled:
        if r.task_type != "all":
            continue
        rates = per_seed[(r.agent, r.split)]
        sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
        lines.append(f"| {r.agent} | {r.split} | {r.rate:.1%} ({r.successes}/{r.n}) | {r.ci_low:.1%} – {r.ci_high:.1%} | "
                     f"{' '.join(f'{x:.0%}' for x in rates)} | {statistics.mean(rates):.1%} ± {sd:.1%} |")
    lines += ["", f"Per task type and the plot: {paths['md']}, {paths['png']}."]
    times = stage_times(out)
    if times:  # what each stage cost on this machine, in the order they finished (a resumed stage: its last run)
        lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {label} | {seconds:,.0f} |" for label, seconds in times]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    from oreo_agents.agent.paired import against, append_paired_section

    outcomes = held_out_outcomes(cfg, list(dict.fromkeys(r.agent for r in pooled)))
    append_paired_section(out / "compare.md", outcomes, against(list(outcomes), ["SFT", "OREO"]))
    return out / "compare.md"


def held_out_outcomes(cfg: CompareConfig, names: list[str]) -> dict[str, dict[Any, bool]]:
    """Each agent's held-out outcomes over every seed, keyed by (seed, split, task, occurrence) for pairing."""
    from oreo_agents.agent.paired import keyed, read_outcomes

    outcomes: dict[str, dict[Any, bool]] = {}
    for name in names:
        for s in cfg.seeds:
            path = Path(cfg.out) / f"seed-{s}" / "eval" / AgentSpec(name, "").folder / "held-out" / "outcomes.jsonl"
            if path.is_file():
                outcomes.setdefault(name, {}).update(keyed(read_outcomes(path), seed=s))
    return outcomes


def run_compare(cfg: CompareConfig) -> dict[str, Any]:
    if not cfg.seeds:
        raise OreoError("--seeds: give at least one seed")
    unknown = sorted(set(cfg.baselines) - {"rft", "dpo"})
    if unknown:
        raise OreoError(f"--baselines {', '.join(unknown)}: choose rft or dpo")
    prepare_tasks(cfg)
    expert = expert_stage(cfg)
    rows_by_seed = {}
    for s in cfg.seeds:
        seed_cfg = replace(cfg, seed=s, out=f"{cfg.out}/seed-{s}", datasets=f"{cfg.datasets}/seed-{s}")
        agents = seed_agents(seed_cfg, expert)
        out = Path(seed_cfg.out)
        summary = stage(out / "eval.done.json", f"seed {s}: evaluate {len(agents)} agents",
                        lambda: {"rows": [r.__dict__ for r in eval_rows(seed_cfg, out / "eval", agents)]})
        rows_by_seed[s] = [_row(d) for d in summary["rows"]]
        oreo, value = next(a for a in agents if a.name == "OREO"), next((a.value for a in agents if a.value), None)
        if value:  # the value lens: round 1's V on the greedy OREO agent's held-out episodes
            stage(out / "value.done.json", f"seed {s}: value lens (AUC, calibration, A_t per step) on OREO's held-out episodes",
                  lambda: value_stage(out / "eval", oreo, value))
    pooled, per_seed = pool(rows_by_seed)
    report = write_compare(cfg, pooled, per_seed)
    from oreo_agents.pipeline.evaluate import print_table

    print_table(pooled, metric_of(cfg), overall_only=True)
    console.print(f"report: {report}", markup=False)
    return {"report": str(report)}


def _row(d: dict[str, Any]) -> Any:
    from oreo_agents.agent.evaluate import Row

    return Row(**d)

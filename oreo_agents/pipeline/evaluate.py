"""Evaluation as a library function (``oreo-agents eval``): success rate / accuracy by split and task type for several agents, with confidence intervals.

Each agent is a (policy, selection) pair: every ``--policy`` is evaluated with every ``--select``. Results go to a rich
table and to ``eval.md``, ``eval.csv``, ``eval.png`` and ``eval_task_types.png`` in ``--out``; the episodes played go to
``--out/episodes/<agent>/`` (a recorded dataset), and with ``--value`` the value lens (``value-report``) runs on the
episodes of each policy that has a value model, into ``--out/value/``. Math envs also take ``--select beam`` (value-guided
step beam search, B = ``--k``) and ``--select best-of-n`` (N = ``--k`` whole solutions, best final value).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oreo_agents.console import console, escape, is_interactive
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.eval_episodes import episode_ids, episode_settings, open_episodes, played_outcomes
from oreo_agents.pipeline.options import (
    AgentOptions,
    EnvOptions,
    EnvWorkerOptions,
    RayOptions,
    SamplingOptions,
    is_model_policy,
    policy_label,
    resolve_env_id,
)

SEARCH_MODES = ("beam", "best-of-n")


@dataclass
class EvalConfig(RayOptions, EnvWorkerOptions, SamplingOptions, AgentOptions, EnvOptions):
    """Settings of ``eval`` (YAML keys of ``--config`` and flags are these field names).

    The env, agent and sampling options come from :mod:`oreo_agents.pipeline.options`; eval takes several policies,
    value models, selection modes and splits."""

    policy: list[str] = field(default_factory=lambda: ["expert"], metadata={"help": "expert, random, noisy-expert or a model folder (repeatable)."})
    value: list[str] = field(default_factory=list, metadata={"help": "Value model folder: one for all policies, or one per --policy (repeatable)."})
    select: list[str] = field(default_factory=lambda: ["greedy"], metadata={"help": "greedy, sample, value, admissible; math also beam, best-of-n (repeatable)."})
    k: int = field(default=4, metadata={"help": "Candidates per turn (value), beams (beam) or samples (best-of-n)."})
    split: list[str] = field(default_factory=list, metadata={"help": "Splits to evaluate (repeatable; default valid_seen + valid_unseen for ALFWorld, test otherwise)."})
    episodes: int | None = field(default=None, metadata={"help": "Episodes per split (default: every game / problem once)."})
    num_envs: int = field(default=4, metadata={"help": "Envs stepped together (the model decides for all in one batch)."})
    ci: str = field(default="wilson", metadata={"help": "Confidence interval: wilson or bootstrap (95%)."})
    out: str = field(default="runs/eval", metadata={"help": "Folder for eval.md/csv/png, outcomes.jsonl, the episodes played and the value report."})
    resume: bool = field(default=True, metadata={"help": "Keep the episodes an agent played before with the same settings and play only the rest (--no-resume: play all again)."})

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise OreoError(f"--num-envs must be at least 1, got {self.num_envs}")
        if self.k < 1:
            raise OreoError(f"--k must be at least 1, got {self.k}")
        if self.ci not in ("wilson", "bootstrap"):
            raise OreoError(f"--ci {self.ci}: choose wilson or bootstrap")
        if self.value and len(self.value) not in (1, len(self.policy)):
            raise OreoError(f"--value given {len(self.value)} times: give it once, or once per --policy ({len(self.policy)})")
        self.check_env_workers()
        self.check_ray_options()


_label = policy_label


def run_eval(cfg: EvalConfig, *, report: bool = True) -> list[Any]:
    """Evaluate every (policy, selection) on every split; with ``report`` print the table and write the files.

    The episodes of each (policy, selection) are saved as a recorded dataset in ``out/episodes/<agent>/`` either way;
    with ``report`` and ``--value``, the value lens runs on them (``out/value/``).
    """
    from oreo_agents.agent.evaluate import quiet_third_party_progress, write_reports
    from oreo_agents.agent.selection import SELECT_MODES

    env_id = resolve_env_id(cfg.env)
    is_math = "Math" in env_id
    splits = cfg.split or (["valid_seen", "valid_unseen"] if "ALFWorld" in env_id else ["test"])
    for mode in cfg.select:
        if mode not in SELECT_MODES + SEARCH_MODES or (mode in SEARCH_MODES and not is_math):
            raise OreoError(f"--select {mode}: choose {', '.join(SELECT_MODES)}" + (f", {', '.join(SEARCH_MODES)}" if is_math else ""))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    quiet_third_party_progress()
    rows, started = [], time.perf_counter()
    played: dict[str, list[str]] = {}  # policy -> the episode folders it played (for the value lens)
    pool = None
    if cfg.ray_address is not None:  # the episodes are played by Ray actors; the report is written here, as below
        from oreo_agents.pipeline.ray_runner import EvalPool, check_ray

        check_ray(cfg)
        if set(cfg.select) & set(SEARCH_MODES):
            raise OreoError(f"--select {'/'.join(sorted(set(cfg.select) & set(SEARCH_MODES)))} runs one search per "
                            "problem in this process: evaluate it without --ray-address")
        pool = EvalPool(cfg, play_share)
    outcome_file = (out / "outcomes.jsonl").open("w")
    try:
        for i, policy in enumerate(cfg.policy):
            value = cfg.value[i if len(cfg.value) > 1 else 0] if cfg.value else None
            for mode in cfg.select:
                folder = out / "episodes" / f"{_label(policy).replace('/', '-')}-{mode}"
                played.setdefault(policy, []).append(str(folder))
                # The agent (its models) lives inside the call: dropped before the next one loads (GPU memory).
                rows += _evaluate_agent(cfg, pool, env_id, splits, policy, value, mode, folder, outcome_file)
    finally:
        outcome_file.close()
        if pool is not None:
            pool.close()
    if not report:
        return rows
    metric = "accuracy" if is_math else "success rate"
    paths = write_reports(rows, out, metric=metric, title=f"{env_id} evaluation")
    print_table(rows, metric)
    from oreo_agents.agent.paired import append_paired_section, outcomes_by_agent, paired_line, read_outcomes

    by_agent = outcomes_by_agent(read_outcomes(out / "outcomes.jsonl"))
    for row in append_paired_section(paths["md"], by_agent, [(a, next(iter(by_agent))) for a in list(by_agent)[1:]]):
        if row.split == "all":
            console.print(f"paired: {paired_line(row)}", soft_wrap=True, markup=False)
    console.print(f"wrote {paths['md']}, {paths['csv']}, {paths['png']}, {paths['types']} "
                  f"({time.perf_counter() - started:.1f} s)", soft_wrap=True, markup=False)
    with_value = [(p, cfg.value[i if len(cfg.value) > 1 else 0]) for i, p in enumerate(cfg.policy)
                  if cfg.value and is_model_policy(p)]
    for policy, value in with_value:
        where = out / ("value" if len(with_value) == 1 else f"value-{_label(policy).replace('/', '-')}")
        value_section(value, played[policy], where, title=f"{_label(policy)} episodes, value {value}")
    return rows


def _evaluate_agent(cfg: EvalConfig, pool: Any, env_id: str, splits: list[str], policy: str, value: str | None,
                    mode: str, folder: Path, outcome_file: Any) -> list[Any]:
    """One (policy, selection) on every split: its rows; its episodes go to ``folder``, resumed where it holds some
    played with the same settings."""
    from oreo_agents.agent.evaluate import episode_count, run_episodes, summarize
    from oreo_agents.envs.workers import EnvSpec
    from oreo_agents.policies import NEEDS_EXPERT
    from oreo_agents.recording.fingerprints import env_data_fingerprint

    sizes = {}  # split -> (episodes to play, the env data's hash), from one probe env per split
    for split in splits:
        # The probe names a bad option by flag.
        probe = cfg.make(split=split, expert=policy in NEEDS_EXPERT)
        try:
            sizes[split] = (cfg.episodes or episode_count(probe), env_data_fingerprint(probe))
        finally:
            probe.close()
    settings = episode_settings(cfg, policy, mode, value, {split: data for split, (_, data) in sizes.items()})
    writer = open_episodes(folder, settings, resume=cfg.resume)
    rows, complete = [], False
    try:
        if mode in SEARCH_MODES and (value is None or not is_model_policy(policy)):
            raise OreoError(f"--select {mode} needs a policy checkpoint and a value model (--value <dir>)")
        agent = None  # built when a split has episodes left to play (a finished agent's models are not loaded)
        for split in splits:
            # A picklable factory (env workers build their envs with it, resolving --env as spelled: a
            # "module:Id-v0" imports its module there too).
            make_env = EnvSpec(cfg.env, cfg.env_kwargs(env_id, split=split, expert=policy in NEEDS_EXPERT))
            total = sizes[split][0]
            ids = episode_ids(cfg, policy, mode, split)
            done = played_outcomes(folder, split, ids, total)  # what a killed evaluation had committed
            if agent is None and pool is None and len(done) < total:
                agent = cfg.build(cfg.seed, policy=policy, value=value, select="greedy" if mode in SEARCH_MODES else mode)
            with _Progress(f"{_label(policy)} [{mode}] {split}", total, len(done)) as bar:
                if len(done) == total:
                    outcomes = [done[i] for i in range(total)]
                    for o in outcomes:
                        bar.advance(o)
                elif pool is not None:
                    outcomes = pool.play(policy, value, mode, split, total, bar.advance, writer.add, done)
                elif mode in SEARCH_MODES:
                    outcomes = _search(make_env, agent, mode, cfg, total, bar.advance)
                else:
                    outcomes = run_episodes(make_env, agent, episodes=total, num_envs=cfg.num_envs, seed=cfg.seed,
                                            on_outcome=bar.advance, on_record=writer.add,
                                            metadata=episode_metadata(agent, policy, cfg), episode_id=ids, done=done,
                                            **cfg.env_worker_kwargs())
            for o in outcomes:
                outcome_file.write(json.dumps({"agent": _label(policy), "select": mode, **o.__dict__}) + "\n")
            rows += summarize(outcomes, label=_label(policy), select=mode, ci=cfg.ci)
        complete = True
        return rows
    finally:
        writer.close(complete=complete)  # flushes what is buffered (Ctrl-C, an error): the rerun resumes from it


def play_share(cfg: EvalConfig, agent: Any, policy: str, mode: str, split: str, total: int, share: tuple[int, int],
               done: dict[int, Any], on_turn: Any = None) -> tuple[list[Any], list[tuple[int, dict[str, Any]]]]:
    """Episodes ``i % n == k`` of ``0..total-1`` on ``split`` for ``share=(k, n)`` (one Ray actor's part), but those in
    ``done``: the outcomes and ``(index, record row)`` pairs, which the driver merges into the report one process
    writes. ``on_turn``: the actor's heartbeat (see ``run_episodes``)."""
    from oreo_agents.agent.evaluate import quiet_third_party_progress, run_episodes
    from oreo_agents.policies import NEEDS_EXPERT

    quiet_third_party_progress()
    records, indices = [], []
    from oreo_agents.envs.workers import EnvSpec

    make_env = EnvSpec(cfg.env, cfg.env_kwargs(resolve_env_id(cfg.env), split=split, expert=policy in NEEDS_EXPERT))
    if on_turn is not None:
        on_turn()  # ready to play (imports done): the stall clock starts here
    outcomes = run_episodes(make_env, agent, episodes=total,
                            num_envs=cfg.num_envs, seed=cfg.seed, on_record=records.append,
                            # called right after its record (episodes done before have none)
                            on_outcome=lambda o: None if o.index in done else indices.append(o.index),
                            metadata=episode_metadata(agent, policy, cfg), share=share,
                            episode_id=episode_ids(cfg, policy, mode, split), done=done, on_turn=on_turn,
                            **cfg.env_worker_kwargs())
    return outcomes, [(i, r.to_row()) for i, r in zip(indices, records)]


def value_section(value: str, episode_dirs: list[str], out: Path, *, title: str) -> dict[str, Any] | None:
    """The value lens on the episodes a policy played: one headline printed, the report written in ``out``."""
    from oreo_agents.agent.value_report import headline, value_report_for
    from oreo_agents.recording.dataset import load_episode_rows as load_episodes
    from oreo_agents.recording.writer import shard_paths

    dirs = [d for d in episode_dirs if shard_paths(d)]  # search modes (beam, best-of-n) record no episodes
    rows = load_episodes(dirs) if dirs else []
    if not any(r["steps"] for r in rows):
        console.print(f"value lens skipped for {value}: no episode has a step", soft_wrap=True, markup=False)
        return None
    summary = value_report_for(value, rows, out, title=title)
    console.print(f"[bold]value lens[/] ({escape(value)}): {headline(summary)} -> {escape(str(out / 'value_report.md'))}", soft_wrap=True)
    return summary


def episode_metadata(agent: Any, policy: str, cfg: EvalConfig) -> Any:
    """What the saved eval episodes record about who played them (as ``collect`` does)."""
    import oreo_agents
    from oreo_agents.recording.schema import EpisodeMetadata

    meta = agent.metadata() if hasattr(agent, "metadata") else {}
    return EpisodeMetadata(policy=getattr(agent, "name", policy), checkpoint=str(meta.get("checkpoint", policy)),
                           sampling=json.dumps(meta.get("sampling", {}), sort_keys=True, default=str), seed=cfg.seed,
                           tokenizer=str(meta.get("tokenizer", "")), package_version=oreo_agents.__version__,
                           extra=json.dumps({"source": "eval"}))


def _search(make_env: Any, agent: Any, mode: str, cfg: EvalConfig, total: int, advance: Any) -> list[Any]:
    """Math search modes: one problem at a time, batched inside the search (B*B steps per generation call)."""
    from oreo_agents.agent.beam import beam_search, best_of_n
    from oreo_agents.agent.evaluate import Outcome
    from oreo_agents.envs.core import task_reset_options

    env = make_env()
    outcomes = []
    try:
        for i in range(total):
            options = task_reset_options(env, i)
            search = beam_search if mode == "beam" else best_of_n
            size = {"beams": cfg.k} if mode == "beam" else {"n": cfg.k}
            res = search(env, agent.policy, agent.value, seed=cfg.seed + i, options=options,
                         max_steps=cfg.max_steps or env.unwrapped.max_steps, env_id=env.spec.id, **size)
            problem = env.unwrapped.problem
            o = Outcome(i, problem.id, problem.split, problem.task_type, res.correct, res.reward, len(res.steps),
                        "success" if res.correct else "failure" if res.steps else "truncated")
            outcomes.append(o)
            advance(o)
    finally:
        env.close()
    return outcomes


class _Progress:
    """A rich progress bar per (agent, split); plain start/end lines when not on a terminal."""

    def __init__(self, name: str, total: int, before: int = 0) -> None:
        self.name, self.total, self.done, self.wins = name, total, 0, 0
        self.before = f" ({before} played before, kept)" if before else ""  # a resumed evaluation
        self.bar: Any = None

    def __enter__(self) -> "_Progress":
        if is_interactive():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("ok {task.fields[rate]}"), TimeElapsedColumn(), console=console)
            self.bar.start()
            self.task = self.bar.add_task(self.name + self.before, total=self.total, rate="-")
        else:
            console.print(f"eval {self.name}: {self.total} episodes{self.before}", markup=False, soft_wrap=True)
        return self

    def advance(self, outcome: Any) -> None:
        self.done += 1
        self.wins += int(outcome.success)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, rate=f"{self.wins / self.done:.0%}")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
        else:
            console.print(f"eval {self.name}: {self.wins}/{self.done} ok", markup=False, soft_wrap=True)


def print_table(rows: list[Any], metric: str, *, overall_only: bool = False) -> None:
    """The rich results table; ``overall_only`` keeps the per-split totals (task type ``all``)."""
    from rich.table import Table

    rows = [r for r in rows if r.task_type == "all"] if overall_only else rows
    table = Table(title=f"{metric} (95% CI)")
    for col, just in (("agent", "left"), ("select", "left"), ("split", "left"), ("task type", "left"), ("n", "right"),
                      (metric, "right"), ("95% CI", "right"), ("steps", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        style = "bold" if r.task_type == "all" else ""
        table.add_row(*(escape(str(x)) for x in (r.agent, r.select, r.split, r.task_type)), str(r.n), f"{r.rate:.1%}",
                      f"{r.ci_low:.1%}–{r.ci_high:.1%}", f"{r.mean_length:.1f}", style=style)
    console.print(table)

"""Evaluation: success rate (ALFWorld, web shop) or accuracy (math) by split and task type, with confidence intervals.

Every game / problem of a split is played once, in order (``reset(options={"task": i})``), by
``num_envs`` envs stepped together so a model decides for all of them in one batched call::

    >>> outcomes = run_episodes(lambda: gym.make("oreo_agents/ALFWorld-v0", split="valid_unseen"), agent,
    ...                         episodes=None, num_envs=8)                                           # doctest: +SKIP
    >>> rows = summarize(outcomes, label="oreo", select="value")                                    # doctest: +SKIP
    >>> write_reports(rows, Path("runs/eval"))    # eval.md, eval.csv, eval.png, eval_task_types.png  # doctest: +SKIP

Intervals: Wilson score (default; well-behaved at 0% and 100% and for small n) or a percentile bootstrap.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from oreo_agents.envs.core import task_list, task_reset_options
from oreo_agents.errors import OreoError
from oreo_agents.turns import Policy, Turn
from oreo_agents.recording.recorder import RecordEpisode
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.stats import bootstrap, wilson

ALL = "all"


@dataclass
class Outcome:
    """One evaluated episode."""

    index: int
    task_id: str
    split: str
    task_type: str
    success: bool
    reward: float
    length: int
    termination: str


def episode_count(env: Any) -> int:
    """How many distinct tasks the env holds (so eval plays each once)."""
    found = task_list(env)
    if found is None:
        raise OreoError(f"{type(env.unwrapped).__name__}: cannot tell how many tasks it holds; pass --episodes")
    return found[1]


class _Slot:
    def __init__(self, env: Any, metadata: EpisodeMetadata | None) -> None:
        # The recorder owns the episode rules: one place for OREO's invalid-reply rule.
        self.env = RecordEpisode(env, metadata=metadata)
        self.index = -1
        self.obs = ""
        self.info: dict[str, Any] = {}


def run_episodes(make_env: Callable[[], Any], policy: Policy, *, episodes: int | None = None, num_envs: int = 4,
                 seed: int = 0, on_outcome: Callable[[Outcome], None] | None = None,
                 on_record: Callable[[EpisodeRecord], None] | None = None,
                 metadata: EpisodeMetadata | None = None) -> list[Outcome]:
    """Play episodes 0..episodes-1 (default: every task once) with ``num_envs`` envs batched per decision.

    Each env runs inside :class:`~oreo_agents.recording.recorder.RecordEpisode`, so evaluation ends episodes exactly as
    collection does (an unparseable reply ends it with reward 0, an aborted decision stops it) and each finished record
    becomes an :class:`Outcome`. ``on_record`` receives the records themselves (e.g. to save them for the value lens),
    stamped with ``metadata``.
    """
    if num_envs < 1:
        raise OreoError(f"--num-envs {num_envs}: need at least one env")
    first = make_env()
    tasks = episode_count(first) if episodes is None or task_list(first) is not None else None
    total = tasks if episodes is None else episodes
    slots = [_Slot(first, metadata)] + [_Slot(make_env(), metadata) for _ in range(max(0, min(num_envs, total) - 1))]
    pending = list(range(total))[::-1]
    outcomes: list[Outcome] = []
    try:
        while True:
            for slot in slots:
                if slot.index < 0 and pending:
                    slot.index = pending.pop()
                    task = slot.index % tasks if tasks else slot.index  # more episodes than tasks: cycle through them
                    slot.obs, slot.info = slot.env.reset(seed=seed + slot.index, options=task_reset_options(slot.env, task),
                                                         sample_index=slot.index // tasks if tasks else 0)
            active = [s for s in slots if s.index >= 0]
            if not active:
                break
            turns = [Turn(s.env.record_env_id, s.env.episode.goal, s.env.episode.initial_observation, s.obs, s.info,
                          s.env.episode.steps) for s in active]
            decisions = policy.act(turns)
            if len(decisions) != len(turns):
                raise OreoError(f"policy '{policy.name}' returned {len(decisions)} decisions for {len(turns)} turns")
            for slot, decision in zip(active, decisions):
                slot.obs, _, terminated, truncated, slot.info = slot.env.step_with(decision)
                if terminated or truncated:
                    r = slot.env.last_episode
                    out = Outcome(slot.index, r.task_id, r.split, r.task_type, r.success, r.total_reward, len(r.steps),
                                  r.termination)
                    outcomes.append(out)
                    if on_record is not None:
                        on_record(r)
                    if on_outcome is not None:
                        on_outcome(out)
                    slot.index = -1
    finally:
        for slot in slots:
            slot.env.close()
    return sorted(outcomes, key=lambda o: o.index)


def quiet_third_party_progress() -> None:
    """No ``datasets`` progress bars ("Generating train split: ...") over our own progress and tables."""
    import datasets

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


# --- statistics ---------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the report: an agent (label, selection) on a split and task type (``all`` = every type)."""

    agent: str
    select: str
    split: str
    task_type: str
    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float
    mean_length: float


def summarize(outcomes: Sequence[Outcome], *, label: str, select: str, ci: str = "wilson") -> list[Row]:
    if ci not in ("wilson", "bootstrap"):
        raise OreoError(f"--ci {ci}: choose wilson or bootstrap")
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.split or "-", ALL), []).append(o)
        groups.setdefault((o.split or "-", o.task_type or "-"), []).append(o)
    rows = []
    for (split, task_type), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != ALL, kv[0][1])):
        k, n = sum(o.success for o in group), len(group)
        lo, hi = wilson(k, n) if ci == "wilson" else bootstrap([o.success for o in group])
        rows.append(Row(label, select, split, task_type, n, k, k / n, lo, hi, sum(o.length for o in group) / n))
    return rows


# --- reports ------------------------------------------------------------------------------------------------------
COLUMNS = ("agent", "select", "split", "task_type", "n", "successes", "rate", "ci_low", "ci_high", "mean_length")


def write_reports(rows: Sequence[Row], out_dir: Path, *, metric: str = "success rate", title: str = "") -> dict[str, Path]:
    """``eval.csv``, ``eval.md``, ``eval.png`` (per split) and ``eval_task_types.png`` in ``out_dir``; returns their paths."""
    from oreo_agents.agent.report import plot_overall, plot_task_types

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "eval.csv", "md": out_dir / "eval.md", "png": out_dir / "eval.png",
             "types": out_dir / "eval_task_types.png"}
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items()})
    lines = [f"# {title or 'Evaluation'}", "", f"{metric} with 95% confidence intervals", "",
             "| agent | select | split | task type | n | " + metric + " | 95% CI | mean steps |",
             "|---|---|---|---|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r.agent} | {r.select} | {r.split} | {r.task_type} | {r.n} | {r.rate:.1%} | "
                     f"{r.ci_low:.1%} – {r.ci_high:.1%} | {r.mean_length:.1f} |")
    lines += ["", "![by split](eval.png)", "", "![by task type](eval_task_types.png)"]
    paths["md"].write_text("\n".join(lines) + "\n")
    plot_overall(rows, paths["png"], metric=metric, title=title)
    plot_task_types(rows, paths["types"], metric=metric, title=title)
    return paths

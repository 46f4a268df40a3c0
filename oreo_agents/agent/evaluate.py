"""Evaluation: success rate (ALFWorld, web shop) or accuracy (math) by split and task type, with confidence intervals.

Every game / problem of a split is played once, in order (``reset(options={"task": i})``), by
``num_envs`` envs stepped together so a model decides for all of them in one batched call::

    >>> outcomes = run_episodes(lambda: gym.make("oreo_agents/ALFWorld-v0", split="valid_unseen"), agent,
    ...                         episodes=None, num_envs=8)                                           # doctest: +SKIP
    >>> rows = summarize(outcomes, label="oreo", select="value")                                    # doctest: +SKIP
    >>> write_reports(rows, Path("runs/eval"))    # eval.md, eval.csv, eval.png, eval_task_types.png  # doctest: +SKIP

Outcomes and rows live in :mod:`oreo_agents.agent.rows`. Intervals: Wilson score (default; well-behaved at 0% and 100% and for small n) or a percentile bootstrap.
"""

from __future__ import annotations

import csv
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from oreo_agents.agent.report import plot_overall, plot_task_types
from oreo_agents.agent.rows import ALL, COLUMNS, Outcome, Row, summarize
from oreo_agents.envs.core import task_list, task_reset_options
from oreo_agents.errors import OreoError
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.rollouts import EpisodeFinished, Job, TurnFinished, rollouts
from oreo_agents.turns import Policy


def episode_count(env: Any) -> int:
    """How many distinct tasks the env holds (so eval plays each once)."""
    found = task_list(env)
    if found is None:
        raise OreoError(f"{type(env.unwrapped).__name__}: cannot tell how many tasks it holds; pass --episodes")
    return found[1]


def run_episodes(make_env: Callable[[], Any], policy: Policy, *, episodes: int | None = None, num_envs: int = 4,
                 seed: int = 0, on_outcome: Callable[[Outcome], None] | None = None,
                 on_record: Callable[[EpisodeRecord], None] | None = None,
                 metadata: EpisodeMetadata | None = None, env_workers: int = 0, env_timeout: float = 300.0,
                 env_restarts: int = 3, share: tuple[int, int] | None = None,
                 episode_id: Callable[[int], str] | None = None, done: Mapping[int, Outcome] | None = None,
                 on_turn: Callable[[], None] | None = None) -> list[Outcome]:
    """Play episodes 0..episodes-1 (default: every task once) with ``num_envs`` envs batched per decision.

    Episode ``i`` resets with ``seed + i`` on task ``i`` (cycling when there are more episodes than tasks). The
    rollout runner (:mod:`oreo_agents.rollouts`) ends episodes exactly as collection does (an unparseable reply ends
    it with reward 0, an aborted decision stops it) and each finished record becomes an :class:`Outcome`.
    ``on_record`` receives the records themselves (e.g. to save them for the value lens), stamped with ``metadata``.
    With ``env_workers`` the envs are stepped in worker processes (``make_env`` must be picklable, e.g. an
    :class:`~oreo_agents.envs.workers.EnvSpec`; the probe that counts the tasks is built here and closed).
    ``share=(k, n)`` plays only the episodes ``i`` with ``i % n == k`` (one of ``n`` cooperating players, e.g. Ray
    actors); each is the same episode as in an unshared run. ``episode_id(i)`` names episode ``i``'s record (default:
    derived from its task and metadata). ``done`` holds the outcomes of episodes played before (a resumed evaluation):
    they are not played again, and come back (and go to ``on_outcome``) with the rest. ``on_turn()`` is called after
    every batched turn (a heartbeat: a Ray driver kills an actor whose turns stop, ``--ray-stall-timeout``).
    """
    if num_envs < 1:
        raise OreoError(f"--num-envs {num_envs}: need at least one env")
    first = make_env()
    tasks = episode_count(first) if episodes is None or task_list(first) is not None else None
    total = tasks if episodes is None else episodes
    done = done or {}
    mine = [i for i in range(total) if share is None or i % share[1] == share[0]]
    jobs = [Job(seed=seed + i, task=i % tasks if tasks else i, sample_index=i // tasks if tasks else 0, tag=i,
                episode_id=episode_id(i) if episode_id is not None else None) for i in mine if i not in done]
    handed: list[Any] = []

    def next_env() -> Any:  # the probe plays too: it is the first env the runner asks for
        handed.append(first if not handed else make_env())
        return handed[-1]

    outcomes = [done[i] for i in mine if i in done]
    for out in outcomes if on_outcome is not None else ():
        on_outcome(out)
    try:
        with closing(rollouts(make_env if env_workers else next_env, policy, jobs, num_envs=num_envs,
                              metadata=metadata, task_options=task_reset_options, env_workers=env_workers,
                              env_timeout=env_timeout, env_restarts=env_restarts)) as events:
            for event in events:
                if isinstance(event, TurnFinished) and on_turn is not None:
                    on_turn()
                if not isinstance(event, EpisodeFinished):
                    continue
                r = event.record
                out = Outcome(event.job.tag, r.task_id, r.split, r.task_type, r.success, r.total_reward, len(r.steps),
                              r.termination)
                outcomes.append(out)
                if on_record is not None:
                    on_record(r)
                if on_outcome is not None:
                    on_outcome(out)
    finally:
        if not handed:  # no job to play: the probe was never handed over
            first.close()
    return sorted(outcomes, key=lambda o: o.index)


def quiet_third_party_progress() -> None:
    """No ``datasets`` progress bars ("Generating train split: ...") over our own progress and tables."""
    import datasets

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


# --- reports ------------------------------------------------------------------------------------------------------
def write_reports(rows: Sequence[Row], out_dir: Path, *, metric: str = "success rate", title: str = "") -> dict[str, Path]:
    """``eval.csv``, ``eval.md``, ``eval.png`` (per split) and ``eval_task_types.png`` in ``out_dir``; returns their paths."""
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


__all__ = ["ALL", "COLUMNS", "Outcome", "Row", "episode_count", "quiet_third_party_progress", "run_episodes", "summarize",
           "write_reports"]

"""What a collection plays and what it reports: the episode plan, the summary and the progress bar.

The loop itself is :func:`oreo_agents.pipeline.collect.collect_episodes` over the rollout runner
(:mod:`oreo_agents.rollouts`); no torch here.

What gets collected is a deterministic *plan*: episode ``i`` is sample ``i % samples_per_task`` of task slot
``i // samples_per_task``, and task slot ``k`` is played by ``env.reset(seed=seed + k, options=task_options(env, k))``
(every sample of a task resets alike, so it is the same game / problem; ``task_options`` lets envs that list their
tasks cycle through them in order). Each planned episode has an id computed before it runs, which is
how a resumed collection knows what is already done; and because the plan for ``episodes=400`` starts with the plan for
``episodes=200``, rerunning with more episodes extends a dataset.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from oreo_agents.errors import OreoError
from oreo_agents.recording.schema import EpisodeRecord


@dataclass(frozen=True)
class PlannedEpisode:
    index: int  # position in the plan
    task_slot: int  # which task (slot k resets with seed + k)
    sample_index: int  # which sample of that task
    reset_seed: int
    episode_id: str


def plan_episodes(*, episodes: int, samples_per_task: int, seed: int, key: str) -> Iterator[PlannedEpisode]:
    """The deterministic plan (see the module docstring). ``key`` names the collection (env, split, policy, checkpoint)
    so ids are unique across datasets that are later merged."""
    if episodes < 0 or samples_per_task < 1:
        raise OreoError(f"need episodes >= 0 and samples per task >= 1 (got {episodes}, {samples_per_task})")
    for i in range(episodes):
        slot, sample = divmod(i, samples_per_task)
        episode_id = hashlib.sha256(f"{key}|seed={seed}|task={slot}|sample={sample}".encode()).hexdigest()[:16]
        yield PlannedEpisode(i, slot, sample, seed + slot, episode_id)


@dataclass
class CollectSummary:
    """What a collection did; ``by_task_type`` maps a task type to (episodes, successes)."""

    planned: int = 0
    skipped: int = 0  # already in the dataset (resume)
    recorded: int = 0
    successes: int = 0
    steps: int = 0
    seconds: float = 0.0
    terminations: Counter = field(default_factory=Counter)
    by_task_type: dict[str, list[int]] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.successes / self.recorded if self.recorded else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def episodes_per_second(self) -> float:
        return self.recorded / self.seconds if self.seconds > 0 else 0.0

    def add(self, record: EpisodeRecord) -> None:
        self.recorded += 1
        self.successes += int(record.success)
        self.steps += len(record.steps)
        self.terminations[record.termination] += 1
        n_ok = self.by_task_type.setdefault(record.task_type or "-", [0, 0])
        n_ok[0] += 1
        n_ok[1] += int(record.success)


class CollectProgress:
    """A rich progress bar for :func:`~oreo_agents.pipeline.collect.collect_episodes`: episodes, success rate, steps/s.

    On a non-interactive console (CI logs, pipes) it prints a plain line every ``every`` episodes instead.
    """

    def __init__(self, console: Any, *, interactive: bool = True, every: int = 0, description: str = "collect") -> None:
        self.console, self.interactive, self.every, self.description = console, interactive, every, description
        self._bar: Any = None
        self._task: Any = None
        self._done0 = 0
        self._total = 0
        self._last_logged = 0

    def start(self, total: int, done: int) -> None:
        self._total, self._done0 = total, done
        if done:
            self.console.print(f"resuming: {done} of {total} planned episodes already recorded")
        if self.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("success {task.fields[rate]}  {task.fields[sps]} steps/s"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=total, completed=done, rate="-", sps="-")
        self.every = self.every or max(1, (total - done) // 10)

    def update(self, summary: CollectSummary) -> None:
        rate = f"{summary.success_rate:.0%}" if summary.recorded else "-"
        sps = f"{summary.steps_per_second:.1f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done0 + summary.recorded, rate=rate, sps=sps)
        elif summary.recorded - self._last_logged >= self.every or (
            summary.recorded and self._done0 + summary.recorded == self._total and self._last_logged != summary.recorded
        ):
            self._last_logged = summary.recorded
            self.console.print(
                f"{self.description}: {self._done0 + summary.recorded}/{self._total} episodes, "
                f"success {rate}, {sps} steps/s"
            )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

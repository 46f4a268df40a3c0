"""The collection loop: N envs stepped together, one batched ``policy.act`` per round, episodes streamed to a writer.

No torch here; any :class:`~oreo_agents.turns.Policy` works (scripted or a language model)::

    >>> writer = ShardWriter("datasets/demo", settings)                                   # doctest: +SKIP
    >>> summary = collect_episodes(lambda: gym.make("oreo_agents/ALFWorld-v0", expert=True), make_policy("expert"),
    ...                            writer, episodes=20, num_envs=4, seed=0)                # doctest: +SKIP

What gets collected is a deterministic *plan*: episode ``i`` is sample ``i % samples_per_task`` of task slot
``i // samples_per_task``, and task slot ``k`` is played by ``env.reset(seed=seed + k, options=task_options(env, k))``
(every sample of a task resets alike, so it is the same game / problem; ``task_options`` lets envs that list their
tasks cycle through them in order). Each planned episode has an id computed before it runs, which is
how a resumed collection knows what is already done; and because the plan for ``episodes=400`` starts with the plan for
``episodes=200``, rerunning with more episodes extends a dataset.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import gymnasium as gym

from oreo_agents.errors import OreoError
from oreo_agents.turns import Policy, Turn
from oreo_agents.recording.recorder import RecordEpisode
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.recording.writer import ShardWriter


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


class _Slot:
    """One env of the batch and the planned episode it is playing."""

    def __init__(self, env: RecordEpisode) -> None:
        self.env = env
        self.planned: PlannedEpisode | None = None
        self.observation = ""
        self.info: dict[str, Any] = {}


def collect_episodes(
    make_env: Callable[[], gym.Env],
    policy: Policy,
    writer: ShardWriter,
    *,
    episodes: int,
    num_envs: int = 1,
    samples_per_task: int = 1,
    seed: int = 0,
    metadata: EpisodeMetadata | None = None,
    env_id: str | None = None,
    plan_key: str = "",
    task_options: Callable[[gym.Env, int], dict[str, Any] | None] | None = None,
    progress: Any = None,
    share: tuple[int, int] | None = None,
) -> CollectSummary:
    """Play the planned episodes not yet in ``writer`` and add each finished one to it.

    Args:
        make_env: builds one env (called ``num_envs`` times, lazily: no env is built when nothing is left to do).
        policy: acts for all running envs at once, one ``act`` call per round.
        metadata: provenance copied onto every episode (``extra`` gets the plan position added).
        plan_key: names the collection in episode ids (see :func:`plan_episodes`).
        task_options: ``(env, task_slot) -> reset options`` for envs that can be told which task to play (e.g.
            ``{"task": slot % n_tasks}``); without it the task is whatever ``reset(seed=seed + slot)`` picks.
        progress: a :class:`CollectProgress`-like object (``start(total, done)``, ``update(summary)``), or None.
        share: ``(i, n)``: play only the planned episodes whose plan index is ``i`` mod ``n`` — one of ``n``
            cooperating collectors writing into one folder, each with a ``ShardWriter(..., share=f"{i}-of-{n}")``.
            Episodes are the same as in an unshared run (their content depends on the settings and their id only).
    """
    if num_envs < 1:
        raise OreoError(f"num_envs must be at least 1, got {num_envs}")
    if share is not None and not (share[1] >= 1 and 0 <= share[0] < share[1]):
        raise OreoError(f"share must be (i, n) with 0 <= i < n, got {share}")
    summary = CollectSummary()
    pending: list[PlannedEpisode] = []
    for planned in plan_episodes(episodes=episodes, samples_per_task=samples_per_task, seed=seed, key=plan_key):
        if share is not None and planned.index % share[1] != share[0]:
            continue
        summary.planned += 1
        if writer.is_done(planned.episode_id):
            summary.skipped += 1
        else:
            pending.append(planned)
    pending.reverse()  # pop() from the end takes them in plan order
    if progress is not None:
        progress.start(summary.planned, summary.skipped)
    base = metadata or EpisodeMetadata()
    slots = [
        _Slot(RecordEpisode(make_env(), metadata=base, env_id=env_id, on_episode=writer.add))
        for _ in range(min(num_envs, len(pending)))
    ]
    started = time.perf_counter()
    try:
        while True:
            for slot in slots:
                if slot.planned is None and pending:
                    _start(slot, pending.pop(), base, task_options)
            active = [s for s in slots if s.planned is not None]
            if not active:
                break
            turns = [
                Turn(
                    env_id=s.env.record_env_id,
                    goal=s.env.episode.goal,
                    initial_observation=s.env.episode.initial_observation,
                    observation=s.observation,
                    info=s.info,
                    history=s.env.episode.steps,
                )
                for s in active
            ]
            decisions = policy.act(turns)
            if len(decisions) != len(turns):
                raise OreoError(f"policy '{policy.name}' returned {len(decisions)} decisions for {len(turns)} turns")
            for slot, decision in zip(active, decisions):
                obs, _, terminated, truncated, info = slot.env.step_with(decision)
                slot.observation, slot.info = obs, info
                if terminated or truncated:
                    summary.add(slot.env.last_episode)
                    slot.planned = None
            summary.seconds = time.perf_counter() - started
            if progress is not None:
                progress.update(summary)
    finally:
        summary.seconds = time.perf_counter() - started
        for slot in slots:
            slot.env.close()
    return summary


def _start(slot: _Slot, planned: PlannedEpisode, base: EpisodeMetadata, task_options: Any) -> None:
    extra = json.loads(base.extra or "{}")
    extra.update(task_slot=planned.task_slot, sample_index=planned.sample_index, reset_seed=planned.reset_seed)
    slot.env.record_metadata = replace(base, extra=json.dumps(extra, sort_keys=True))
    obs, info = slot.env.reset(
        seed=planned.reset_seed,
        options=task_options(slot.env, planned.task_slot) if task_options is not None else None,
        episode_id=planned.episode_id,
        sample_index=planned.sample_index,
    )
    slot.planned, slot.observation, slot.info = planned, obs, info


class CollectProgress:
    """A rich progress bar for :func:`collect_episodes`: episodes, success rate, steps/s.

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

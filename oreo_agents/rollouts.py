"""The rollout runner: the one loop that plays episodes, for ``collect``, ``eval`` and ``play`` alike.

``num_envs`` envs are stepped together: each turn the policy decides for every env still running in ONE batched
``policy.act(turns)`` call (a model policy runs one batched generation), and each env steps with its decision. What
happens is reported as events, so a consumer writes records (collect), counts outcomes (eval) or renders live (play)::

    >>> jobs = [Job(seed=i, task=i) for i in range(8)]
    >>> for event in rollouts(make_env, policy, jobs, num_envs=4, task_options=task_reset_options):  # doctest: +SKIP
    ...     if isinstance(event, EpisodeFinished):
    ...         writer.add(event.record)

The rules, all here or in the record functions of :mod:`oreo_agents.recording.recorder` that this module shares with
``RecordEpisode``:

- episode ``job`` starts with ``env.reset(seed=job.seed, options=task_options(env, job.task))`` (no options without
  ``task_options``); ``info`` gets the episode id (``info["episode_id"]``) so policies can seed per-episode randomness
  from it and an episode does not depend on batching or resuming;
- an env step that terminates or truncates ends the episode: ``success`` when ``info["won"]``, else ``failure``
  (terminated) or ``truncated`` (step limit);
- a Decision without an action (the reply held no parseable action) never reaches the env: it is recorded as a step
  with an empty observation and reward 0, and the episode ends as ``invalid_action`` (OREO's ALFWorld data);
- a Decision marked ``aborted`` (the policy cannot act at all, e.g. the context is too long) ends the episode as
  ``aborted`` without a step.

Envs are built before the first reset (``min(num_envs, len(jobs))`` of them) and closed when the runner ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Union

from oreo_agents.envs.core import INFO_WON, TERMINATION_ABORTED, TERMINATION_INVALID
from oreo_agents.errors import OreoError
from oreo_agents.recording.recorder import (
    INFO_EPISODE_ID,
    env_id_of,
    env_step_record,
    invalid_step_record,
    start_record,
    termination_of,
)
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.turns import Decision, Policy, Turn


@dataclass(frozen=True)
class Job:
    """One episode to play.

    Args:
        seed: the reset seed.
        task: handed to ``task_options(env, task)`` to build the reset options (a task index, a game name...).
        episode_id: the record's id (default: derived from the task, metadata and ``sample_index``).
        sample_index: which sample of its task this episode is.
        metadata: provenance for this episode's record (default: the runner's ``metadata``).
        tag: anything the caller wants back on the events (a plan entry, an index).
    """

    seed: int | None = None
    task: Any = None
    episode_id: str | None = None
    sample_index: int = 0
    metadata: EpisodeMetadata | None = None
    tag: Any = None


@dataclass
class EpisodeStarted:
    slot: int  # which env of the batch
    job: Job
    observation: str
    info: dict[str, Any]
    episode: EpisodeRecord  # the running record (steps empty)
    env: Any  # the env playing it (e.g. for its step limit)


@dataclass
class StepTaken:
    """One decision applied to one env. ``termination`` is the episode's ending when this step ended it, else ""."""

    slot: int
    job: Job
    decision: Decision
    observation: str  # after the step (unchanged for an invalid or aborted decision)
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode: EpisodeRecord
    termination: str = ""

    @property
    def stepped_env(self) -> bool:
        """Whether the env saw this decision (False for an unparseable reply or an aborted decision)."""
        return self.decision.action is not None and not self.decision.aborted


@dataclass
class EpisodeFinished:
    slot: int
    job: Job
    record: EpisodeRecord  # termination set


@dataclass
class TurnFinished:
    """Every running env has stepped once (one batched ``act``); ``active`` envs took part."""

    active: int


Event = Union[EpisodeStarted, StepTaken, EpisodeFinished, TurnFinished]


@dataclass
class _Slot:
    env: Any
    env_id: str
    job: Job | None = None
    episode: EpisodeRecord | None = None
    observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def rollouts(
    make_env: Callable[[], Any],
    policy: Policy,
    jobs: Iterable[Job],
    *,
    num_envs: int = 1,
    env_id: str | None = None,
    metadata: EpisodeMetadata | None = None,
    task_options: Callable[[Any, Any], dict[str, Any] | None] | None = None,
) -> Iterator[Event]:
    """Play ``jobs`` in order on up to ``num_envs`` envs, yielding events (see the module docstring).

    Args:
        make_env: builds one env; called ``min(num_envs, len(jobs))`` times before the first reset.
        policy: decides for all running envs at once, one ``act`` call per turn.
        env_id: stored on the records and shown to the policy (default: each env's registered id).
        metadata: provenance for records whose job carries none.
        task_options: ``(env, job.task) -> reset options`` (e.g. :func:`oreo_agents.envs.core.task_reset_options`).
    """
    if num_envs < 1:
        raise OreoError(f"--num-envs {num_envs}: need at least one env")
    pending = deque(jobs)
    base = metadata or EpisodeMetadata()
    slots: list[_Slot] = []
    try:
        for _ in range(min(num_envs, len(pending))):
            env = make_env()
            slots.append(_Slot(env, env_id or env_id_of(env)))
        while True:
            for i, slot in enumerate(slots):
                if slot.job is None and pending:
                    yield _start(i, slot, pending.popleft(), base, task_options)
            active = [(i, s) for i, s in enumerate(slots) if s.job is not None]
            if not active:
                return
            turns = [Turn(env_id=s.env_id, goal=s.episode.goal, initial_observation=s.episode.initial_observation,
                          observation=s.observation, info=s.info, history=s.episode.steps) for _, s in active]
            decisions = policy.act(turns)
            if len(decisions) != len(turns):
                raise OreoError(f"policy '{policy.name}' returned {len(decisions)} decisions for {len(turns)} turns")
            for (i, slot), decision in zip(active, decisions):
                step = _apply(i, slot, decision)
                if step.termination:
                    step.episode.termination = step.termination
                    slot.job, slot.episode = None, None
                yield step
                if step.termination:
                    yield EpisodeFinished(i, step.job, step.episode)
            yield TurnFinished(len(active))
    finally:
        for slot in slots:
            slot.env.close()


def _start(i: int, slot: _Slot, job: Job, base: EpisodeMetadata, task_options: Any) -> EpisodeStarted:
    options = task_options(slot.env, job.task) if task_options is not None else None
    obs, info = slot.env.reset(seed=job.seed, options=options)
    obs = str(obs)
    episode = start_record(obs, info, env_id=slot.env_id, metadata=job.metadata or base,
                           sample_index=job.sample_index, episode_id=job.episode_id)
    info = dict(info)
    info[INFO_EPISODE_ID] = episode.episode_id
    slot.job, slot.episode, slot.observation, slot.info = job, episode, obs, info
    return EpisodeStarted(i, job, obs, info, episode, slot.env)


def _apply(i: int, slot: _Slot, decision: Decision) -> StepTaken:
    episode, job = slot.episode, slot.job
    assert episode is not None and job is not None
    if getattr(decision, "aborted", False):
        # Nothing reaches the env and nothing is recorded as a step; the episode ends as stopped from outside.
        return StepTaken(i, job, decision, slot.observation, 0.0, False, True, slot.info, episode, TERMINATION_ABORTED)
    if decision.action is None:
        episode.steps.append(invalid_step_record(decision))
        return StepTaken(i, job, decision, slot.observation, 0.0, True, False, slot.info, episode, TERMINATION_INVALID)
    obs, reward, terminated, truncated, info = slot.env.step(decision.action)
    obs = str(obs)
    episode.steps.append(env_step_record(decision.action, obs, reward, info, decision))
    info = dict(info)
    info[INFO_EPISODE_ID] = episode.episode_id
    slot.observation, slot.info = obs, info
    ending = termination_of(bool(terminated), bool(truncated), bool(info.get(INFO_WON, False)))
    return StepTaken(i, job, decision, obs, float(reward), bool(terminated), bool(truncated), info, episode,
                     ending or "")


def finished_records(events: Iterable[Event]) -> Iterator[EpisodeRecord]:
    """Only the finished records of a run, in the order they finished."""
    for event in events:
        if isinstance(event, EpisodeFinished):
            yield event.record


__all__ = ["Event", "EpisodeFinished", "EpisodeStarted", "Job", "StepTaken", "TurnFinished", "finished_records",
           "rollouts"]

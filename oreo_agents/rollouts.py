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

With ``env_workers=N`` the envs live in N worker processes (:mod:`oreo_agents.envs.workers`) and there is no lockstep:
each env whose observation is back joins the next batched ``act`` while the workers keep stepping the others, so the
policy (one backend, in this process) and the envs work at the same time. The events and records are the same (an
episode is a function of its job and the policy's per-episode seeding), only their interleaving differs; a crashed or
hung worker is restarted and its episodes replayed without the caller seeing it.
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
    """One batched ``act`` was applied: in process, every running env stepped once; with env workers, every env whose
    observation was ready. ``active`` envs took part."""

    active: int


Event = Union[EpisodeStarted, StepTaken, EpisodeFinished, TurnFinished]


@dataclass
class _Slot:
    env: Any  # the env, or a worker's RemoteEnv
    env_id: str
    job: Job | None = None
    episode: EpisodeRecord | None = None  # None while a worker resets the env for ``job``
    observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None  # sent to a worker, its step not back yet


def rollouts(
    make_env: Callable[[], Any],
    policy: Policy,
    jobs: Iterable[Job],
    *,
    num_envs: int = 1,
    env_id: str | None = None,
    metadata: EpisodeMetadata | None = None,
    task_options: Callable[[Any, Any], dict[str, Any] | None] | None = None,
    env_workers: int = 0,
    env_timeout: float = 300.0,
    env_restarts: int = 3,
) -> Iterator[Event]:
    """Play ``jobs`` in order on up to ``num_envs`` envs, yielding events (see the module docstring).

    Args:
        make_env: builds one env; called ``min(num_envs, len(jobs))`` times before the first reset (in the workers
            with ``env_workers``: it must then be picklable, e.g. :class:`oreo_agents.envs.workers.EnvSpec`).
        policy: decides for all running envs at once, one ``act`` call per turn.
        env_id: stored on the records and shown to the policy (default: each env's registered id).
        metadata: provenance for records whose job carries none.
        task_options: ``(env, job.task) -> reset options`` (e.g. :func:`oreo_agents.envs.core.task_reset_options`).
        env_workers: 0 steps the envs here, in turns; N > 0 steps them in N worker processes while the policy
            generates, see :func:`_rollouts_in_workers`.
        env_timeout, env_restarts: a worker's command older than ``env_timeout`` seconds is a hang; a crashed or hung
            worker is restarted (and its episodes replayed) up to ``env_restarts`` times in a row.
    """
    if num_envs < 1:
        raise OreoError(f"--num-envs {num_envs}: need at least one env")
    if env_workers < 0:
        raise OreoError(f"--env-workers {env_workers}: must be 0 (envs in this process) or more")
    if env_workers:
        yield from _rollouts_in_workers(make_env, policy, deque(jobs), num_envs, env_id, metadata, task_options,
                                        env_workers, env_timeout, env_restarts)
        return
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
            decisions = _act(policy, [_turn(s) for _, s in active])
            for (i, slot), decision in zip(active, decisions):
                step = _policy_ending(i, slot, decision) or _env_step(i, slot, decision, slot.env.step(decision.action))
                yield from _finish_if_ended(step, slot)
            yield TurnFinished(len(active))
    finally:
        for slot in slots:
            slot.env.close()


def _rollouts_in_workers(make_env: Callable[[], Any], policy: Policy, pending: deque[Job], num_envs: int,
                         env_id: str | None, metadata: EpisodeMetadata | None, task_options: Any, env_workers: int,
                         env_timeout: float, env_restarts: int) -> Iterator[Event]:
    """The same episodes and events, with the envs in worker processes and no lockstep.

    Each worker steps the envs it hosts while the policy generates for others; whenever replies come back, every env
    whose observation is ready joins ONE batched ``act`` (so ``TurnFinished.active`` is that batch's size), and its
    action goes straight back to its worker. An episode depends on its job alone (seeds and per-episode policy
    randomness), not on which envs happened to share its batches, so the records equal the in-process runner's.
    """
    from oreo_agents.envs.workers import EnvPool

    base = metadata or EpisodeMetadata()
    n = min(num_envs, len(pending))
    if n == 0:
        return
    pool = EnvPool(make_env, n, env_workers, timeout=env_timeout, restarts=env_restarts)
    try:
        slots = [_Slot(env, env_id or env_id_of(env)) for env in pool.envs]
        for i, slot in enumerate(slots):
            _send_reset(pool, i, slot, pending.popleft(), task_options)
        while any(slot.job is not None for slot in slots):
            ready: list[int] = []
            for i, result in pool.wait():
                slot = slots[i]
                if slot.episode is None:  # a reset came back
                    assert slot.job is not None
                    yield _started(i, slot, slot.job, base, *result)
                    ready.append(i)
                    continue
                assert slot.decision is not None
                step = _env_step(i, slot, slot.decision, result)
                slot.decision = None
                yield from _finish_if_ended(step, slot)
                if step.termination:
                    if pending:
                        _send_reset(pool, i, slot, pending.popleft(), task_options)
                else:
                    ready.append(i)
            if not ready:
                continue
            decisions = _act(policy, [_turn(slots[i]) for i in ready])
            for i, decision in zip(ready, decisions):
                slot = slots[i]
                step = _policy_ending(i, slot, decision)
                if step is None:
                    slot.decision = decision
                    pool.step(i, decision.action)
                    continue
                yield from _finish_if_ended(step, slot)
                if pending:
                    _send_reset(pool, i, slot, pending.popleft(), task_options)
            yield TurnFinished(len(ready))
    finally:
        pool.close()


def _send_reset(pool: Any, i: int, slot: _Slot, job: Job, task_options: Any) -> None:
    options = task_options(slot.env, job.task) if task_options is not None else None
    slot.job, slot.episode = job, None
    pool.reset(i, job.seed, options, label=job.episode_id or f"seed {job.seed}, task {job.task}")


def _turn(slot: _Slot) -> Turn:
    episode = slot.episode
    assert episode is not None
    return Turn(env_id=slot.env_id, goal=episode.goal, initial_observation=episode.initial_observation,
                observation=slot.observation, info=slot.info, history=episode.steps)


def _act(policy: Policy, turns: list[Turn]) -> list[Decision]:
    decisions = policy.act(turns)
    if len(decisions) != len(turns):
        raise OreoError(f"policy '{policy.name}' returned {len(decisions)} decisions for {len(turns)} turns")
    return decisions


def _start(i: int, slot: _Slot, job: Job, base: EpisodeMetadata, task_options: Any) -> EpisodeStarted:
    options = task_options(slot.env, job.task) if task_options is not None else None
    obs, info = slot.env.reset(seed=job.seed, options=options)
    return _started(i, slot, job, base, obs, info)


def _started(i: int, slot: _Slot, job: Job, base: EpisodeMetadata, obs: Any, info: dict[str, Any]) -> EpisodeStarted:
    obs = str(obs)
    episode = start_record(obs, info, env_id=slot.env_id, metadata=job.metadata or base,
                           sample_index=job.sample_index, episode_id=job.episode_id)
    info = dict(info)
    info[INFO_EPISODE_ID] = episode.episode_id
    slot.job, slot.episode, slot.observation, slot.info = job, episode, obs, info
    return EpisodeStarted(i, job, obs, info, episode, slot.env)


def _policy_ending(i: int, slot: _Slot, decision: Decision) -> StepTaken | None:
    """The step of a decision that never reaches the env (aborted, or no parseable action), else None."""
    episode, job = slot.episode, slot.job
    assert episode is not None and job is not None
    if getattr(decision, "aborted", False):
        # Nothing reaches the env and nothing is recorded as a step; the episode ends as stopped from outside.
        return StepTaken(i, job, decision, slot.observation, 0.0, False, True, slot.info, episode, TERMINATION_ABORTED)
    if decision.action is None:
        episode.steps.append(invalid_step_record(decision))
        return StepTaken(i, job, decision, slot.observation, 0.0, True, False, slot.info, episode, TERMINATION_INVALID)
    return None


def _env_step(i: int, slot: _Slot, decision: Decision, result: tuple[Any, Any, Any, Any, dict[str, Any]]) -> StepTaken:
    """The step of ``decision`` given what the env's ``step`` returned."""
    episode, job = slot.episode, slot.job
    assert episode is not None and job is not None
    obs, reward, terminated, truncated, info = result
    obs = str(obs)
    episode.steps.append(env_step_record(decision.action, obs, reward, info, decision))
    info = dict(info)
    info[INFO_EPISODE_ID] = episode.episode_id
    slot.observation, slot.info = obs, info
    ending = termination_of(bool(terminated), bool(truncated), bool(info.get(INFO_WON, False)))
    return StepTaken(i, job, decision, obs, float(reward), bool(terminated), bool(truncated), info, episode,
                     ending or "")


def _finish_if_ended(step: StepTaken, slot: _Slot) -> Iterator[Event]:
    """The step event, then ``EpisodeFinished`` when it ended the episode (the slot is then free)."""
    if step.termination:
        step.episode.termination = step.termination
        slot.job, slot.episode = None, None
    yield step
    if step.termination:
        yield EpisodeFinished(step.slot, step.job, step.episode)


def finished_records(events: Iterable[Event]) -> Iterator[EpisodeRecord]:
    """Only the finished records of a run, in the order they finished."""
    for event in events:
        if isinstance(event, EpisodeFinished):
            yield event.record


__all__ = ["Event", "EpisodeFinished", "EpisodeStarted", "Job", "StepTaken", "TurnFinished", "finished_records",
           "rollouts"]

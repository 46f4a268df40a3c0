"""A Gymnasium wrapper that records every episode of a text env as an :class:`~oreo_agents.recording.schema.EpisodeRecord`.

It works on any ``gymnasium.Env`` whose observations and actions are strings (ours or anyone's): the task fields are
read from ``info`` when the env provides them (``task_id``, ``task_type``, ``goal``, ``split``, ``won``) and fall back
to neutral values otherwise. What a language model produced alongside an action (token ids, log-probs, value, raw
reply) reaches the record through the ``decision`` attribute, set to the policy's :class:`~oreo_agents.turns.Decision`
before :meth:`step` (``reset`` and ``step`` keep Gymnasium's signatures, so outer wrappers forward them); without it
``step`` records the action alone::

    >>> import gymnasium as gym
    >>> from oreo_agents.recording import RecordEpisode
    >>> env = RecordEpisode(gym.make("oreo_agents/ALFWorld-v0", expert=True))      # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                               # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])  # doctest: +SKIP
    >>> env.last_episode.to_row()["length"]          # set once an episode has ended  # doctest: +SKIP

The rules that build a record (what a step stores, how an episode's ending is named) are the functions below, shared
with the rollout runner (:mod:`oreo_agents.rollouts`), which also applies the policy-side endings (an unparseable reply,
an aborted decision). Finished episodes go to ``on_episode`` (e.g. :meth:`ShardWriter.add <oreo_agents.recording.writer.ShardWriter.add>`)
and to ``last_episode``; the wrapper keeps nothing else, so memory does not grow with the number of episodes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any, Callable, SupportsFloat

import gymnasium as gym

from oreo_agents.envs.core import (
    INFO_GOAL,
    INFO_SPLIT,
    INFO_TASK_ID,
    INFO_TASK_TYPE,
    INFO_WON,
    TERMINATION_ABORTED,
    TERMINATION_FAILURE,
    TERMINATION_SUCCESS,
    TERMINATION_TRUNCATED,
)
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.turns import StepRecord

# The wrapper puts the id of the running episode in ``info`` so policies can seed per-episode randomness from it
# (the random policy does): results then do not depend on how episodes were batched or resumed.
INFO_EPISODE_ID = "episode_id"


def env_id_of(env: gym.Env) -> str:
    """The env's registered id (or its class name when it has none)."""
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _task_id_fallback(observation: str) -> str:
    # An env that names no task: the first observation identifies it (same game -> same text) well enough to group.
    return "obs-" + hashlib.sha256(observation.encode()).hexdigest()[:12]


def start_record(observation: str, info: dict[str, Any], *, env_id: str, metadata: EpisodeMetadata,
                 sample_index: int = 0, episode_id: str | None = None) -> EpisodeRecord:
    """The record of an episode that just reset to ``observation`` / ``info`` (task fields read from ``info``).

    ``episode_id`` defaults to :meth:`EpisodeRecord.make_episode_id` (task, metadata, ``sample_index``)."""
    record = EpisodeRecord(
        env_id=env_id,
        task_id=str(info.get(INFO_TASK_ID) or _task_id_fallback(observation)),
        split=str(info.get(INFO_SPLIT, "") or ""),
        task_type=str(info.get(INFO_TASK_TYPE, "") or ""),
        goal=str(info.get(INFO_GOAL, "") or ""),
        initial_observation=observation,
        metadata=replace(metadata),
        sample_index=sample_index,
    )
    record.episode_id = episode_id or record.make_episode_id()
    return record


def decision_extras(decision: Any) -> dict[str, Any]:
    """What a policy's Decision adds to its step: the raw reply, prompt / completion token ids, log-probs, value."""
    if decision is None:
        return {}
    return {
        "prompt_token_ids": [int(t) for t in (decision.prompt_token_ids or [])],
        "completion_token_ids": [int(t) for t in (decision.completion_token_ids or [])],
        "completion_logprobs": [float(x) for x in (decision.completion_logprobs or [])],
        "value": float(decision.value) if decision.value is not None else math.nan,
    }


def env_step_record(action: Any, observation: str, reward: SupportsFloat, info: dict[str, Any],
                    decision: Any = None) -> StepRecord:
    """A step the env took (``decision``: the policy's Decision that chose ``action``, or None)."""
    reply = (decision.reply or None) if decision is not None else None
    return StepRecord(action=str(action), observation=observation, reward=float(reward),
                      won=bool(info.get(INFO_WON, False)), reply=reply, **decision_extras(decision))


def invalid_step_record(decision: Any) -> StepRecord:
    """The step of a reply that held no parseable action: the env never saw it, so the observation is empty, the
    reward 0 and the state unchanged (OREO's ALFWorld data); the episode then ends as ``invalid_action``."""
    return StepRecord(action="", observation="", reward=0.0, won=False, reply=decision.reply or "",
                      **decision_extras(decision))


def termination_of(terminated: bool, truncated: bool, won: bool) -> str | None:
    """How an env step ended the episode (None: it did not): a win is a success whether the env terminated or hit its
    step limit on that step; otherwise ``failure`` (terminated) or ``truncated`` (step limit)."""
    if terminated:
        return TERMINATION_SUCCESS if won else TERMINATION_FAILURE
    if truncated:
        return TERMINATION_SUCCESS if won else TERMINATION_TRUNCATED
    return None


class RecordEpisode(gym.Wrapper):
    """Record each episode of a text env; see the module docstring.

    Args:
        env: any env with string observations and actions.
        metadata: provenance stored on every episode (policy name, checkpoint, sampling, seed, versions).
        env_id: stored as ``env_id``; defaults to the env's registered id.
        on_episode: called with each finished :class:`EpisodeRecord`.

    Attributes read by ``reset`` / ``step`` (set them before the call; outer wrappers reach them with
    ``get_wrapper_attr`` / ``set_wrapper_attr``): ``sample_index`` (which sample of this task, part of the derived
    episode id), ``next_episode_id`` (used once by the next ``reset`` instead of the derived id) and ``decision`` (the
    policy's Decision for the next ``step``, used once: its reply, token ids, log-probs and value are recorded).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        metadata: EpisodeMetadata | None = None,
        env_id: str | None = None,
        on_episode: Callable[[EpisodeRecord], None] | None = None,
    ) -> None:
        super().__init__(env)
        self.record_metadata = metadata or EpisodeMetadata()
        self.record_env_id = env_id or env_id_of(env)
        self.on_episode = on_episode
        self.sample_index = 0
        self.next_episode_id: str | None = None
        self.decision: Any = None
        self.episode: EpisodeRecord | None = None  # the running episode
        self.last_episode: EpisodeRecord | None = None  # the latest finished one

    # --- gymnasium API ----------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        if self.episode is not None and self.episode.steps:
            # Reset in the middle of an episode: keep what happened, marked as stopped from outside.
            self._finish(TERMINATION_ABORTED)
        obs, info = self.env.reset(seed=seed, options=options)
        obs = str(obs)
        episode_id, self.next_episode_id, self.decision = self.next_episode_id, None, None
        self.episode = start_record(obs, info, env_id=self.record_env_id, metadata=self.record_metadata,
                                    sample_index=self.sample_index, episode_id=episode_id)
        info = dict(info)
        info[INFO_EPISODE_ID] = self.episode.episode_id
        return obs, info

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        episode = self._require_episode()
        decision, self.decision = self.decision, None
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs = str(obs)
        episode.steps.append(env_step_record(action, obs, reward, info, decision))
        info = dict(info)
        info[INFO_EPISODE_ID] = episode.episode_id
        ending = termination_of(terminated, truncated, bool(info.get(INFO_WON, False)))
        if ending is not None:
            self._finish(ending)
        return obs, reward, terminated, truncated, info

    # --- recording extras -------------------------------------------------------------------------------------------
    def abort(self) -> EpisodeRecord | None:
        """End the running episode from outside (e.g. the context grew past the model's limit); returns the record."""
        if self.episode is None:
            return None
        return self._finish(TERMINATION_ABORTED)

    # --- internals --------------------------------------------------------------------------------------------------
    def _require_episode(self) -> EpisodeRecord:
        if self.episode is None:
            raise gym.error.ResetNeeded("RecordEpisode: call reset() before step() (the previous episode has ended)")
        return self.episode

    def _finish(self, termination: str) -> EpisodeRecord:
        episode = self._require_episode()
        episode.termination = termination
        self.episode = None
        self.last_episode = episode
        if self.on_episode is not None:
            self.on_episode(episode)
        return episode

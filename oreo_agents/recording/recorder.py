"""A Gymnasium wrapper that records every episode of a text env as an :class:`~oreo_agents.recording.schema.EpisodeRecord`.

It works on any ``gymnasium.Env`` whose observations and actions are strings (ours or anyone's): the task fields are
read from ``info`` when the env provides them (``task_id``, ``task_type``, ``goal``, ``split``, ``won``) and fall back
to neutral values otherwise. What a language model produced alongside an action (token ids, log-probs, value, raw
reply) reaches the record through :meth:`RecordEpisode.step_with`, which takes the policy's
:class:`~oreo_agents.turns.Decision`; plain :meth:`step` records the action alone::

    >>> import gymnasium as gym
    >>> from oreo_agents.recording import RecordEpisode
    >>> env = RecordEpisode(gym.make("oreo_agents/ALFWorld-v0", expert=True))      # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                               # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])  # doctest: +SKIP
    >>> env.last_episode.to_row()["length"]          # set once an episode has ended  # doctest: +SKIP

Finished episodes go to ``on_episode`` (e.g. :meth:`ShardWriter.add <oreo_agents.recording.writer.ShardWriter.add>`)
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
    TERMINATION_INVALID,
    TERMINATION_SUCCESS,
    TERMINATION_TRUNCATED,
)
from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
from oreo_agents.turns import StepRecord

# The wrapper puts the id of the running episode in ``info`` so policies can seed per-episode randomness from it
# (the random policy does): results then do not depend on how episodes were batched or resumed.
INFO_EPISODE_ID = "episode_id"


def _env_id_of(env: gym.Env) -> str:
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _task_id_fallback(observation: str) -> str:
    # An env that names no task: the first observation identifies it (same game -> same text) well enough to group.
    return "obs-" + hashlib.sha256(observation.encode()).hexdigest()[:12]


class RecordEpisode(gym.Wrapper):
    """Record each episode of a text env; see the module docstring.

    Args:
        env: any env with string observations and actions.
        metadata: provenance stored on every episode (policy name, checkpoint, sampling, seed, versions).
        env_id: stored as ``env_id``; defaults to the env's registered id.
        on_episode: called with each finished :class:`EpisodeRecord`.

    ``reset`` takes two optional keyword-only extras: ``episode_id`` (otherwise derived from the task, metadata and
    ``sample_index`` by :meth:`EpisodeRecord.make_episode_id`) and ``sample_index`` (which sample of this task).
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
        self.record_env_id = env_id or _env_id_of(env)
        self.on_episode = on_episode
        self.episode: EpisodeRecord | None = None  # the running episode
        self.last_episode: EpisodeRecord | None = None  # the latest finished one
        self._last_obs = ""
        self._last_info: dict[str, Any] = {}

    # --- gymnasium API ----------------------------------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | None = None,
        options: dict[str, Any] | None = None,
        episode_id: str | None = None,
        sample_index: int = 0,
    ) -> tuple[str, dict[str, Any]]:
        if self.episode is not None and self.episode.steps:
            # Reset in the middle of an episode: keep what happened, marked as stopped from outside.
            self._finish(TERMINATION_ABORTED)
        obs, info = self.env.reset(seed=seed, options=options)
        obs = str(obs)
        task_id = str(info.get(INFO_TASK_ID) or _task_id_fallback(obs))
        record = EpisodeRecord(
            env_id=self.record_env_id,
            task_id=task_id,
            split=str(info.get(INFO_SPLIT, "") or ""),
            task_type=str(info.get(INFO_TASK_TYPE, "") or ""),
            goal=str(info.get(INFO_GOAL, "") or ""),
            initial_observation=obs,
            metadata=replace(self.record_metadata),
            sample_index=sample_index,
        )
        record.episode_id = episode_id or record.make_episode_id()
        self.episode = record
        info = dict(info)
        info[INFO_EPISODE_ID] = record.episode_id
        self._last_obs, self._last_info = obs, info
        return obs, info

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        return self._step(action, reply=None, extras={})

    # --- recording extras -------------------------------------------------------------------------------------------
    def step_with(self, decision: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step with a policy :class:`~oreo_agents.turns.Decision`, recording its reply, token ids and log-probs.

        A decision whose ``action`` is None (the reply held no parseable action) does not reach the env: the episode
        ends here with reward 0 and termination ``invalid_action``, as in OREO's ALFWorld data. A decision marked
        ``aborted`` ends the episode as ``aborted`` (returned as truncated) without recording a step.
        """
        extras = {
            "prompt_token_ids": [int(t) for t in (decision.prompt_token_ids or [])],
            "completion_token_ids": [int(t) for t in (decision.completion_token_ids or [])],
            "completion_logprobs": [float(x) for x in (decision.completion_logprobs or [])],
            "value": float(decision.value) if decision.value is not None else math.nan,
        }
        if getattr(decision, "aborted", False):
            # The policy could not act at all (e.g. context too long): nothing was sent and nothing is recorded as a
            # step; the episode ends as stopped from outside.
            episode = self._require_episode()
            self._finish(TERMINATION_ABORTED)
            info = dict(self._last_info)
            info[INFO_EPISODE_ID] = episode.episode_id
            return self._last_obs, 0.0, False, True, info
        if decision.action is None:
            return self._invalid(decision.reply or "", extras)
        return self._step(decision.action, reply=decision.reply or None, extras=extras)

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

    def _step(self, action: Any, *, reply: str | None, extras: dict[str, Any]):
        episode = self._require_episode()
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs = str(obs)
        won = bool(info.get(INFO_WON, False))
        episode.steps.append(
            StepRecord(action=str(action), observation=obs, reward=float(reward), won=won, reply=reply, **extras)
        )
        info = dict(info)
        info[INFO_EPISODE_ID] = episode.episode_id
        self._last_obs, self._last_info = obs, info
        if terminated or truncated:
            if terminated:
                termination = TERMINATION_SUCCESS if won else TERMINATION_FAILURE
            else:
                termination = TERMINATION_SUCCESS if won else TERMINATION_TRUNCATED
            self._finish(termination)
        return obs, reward, terminated, truncated, info

    def _invalid(self, reply: str, extras: dict[str, Any]):
        episode = self._require_episode()
        # The env never saw this reply, so the "observation" is empty and the state did not change.
        episode.steps.append(StepRecord(action="", observation="", reward=0.0, won=False, reply=reply, **extras))
        self._finish(TERMINATION_INVALID)
        info = dict(self._last_info)
        info[INFO_EPISODE_ID] = episode.episode_id
        return self._last_obs, 0.0, True, False, info

    def _finish(self, termination: str) -> EpisodeRecord:
        episode = self._require_episode()
        episode.termination = termination
        self.episode = None
        self.last_episode = episode
        if self.on_episode is not None:
            self.on_episode(episode)
        return episode

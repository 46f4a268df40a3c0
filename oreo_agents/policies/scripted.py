"""Scripted collection policies: the env's expert, uniform random over admissible commands, and a noisy expert.

They need no model and no torch. Randomness is seeded per episode and step (from the policy seed, the ``episode_id`` the
recorder puts in ``info``, and the step number), so an episode's actions do not depend on how many envs ran in parallel
or on whether the collection was resumed::

    >>> policy = NoisyExpertPolicy(eps=0.2, seed=0)
    >>> turn = Turn(env_id="demo", goal="", initial_observation="", observation="",
    ...             info={"expert_action": "go to desk 1", "admissible_commands": ["look", "go to desk 1"]})
    >>> policy.act([turn])[0].action in {"look", "go to desk 1"}
    True
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

from oreo_agents.envs.core import INFO_ADMISSIBLE, INFO_EXPERT
from oreo_agents.errors import OreoError
from oreo_agents.turns import Decision, Turn

_EPISODE_KEY = "episode_id"  # set by oreo_agents.recording.RecordEpisode


class _Seeded:
    """Per-(episode, step) random streams, independent of batching order."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._fallback = random.Random(self.seed)  # turns that carry no episode id (env used without the recorder)

    def rng(self, turn: Turn) -> random.Random:
        episode = turn.info.get(_EPISODE_KEY)
        if not episode:
            return self._fallback
        key = f"{self.seed}|{episode}|{len(turn.history)}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _expert_action(turn: Turn) -> str | None:
    if INFO_EXPERT not in turn.info:
        raise OreoError(
            f"the expert policy needs an env built with expert=True: info from '{turn.env_id}' has no '{INFO_EXPERT}'"
        )
    action = turn.info[INFO_EXPERT]
    return None if action is None else str(action)


def _random_action(turn: Turn, rng: random.Random) -> str:
    commands = list(turn.info.get(INFO_ADMISSIBLE) or [])
    if not commands:
        # Math envs accept any line, so there is no finite set to draw from; inventing text would not be "random play".
        raise OreoError(
            f"the random policy needs admissible commands, and '{turn.env_id}' lists none "
            "(free-text envs such as math): use --policy expert or --policy model"
        )
    return rng.choice(sorted(commands))  # sorted: the env's listing order must not change the draw


class ExpertPolicy:
    """Plays ``info["expert_action"]``. An expert with no next action yields ``action=None`` (the episode ends)."""

    name = "expert"

    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        out = []
        for turn in turns:
            action = _expert_action(turn)
            out.append(Decision(action=action, reply=action or ""))
        return out

    def metadata(self) -> dict[str, Any]:
        return {"checkpoint": "", "sampling": {}, "tokenizer": ""}


class RandomPolicy:
    """Uniform over ``info["admissible_commands"]``; refuses envs without admissible commands."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._seeded = _Seeded(seed)

    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        out = []
        for turn in turns:
            action = _random_action(turn, self._seeded.rng(turn))
            out.append(Decision(action=action, reply=action))
        return out

    def metadata(self) -> dict[str, Any]:
        return {"checkpoint": "", "sampling": {"seed": self._seeded.seed}, "tokenizer": ""}


class NoisyExpertPolicy:
    """The expert's action with probability ``1 - eps``, a uniform admissible command otherwise."""

    name = "noisy-expert"

    def __init__(self, eps: float = 0.2, seed: int = 0) -> None:
        if not 0.0 <= eps <= 1.0:
            raise OreoError(f"noisy-expert: eps must be in [0, 1], got {eps}")
        self.eps = float(eps)
        self._seeded = _Seeded(seed)

    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        out = []
        for turn in turns:
            rng = self._seeded.rng(turn)
            expert = _expert_action(turn)  # checked on every turn so a missing expert is reported even at eps=1
            action = _random_action(turn, rng) if rng.random() < self.eps or expert is None else expert
            out.append(Decision(action=action, reply=action))
        return out

    def metadata(self) -> dict[str, Any]:
        return {"checkpoint": "", "sampling": {"eps": self.eps, "seed": self._seeded.seed}, "tokenizer": ""}

"""The contract between envs' episodes, policies and the recorder: what a policy sees (:class:`Turn`), what it returns
(:class:`Decision`) and what is recorded of a step (:class:`StepRecord`). Below ``recording`` and ``policies``, which
both build on it; imports nothing of the package.

The policy interface that ``collect``, ``play`` and ``eval`` call.

A policy decides for a *batch* of envs at once (a model policy runs one batched generation for all of them)::

    turns = [Turn(env_id=..., goal=..., initial_observation=..., observation=obs, info=info, history=[...])]
    decisions = policy.act(turns)          # one Decision per Turn, same order
    env.step(decisions[0].action)

A :class:`Decision` carries what the recorder stores: the action, the raw reply, and — when a language model acted —
the prompt token ids (the new part of the context, see :mod:`oreo_agents.recording.schema`), the completion ids exactly
as sampled and their log-probs. Value-guided agents also fill ``candidates`` (every sampled reply with its log-prob and
value) so ``play`` can show them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable



@dataclass
class StepRecord:
    """One env step as recorded (see module docstring)."""

    action: str
    observation: str
    reward: float
    won: bool = False
    reply: str | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    completion_token_ids: list[int] = field(default_factory=list)
    completion_logprobs: list[float] = field(default_factory=list)
    value: float = math.nan

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["reply"] = self.action if self.reply is None else self.reply
        return row


@dataclass
class Turn:
    """Everything a policy may look at to act in one env at one step."""

    env_id: str
    goal: str
    initial_observation: str
    observation: str
    info: dict[str, Any]
    history: list[StepRecord] = field(default_factory=list)


@dataclass
class Candidate:
    """One reply a policy considered (value-guided selection shows all of them)."""

    reply: str
    action: str | None
    logprob: float = math.nan  # sum of token log-probs under the policy
    value: float = math.nan  # V at the reply's last token
    chosen: bool = False


@dataclass
class Decision:
    action: str | None  # None: the reply holds no parseable action (the episode ends with reward 0)
    reply: str = ""
    prompt_token_ids: list[int] = field(default_factory=list)
    completion_token_ids: list[int] = field(default_factory=list)
    completion_logprobs: list[float] = field(default_factory=list)
    value: float = math.nan
    value_before: float = math.nan  # V of the context the reply was chosen in (value - value_before = the advantage A_t)
    candidates: list[Candidate] = field(default_factory=list)
    # The policy cannot act at all (e.g. the context is longer than the model accepts): stop the episode from outside
    # (termination "aborted", see RecordEpisode.abort) instead of counting it as an unparseable reply.
    aborted: bool = False


@runtime_checkable
class Policy(Protocol):
    name: str

    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        """One decision per turn, in order."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Provenance for the recorder: ``checkpoint``, ``sampling`` (dict), ``tokenizer``."""
        ...


def history_rows(history: Sequence[StepRecord]) -> list[dict[str, Any]]:
    """Step records as the dict rows :func:`oreo_agents.prompting.encode_episode` reads."""
    return [s.to_row() for s in history]

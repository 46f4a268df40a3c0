"""The episode record: what the recorder writes, the learner reads and the exports transform.

One row per episode. Field by field (also in the README's "Dataset format"):

=====================  ======================  ==========================================================================
field                  type                    meaning
=====================  ======================  ==========================================================================
episode_id             string                  unique and deterministic: ``{task_id}#{policy}#{seed}#{sample}`` hashed
env_id                 string                  Gymnasium id, e.g. ``oreo_agents/ALFWorld-v0``
task_id                string                  game / problem / instruction id (episodes of one task share it)
split                  string                  ``train``, ``valid_seen``, ``valid_unseen``, ``test``
task_type              string                  e.g. ``pick_heat_then_place_in_recep``
goal                   string                  the task in words
initial_observation    string                  the observation returned by ``reset``
steps                  list of struct          one entry per env step, in order (below)
total_reward           float32                 sum of rewards (sparse: the terminal reward)
success                bool                    task achieved
length                 int32                   number of steps
termination            string                  ``success``, ``failure``, ``truncated``, ``invalid_action``, ``aborted``
metadata               struct                  provenance (below)
=====================  ======================  ==========================================================================

Each step:

- ``action`` (string): the command sent to the env (after parsing the model's reply).
- ``reply`` (string): the policy's raw text (equal to ``action`` for expert/random policies).
- ``observation`` (string), ``reward`` (float32), ``won`` (bool): what the env returned.
- ``prompt_token_ids`` (list[int32]): the tokens appended to the model's context just before this reply that it had not
  seen at the previous reply — the whole prompt at step 0, the rendered observation after that. Hence
  ``concat(prompt_token_ids[0], completion_token_ids[0], prompt_token_ids[1], ...)`` is exactly what the model read and
  wrote. Empty when no language model acted.
- ``completion_token_ids`` (list[int32]): the reply's tokens exactly as sampled, terminator included.
- ``completion_logprobs`` (list[float32]): the sampling policy's log-prob of each completion token.
- ``value`` (float32): the value model's estimate for the chosen reply when the agent used one, else NaN.

``metadata``: ``policy`` (expert/random/noisy-expert/model/agent), ``checkpoint`` (model directory or ""), ``sampling``
(JSON: temperature, top_p, k, selection mode...), ``seed`` (int64), ``env_version`` (e.g. ``alfworld 0.4.2``),
``grammar_hash`` (sha256 prefix of ALFWorld's grammar, "" elsewhere), ``tokenizer`` (name/hash of the tokenizer that
produced the ids, "" when none), ``package_version`` (oreo-agents), ``extra`` (JSON for anything else).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from oreo_agents.turns import StepRecord

SCHEMA_VERSION = 1


def episode_features():
    """The explicit ``datasets.Features`` of an episode row (imported lazily: ``datasets`` is slow to import)."""
    from datasets import Features, List, Value

    step = {
        "action": Value("string"),
        "reply": Value("string"),
        "observation": Value("string"),
        "reward": Value("float32"),
        "won": Value("bool"),
        "prompt_token_ids": List(Value("int32")),
        "completion_token_ids": List(Value("int32")),
        "completion_logprobs": List(Value("float32")),
        "value": Value("float32"),
    }
    metadata = {
        "policy": Value("string"),
        "checkpoint": Value("string"),
        "sampling": Value("string"),
        "seed": Value("int64"),
        "env_version": Value("string"),
        "grammar_hash": Value("string"),
        "tokenizer": Value("string"),
        "package_version": Value("string"),
        "extra": Value("string"),
    }
    return Features(
        {
            "episode_id": Value("string"),
            "env_id": Value("string"),
            "task_id": Value("string"),
            "split": Value("string"),
            "task_type": Value("string"),
            "goal": Value("string"),
            "initial_observation": Value("string"),
            "steps": List(step),
            "total_reward": Value("float32"),
            "success": Value("bool"),
            "length": Value("int32"),
            "termination": Value("string"),
            "metadata": metadata,
        }
    )


@dataclass
class EpisodeMetadata:
    policy: str = ""
    checkpoint: str = ""
    sampling: str = "{}"
    seed: int = 0
    env_version: str = ""
    grammar_hash: str = ""
    tokenizer: str = ""
    package_version: str = ""
    extra: str = "{}"


@dataclass
class EpisodeRecord:
    """An episode in memory; ``to_row`` gives the dict that matches :func:`episode_features`."""

    env_id: str
    task_id: str
    split: str
    task_type: str
    goal: str
    initial_observation: str
    steps: list[StepRecord] = field(default_factory=list)
    termination: str = ""
    metadata: EpisodeMetadata = field(default_factory=EpisodeMetadata)
    sample_index: int = 0
    episode_id: str = ""

    @property
    def total_reward(self) -> float:
        return float(sum(s.reward for s in self.steps))

    @property
    def success(self) -> bool:
        return bool(self.steps and self.steps[-1].won)

    def make_episode_id(self) -> str:
        key = f"{self.env_id}|{self.task_id}|{self.metadata.policy}|{self.metadata.checkpoint}|{self.metadata.seed}|{self.sample_index}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_row(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id or self.make_episode_id(),
            "env_id": self.env_id,
            "task_id": self.task_id,
            "split": self.split,
            "task_type": self.task_type,
            "goal": self.goal,
            "initial_observation": self.initial_observation,
            "steps": [s.to_row() for s in self.steps],
            "total_reward": self.total_reward,
            "success": self.success,
            "length": len(self.steps),
            "termination": self.termination,
            "metadata": asdict(self.metadata),
        }


REQUIRED_COLUMNS = ("episode_id", "task_id", "initial_observation", "steps", "total_reward", "success")

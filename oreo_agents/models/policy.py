"""The ``model`` policy: a causal LM that reads the ONE prompt format and writes one reply per turn.

All envs of a batch are decided with one batched generation call. Contexts come from
:func:`oreo_agents.prompting.context_ids`, so what the model reads here is byte-for-byte what the learner trains on, and
each :class:`~oreo_agents.turns.Decision` carries the new context part (``prompt_token_ids``), the reply ids
exactly as sampled (``completion_token_ids``, terminator included) and their log-probs::

    >>> policy = ModelPolicy.from_pretrained("runs/sft/policy", temperature=0.7)   # doctest: +SKIP
    >>> decisions = policy.act(turns)                                              # doctest: +SKIP
    >>> decisions[0].action, decisions[0].completion_token_ids                     # doctest: +SKIP
    ('go to cabinet 1', [412, 88, 9, 2])

A reply with no parseable action gives ``Decision(action=None)`` (the recorder ends the episode with reward 0, OREO's
rule). A context that no longer fits the model gives ``Decision(action=None, aborted=True)``: the episode is stopped
from outside (termination ``aborted``) rather than silently cutting what the model reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.turns import Decision, Turn, history_rows
from oreo_agents.models.backends import make_backend
from oreo_agents.models.sampling import Completion, GenerationBackend, SamplingParams, derive_seed
from oreo_agents.prompting import PromptFormat, context_ids, format_for

INFO_EPISODE_ID = "episode_id"  # put in info by oreo_agents.recording.RecordEpisode (no upward import for one name)


@dataclass
class Context:
    """What the model reads before its next reply in one env."""

    fmt: PromptFormat
    ids: list[int]  # the full context
    new_ids: list[int]  # the part added since the previous reply (recorded as prompt_token_ids)
    # Which reply of which episode this is ("<episode id>|step=<k>"), when the turn names its episode: the sampling seed
    # is derived from it, so an episode's replies do not depend on batching, resume or worker count.
    key: str | None = None


def tokenizer_id(tokenizer: Any) -> str:
    """A short, stable name for the tokenizer that produced recorded ids (name + hash of its vocabulary)."""
    import hashlib

    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    digest = hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:12]
    return f"{getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__}@{digest}"


class ModelPolicy:
    """An LM policy over a :class:`~oreo_agents.models.generation.GenerationBackend`.

    Args:
        model: a model folder (loaded on ``backend``: ``"hf"`` or ``"vllm"``) or a ready generation backend; the
            backend's tokenizer renders the prompt format.
        temperature: 0 = greedy. top_p: nucleus sampling. max_new_tokens: longest reply.
        batch_invariant: run each context alone (see :class:`~oreo_agents.models.generation.HFBackend`): log-probs
            bit for bit the same whatever the batch, slower.
        checkpoint: the model folder, stored in each episode's metadata.
        gpu_memory_utilization: ``backend="vllm"``: the engine's share of GPU memory (see ``VLLMBackend``).

    ``model`` may name a model folder, a PEFT LoRA adapter folder or a training checkpoint ``step-N``
    (:func:`oreo_agents.models.servable.servable`).
        seed: base seed. A turn that names its episode (``info["episode_id"]``, set by the recorder) samples with a
            seed derived from (seed, episode id, step): the reply is the same whatever the batch, resume or worker count.
            Other turns get a seed derived from (seed, call number, position), reproducible per run.
    """

    name = "model"

    def __init__(
        self,
        model: "str | Path | GenerationBackend",
        *,
        backend: str = "hf",
        device: str | None = None,
        dtype: str | None = None,
        max_batch_size: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        checkpoint: str = "",
        seed: int = 0,
        batch_invariant: bool = False,
        gpu_memory_utilization: float | None = None,
    ) -> None:
        if isinstance(model, (str, Path)):  # a model, LoRA adapter or checkpoint folder: load it on the chosen backend
            checkpoint = checkpoint or str(model)
            from oreo_agents.models.servable import servable

            served = servable(model, "--policy")
            model = make_backend(backend, served.model, lora=served.lora, device=device, dtype=dtype, seed=seed,
                                 max_batch_size=max_batch_size, batch_invariant=batch_invariant,
                                 gpu_memory_utilization=gpu_memory_utilization)
        self.backend: GenerationBackend = model
        self.tokenizer = model.tokenizer
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.checkpoint = checkpoint
        self.seed = seed
        self._calls = 0
        self.params(1)  # validate the sampling options now, not at the first turn

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> "ModelPolicy":
        return cls(path, **kwargs)

    # --- Policy protocol --------------------------------------------------------------------------------------------
    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        contexts = [self.context(t) for t in turns]
        samples = self.generate(contexts, n=1)
        return [self.decision(ctx, group[0]) for ctx, group in zip(contexts, samples)]

    def metadata(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "sampling": {
                "backend": getattr(self.backend, "name", "hf"),
                "temperature": self.temperature,
                "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens,
                "seed": self.seed,
            },
            "tokenizer": tokenizer_id(self.tokenizer),
        }

    # --- building blocks the agent reuses -------------------------------------------------------------------------
    def context(self, turn: Turn) -> Context:
        fmt = format_for(turn.env_id)
        full, new = context_ids(
            fmt,
            self.tokenizer,
            goal=turn.goal,
            initial_observation=turn.initial_observation,
            steps=history_rows(turn.history),
        )
        episode_id = (turn.info or {}).get(INFO_EPISODE_ID)
        key = f"{episode_id}|step={len(turn.history)}" if episode_id else None
        return Context(fmt, full, new, key)

    def params(self, n: int, *, fmt: PromptFormat | None = None, temperature: float | None = None) -> SamplingParams:
        return SamplingParams(
            n=n,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            stop_strings=fmt.stop_strings if fmt is not None else (),
        )

    def generate(
        self, contexts: Sequence[Context], *, n: int, temperature: float | None = None
    ) -> list[list[Completion]]:
        """``n`` replies per context; contexts of different formats (stop strings) go in separate batched calls."""
        out: list[list[Completion]] = [[] for _ in contexts]
        by_format: dict[str, list[int]] = {}
        for i, ctx in enumerate(contexts):
            by_format.setdefault(ctx.fmt.family, []).append(i)
        for indices in by_format.values():
            params = self.params(n, fmt=contexts[indices[0]].fmt, temperature=temperature)
            seeds = [self.seed_of(contexts[i], position) for position, i in enumerate(indices)]
            self._calls += 1
            for i, group in zip(indices, self.backend.generate([contexts[i].ids for i in indices], params, seeds=seeds)):
                out[i] = group
        return out

    def seed_of(self, ctx: Context, position: int) -> int:
        """The sampling seed of one context: from (seed, episode id, step) when known, else (seed, call, position)."""
        if ctx.key is not None:
            return derive_seed(self.seed, ctx.key)
        return derive_seed(self.seed, "call", self._calls, position)

    def decision(self, ctx: Context, sample: Completion, **extra: Any) -> Decision:
        """Turn one sampled reply into a Decision (action None when the reply holds no action)."""
        if sample.finish_reason == "context":
            return Decision(action=None, reply="", prompt_token_ids=list(ctx.new_ids), aborted=True, **extra)
        return Decision(
            action=ctx.fmt.parse_action(sample.text),
            reply=sample.text,
            prompt_token_ids=list(ctx.new_ids),
            completion_token_ids=list(sample.token_ids),
            completion_logprobs=list(sample.logprobs),
            **extra,
        )

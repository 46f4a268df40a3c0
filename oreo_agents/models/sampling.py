"""What every generation backend shares: the sampling settings, one completion, the backend protocol, seeds, EOS ids.

Torch-free and below both backends (:mod:`.generation`'s ``HFBackend`` and :mod:`.vllm_backend`), so neither imports the
other; :func:`oreo_agents.models.backends.make_backend` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, Sequence

from oreo_agents.errors import OreoError

FinishReason = Literal["eos", "stop", "length", "context"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy (then ``top_p`` and the seed do not matter)."""

    n: int = 1  # samples per context
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop_strings: tuple[str, ...] = ()  # stop once the completion's text contains one (the token is kept)
    stop_token_ids: tuple[int, ...] = ()  # extra terminators besides the tokenizer's/model's EOS
    logprobs: Literal["policy", "sampling"] = "policy"
    # Base seed of a call whose prompts carry no seeds of their own (see ``generate(..., seeds=)``); None: draw it from
    # the backend's own generator (reproducible per backend seed).
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise OreoError(f"sampling: n must be >= 1 (got {self.n})")
        if self.temperature < 0:
            raise OreoError(f"sampling: temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise OreoError(f"sampling: top_p must be in (0, 1] (got {self.top_p})")
        if self.max_new_tokens < 1:
            raise OreoError(f"sampling: max_new_tokens must be >= 1 (got {self.max_new_tokens})")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    """One sampled continuation of one context."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: FinishReason

    @property
    def logprob(self) -> float:
        return float(sum(self.logprobs))


class GenerationBackend(Protocol):
    name: str
    tokenizer: Any
    max_context: int | None  # longest sequence (context + completion) the model accepts, None if unbounded

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        """``params.n`` completions for each prompt, in prompt order. ``seeds`` (one per prompt) makes each prompt's
        samples a function of its own seed alone, whatever else is in the batch."""
        ...


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (e.g. policy seed, episode id, step): the same parts give the same seed on every
    machine and Python (sha256, not ``hash``)."""
    import hashlib

    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def eos_ids(tokenizer: Any, config: Any = None, extra: Sequence[int] = ()) -> set[int]:
    """Every id that ends a reply: the tokenizer's EOS, the model's generation-config EOS (int or list), extras."""
    ids = {int(t) for t in extra}
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    for source in (config, getattr(config, "generation_config", None)):
        eos = getattr(source, "eos_token_id", None)
        if eos is not None:
            ids.update(int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos]))
    return ids

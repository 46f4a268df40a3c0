"""vllm 0.32.0 ``sampling_params.py:268-381``: the fields our backend sets, with 0.32.0's defaults (a msgspec Struct
there, keyword construction here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingParams:
    n: int = 1  # 282
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0  # 305
    top_p: float = 1.0  # 312
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None  # 322
    stop: str | list[str] | None = None  # 324
    stop_token_ids: list[int] | None = None  # 327
    ignore_eos: bool = False
    max_tokens: int | None = 16  # 334
    min_tokens: int = 0
    logprobs: int | None = None  # 339
    prompt_logprobs: int | None = None
    flat_logprobs: bool = False  # 366
    detokenize: bool = True  # 375
    skip_special_tokens: bool = True  # 377
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False  # 381

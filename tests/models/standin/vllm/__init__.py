"""A stand-in for ``vllm`` 0.32.0 for the unit tests (vLLM itself needs a CUDA GPU or its own CPU venv).

The signatures are copied from the vllm 0.32.0 wheel (``vllm/...`` paths below); behaviour is emulated only where our
backend depends on it, and every call is recorded in :data:`RECORD` so tests can check what the backend asked for:

* ``LLM.__init__(model, *, ..., dtype="auto", seed=0, gpu_memory_utilization=0.92, enforce_eager=False, **kwargs)``
  (``entrypoints/llm.py:178-223``; ``logprobs_mode``, ``enable_prefix_caching``, ``max_model_len``, ``enable_lora``,
  ``max_lora_rank``, ``max_loras`` go through ``**kwargs`` to ``EngineArgs``, ``engine/arg_utils.py:580,609,676-678``).
  Emulated: the start-up memory check (``v1/worker/utils.py:716-770``: an engine needs ``gpu_memory_utilization`` of
  the device free, so a second engine beside a live one fails), ``max_lora_rank`` in ``MaxLoRARanks``
  (``config/lora.py:26``), and the seed range 0.34 enforces (``config/model.py:220-223`` in 0.34; 0.32 takes any int).
* ``LLM.generate(prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
  tokenization_kwargs=None, mm_processor_kwargs=None)`` (``entrypoints/llm.py:418-428``): a list of params pairs with
  the prompts; ``n`` children get ``seed + index`` (``v1/engine/parallel_sampling.py:81``) stored in int64
  (``v1/worker/gpu/sample/states.py:26,57``: overflow raises); a ``lora_request`` on an engine without LoRA raises
  (``v1/engine/input_processor.py:282-285``). Tokens are a pure function of (seed + index, prompt, adapter), so equal
  seeds give equal samples and other seeds other samples; unseeded requests draw from a process-wide RNG.
* ``llm.llm_engine.engine_core.shutdown()`` (``v1/engine/core_client.py:766``) frees the engine, as does dropping the
  last reference (``weakref.finalize``, ``core_client.py:383,617``);
  ``vllm.distributed.cleanup_dist_env_and_memory(shutdown_ray=False)`` (``distributed/parallel_state.py:2516``).
* ``SamplingParams`` (``sampling_params.py:268-381``), ``TokensPrompt`` (``inputs/llm.py:111-115``, a TypedDict),
  ``LoRARequest(lora_name, lora_int_id, lora_path="", base_model_name=None, load_inplace=False)``
  (``lora/request.py:24-42``), ``CompletionOutput`` (``outputs.py:79-90``), ``RequestOutput`` (``outputs.py:161-175``),
  ``Logprob(logprob, rank=None, decoded_token=None)`` (``logprobs.py:23-25``),
  ``current_platform.device_type`` (``platforms/cuda.py:227``).
"""

from __future__ import annotations

import json
import random
import weakref
from pathlib import Path
from typing import Any, Sequence

from vllm.inputs import TokensPrompt as TokensPrompt  # re-exported, as vllm's __init__ does
from vllm.logprobs import Logprob
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

__version__ = "0.32.0+standin"
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
INT64_MAX = 2**63 - 1


class Record:
    """Everything the stand-in was asked, in order."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events: list[tuple[str, Any]] = []  # ("init", kwargs) / ("generate", {...}) / ("shutdown", id) / ("cleanup", None)
        self.live: dict[int, float] = {}  # engine id -> its memory share, while it holds the device
        self.next_id = 0

    def of(self, kind: str) -> list[Any]:
        return [x for k, x in self.events if k == kind]


RECORD = Record()
_unseeded = random.Random(12345)


def _free(engine_id: int) -> None:
    if RECORD.live.pop(engine_id, None) is not None:
        RECORD.events.append(("shutdown", engine_id))


class _EngineCore:
    def __init__(self, engine_id: int) -> None:
        self.engine_id = engine_id

    def shutdown(self, timeout: float | None = None) -> None:
        _free(self.engine_id)


class _ModelConfig:
    def __init__(self, max_model_len: int) -> None:
        self.max_model_len = max_model_len


class _LLMEngine:
    def __init__(self, engine_id: int, max_model_len: int) -> None:
        self.engine_core = _EngineCore(engine_id)
        self.model_config = _ModelConfig(max_model_len)


class LLM:
    def __init__(self, model: str, *, runner: str = "auto", convert: str = "auto", tokenizer: str | None = None,
                 tokenizer_mode: str = "auto", skip_tokenizer_init: bool = False, trust_remote_code: bool = False,
                 allowed_local_media_path: str = "", allowed_media_domains: list[str] | None = None,
                 tensor_parallel_size: int = 1, dtype: str = "auto", quantization: Any = None,
                 revision: str | None = None, tokenizer_revision: str | None = None, chat_template: Any = None,
                 seed: int = 0, gpu_memory_utilization: float = 0.92, cpu_offload_gb: float = 0,
                 offload_group_size: int = 0, offload_num_in_group: int = 1, offload_prefetch_step: int = 1,
                 offload_params: set[str] | None = None, enforce_eager: bool = False,
                 enable_return_routed_experts: bool = False, return_sampling_mask: bool = False,
                 disable_custom_all_reduce: bool = False, hf_token: Any = None, hf_overrides: Any = None,
                 mm_processor_kwargs: dict[str, Any] | None = None, pooler_config: Any = None,
                 structured_outputs_config: Any = None, profiler_config: Any = None, attention_config: Any = None,
                 kv_cache_memory_bytes: int | None = None, compilation_config: Any = None,
                 quantization_config: Any = None, logits_processors: Any = None, spec_method: str | None = None,
                 spec_model: str | None = None, spec_tokens: int | None = None, **kwargs: Any) -> None:
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32 - 1], got {seed}")  # 0.34 config/model.py:220-223
        if not (Path(model) / "config.json").is_file():
            raise OSError(f"{model} is not a model folder")
        if kwargs.get("enable_lora") and kwargs.get("max_lora_rank", 16) not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {MAX_LORA_RANKS}")
        used = sum(RECORD.live.values())
        if 1.0 - used < gpu_memory_utilization:  # v1/worker/utils.py:760-768
            raise ValueError(f"Free memory on device cuda:0 ({1.0 - used:.2f}) at startup is less than desired GPU "
                             f"memory utilization ({gpu_memory_utilization:.2f})")
        engine_id = RECORD.next_id
        RECORD.next_id += 1
        RECORD.live[engine_id] = gpu_memory_utilization
        self.kwargs = dict(model=model, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization, **kwargs)
        RECORD.events.append(("init", dict(self.kwargs, engine_id=engine_id)))
        self.engine_id = engine_id
        self.llm_engine = _LLMEngine(engine_id, kwargs.get("max_model_len") or 4096)
        weakref.finalize(self, _free, engine_id)

    def generate(self, prompts: Any, sampling_params: SamplingParams | Sequence[SamplingParams] | None = None, *,
                 use_tqdm: Any = True, lora_request: Any = None, priority: Any = None,
                 tokenization_kwargs: dict[str, Any] | None = None,
                 mm_processor_kwargs: dict[str, Any] | None = None) -> list[RequestOutput]:
        if self.engine_id not in RECORD.live:
            raise RuntimeError("engine core is shut down")
        prompts = list(prompts) if isinstance(prompts, (list, tuple)) else [prompts]
        params = list(sampling_params) if isinstance(sampling_params, (list, tuple)) else [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        loras = lora_request if isinstance(lora_request, (list, tuple)) else [lora_request] * len(prompts)
        RECORD.events.append(("generate", {"engine_id": self.engine_id, "prompts": prompts, "params": params,
                                           "lora_request": lora_request}))
        return [self._one(i, p, sp, lr) for i, (p, sp, lr) in enumerate(zip(prompts, params, loras))]

    def _one(self, i: int, prompt: dict, sp: SamplingParams, lora: Any) -> RequestOutput:
        ids = list(prompt["prompt_token_ids"])
        adapter = ""
        if lora is not None:
            if not self.kwargs.get("enable_lora"):
                raise ValueError(f"Got lora_request {lora} but LoRA is not enabled!")  # input_processor.py:282-285
            rank = json.loads((Path(lora.lora_path) / "adapter_config.json").read_text())["r"]
            if rank > self.kwargs.get("max_lora_rank", 16):
                raise ValueError(f"LoRA rank {rank} is greater than max_lora_rank {self.kwargs.get('max_lora_rank')}")
            adapter = lora.lora_path
        outs = []
        for j in range(sp.n):
            seed = None if sp.seed is None else sp.seed + j  # parallel_sampling.py:81
            if seed is not None and not -(2**63) <= seed <= INT64_MAX:
                raise OverflowError(f"Python int too large to convert to C long ({seed})")  # int64 seeds tensor
            if sp.temperature == 0:
                rng = random.Random(f"greedy|{ids}|{adapter}")
            elif seed is None:
                rng = random.Random(_unseeded.random())
            else:
                rng = random.Random(f"{seed}|{ids}|{adapter}")
            tokens = [rng.randrange(3, 1000) for _ in range(sp.max_tokens or 16)]
            lps = [{t: Logprob(logprob=-rng.random(), rank=1)} for t in tokens] if sp.logprobs is not None else None
            outs.append(CompletionOutput(index=j, text=" ".join(map(str, tokens)), token_ids=tokens,
                                         cumulative_logprob=None, logprobs=lps, finish_reason="length"))
        return RequestOutput(request_id=str(i), prompt=None, prompt_token_ids=ids, prompt_logprobs=None, outputs=outs,
                             finished=True, lora_request=lora)

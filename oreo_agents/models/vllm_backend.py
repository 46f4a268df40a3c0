"""The generation protocol on vLLM: token ids in, token ids + log-probs out; one engine per process.

Imported only when ``backend="vllm"`` is chosen; install with ``pip install 'oreo-agents[vllm]'`` on a CUDA machine
(vLLM pins its own torch; ``scripts/setup-vllm-cpu.sh`` builds a CPU venv for tests)::

    >>> backend = VLLMBackend("runs/sft/policy", gpu_memory_utilization=0.5)   # doctest: +SKIP
    >>> backend.generate([prompt_ids], SamplingParams(n=4, temperature=0.7), seeds=[1234])  # doctest: +SKIP

Same contract as :class:`~oreo_agents.models.generation.HFBackend`: ids exactly as generated, terminator included
(vLLM keeps the EOS / the stop-string token in ``token_ids``; ``include_stop_str_in_output`` keeps the text in step),
one log-prob per id (``logprobs=0`` returns the sampled token's own log-prob). ``logprobs="policy"`` maps to vLLM's
``raw_logprobs`` mode (the model's distribution), ``"sampling"`` to ``processed_logprobs`` (after temperature/top-p).

**One engine per process.** A ``vllm.LLM`` takes a fixed share of the GPU (``gpu_memory_utilization``) for as long as it
lives, and vLLM refuses to start a second one when the free memory is below that share (vllm 0.32.0
``v1/worker/utils.py:716-770``). So engines live in a registry here, keyed by what decides an engine
(:class:`EngineKey`): backends with the same key share one engine (eval's ``--select`` modes of one policy, agents of
one base model with different LoRA adapters), and asking for another key shuts the held engine down first
(:func:`close_engine`). A backend never keeps its engine itself: it asks the registry at each call.

All line references are to vllm 0.32.0 (what ``pip install 'oreo-agents[learn,vllm]'`` resolves); 0.10 … 0.34 have
the same API for everything used here.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from oreo_agents.errors import OreoError
from oreo_agents.models.sampling import Completion, SamplingParams, derive_seed

# vllm 0.32.0 config/lora.py:26 ``MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]``: the engine's
# max_lora_rank must be one of these and at least the adapter's rank.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# vLLM 0.34 checks the engine seed is in [0, 2**32 - 1] (config/model.py:220-223 there; 0.32.0 takes any int).
ENGINE_SEED_RANGE = 2**32
# Request seeds: vLLM gives the j-th of ``n`` samples ``seed + j`` (v1/engine/parallel_sampling.py:81) and stores seeds
# in int64 (v1/worker/gpu/sample/states.py:26,57), so a 63-bit seed near 2**63 would overflow; 62 bits leave room.
REQUEST_SEED_BITS = 62


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise OreoError(
            "--backend vllm: vllm is not installed (pip install 'oreo-agents[vllm]' on a CUDA machine, or "
            "scripts/setup-vllm-cpu.sh for a CPU build); use --backend hf here"
        ) from exc
    return vllm


def request_seed(seed: int) -> int:
    """A per-request vLLM seed from one of our 63-bit seeds: its top 62 bits (room for ``seed + j``, j < n)."""
    return int(seed) >> (63 - REQUEST_SEED_BITS)


def lora_rank_for(adapter: Path) -> int:
    """The engine's ``max_lora_rank`` for a PEFT adapter folder: its ``r`` rounded up to a rank vLLM allows."""
    config = adapter_config(adapter)
    r = int(config.get("r", 0))
    if config.get("bias", "none") != "none":  # vLLM refuses biased adapters (lora/peft_helper.py in 0.32-0.34)
        raise OreoError(f"--policy {adapter}: LoRA adapters with bias={config['bias']!r} are not served by vLLM; "
                        "use --backend hf")
    fit = next((x for x in LORA_RANKS if x >= r), None)
    if r < 1 or fit is None:
        raise OreoError(f"--policy {adapter}: LoRA rank r={r} is outside what vLLM serves (1..{LORA_RANKS[-1]})")
    return fit


def adapter_config(adapter: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(adapter) / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise OreoError(f"--policy {adapter}: adapter_config.json does not load ({exc})") from exc


# --- the engine registry ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineKey:
    """What decides an engine: two backends with equal keys share one. The seed is not in it: every request carries
    its own seed, so the engine's seed never decides a sample."""

    model: str  # resolved model folder (the base model when LoRA adapters are served)
    dtype: str
    logprobs_mode: str  # engine-wide in vLLM (ModelConfig.logprobs_mode, config/model.py:287), not per request
    max_model_len: int | None
    gpu_memory_utilization: float
    max_lora_rank: int  # 0: LoRA off
    batch_invariant: bool
    extra: tuple[tuple[str, str], ...] = ()  # any other engine keyword, as (name, repr)


@dataclass
class _Engine:
    key: EngineKey
    llm: Any
    max_context: int


_held: _Engine | None = None
_adapter_ids: dict[str, int] = {}  # LoRARequest.lora_int_id must be >= 1 and unique per adapter (lora/request.py:38)


def held_engine() -> _Engine | None:
    """The engine this process holds now (None when none)."""
    return _held


def acquire_engine(key: EngineKey, build: Callable[[], Any]) -> _Engine:
    """The engine of ``key``: the held one when the key matches, else the held one is shut down and ``build()`` runs."""
    global _held
    if _held is not None and _held.key == key:
        return _held
    close_engine()
    llm = build()
    _held = _Engine(key, llm, int(llm.llm_engine.model_config.max_model_len))
    return _held


def close_engine() -> bool:
    """Shut the held engine down and give its memory back (False when none was held).

    The recipe of vllm 0.32.0: ``llm.llm_engine.engine_core`` (``v1/engine/llm_engine.py:116``) is a client whose
    ``shutdown()`` stops the engine-core process (``v1/engine/core_client.py:766-775``; in-process: ``EngineCore.shutdown``,
    401-403); dropping the last reference + ``gc`` releases what lives in this process, then
    ``vllm.distributed.cleanup_dist_env_and_memory()`` (``distributed/parallel_state.py:2516``) tears down the
    distributed groups and empties the accelerator cache, and ``torch.cuda.empty_cache()`` returns cached blocks.
    """
    global _held
    if _held is None:
        return False
    engine, _held = _held, None
    core = getattr(getattr(engine.llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    del engine
    gc.collect()
    from vllm.distributed import cleanup_dist_env_and_memory

    cleanup_dist_env_and_memory()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return True


def _adapter_id(path: Path) -> int:
    return _adapter_ids.setdefault(str(path), len(_adapter_ids) + 1)


# --- the backend -----------------------------------------------------------------------------------------------------
class VLLMBackend:
    """Sampling on a shared vLLM engine.

    Args:
        model_path: a Hugging Face model folder (with ``lora``: the base model the adapter was trained on).
        lora: a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``), served unmerged: the
            engine starts with ``enable_lora=True, max_lora_rank=<r rounded up>, max_loras=1`` and every request
            carries ``LoRARequest(name, id, path)`` (``entrypoints/llm.py:424``, ``lora/request.py:24-26``).
        gpu_memory_utilization: the fraction of GPU memory the engine takes (weights + KV cache); a value model
            runs in the rest. On vLLM's CPU build it is the fraction of host RAM (``v1/worker/cpu_worker.py:85-95``),
            unless ``VLLM_CPU_KVCACHE_SPACE`` (GiB) is set.
        seed: the engine seed (taken modulo 2**32) and the base of the seeds of calls that name none.
        batch_invariant: vLLM's batch-invariant kernels (``VLLM_BATCH_INVARIANT``, ``envs.py:636``, read at start-up).
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: str | None = None,
        seed: int = 0,
        logprobs: str = "policy",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        batch_invariant: bool = False,
        lora: str | Path | None = None,
        **engine_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        from oreo_agents.models.loading import load_tokenizer

        path = Path(model_path).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise OreoError(f"--backend vllm: {path} is not a model directory (no config.json)")
        if not 0 < gpu_memory_utilization <= 1:
            raise OreoError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}")
        if logprobs not in ("policy", "sampling"):
            raise OreoError(f"--backend vllm: logprobs must be policy or sampling, got {logprobs!r}")
        # collect sets VLLM_BATCH_INVARIANT itself for agents; an engine started under it is batch invariant either way.
        batch_invariant = batch_invariant or os.environ.get("VLLM_BATCH_INVARIANT") == "1"
        self.lora = Path(lora).expanduser().resolve() if lora is not None else None
        rank = lora_rank_for(self.lora) if self.lora is not None else 0
        engine_kwargs.setdefault("enable_prefix_caching", True)  # each turn's context extends the previous turn's
        self.logprobs, self.seed = logprobs, int(seed)
        self.key = EngineKey(
            model=str(path), dtype=dtype or "auto",
            logprobs_mode="processed_logprobs" if logprobs == "sampling" else "raw_logprobs",
            max_model_len=max_model_len, gpu_memory_utilization=float(gpu_memory_utilization), max_lora_rank=rank,
            batch_invariant=batch_invariant, extra=tuple(sorted((k, repr(v)) for k, v in engine_kwargs.items())),
        )  # fmt: skip
        self._engine_kwargs = engine_kwargs
        self._vllm = vllm
        self._calls = 0
        engine = self._engine()  # start it now: before a value model takes its share of the GPU
        self.max_context = engine.max_context
        # The HF tokenizer of the same folder renders the prompt format, so ids match the HF backend's exactly.
        self.tokenizer = load_tokenizer(path)
        self.device = _platform_device()
        self._lora_request = (
            self._lora_class()(f"adapter-{_adapter_id(self.lora)}", _adapter_id(self.lora), str(self.lora))
            if self.lora is not None else None
        )  # fmt: skip

    @property
    def llm(self) -> Any:
        """The engine (restarted through the registry if another backend's engine replaced it meanwhile)."""
        return self._engine().llm

    def close(self) -> None:
        """Shut this backend's engine down if it is the one held (another backend's engine is left alone)."""
        if _held is not None and _held.key == self.key:
            close_engine()

    def _engine(self) -> _Engine:
        return acquire_engine(self.key, self._build)

    def _build(self) -> Any:
        key = self.key
        if key.batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        kwargs = dict(self._engine_kwargs)
        if key.logprobs_mode != "raw_logprobs":  # the engine fixes the mode at start-up (engine/arg_utils.py:609)
            kwargs["logprobs_mode"] = key.logprobs_mode
        if key.max_lora_rank:  # engine/arg_utils.py:676-678
            kwargs.update(enable_lora=True, max_lora_rank=key.max_lora_rank, max_loras=1)
        # LLM.__init__: dtype (entrypoints/llm.py:191), seed (196), gpu_memory_utilization (197), the rest -> EngineArgs.
        try:
            return self._vllm.LLM(
                model=key.model, dtype=key.dtype, seed=self.seed % ENGINE_SEED_RANGE,
                gpu_memory_utilization=key.gpu_memory_utilization, max_model_len=key.max_model_len, **kwargs,
            )  # fmt: skip
        except (ValueError, RuntimeError) as exc:  # the start-up memory check (v1/worker/utils.py:760-768) and kin
            if "memory" not in str(exc).lower():
                raise
            first = str(exc).strip().splitlines()[0][:300]
            raise OreoError(f"--backend vllm: the engine did not start ({first}); lower --gpu-memory-utilization "
                            f"(now {key.gpu_memory_utilization}) or free the device") from exc

    def _lora_class(self) -> Any:
        from vllm.lora.request import LoRARequest

        return LoRARequest

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        """As :meth:`HFBackend.generate <oreo_agents.models.generation.HFBackend.generate>`. Each prompt is its own
        request with its own ``vllm.SamplingParams(seed=...)`` (``LLM.generate`` pairs a list of params one-to-one with
        the prompts, ``entrypoints/llm.py:418-428``): a seeded request samples from its own stream
        (``SamplingType.RANDOM_SEED``, ``sampling_params.py:862-868``), and its ``n`` samples get ``seed + j``
        (``v1/engine/parallel_sampling.py:81``). So a prompt's samples depend on its seed alone, and identical contexts
        with different seeds get different samples. Every request is seeded: from ``seeds`` (the policy derives one
        per episode and step), else from ``params.seed``, else from (backend seed, call number, position)."""
        if params.logprobs != self.logprobs:
            raise OreoError(
                f"--backend vllm was started with logprobs={self.logprobs!r}; restart it to record {params.logprobs!r}"
            )
        if seeds is not None and len(seeds) != len(prompts):
            raise OreoError(f"generation: got {len(seeds)} seeds for {len(prompts)} prompts")
        self._calls += 1
        if seeds is None:
            base = params.seed if params.seed is not None else derive_seed(self.seed, "vllm-call", self._calls)
            seeds = [derive_seed(base, i) for i in range(len(prompts))]
        from vllm.inputs import TokensPrompt

        results: list[list[Completion] | None] = [None] * len(prompts)
        todo = []
        for i, p in enumerate(prompts):
            if len(p) >= self.max_context:
                results[i] = [Completion([], [], "", "context") for _ in range(params.n)]
            else:
                todo.append(i)
        if todo:
            llm = self.llm
            per_prompt = [self._sampling(params, request_seed(seeds[i])) for i in todo]
            kwargs = {"lora_request": self._lora_request} if self._lora_request is not None else {}
            outputs = llm.generate([TokensPrompt(prompt_token_ids=[int(t) for t in prompts[i]]) for i in todo],
                                   per_prompt, use_tqdm=False, **kwargs)
            for i, request in zip(todo, outputs):
                results[i] = [self._completion(out) for out in request.outputs]
        return [r or [] for r in results]

    def _sampling(self, params: SamplingParams, seed: int) -> Any:
        # vllm 0.32.0 sampling_params.py: n 282, temperature 305, top_p 312, seed 322, stop 324, stop_token_ids 327,
        # max_tokens 334, logprobs 339 (0: the sampled token's own log-prob), skip_special_tokens 377,
        # include_stop_str_in_output 381.
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop_strings) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            include_stop_str_in_output=True,
            skip_special_tokens=True,
            logprobs=0,
            seed=seed,
        )

    @staticmethod
    def _completion(out: Any) -> Completion:
        # CompletionOutput (outputs.py:79-87): token_ids, text, logprobs (one {token_id: Logprob} dict per position,
        # the sampled id always among its keys; Logprob.logprob, logprobs.py:23), finish_reason, stop_reason.
        ids = [int(t) for t in out.token_ids]
        lps = [float(pos[t].logprob) for t, pos in zip(ids, out.logprobs or [])]
        if out.finish_reason == "length":
            reason = "length"
        elif isinstance(out.stop_reason, str):
            reason = "stop"
        else:  # None: EOS; an int: one of stop_token_ids (a terminator like EOS)
            reason = "eos"
        return Completion(ids, lps, out.text, reason)


def _platform_device() -> str:
    """Where the engine runs: vLLM's platform device type ("cuda" on GPUs, "cpu" on the CPU build;
    ``platforms/cuda.py:227``, ``platforms/cpu.py:106``). A value model beside the engine goes there too."""
    try:
        from vllm.platforms import current_platform

        return str(current_platform.device_type or "cuda")
    except Exception:  # noqa: BLE001 - an unknown platform: vLLM's main target
        return "cuda"

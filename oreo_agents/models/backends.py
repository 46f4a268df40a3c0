"""Choose a generation backend by name: the one module that knows both (``generation.HFBackend``, ``vllm_backend``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oreo_agents.errors import OreoError
from oreo_agents.models.generation import HFBackend
from oreo_agents.models.sampling import GenerationBackend


def make_backend(backend: str, model_path: str | Path, *, device: str | None = None, dtype: str | None = None,
                 seed: int = 0, max_batch_size: int = 64, prefix_cache_mb: float = 1024, batch_invariant: bool = False,
                 lora: str | Path | None = None, gpu_memory_utilization: float | None = None,
                 **kwargs: Any) -> GenerationBackend:
    """``"hf"`` (default, CPU/GPU; ``device`` None: cuda when present) or ``"vllm"`` (one engine per process, shared by
    every backend with the same engine settings; imports vllm only here).

    ``lora``: a PEFT adapter folder trained on ``model_path`` -- served unmerged by vLLM (a ``LoRARequest`` per call),
    merged in memory by the HF backend. ``gpu_memory_utilization``: vLLM's share of the GPU (None: 0.85); the HF
    backend refuses it rather than ignore it.
    """
    if backend == "hf":
        if gpu_memory_utilization is not None:
            raise OreoError("--gpu-memory-utilization is a vLLM setting: use it with --backend vllm")
        return HFBackend.from_pretrained(model_path, device=device, dtype=dtype, seed=seed, max_batch_size=max_batch_size,
                                         prefix_cache_mb=prefix_cache_mb, batch_invariant=batch_invariant, lora=lora)
    if backend == "vllm":
        from oreo_agents.models.vllm_backend import VLLMBackend

        if gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        return VLLMBackend(model_path, dtype=dtype, seed=seed, batch_invariant=batch_invariant, lora=lora, **kwargs)
    raise OreoError(f"--backend: unknown generation backend '{backend}' (choose hf or vllm)")

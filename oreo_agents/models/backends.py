"""Choose a generation backend by name: the one module that knows both (``generation.HFBackend``, ``vllm_backend``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oreo_agents.errors import OreoError
from oreo_agents.models.generation import HFBackend
from oreo_agents.models.sampling import GenerationBackend


def make_backend(backend: str, model_path: str | Path, *, device: str | None = None, dtype: str | None = None,
                 seed: int = 0, max_batch_size: int = 64, prefix_cache_mb: float = 1024, batch_invariant: bool = False,
                 **kwargs: Any) -> GenerationBackend:
    """``"hf"`` (default, CPU/GPU) or ``"vllm"`` (GPU; imports vllm only here, with its own prefix caching)."""
    if backend == "hf":
        return HFBackend.from_pretrained(model_path, device=device, dtype=dtype, seed=seed, max_batch_size=max_batch_size,
                                         prefix_cache_mb=prefix_cache_mb, batch_invariant=batch_invariant)
    if backend == "vllm":
        from oreo_agents.models.vllm_backend import VLLMBackend

        return VLLMBackend(model_path, dtype=dtype, seed=seed, batch_invariant=batch_invariant, **kwargs)
    raise OreoError(f"--backend: unknown generation backend '{backend}' (choose hf or vllm)")

"""The types every generation backend shares live below both backends: vLLM's needs nothing of the HF one."""

from __future__ import annotations

import subprocess
import sys


def test_the_backends_share_one_set_of_types():
    from oreo_agents.models import generation, sampling, vllm_backend

    for name in ("SamplingParams", "Completion", "GenerationBackend", "derive_seed", "eos_ids"):
        assert getattr(generation, name) is getattr(sampling, name)
    assert vllm_backend.Completion is sampling.Completion and vllm_backend.SamplingParams is sampling.SamplingParams


def test_the_vllm_backend_imports_neither_the_hf_backend_nor_torch():
    code = ("import sys, oreo_agents.models.vllm_backend; "
            "assert 'oreo_agents.models.generation' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)

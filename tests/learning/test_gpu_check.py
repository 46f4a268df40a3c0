"""benchmarks/gpu_check.sh at its SMALL size: the GPU check's code paths (OREO one process, under fsdp.yaml, HF
generation) keep working on CPU, and what it prints is what the check is for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_small_runs_every_section_on_cpu():
    env = dict(os.environ, SMALL="1", PYTHON=sys.executable, OMP_NUM_THREADS="1", WHEELS="/nonexistent")
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "FAIL" not in out, out
    one, fsdp = out.split("== OREO, one process")[1], out.split("== OREO under configs/accelerate/fsdp.yaml")[1]
    for section, backend in ((one, "ddp"), (fsdp, "fsdp2")):
        fields = dict(line.strip().split(": ", 1) for line in section.split("==")[0].splitlines()[1:] if ": " in line)
        assert fields["backend"] == backend
        assert float(fields["weights_changed"]) >= 0.9  # fp32 masters from the bf16 checkpoint
        assert fields["checkpointed_layer_calls_per_update"] == fields["expected_checkpointed_calls"] != "0"
        assert float(fields["tokens_per_s"]) > 0
    assert "SKIP deepspeed:" in out or "== OREO under configs/accelerate/deepspeed-zero2.yaml" in out
    assert "batch_1: {'tokens_per_s'" in out and "batch_64: {'tokens_per_s'" in out
    agent = out.split("== value-guided agent")[1]
    fields = dict(line.strip().split(": ", 1) for line in agent.splitlines()[1:] if ": " in line)
    assert fields["same_candidates"] == "20 of 20"  # 4 turns x K = 5, same seeds with and without the value cache
    assert float(fields["max_abs_value_diff"]) < 1e-4  # fp32 on CPU: the cache changes no value

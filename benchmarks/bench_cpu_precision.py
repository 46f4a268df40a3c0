"""bf16 / fp16 autocast against fp32 on this CPU, side by side in one run: one matmul shaped like SmolLM2-135M's lm_head
(512 positions x 576 hidden x 49,152 vocab), the largest matmul of its training step.

    python benchmarks/bench_cpu_precision.py            # prints the table rows for benchmarks/README.md

On CPUs without native bf16 (no AVX512-BF16 / AMX: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False) autocast
is emulated; the learner warns by name (``learning/distributed.py: warn_slow_cpu_precision``).
"""

from __future__ import annotations

import time

import torch


def timed(fn, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(512, 576), torch.randn(49152, 576)

    def matmul(dtype):
        def run():
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                torch.nn.functional.linear(x, w)
        return run

    print(f"cpu: {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}, "
          f"native bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, native fp16 {torch.ops.mkldnn._is_mkldnn_fp16_supported()}")
    base = timed(matmul(torch.float32))
    for name, dtype in (("fp32", torch.float32), ("bf16 autocast", torch.bfloat16), ("fp16 autocast", torch.float16)):
        t = timed(matmul(dtype))
        print(f"| lm_head matmul, {name} | {t:.2f} s | {t / base:.2f}x fp32 |")


if __name__ == "__main__":
    main()

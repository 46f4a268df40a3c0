"""bf16 / fp16 autocast against fp32 on this CPU: one matmul shaped like SmolLM2-135M's lm_head (512 positions x 576
hidden x 49,152 vocab) and a forward + backward of a SmolLM2-shaped Llama block stack, side by side in one run.

    python benchmarks/bench_cpu_precision.py            # prints the table rows for benchmarks/README.md

On CPUs without native bf16 (no AVX512-BF16 / AMX: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False) autocast
is emulated; the learner warns by name (``learning/distributed.py: warn_slow_cpu_precision``).
"""

from __future__ import annotations

import time

import torch


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up (oneDNN picks its kernels)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(512, 576), torch.randn(49152, 576)
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
                      num_key_value_heads=3, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    ids = torch.randint(0, 49152, (1, 512))

    def step(dtype):
        def run():
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        return run

    def matmul(dtype):
        def run():
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                torch.nn.functional.linear(x, w)
        return run

    print(f"cpu: {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}, "
          f"native bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, native fp16 {torch.ops.mkldnn._is_mkldnn_fp16_supported()}")
    base_mm, base_step = timed(matmul(torch.float32)), timed(step(torch.float32))
    for name, dtype in (("fp32", torch.float32), ("bf16 autocast", torch.bfloat16), ("fp16 autocast", torch.float16)):
        mm, st = timed(matmul(dtype)), timed(step(dtype))
        print(f"| {name} | {mm:.2f} s | {mm / base_mm:.2f}x | {st:.2f} s | {st / base_step:.2f}x |")


if __name__ == "__main__":
    main()

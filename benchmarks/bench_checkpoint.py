"""Checkpoint cost: our pickle-free format (checkpoints.py) vs accelerate's save_state/load_state, same model + AdamW.

    python benchmarks/bench_checkpoint.py                # SmolLM2-135M-shaped Llama (random weights), 1 thread
    python benchmarks/bench_checkpoint.py --layers 4     # smaller

Prints save and load seconds and bytes on disk for both; ours also hashes every file (sha256) on save and verifies it on
load, which is what detects a damaged checkpoint.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=30, help="30 = SmolLM2-135M's shape")
    args = ap.parse_args()
    import torch
    from accelerate import Accelerator
    from transformers import LlamaConfig, LlamaForCausalLM

    from oreo_agents.learning import checkpoints as C

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    acc = Accelerator(cpu=True)
    model, opt = acc.prepare(model, opt)
    acc.register_for_checkpointing(sched)
    for p in model.parameters():  # an AdamW state as after one step, without the cost of a forward pass
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    models, optims, scheds = {"policy": model}, {"policy": opt}, {"policy": sched}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        acc.save_state(str(tmp / "accelerate"))
        acc_save = time.perf_counter() - t
        t = time.perf_counter()
        acc.load_state(str(tmp / "accelerate"))
        acc_load = time.perf_counter() - t
        fp = {"bench": True}
        t = time.perf_counter()
        ck = C.save(tmp / "ours", 1, acc=acc, models=models, optimizers=optims, schedulers=scheds, algo="bench", fp=fp, keep=1)
        our_save = time.perf_counter() - t
        t = time.perf_counter()
        step = C.resume(tmp / "ours", acc=acc, models=models, optimizers=optims, schedulers=scheds, algo="bench", fp=fp)
        our_load = time.perf_counter() - t
        assert step == 1
        print(f"{'':24} {'save s':>8} {'load s':>8} {'MB':>8}")
        print(f"{'accelerate save_state':24} {acc_save:8.2f} {acc_load:8.2f} {folder_bytes(tmp / 'accelerate') / 1e6:8.0f}")
        print(f"{'ours (json+safetensors)':24} {our_save:8.2f} {our_load:8.2f} {folder_bytes(ck) / 1e6:8.0f}")
        print(f"ratio ours/accelerate: save {our_save / acc_save:.2f}x, load {our_load / acc_load:.2f}x")


if __name__ == "__main__":
    main()

"""GPU memory of the paper's OREO recipe, estimated on CPU from measured activation sizes.

    python benchmarks/memory_estimate.py            # Qwen2.5-1.5B widths, 1 and 2 layers, 2 x 32 tokens

What autograd saves for backward in one OREO micro-batch (policy + value forward, pi_ref recomputed online, the exact
KL) is measured with ``torch.autograd.graph.saved_tensors_hooks`` on models of the real widths (hidden 1536, MLP 8960,
12/2 heads, vocab 151,936) with 1 and 2 decoder layers, with and without activation checkpointing. The difference gives
the bytes per layer per token, the rest the per-token cost outside the layers (embeddings, LM head, log-probs, KL);
both are scaled to 28 layers and a micro-batch of 2 x 4096 tokens.

The measurement runs in fp32: this CPU has no bf16 matrix units (bf16 autocast ran the LM head at under 0.1 GFLOP/s).
With fp32 master weights the residual stream stays fp32 under bf16 autocast as well, so what checkpointing keeps (each
layer's input) is the same; without checkpointing, and for the LM-head side, bf16 autocast saves between half of the
fp32 figure (matmul outputs in bf16) and all of it (norms and log-softmax in fp32): both bounds are printed. Weights,
gradients and Adam states are counted from the parameter numbers (fp32 masters; pi_ref bf16), transients separately.
The GPU measurement of ``gpu_check.sh`` is the number to trust once it exists.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gpu_check import QWEN_1_5B, build_checkpoint, synthetic_items  # noqa: E402


def saved_bytes(trainer, idx: list[int]) -> int:
    """Bytes autograd saves for backward during one micro-step (parameters excluded, each storage once)."""
    import torch

    params = {p.data_ptr() for m in trainer.models.values() for p in m.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trainer.micro_step(idx, 1.0)
    return sum(seen.values())


def measure(layers: int, seq: int, gc: bool, tmp: Path) -> int:
    from accelerate.state import AcceleratorState

    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.models.loading import load_tokenizer

    AcceleratorState._reset_state(reset_partial_state=True)
    shape = dict(QWEN_1_5B, num_hidden_layers=layers)
    model_dir = tmp / f"m{layers}"
    if not model_dir.exists():
        build_checkpoint(model_dir, shape, "cpu", dtype="float32")  # fp32 pi_ref too: bf16 matmuls crawl on this CPU
    cfg = TrainConfig(algo="oreo", model=str(model_dir), out=str(tmp / f"run{layers}{seq}{gc}"), batch_size=2, micro_batch_size=2,
                      max_length=seq, gradient_checkpointing=gc, ref_distributions="online", mixed_precision="no", plot=False)  # fmt: skip
    tr = make_trainer(cfg)
    tr.model_path, tr.tokenizer = model_dir, load_tokenizer(model_dir)
    tr.pad_id = 0
    # The same share of reply tokens as the 4096-token episodes (~26%): the exact KL's cost is per reply token.
    tr.items = synthetic_items(2, seq, shape["vocab_size"], turn=(0, 1, 3)) if seq < 400 else synthetic_items(2, seq, shape["vocab_size"])
    tr.setup_models(1)
    n = saved_bytes(tr, [0, 1])
    print(f"  measured {layers} layer(s), checkpointing {gc}: {n / 1e6:.1f} MB", flush=True)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq", type=int, default=32, help="tokens per sequence measured on CPU")
    ap.add_argument("--target-seq", type=int, default=4096)
    ap.add_argument("--micro", type=int, default=2)
    ap.add_argument("--gpus", type=int, default=8, help="GPUs sharing the static memory under FSDP2 / ZeRO")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    d, V, L = QWEN_1_5B["hidden_size"], QWEN_1_5B["vocab_size"], QWEN_1_5B["num_hidden_layers"]
    kv = d * QWEN_1_5B["num_key_value_heads"] // QWEN_1_5B["num_attention_heads"]
    ff = QWEN_1_5B["intermediate_size"]
    layer_params = 2 * d * d + 2 * d * kv + 3 * d * ff + 2 * d + d + 2 * kv  # q,o + k,v + MLP + 2 norms + biases
    body = L * layer_params + d  # + final norm
    policy = body + V * d  # tied embedding = LM head
    value = body + V * d + d  # the value backbone keeps the embedding, its head is d x 1
    tokens_cpu, tokens_gpu = 2 * args.seq, args.micro * args.target_seq
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for gc in (False, True):
            one, two = measure(1, args.seq, gc, Path(tmp)), measure(2, args.seq, gc, Path(tmp))
            per_layer_token, rest_token = (two - one) / tokens_cpu, (2 * one - two) / tokens_cpu
            rows[gc] = (per_layer_token, rest_token, (per_layer_token * L + rest_token) * tokens_gpu)
            print(f"checkpointing {'on ' if gc else 'off'}: 1 layer {one / 1e6:.1f} MB, 2 layers {two / 1e6:.1f} MB saved at "
                  f"2 x {args.seq} tokens -> {per_layer_token / 1e3:.1f} kB per layer-token (policy + value), "
                  f"{rest_token / 1e3:.1f} kB per token outside the layers")  # fmt: skip
    gb = 1e9
    static = {
        "policy fp32 weights + grads + Adam (16 B/param)": 16 * policy / gb,
        "value fp32 weights + grads + Adam (16 B/param)": 16 * value / gb,
        "pi_ref bf16 weights (online exact KL)": 2 * policy / gb,
    }
    # Transients beside the saved tensors: autocast's bf16 copies of the weights while the forward runs (DDP; FSDP2
    # casts layer by layer), and the fp32 gradient of the logits while the LM head backpropagates.
    transient = {"autocast's bf16 weight copies during the forward (DDP)": 2 * (policy + value) / gb,
                 "fp32 gradient of the logits [tokens, V]": 4 * tokens_gpu * V / gb}  # fmt: skip
    print(f"\nparams: policy {policy / 1e9:.3f} B, value {value / 1e9:.3f} B; micro-batch {args.micro} x {args.target_seq} tokens")
    print("| | checkpointing off | checkpointing on |\n|---|---|---|")
    for k, v in static.items():
        print(f"| {k} | {v:.1f} GB | {v:.1f} GB |")
    act = {gc: (rows[gc][2] / 2 / gb, rows[gc][2] / gb) for gc in (False, True)}
    print(f"| saved activations, measured (fp32) and scaled; bf16 autocast: half to all | {act[False][0]:.1f}-{act[False][1]:.1f} GB | "
          f"{act[True][0]:.1f}-{act[True][1]:.1f} GB |")  # fmt: skip
    for k, v in transient.items():
        print(f"| transient: {k} | {v:.1f} GB | {v:.1f} GB |")
    sharded = 16 * (policy + value) / args.gpus / gb + 2 * policy / gb
    print(f"| weights + grads + Adam sharded over {args.gpus} GPUs (FSDP2 full shard), + pi_ref | {sharded:.1f} GB | {sharded:.1f} GB |")
    base = sum(static.values()) + sum(transient.values())
    print(f"| **estimated peak** | **{base + act[False][0]:.0f}-{base + act[False][1]:.0f} GB** | "
          f"**{base + act[True][0]:.0f}-{base + act[True][1]:.0f} GB** |")
    fsdp = sharded + transient["fp32 gradient of the logits [tokens, V]"]
    print(f"| **estimated peak, FSDP2 over {args.gpus} GPUs** (layer-wise bf16 casts) | **{fsdp + act[False][0]:.0f}-{fsdp + act[False][1]:.0f} GB** | "
          f"**{fsdp + act[True][0]:.0f}-{fsdp + act[True][1]:.0f} GB** |")


if __name__ == "__main__":
    main()

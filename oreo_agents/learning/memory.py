"""What one micro-batch's saved activations will take, estimated before training starts, and a warning by name when
that would not fit in the memory this process can have.

A training run that outgrows the machine's memory is killed by the kernel (or CUDA) mid-run with no word of which setting
did it (the SmolLM2 ALFWorld recipe was, at 24.2 GB, after hours of rollouts). The estimate is what autograd saves for
backward, measured with ``saved_tensors_hooks`` in ``benchmarks/memory_estimate.py`` and fitted per model, layer and token (fp32)::

    no checkpointing:  4 B x (8 h + 4 i)   (Qwen2.5-1.5B widths: 192.5 kB predicted, 194.5 measured;
                                            SmolLM2-135M: 43.0 kB predicted, 40.4 measured)
    checkpointing:     4 B x h             (each layer's input, exactly)
    outside the layers, per token (once):  4 B x V x 1.5   (LM head side: logits, log-softmax chunks, exact KL;
                                            measured 1.23 x for SmolLM2, 1.68 x for Qwen2.5-1.5B)

plus every loaded model's fp32 weights (and the gradients + Adam states of fully fine-tuned ones), plus what the process
holds anyway (~0.7 GB: torch, transformers, the data). Transients (a layer's backward, the allocator's slack) come on top
of what autograd saves: measured on one real case, an OREO update of SmolLM2 (LoRA) on 30-step ALFWorld episodes of
1,024 tokens, micro-batch 1, peaked at 6.73 GB resident where weights are 1.77 GB and the saved tensors 2.94 GB, i.e.
1.45x the saved tensors (micro-batch 4 went past 18 GB, as this predicts: 19.6 GB). The warning fires at 90% of what
is available, says it is an estimate, and training goes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LM_HEAD_FACTOR = 1.5  # bytes of the LM-head side per token, in units of 4 B x vocab (measured 1.23-1.68)
TRANSIENT_FACTOR = 1.45  # peak resident / saved-for-backward bytes of a real OREO update (see above)
PROCESS_BYTES = 700_000_000  # a training process before its models: torch, transformers, tokenizer, data


def activation_bytes(shape: dict[str, int], tokens: int, *, trained_models: int, checkpointing: bool) -> int:
    """Saved-for-backward bytes of one micro-batch of ``tokens`` (fp32), for ``trained_models`` backbones of ``shape``
    (keys ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``, ``vocab_size``)."""
    h, i, layers, vocab = (int(shape[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    per_layer_token = 4 * h if checkpointing else 4 * (8 * h + 4 * i)
    return int(tokens * (trained_models * layers * per_layer_token + LM_HEAD_FACTOR * 4 * vocab))


def parameter_count(shape: dict[str, int]) -> int:
    """Parameters of a Llama-like decoder of ``shape`` (attention as h x h x 4, MLP as 3 h x i, tied embedding)."""
    h, i, layers, vocab = (int(shape[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    return layers * (4 * h * h + 3 * h * i) + vocab * h


def model_shape(model_path: Path) -> dict[str, int] | None:
    """The four widths from a model folder's config.json (a multimodal config's ``text_config``), or None."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
    if not all(isinstance(config.get(k), int) for k in keys):
        return None
    return {k: config[k] for k in keys}


def available_bytes(device: Any) -> int:
    """Memory this process can still take: free CUDA memory on a GPU, else the machine's available RAM shared by the
    local processes of a launch."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def memory_warning(shape: dict[str, int], *, rows: int, length: int, trained_models: int, loaded_models: int,
                   full_finetune: bool, checkpointing: bool, available: int) -> str | None:
    """A one-line warning naming the flags when the estimated peak exceeds 90% of ``available``, else None."""
    params = parameter_count(shape)
    static = PROCESS_BYTES + 4 * params * loaded_models + (12 * params * trained_models if full_finetune else 0)

    def peak(tokens: int, ckpt: bool) -> float:
        return static + TRANSIENT_FACTOR * activation_bytes(shape, tokens, trained_models=trained_models, checkpointing=ckpt)

    need = peak(rows * length, checkpointing)
    if need <= 0.9 * available:
        return None
    gb = 1e9
    options = []
    if rows > 1:
        options.append(f"--micro-batch-size 1 (~{peak(length, checkpointing) / gb:.1f} GB)")
    if not checkpointing:
        options.append(f"--gradient-checkpointing (~{peak(rows * length, True) / gb:.1f} GB)")
    options.append("a lower --max-length")
    return (f"memory: the longest micro-batch ({rows} x {length} tokens) needs an estimated {need / gb:.1f} GB "
            f"(weights and process {static / gb:.1f} GB + activations), {available / gb:.1f} GB are available: "
            f"the run may be killed for memory; try {', or '.join(options)}")

"""A tiny from-scratch LM shared by the policy / agent / play tests (built once per session, seconds on CPU)."""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "You are an agent in a household. go to cabinet 1. open cabinet 1. take potato 1 from countertop 1.",
    "You arrive at loc 3. On the cabinet 1, you see a mug 1. Nothing happens. Your task is to: put a hot potato in sinkbasin.",
    "Solve the problem step by step, one step per line. Answer:\n3 + 4 = 7\n#### 7\n",
    "Sam has 9 books. Sam sells 7 books. How many books does Sam have now? 9 - 7 = 2\n#### 2\n",
] * 8


def build(root: Path) -> Path:
    import torch

    from oreo_agents.models.loading import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(TEXTS, root / "tiny-lm", preset="tiny", seed=0)


def build_value(root: Path):
    """The tiny LM at ``root`` (built if needed) with a value head drawn N(0, 1) under seed 0 (non-trivial values),
    saved with its tokenizer under ``root / "value"``: ``(base folder, value model in eval mode, tokenizer, value folder)``."""
    import torch

    from oreo_agents.models.loading import ValueModel, load_tokenizer

    base = build(root)
    value = ValueModel.from_base(base)
    torch.manual_seed(0)
    torch.nn.init.normal_(value.head.weight, std=1.0)
    tok = load_tokenizer(base)
    value.save_pretrained(root / "value", tokenizer=tok)
    return base, value.eval(), tok, root / "value"

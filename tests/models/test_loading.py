"""The tiny model builder, tokenizer/policy loading and the value model's head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oreo_agents.errors import OreoError
from oreo_agents.models.loading import ValueModel, build_tiny_model, load_policy, load_tokenizer, resolve_model

TEXTS = ["You arrive at cabinet 1. On the cabinet 1, you see a mug 1.\n> ", "take mug 1 from cabinet 1", "go to fridge 1"] * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(TEXTS, tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_model_loads_with_identical_ids(tiny: Path):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny)
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert len(tok("\n", add_special_tokens=False)["input_ids"]) == 1  # "\n" is a token of its own
    ids = tok(TEXTS[0], add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == TEXTS[0]
    model = AutoModelForCausalLM.from_pretrained(tiny)
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 3.5e6
    assert model.config.vocab_size == len(tok)


def test_value_model_starts_at_zero_and_round_trips(tiny: Path, tmp_path: Path):
    value = ValueModel.from_base(tiny)
    ids = torch.tensor([[5, 6, 7, 8]])
    assert value(ids, torch.ones_like(ids)).abs().max().item() == 0.0  # zero-initialised head
    torch.nn.init.normal_(value.head.weight)
    before = value(ids, torch.ones_like(ids))
    value.save_pretrained(tmp_path / "value")
    again = ValueModel.from_pretrained(tmp_path / "value")
    assert torch.allclose(before, again(ids, torch.ones_like(ids)))
    with pytest.raises(OreoError, match="not a value model"):
        ValueModel.from_pretrained(tiny)


def test_bad_model_dirs_name_the_folder(tmp_path: Path):
    with pytest.raises(OreoError, match="not found"):
        load_policy(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(OreoError, match=str(broken)):
        load_policy(broken)
    with pytest.raises(OreoError, match="no such directory"):
        resolve_model(str(tmp_path / "nope"))


def test_resolve_tiny_is_cached_by_text(tmp_path: Path):
    a = resolve_model("tiny", cache_dir=tmp_path, texts=TEXTS)
    assert resolve_model("tiny", cache_dir=tmp_path, texts=TEXTS) == a
    assert resolve_model("tiny", cache_dir=tmp_path, texts=TEXTS[:2] * 10) != a

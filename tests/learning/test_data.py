"""Episodes -> state-aligned tensors, the reference log-prob cache, and dataset errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.learning import data as D
from oreo_agents.learning.models import build_tiny_model, load_policy, load_tokenizer


@pytest.fixture
def setup(mixed_dataset: Path, tmp_path: Path):
    rows = D.load_episodes([mixed_dataset.parent])
    model = build_tiny_model(D.episode_texts(rows), tmp_path / "m")
    tok = load_tokenizer(model)
    return rows, model, tok, D.encode_episodes(rows, tok, max_length=512)


def test_collate_aligns_masks_on_states(setup):
    rows, _, tok, items = setup
    b = D.collate(items[:2], pad_id=tok.pad_token_id)
    it = items[0]
    n = len(it["input_ids"])
    assert b["mask"][0, : n - 1].tolist() == it["action_mask"][1:]  # mask[t] = token t+1 is an action
    assert b["mask"][0, n - 1 :].sum() == 0
    # the state right after each reply: one per step, the last one is the final token
    assert int(b["reply_end"][0].sum()) == len(rows[0]["steps"])
    assert b["reply_end"][0, n - 1] == 1
    first = it["action_mask"].index(1)
    assert b["step_ids"][0, first - 1] == 0  # state before reply 0 chooses a step-0 token
    eos = tok.eos_token_id
    ends = [i for i, m in enumerate(it["action_mask"]) if m and (i + 1 == n or not it["action_mask"][i + 1])]
    assert all(it["input_ids"][i] == eos for i in ends)  # agent replies end with EOS, trained as an action


def test_reference_cache_matches_a_forward_pass_and_is_reused(setup, tmp_path: Path):
    _, model_dir, tok, items = setup
    policy = load_policy(model_dir)
    cache = D.RefCache.build(policy, model_dir, items, tmp_path / "cache", pad_id=tok.pad_token_id, full=True)
    b = D.collate(items[:3], pad_id=tok.pad_token_id, ref=cache)
    with torch.no_grad():
        logits = policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    has_next = torch.nn.functional.pad(b["attention_mask"][:, 1:], (0, 1))  # states followed by a real token
    direct = D.token_logprobs(logits, b["input_ids"]) * has_next
    assert torch.allclose(b["ref_logp"] * has_next, direct, atol=1e-4)
    full0 = torch.from_numpy(cache.full(0))
    assert full0.shape == (int(b["mask"][0].sum()), logits.shape[-1])
    assert torch.allclose(full0, torch.log_softmax(logits[0][b["mask"][0].bool()], -1), atol=2e-2)  # float16 storage
    again = D.RefCache.build(policy, model_dir, items, tmp_path / "cache", pad_id=tok.pad_token_id, full=True)
    assert again.root == cache.root and len(list((tmp_path / "cache").iterdir())) == 1


def test_dataset_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match="not found"):
        D.load_episodes([tmp_path / "nothing.parquet"])
    import datasets

    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([{"task_id": "a", "steps": []}]).to_parquet(str(bad))
    with pytest.raises(SchemaError, match="lacks the field"):
        D.load_episodes([bad])


def test_selection_per_algorithm(setup):
    rows = setup[0]
    assert all(r["success"] for r in D.select_episodes(rows, "sft"))
    pairs = D.dpo_pairs(rows)
    assert pairs and all(rows[w]["task_id"] == rows[l]["task_id"] and rows[w]["success"] and not rows[l]["success"] for w, l in pairs)
    with pytest.raises(SchemaError, match="rft"):
        D.select_episodes([dict(r, metadata={"policy": "expert"}) for r in rows], "rft")

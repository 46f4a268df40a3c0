"""Episodes -> state-aligned tensors, the reference log-prob cache, and dataset errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oreo_agents.errors import DataNotFoundError, SchemaError
from oreo_agents.learning import data as D
from oreo_agents.recording.dataset import load_episode_rows
from oreo_agents.models.loading import build_tiny_model, load_policy, load_tokenizer


@pytest.fixture
def setup(mixed_dataset: Path, tmp_path: Path):
    rows = load_episode_rows([mixed_dataset.parent])
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
    full0 = torch.from_numpy(cache.full(0)).float()
    assert full0.shape == (int(b["mask"][0].sum()), logits.shape[-1])
    assert torch.allclose(full0, torch.log_softmax(logits[0][b["mask"][0].bool()], -1), atol=2e-2)  # float16 storage
    again = D.RefCache.build(policy, model_dir, items, tmp_path / "cache", pad_id=tok.pad_token_id, full=True)
    assert again.root == cache.root and len(list((tmp_path / "cache").iterdir())) == 1


def test_dataset_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match="not found"):
        load_episode_rows([tmp_path / "nothing.parquet"])
    import datasets

    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([{"task_id": "a", "steps": []}]).to_parquet(str(bad))
    with pytest.raises(SchemaError, match="lacks the field"):
        load_episode_rows([bad])


def test_selection_per_algorithm(setup):
    rows = setup[0]
    assert all(r["success"] for r in D.select_episodes(rows, "sft"))
    pairs = D.dpo_pairs(rows)
    assert pairs and all(rows[w]["task_id"] == rows[l]["task_id"] and rows[w]["success"] and not rows[l]["success"] for w, l in pairs)
    with pytest.raises(SchemaError, match="rft"):
        D.select_episodes([dict(r, metadata={"policy": "expert"}) for r in rows], "rft")


def test_reference_cache_runs_under_the_policys_autocast(setup, tmp_path: Path):
    """pi_ref's log-probs are computed the way the policy's bf16 training forward is: log(pi/pi_ref) = 0 at update 0."""
    _, model_dir, tok, items = setup
    policy = load_policy(model_dir).train()
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731 - what accelerator.autocast gives on CPU
    cache = D.RefCache.build(policy, model_dir, items, tmp_path / "cache", pad_id=tok.pad_token_id, full=False, autocast=bf16)
    assert policy.training  # the caller's mode is restored
    policy.eval()
    b = D.collate(items[2:5], pad_id=tok.pad_token_id, ref=cache)  # another batch composition than the cache's
    with torch.no_grad(), bf16():
        logits = policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    ratio = (D.token_logprobs(logits, b["input_ids"]) - b["ref_logp"]) * b["mask"]
    assert ratio.abs().max() < 1e-6
    with torch.no_grad():  # fp32 (what the cache used before) differs from the bf16 forward by ~1e-3 per token
        fp32 = D.token_logprobs(policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["input_ids"])
    assert ((fp32 - b["ref_logp"]) * b["mask"]).abs().max() > 1e-4
    # a cache computed at another precision is a different cache, never reused for this one
    assert D.RefCache.build(policy, model_dir, items, tmp_path / "cache", pad_id=tok.pad_token_id, full=False).root != cache.root


def test_aborted_and_max_length_cut_episodes_are_marked_truncated(mixed_dataset: Path, tmp_path: Path):
    from fake_episodes import episode, write_dataset

    aborted = episode(0, False, sample=5, policy="model")
    aborted.termination = "aborted"
    path = write_dataset(tmp_path / "cut" / "a.parquet", [episode(0, True), episode(1, False), aborted])
    rows = load_episode_rows([path])
    tok = load_tokenizer(build_tiny_model(D.episode_texts(rows), tmp_path / "m"))
    full = D.encode_episodes(rows, tok, max_length=4096)
    assert [it["truncated"] for it in full] == [False, False, True]  # an env step limit ("truncated" failure) is finished
    cut = D.encode_episodes(rows[:1], tok, max_length=len(full[0]["input_ids"]) - 1)  # the last reply no longer fits
    assert cut[0]["truncated"] and 0 < len(cut[0]["input_ids"]) < len(full[0]["input_ids"])
    b = D.collate(full, pad_id=tok.pad_token_id)
    assert b["truncated"].tolist() == [False, False, True]
    with pytest.raises(SchemaError, match="dpo"):  # task 0's only non-success is aborted: no outcome, so no rejected side
        D.dpo_pairs(rows)


def _recorded(rec, tokenizer_name: str, prompt: list[int], reply: list[int]):
    """``rec`` as if a model with tokenizer ``tokenizer_name`` had acted: ids on every step, the name in metadata."""
    for k, s in enumerate(rec.steps):
        s.prompt_token_ids, s.completion_token_ids = list(prompt), [*reply, k]
    rec.metadata.tokenizer = tokenizer_name
    return rec


def test_recorded_ids_from_another_tokenizer_are_retokenized(tmp_path: Path, capsys):
    """Rollouts recorded by a bigger-vocabulary model, trained with a tiny model: text re-tokenized, no IndexError."""
    from fake_episodes import episode, write_dataset

    from oreo_agents.models.policy import tokenizer_id

    plain = [episode(t, ok) for t in range(2) for ok in (True, False)]
    tok = load_tokenizer(build_tiny_model(D.episode_texts([r.to_row() for r in plain]), tmp_path / "m"))
    big = [_recorded(episode(t, ok), "Qwen/Qwen2.5-1.5B@0123456789ab", [151000, 7], [150000, 3]) for t in range(2) for ok in (True, False)]
    own = _recorded(episode(0, True, sample=1), tokenizer_id(tok), [5, 6], [9, 10])
    path = write_dataset(tmp_path / "rollouts" / "r.parquet", [*big, own])
    rows = load_episode_rows([path])
    items = D.encode_episodes(rows, tok, max_length=4096)
    expected = D.encode_episodes([r.to_row() for r in plain], tok, max_length=4096)
    assert [it["input_ids"] for it in items[:4]] == [it["input_ids"] for it in expected]
    assert max(max(it["input_ids"]) for it in items) < len(tok)
    assert items[4]["input_ids"][:4] == [5, 6, 9, 10]  # the model's own tokenizer: recorded ids spliced in as they are
    out = capsys.readouterr().out.replace("\n", "")
    assert "r.parquet" in out and "Qwen/Qwen2.5-1.5B@0123456789ab" in out and tokenizer_id(tok) in out and "4 episode" in out


def test_unnamed_tokenizer_with_ids_outside_the_vocabulary_is_refused(tmp_path: Path):
    from fake_episodes import episode, write_dataset

    from oreo_agents.errors import OreoError

    rec = episode(0, True)
    tok = load_tokenizer(build_tiny_model(D.episode_texts([rec.to_row()]), tmp_path / "m"))
    path = write_dataset(tmp_path / "old" / "o.parquet", [_recorded(rec, "", [len(tok) + 100], [1])])
    with pytest.raises(OreoError, match=r"o\.parquet.*token id .*outside the model's tokenizer"):
        D.encode_episodes(load_episode_rows([path]), tok, max_length=4096)


def test_micro_batches_group_similar_lengths():
    lengths = {3: 10, 8: 50, 1: 12, 5: 49, 0: 10, 7: 10}
    got = D.length_grouped_micro_batches([3, 8, 1, 5, 0, 7], lengths.__getitem__, 2)
    assert got == [[8, 5], [1, 3], [0, 7]]  # longest first; equal lengths keep the update's order
    padded = sum(len(mb) * max(lengths[i] for i in mb) for mb in got)
    assert padded == 2 * 50 + 2 * 12 + 2 * 10 < 2 * 50 + 2 * 49 + 2 * 10  # vs the plain split [3, 8] [1, 5] [0, 7]
    assert D.length_grouped_micro_batches([], lengths.__getitem__, 2) == [[]]

"""OREO trainer runs that check the loss fixes end to end: response level on multi-turn episodes, the reference under
bf16 autocast, rollouts from another tokenizer and aborted episodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_episodes import episode, write_dataset

from oreo_agents.learning import make_trainer
from oreo_agents.learning.config import TrainConfig


def cfg(data: Path, out: Path, cache: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], out=str(out), model="tiny", model_cache=str(cache), batch_size=4, micro_batch_size=2, plot=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one AcceleratorState per process and refuses another mixed precision in it: reset it around
    the run, as accelerate's own AccelerateTestCase.tearDown does (accelerate 1.16, test_utils/testing.py)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_response_level_lowers_its_loss_on_multi_turn_episodes(mixed_dataset: Path, tmp_path: Path, monkeypatch):
    """4 replies per episode with observations between them: V(s_0) only, so the loss falls (V summed over every
    reply start made it climb 1.5 -> ~30 in 40 updates and the policy's log-ratio run off to -7)."""
    trainer = make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", loss_level="response", max_steps=40, epochs=100))
    seen: list[list[int]] = []
    step = trainer.micro_step
    trainer.micro_step = lambda idx, weight: (seen.append(list(idx)), step(idx, weight))[1]
    trainer.train()
    records = _records(tmp_path / "run")
    assert len(records) == 40
    assert max(r["loss"] for r in records[-5:]) < 0.2 * records[0]["loss"]
    assert abs(records[-1]["logratio"]) < 2.0
    # each update's micro-batches are grouped by length, longest first
    lengths = [[len(trainer.items[i]["input_ids"]) for i in mb] for mb in seen]
    for first, second in zip(lengths[0::2], lengths[1::2]):
        assert min(first) >= max(second)
    # V is regressed at every action state at this level (search and the agent read it there), not only reply starts
    from oreo_agents.learning import losses as L

    value_masks, value_loss = [], L.oreo_value_loss
    monkeypatch.setattr(L, "oreo_value_loss", lambda *a: (value_masks.append(a[6]), value_loss(*a))[1])
    b = trainer.batch([0, 1])
    trainer.losses(b)
    assert bool((value_masks[0] >= b["mask"]).all()) and b["mask"].sum() > 0


def test_first_bf16_update_of_mixed_provenance_data(mixed_dataset: Path, tmp_path: Path, capsys, fresh_accelerate_state):
    """bf16 autocast: log(pi/pi_ref) is exactly 0 at update 0 (the reference ran under the same autocast). The data
    also holds rollouts whose ids come from a 152k-vocabulary tokenizer (IndexError in the tiny model before: now
    re-tokenized from text) and an aborted episode (trained as truncated)."""
    extra = []
    for t in range(2):
        rec = episode(t, t == 0, sample=7, policy="model")
        for k, s in enumerate(rec.steps):
            s.prompt_token_ids, s.completion_token_ids = [151000, 17], [150000 + k, 151643]
        rec.metadata.tokenizer = "Qwen/Qwen2.5-1.5B@0123456789ab"
        extra.append(rec)
    aborted = episode(2, False, sample=8, policy="model")
    aborted.termination = "aborted"
    write_dataset(mixed_dataset.parent / "more.parquet", [*extra, aborted])
    trainer = make_trainer(cfg(mixed_dataset.parent, tmp_path / "run", tmp_path / "cache", mixed_precision="bf16", max_steps=2, alpha=0.1))
    trainer.train()
    records = _records(tmp_path / "run")
    assert records[0]["logratio"] == 0.0
    assert all(r["loss"] == r["loss"] and r["kl"] > -1e-3 for r in records)  # finite; KL >= 0 up to the float16 cache
    assert sum(it["truncated"] for it in trainer.items) == 1
    assert max(max(it["input_ids"]) for it in trainer.items) < len(trainer.tokenizer)
    assert "re-tokenized" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.parametrize("algo", ["oreo", "sft", "dpo"])
def test_logits_at_action_states_only_train_exactly_like_all_logits(algo: str, mixed_dataset: Path, tmp_path: Path,
                                                                     fresh_accelerate_state):
    """The LM head projects only the columns the losses read (logits_to_keep): same losses and gradients as every
    position's logits, with the exact KL (alpha > 0) and the reference recomputed online. In fp32: "auto" is bf16 on a
    CPU with AVX512-BF16, where the two ways round differently (gradients off by more than 1e-4 there)."""
    import torch

    tr = make_trainer(cfg(mixed_dataset, tmp_path / "run", tmp_path / "cache", algo=algo, ref_distributions="online",
                          mixed_precision="no"))
    tr.prepare_data()
    tr.setup_models(1)
    assert tr.keeps_logit_columns  # a transformers Llama takes logits_to_keep
    units = list(range(min(tr.units(), 2)))
    model = next(iter(tr.models.values()))
    results = []
    for keep in (False, True):
        tr.keeps_logit_columns = keep
        model.zero_grad(set_to_none=True)
        metrics = tr.micro_step(units, 1.0)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((metrics, grads))
    (m_all, g_all), (m_cols, g_cols) = results
    for k in m_all:
        assert m_cols[k] == pytest.approx(m_all[k], rel=1e-5, abs=1e-6), k
    assert g_all.keys() == g_cols.keys() and g_all
    for n in g_all:
        torch.testing.assert_close(g_cols[n], g_all[n], rtol=1e-4, atol=1e-6)

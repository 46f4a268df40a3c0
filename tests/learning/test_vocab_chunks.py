"""The chunked log-probs and exact KL equal the whole-tensor expressions (values and gradients) across many chunks."""

from __future__ import annotations

import pytest
import torch

from oreo_agents.learning import losses as L
from oreo_agents.learning.vocab_chunks import chosen_logprobs, log_softmax_rows, logit_columns, logprobs_and_kl

B, T, V = 3, 7, 50
SMALL = 2 * V  # two positions per chunk: every row boundary case is crossed


def _logits(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(B, T, V, generator=g)).to(dtype).requires_grad_(True)


def _ids(seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _up(x):
    return x.to(torch.promote_types(x.dtype, torch.float32))


# (values, gradients) tolerances: fp64 checks the math; fp32 is float rounding; bf16 gradients are stored in bf16.
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-6, 1e-5), torch.bfloat16: (1e-6, 1e-2)}


def _reference_logprobs(logits, ids):
    """The unchunked expression: cross-entropy of the whole [B, T-1, V] tensor in (at least) fp32."""
    nll = torch.nn.functional.cross_entropy(_up(logits[:, :-1].reshape(-1, V)), ids[:, 1:].reshape(-1), reduction="none")
    return torch.nn.functional.pad(-nll.view(B, T - 1), (0, 1))


@pytest.mark.parametrize("dtype", list(TOL))
def test_chosen_logprobs_match_cross_entropy(dtype):
    ids, weights = _ids(), torch.randn(B, T, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a, b = _logits(dtype), _logits(dtype)
    got, want = chosen_logprobs(a, ids, chunk_elements=SMALL), _reference_logprobs(b, ids)
    assert got.dtype == want.dtype and got[:, -1].abs().max() == 0
    tol_v, tol_g = TOL[dtype]
    torch.testing.assert_close(got, want, rtol=tol_v, atol=tol_v)
    (got * weights.to(got.dtype)).sum().backward()
    (want * weights.to(got.dtype)).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=tol_g, atol=tol_g)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_probs_and_exact_kl_match_the_whole_vocabulary_expressions(dtype):
    ids, mask = _ids(), torch.zeros(B, T)
    mask[0, 1:4] = 1
    mask[2, [0, 5, 6]] = 1
    n = int(mask.sum())
    ref = torch.log_softmax(torch.randn(n, V, generator=torch.Generator().manual_seed(3)), -1).half()  # the cache's dtype
    w_logp, w_kl = (torch.randn(B, T, generator=torch.Generator().manual_seed(s), dtype=dtype) for s in (4, 5))
    a, b = _logits(dtype), _logits(dtype)
    logp, kl = logprobs_and_kl(a, ids, mask, ref, chunk_elements=SMALL)
    lp = torch.log_softmax(b[mask.bool()], -1)
    want_kl = torch.zeros(B, T, dtype=dtype).index_put((mask.bool(),), (lp.exp() * (lp - ref.to(dtype))).sum(-1))
    want_logp = _reference_logprobs(b, ids)
    tol_v, tol_g = TOL[dtype]
    torch.testing.assert_close(kl, want_kl, rtol=tol_v, atol=tol_v)
    torch.testing.assert_close(logp, want_logp, rtol=tol_v, atol=tol_v)
    assert kl[~mask.bool()].abs().max() == 0
    ((logp * w_logp).sum() + (kl * w_kl).sum()).backward()  # both terms' gradients land in one logits gradient
    ((want_logp * w_logp).sum() + (want_kl * w_kl).sum()).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=tol_g, atol=tol_g)
    # and the per-trajectory mean is losses.kl_regulariser's equation
    full = torch.log_softmax(b.detach(), -1)
    ref_full = full.clone()
    ref_full[mask.bool()] = ref.to(dtype)
    assert L.per_sequence_mean(kl, mask).item() == pytest.approx(L.kl_regulariser(full, ref_full, mask).item(), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_logits_of_the_masked_columns_only_give_the_same_results_there(dtype):
    # What a model returns for logits_to_keep=columns: the full logits' columns. Results at the masked states (and their
    # gradients) must equal the full computation's, and every other column is 0 without gradient.
    ids, mask = _ids(), torch.zeros(B, T)
    mask[0, 1:3] = 1
    mask[2, [3, 5]] = 1
    columns = logit_columns(mask)
    assert columns.tolist() == [1, 2, 3, 5]
    ref = torch.log_softmax(torch.randn(int(mask.sum()), V, generator=torch.Generator().manual_seed(3)), -1).half()
    w = torch.randn(B, T, generator=torch.Generator().manual_seed(4), dtype=dtype)
    full, part = _logits(dtype), _logits(dtype).detach()[:, columns].requires_grad_(True)
    logp, kl = logprobs_and_kl(full, ids, mask, ref, chunk_elements=SMALL)
    logp_c, kl_c = logprobs_and_kl(part, ids, mask, ref, columns=columns, chunk_elements=SMALL)
    dropped = [t for t in range(T) if t not in columns.tolist()]
    tol_v, tol_g = TOL[dtype]
    torch.testing.assert_close(logp_c[:, columns], logp[:, columns], rtol=tol_v, atol=tol_v)  # every row, kept columns
    torch.testing.assert_close(kl_c, kl, rtol=tol_v, atol=tol_v)  # 0 off the mask in both
    assert logp_c[:, dropped].abs().max() == 0
    ((logp * mask * w).sum() + (kl * w).sum()).backward()
    ((logp_c * mask * w).sum() + (kl_c * w).sum()).backward()
    torch.testing.assert_close(part.grad, full.grad[:, columns], rtol=tol_g, atol=tol_g)
    assert logit_columns(torch.zeros(B, T)) is None
    with pytest.raises(ValueError, match="no next token"):
        logprobs_and_kl(_logits()[:, -1:], ids, columns=torch.tensor([T - 1]))


def test_reference_rows_must_match_the_masked_states():
    with pytest.raises(ValueError, match="3 rows for 2 masked"):
        logprobs_and_kl(_logits(), _ids(), torch.tensor([[1.0, 1.0] + [0.0] * (T - 2)] + [[0.0] * T] * (B - 1)), torch.zeros(3, V))


def test_log_softmax_rows_cover_every_row_once():
    x = torch.randn(9, V)
    torch.testing.assert_close(torch.cat(list(log_softmax_rows(x, chunk_elements=SMALL))), torch.log_softmax(x, -1))

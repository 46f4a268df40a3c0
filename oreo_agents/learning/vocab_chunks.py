"""Log-probs of the taken tokens and the exact KL, computed over chunks of positions so no full ``[B, T, V]`` fp32
tensor is ever made.

At a 152k vocabulary a ``[B, T, V]`` fp32 tensor is 0.6 GB per 1,000 positions, and the plain expressions make
several (the fp32 copy of bf16 logits, the log-softmax autograd keeps for backward, its exp for the KL, the fp32 copy
of the reference distributions). Here one ``autograd.Function`` walks the rows of the logits ``CHUNK_ELEMENTS // V``
at a time, keeps only ``[N]`` statistics (log-sum-exp, KL) for backward and recomputes a chunk's softmax there. The
results equal ``cross_entropy`` / ``log_softmax`` on the whole tensor to float rounding (tests/learning/test_vocab_chunks.py).

The gradient w.r.t. the logits is the only full-size tensor left (autograd needs it, in the logits' own dtype), and
log-probs and KL share it::

    logp_i = x_i[a_i] - logsumexp(x_i)                  d logp_i / d x_ij = [j = a_i] - p_ij
    KL_i   = sum_j p_ij (lp_ij - ref_ij)                d KL_i / d x_ij   = p_ij (lp_ij - ref_ij - KL_i)
"""

from __future__ import annotations

import torch

# Logits entries per chunk: 16 MB in fp32, ~27 positions at a 152k vocabulary (a few such temporaries live at once);
# the whole sequence is one chunk for a small vocabulary.
CHUNK_ELEMENTS = 1 << 22


def _up(x: torch.Tensor) -> torch.Tensor:
    """At least fp32 (bf16/fp16 logits are upcast a chunk at a time; fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rows_per_chunk(vocab: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    return max(1, chunk_elements // max(vocab, 1))


class _LogprobsAndKL(torch.autograd.Function):
    """Over ``[N, V]`` logits, chunk by chunk (at least fp32 math):

    ``logp[n] = log softmax(logits[n])[targets[n]]`` for every row, and for the rows with ``ref_row[n] >= 0``
    ``kl[n] = sum_v p(v) (log p(v) - ref[ref_row[n], v])`` (0 elsewhere). One function for both, so backward makes
    one ``[N, V]`` gradient instead of two that autograd would then add. ``ref`` never gets gradient.
    """

    @staticmethod
    def forward(ctx, logits, targets, ref, ref_row, step):  # type: ignore[override]
        n = logits.shape[0]
        dtype = torch.promote_types(logits.dtype, torch.float32)
        lse = torch.empty(n, dtype=dtype, device=logits.device)
        logp = torch.empty(n, dtype=dtype, device=logits.device)
        kl = torch.zeros(n, dtype=dtype, device=logits.device)
        for s in range(0, n, step):
            x = _up(logits[s : s + step])
            lse[s : s + step] = torch.logsumexp(x, dim=-1)
            logp[s : s + step] = x.gather(1, targets[s : s + step, None]).squeeze(1) - lse[s : s + step]
            if ref is not None:
                sel = (ref_row[s : s + step] >= 0).nonzero().squeeze(1)
                if len(sel):
                    lp = x[sel] - lse[s + sel, None]
                    kl[s + sel] = (lp.exp() * (lp - ref[ref_row[s + sel]].to(dtype))).sum(-1)
        ctx.save_for_backward(logits, targets, lse, kl, *(() if ref is None else (ref, ref_row)))
        ctx.step, ctx.has_ref = step, ref is not None
        return logp, kl

    @staticmethod
    def backward(ctx, g_logp, g_kl):  # type: ignore[override]
        logits, targets, lse, kl, *refs = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for s in range(0, logits.shape[0], ctx.step):
            lp = _up(logits[s : s + ctx.step]) - lse[s : s + ctx.step, None]
            p = lp.exp()
            kl_part = None
            if ctx.has_ref and g_kl is not None:
                ref, ref_row = refs
                sel = (ref_row[s : s + ctx.step] >= 0).nonzero().squeeze(1)
                if len(sel):  # d KL / dx = p (lp - ref - KL)
                    r = ref[ref_row[s + sel]].to(lp.dtype)
                    kl_part = (lp[sel] - r).sub_(kl[s + sel, None]).mul_(p[sel]).mul_(_up(g_kl[s + sel, None]))
            del lp
            g = _up(g_logp[s : s + ctx.step, None]) if g_logp is not None else torch.zeros_like(lse[s : s + ctx.step, None])
            chunk = p.mul_(-g)  # d logp / dx = onehot(target) - p
            chunk.scatter_add_(1, targets[s : s + ctx.step, None], g)
            if kl_part is not None:
                chunk[sel] += kl_part
            grad[s : s + ctx.step] = chunk
        return grad, None, None, None, None


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, logits.shape[-1])  # a view for the contiguous logits a model returns


def logit_columns(mask: torch.Tensor) -> torch.Tensor | None:
    """The columns (positions) where some row of the state-aligned ``mask`` is set: what the losses read, so the model
    need only project those onto the vocabulary (``logits_to_keep``). None when no state is set (then all are kept)."""
    cols = mask.bool().any(0).nonzero().squeeze(1)
    return cols if len(cols) else None


def logprobs_and_kl(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    mask: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    *,
    columns: torch.Tensor | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``logp``, ``kl``), both ``[B, T]`` and state-aligned:

    - ``logp[:, t] = log softmax(logits[:, t])[input_ids[:, t+1]]`` (the last column is 0);
    - ``kl[:, t] = KL(pi(.|s_t) || pi_ref(.|s_t))`` exactly over the vocabulary where ``mask`` is set, else 0.
      ``ref_logp`` is ``[N, V]`` reference log-probs (any float dtype, e.g. the cache's float16) of the ``N`` masked
      states in ``mask.bool()`` row-major order. Without ``mask``/``ref_logp`` the KL is all 0.

    With ``columns`` (sorted positions, :func:`logit_columns`) the logits are ``[B, len(columns), V]``, the model's
    output for ``logits_to_keep=columns``: both results are exact there and 0 (no gradient) at every other column.
    """
    B, T = input_ids.shape
    V = logits.shape[-1]
    if columns is None:
        columns = torch.arange(T, device=input_ids.device)
        targets = torch.nn.functional.pad(input_ids[:, 1:], (0, 1))  # the last column's target is a dummy
    else:
        if int(columns[-1]) >= T - 1:
            raise ValueError(f"column {int(columns[-1])} has no next token (sequence length {T})")
        targets = input_ids[:, columns + 1]
    if logits.shape[:2] != (B, len(columns)):
        raise ValueError(f"logits {tuple(logits.shape)} for {B} rows x {len(columns)} columns")
    ref_row = None
    if ref_logp is not None:
        assert mask is not None
        on = mask[:, columns].reshape(-1).bool()  # row-major over the kept columns = row-major over all of them
        ref_row = torch.where(on, on.long().cumsum(0) - 1, -1)
        if int(on.sum()) != ref_logp.shape[0] or int(on.sum()) != int(mask.bool().sum()):
            raise ValueError(f"ref_logp has {ref_logp.shape[0]} rows for {int(mask.bool().sum())} masked states")
    logp, kl = _LogprobsAndKL.apply(_flat(logits), targets.reshape(-1), ref_logp, ref_row, rows_per_chunk(V, chunk_elements))
    logp, kl = logp.view(B, -1), kl.view(B, -1)
    if len(columns) == T:
        last = torch.arange(T, device=logits.device) < T - 1
        return logp * last, kl  # the last column: 0, and no gradient
    return logp.new_zeros(B, T).index_copy(1, columns, logp), kl.new_zeros(B, T).index_copy(1, columns, kl)


def chosen_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, *, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """State-aligned ``out[:, t] = log softmax(logits[:, t])[input_ids[:, t+1]]`` (at least fp32; the last column is 0)."""
    return logprobs_and_kl(logits, input_ids, chunk_elements=chunk_elements)[0]


def log_softmax_rows(logits: torch.Tensor, *, chunk_elements: int = CHUNK_ELEMENTS):
    """Yield ``log_softmax`` of ``[N, V]`` logits in fp32, one chunk of rows at a time (no gradient)."""
    step = rows_per_chunk(logits.shape[-1], chunk_elements)
    for s in range(0, logits.shape[0], step):
        yield torch.log_softmax(logits[s : s + step].float(), dim=-1)

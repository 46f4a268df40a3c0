"""Action selection: greedy, sample, value best-of-K (the paper's test-time search) and admissible-command scoring.

The expensive parts are batched once per turn over every env of the batch:

- ``value``: K replies per context in ONE generation call (each context prefilled once, its KV cache fanned out K ways),
  then ONE value forward for all candidates, V read at each candidate's last token (the state right after the reply).
- ``admissible``: no sampling; every admissible command is written as a reply (the prompt format's text + terminator)
  and scored in one policy forward (sum of token log-probs) and one value forward.

Both forwards share each context's prefix: the context runs once and the continuations run on top of its KV cache
(:func:`prefix_forward`), so scoring K replies costs one context pass plus K short ones, not K full sequences.

    >>> scores = value_at_ends(value_model, [ctx_ids], [[reply_a_ids, reply_b_ids]])   # doctest: +SKIP
    [[0.12, 0.81]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Sequence

from oreo_agents.errors import OreoError

class SelectMode(StrEnum):
    """How the agent picks each reply (a str, so ``SelectMode.VALUE == "value"`` and it prints as ``value``)."""

    GREEDY = "greedy"  # the policy's most likely reply
    SAMPLE = "sample"  # one reply sampled at the policy's temperature
    VALUE = "value"  # K sampled replies, act with the highest V at the reply's last token (the paper's agent search)
    ADMISSIBLE = "admissible"  # score every admissible command by V (or the policy's log-prob without a value model)


SELECT_MODES: tuple[str, ...] = tuple(m.value for m in SelectMode)


def check_select(select: str, *, k: int, has_value: bool) -> None:
    """A one-line error for an impossible selection setting (named by its flag)."""
    if select not in SELECT_MODES:
        raise OreoError(f"--select {select}: unknown selection mode (choose {', '.join(SELECT_MODES)})")
    if select == "value" and not has_value:
        raise OreoError("--select value needs a value model: pass --value <dir> (a folder saved by `oreo-agents train`)")
    if select == "value" and k < 1:
        raise OreoError(f"--k {k}: value selection needs at least one candidate")


def prefix_forward(model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[Sequence[int]]],
                   pad_id: int, field: str, prefix_cache: Any = None) -> tuple[Any, Any, list[tuple[int, int]]]:
    """Run each context once and all its continuations on top of its KV cache, in two batched forwards.

    Returns ``(last, cont, rows)``: ``last[g]`` is the output at context g's last token, ``cont[r, j]`` the output at
    token j of continuation row r (right-padded), ``rows[r] = (g, len)``. ``field`` picks the output tensor
    (``"logits"`` for a causal LM, ``"last_hidden_state"`` for a value backbone). Equal to running each full sequence on
    its own (tested), because padding is masked and positions are explicit.

    With a :class:`~oreo_agents.models.prefix_cache.PrefixCache`, each context starts from its longest cached prefix and
    is stored after the pass: an agent's next context extends this one by the chosen reply and the new observation, so
    the value model re-reads only those instead of the whole episode every turn (as the policy's generator does).
    """
    import torch

    from oreo_agents.models.prefix_cache import cache_kwargs, output_cache, plain_cache, plan_prefill, row_keys_values

    dev = next(model.parameters()).device
    plan = plan_prefill(prefix_cache, contexts)
    inputs = plan.model_inputs(contexts, pad_id, dev)
    out = model(**inputs)
    mask, width = inputs["attention_mask"], plan.width
    last = getattr(out, field)[:, -1]
    cache = output_cache(out)
    if prefix_cache is not None and plain_cache(cache):
        for g, c in enumerate(contexts):  # before the fan-out below rewrites the cache in place
            keys, values = row_keys_values(cache, g, width - len(c), width)
            prefix_cache.add(list(c), keys, values, supersedes=plan.hits[g][0])
    rows = [(g, len(cont)) for g, conts in enumerate(continuations) for cont in conts]
    groups = torch.tensor([g for g, _ in rows], dtype=torch.long, device=dev)
    cache.batch_select_indices(groups)  # fan each context's cache out to its continuations
    span = max(1, max(n for _, n in rows))
    cids = torch.full((len(rows), span), pad_id, dtype=torch.long, device=dev)
    cmask = torch.zeros_like(cids)
    flat = [cont for conts in continuations for cont in conts]
    for r, cont in enumerate(flat):  # right padding: pads come after every real token, so nothing attends to them
        cids[r, : len(cont)] = torch.tensor(list(cont), dtype=torch.long, device=dev)
        cmask[r, : len(cont)] = 1
    start = mask.sum(-1)[groups]
    positions = start[:, None] + torch.arange(span, device=dev)[None, :]
    cont_out = model(
        input_ids=cids,
        attention_mask=torch.cat([mask[groups], cmask], dim=1),
        position_ids=positions,
        use_cache=True,
        **cache_kwargs(cache),
    )
    return last, getattr(cont_out, field), rows


def value_at_ends(value_model: Any, contexts: Sequence[Sequence[int]],
                  continuations: Sequence[Sequence[Sequence[int]]], pad_id: int = 0, prefix_cache: Any = None) -> list[list[float]]:
    """V at the last token of each ``context + continuation`` (one batched value forward; V of the context if empty)."""
    return values_before_and_after(value_model, contexts, continuations, pad_id, prefix_cache)[1]


def values_before_and_after(value_model: Any, contexts: Sequence[Sequence[int]],
                            continuations: Sequence[Sequence[Sequence[int]]],
                            pad_id: int = 0, prefix_cache: Any = None) -> tuple[list[float], list[list[float]]]:
    """(V of each context, V at the last token of each ``context + continuation``), from the same value forward.

    V of the context is the state before a reply, V after the continuation the state right after it: their difference
    is the reply's advantage A_t (``play`` shows it; :mod:`oreo_agents.agent.value_metrics`).
    """
    import torch

    with torch.inference_mode():
        last, cont, rows = prefix_forward(value_model.backbone, contexts, continuations, pad_id, "last_hidden_state",
                                          prefix_cache)
        head = value_model.head
        ctx_v = head(last.float()).squeeze(-1)
        cont_v = head(cont.float()).squeeze(-1)  # [rows, span]
    out: list[list[float]] = [[] for _ in contexts]
    for r, (g, n) in enumerate(rows):
        out[g].append(float(cont_v[r, n - 1]) if n else float(ctx_v[g]))
    return [float(v) for v in ctx_v], out


def policy_logprobs(lm: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[Sequence[int]]],
                    pad_id: int = 0, prefix_cache: Any = None) -> list[list[list[float]]]:
    """log pi(token | prefix) for every token of every continuation (one batched policy forward)."""
    import torch

    with torch.inference_mode():
        last, cont, rows = prefix_forward(lm, contexts, continuations, pad_id, "logits", prefix_cache)
        first_lp = torch.log_softmax(last.float(), -1)  # predicts each continuation's first token
        cont_lp = torch.log_softmax(cont.float(), -1)  # position j predicts token j + 1
    flat = [c for conts in continuations for c in conts]
    out: list[list[list[float]]] = [[] for _ in contexts]
    for r, ((g, n), tokens) in enumerate(zip(rows, flat)):
        if not n:
            out[g].append([])
            continue
        t = torch.tensor(list(tokens), dtype=torch.long)
        lp = [float(first_lp[g, t[0]])]
        if n > 1:
            lp += cont_lp[r, : n - 1].gather(1, t[1:, None].to(cont_lp.device))[:, 0].tolist()
        out[g].append(lp)
    return out


@dataclass
class Scored:
    """One candidate reply with its scores."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    value: float = math.nan

    @property
    def logprob(self) -> float:
        return float(sum(self.logprobs))


def argmax_by(cands: Sequence[Scored], key: str) -> int:
    """Index of the best candidate by ``"value"`` or ``"logprob"``; ties go to the earliest (deterministic)."""
    best, best_score = 0, -math.inf
    for i, c in enumerate(cands):
        score = c.value if key == "value" else c.logprob
        if not math.isnan(score) and score > best_score:
            best, best_score = i, score
    return best

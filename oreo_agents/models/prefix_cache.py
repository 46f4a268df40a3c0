"""Keys and values of recently generated sequences, kept so the next turn of an episode is not re-read from scratch.

An agent's context only grows: turn ``t + 1`` reads turn ``t``'s context, the reply it generated and the new observation.
Re-encoding the whole context every turn (prefill) costs time linear in its length, and on a CPU that cost grows with the
batch as well, which is what kept batched collection from scaling. :class:`PrefixCache` keeps, per finished generation,
the past keys/values of ``context + reply`` (the reply's last token excepted: its keys were never computed), and a new
context is prefilled only from where it leaves the longest cached prefix. The instruction header that every episode
shares is found the same way, so even a first turn skips it once any episode has been played.

    >>> cache = PrefixCache(max_bytes=2**30)
    >>> hit, n = cache.longest_prefix([5, 6, 7])          # nothing stored yet
    >>> hit is None and n == 0
    True

Entries live on the model's device, least recently used first out once ``max_bytes`` is exceeded. Reuse is exact: a
key/value pair depends only on the tokens before it and its position, and positions are passed explicitly.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass(eq=False)
class CachedPrefix:
    """The past keys/values of one token sequence: per layer ``[heads, len(ids), head_dim]``."""

    ids: np.ndarray
    keys: list[Any]
    values: list[Any]
    blocks: list[int] = field(default_factory=list)  # block_hashes(ids), its index keys in the cache

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values)) + self.ids.nbytes


BLOCK = 16  # tokens per hashed block: lookups walk a context block by block, as vLLM's prefix cache does


def block_hashes(ids: Sequence[int]) -> list[int]:
    """Hash of every whole-block prefix of ``ids``: ``h[k]`` identifies ``ids[: (k + 1) * BLOCK]``."""
    out, h = [], 0
    for start in range(0, len(ids) - BLOCK + 1, BLOCK):
        h = hash((h, tuple(int(t) for t in ids[start : start + BLOCK])))
        out.append(h)
    return out


class PrefixCache:
    """LRU store of :class:`CachedPrefix` entries under a byte budget, looked up by longest common prefix.

    Each entry is indexed under the hashes of its whole-block prefixes, so a lookup costs one dict probe per block of the
    query plus one exact comparison against the few entries that share its longest indexed prefix, however many
    entries are stored.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[int, CachedPrefix] = OrderedDict()
        self._by_block: dict[int, set[int]] = {}  # block-prefix hash -> keys of the entries starting with that prefix
        self._bytes = 0
        self.hits = 0  # prompt tokens served from the cache
        self.misses = 0  # prompt tokens that had to be prefilled

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def longest_prefix(self, ids: Sequence[int]) -> tuple[CachedPrefix | None, int]:
        """The entry sharing the longest common prefix with ``ids``, and that prefix's length (0: no entry helps)."""
        candidates: set[int] = set()
        for h in block_hashes(ids):
            sharing = self._by_block.get(h)
            if not sharing:
                break
            candidates = sharing
        query = np.asarray(ids, dtype=np.int64)
        best, best_len = None, 0
        for key in candidates:
            entry = self._entries[key]
            m = min(len(entry.ids), len(query))
            differ = np.flatnonzero(entry.ids[:m] != query[:m])  # the block hashes matched; confirm token by token
            common = int(differ[0]) if len(differ) else m
            if common > best_len:
                best, best_len = entry, common
        if best is not None:
            self._entries.move_to_end(id(best))
        return best, best_len

    def add(self, ids: Sequence[int], keys: list[Any], values: list[Any], *, supersedes: CachedPrefix | None = None) -> None:
        """Store a sequence's keys/values; ``supersedes`` (an entry ``ids`` extends) is dropped, it can serve nothing more."""
        if supersedes is not None and id(supersedes) in self._entries:
            if len(supersedes.ids) <= len(ids) and np.array_equal(supersedes.ids, np.asarray(ids[: len(supersedes.ids)])):
                self._drop(id(supersedes))
        entry = CachedPrefix(np.asarray(ids, dtype=np.int64), keys, values)
        if entry.nbytes > self.max_bytes:
            return
        entry.blocks = block_hashes(ids)
        self._entries[id(entry)] = entry
        for h in entry.blocks:
            self._by_block.setdefault(h, set()).add(id(entry))
        self._bytes += entry.nbytes
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self._by_block.clear()
        self._bytes = 0

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.nbytes
        for h in entry.blocks:
            sharing = self._by_block[h]
            sharing.discard(key)
            if not sharing:
                del self._by_block[h]


# --- the transformers cache API ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cache_name() -> str:
    """The keyword (and output field) under which the installed transformers passes a KV cache: ``cache`` or ``past_key_values``.

    In transformers 5.25 (installed here) every decoder ``forward`` is wrapped in ``@deprecate_kwarg("past_key_values", "5.40.0",
    new_name="cache")`` (models/llama/modeling_llama.py), which warns with a ``FutureWarning`` on each call that still
    uses the old name, and ``BaseModelOutputWithPast`` declares ``cache`` (its ``past_key_values`` property logs a
    deprecation). Older releases that pyproject accepts (>= 4.51) know only ``past_key_values``. So the name is read off
    the installed library's output class instead of filtering the warning.
    """
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """``{name: cache}`` for a model call, under the installed transformers' name for it."""
    return {cache_name(): cache}


def output_cache(out: Any) -> Any:
    """The KV cache a forward with ``use_cache=True`` returned (``out.cache``, or ``out.past_key_values`` before 5.25)."""
    return out[cache_name()]


def dynamic_cache(layers: Sequence[tuple[Any, Any]]) -> Any:
    """A ``DynamicCache`` holding ``(keys, values)`` per layer, built through ``Cache.update`` (the public API in every
    supported release; the ``ddp_cache_data`` constructor argument is meant for DDP and changed shape across versions)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (keys, values) in enumerate(layers):
        cache.update(keys, values, layer)
    return cache


# --- a batch of prompts served from the cache ---------------------------------------------------------------------------
@dataclass
class PrefillPlan:
    """How a left-padded batch of prompts is prefilled from the cache: row ``r`` takes its first ``past[r]`` tokens'
    keys/values from ``hits[r]``'s entry and feeds the rest; ``fed`` columns are fed, ``width = past_width + fed``."""

    hits: list[tuple[CachedPrefix | None, int]]
    past: list[int]
    fed: int

    @property
    def past_width(self) -> int:
        return max(self.past)

    @property
    def width(self) -> int:
        return self.past_width + self.fed

    def model_inputs(self, prompts: Sequence[Sequence[int]], pad_id: int, device: Any) -> dict[str, Any]:
        """The forward's keyword arguments for ``prompts`` under this plan: each row's uncached tail left-padded into
        ``fed`` columns, the attention mask over all ``width`` columns, explicit positions, and the cached past."""
        import torch

        ids = torch.full((len(prompts), self.fed), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), self.width), dtype=torch.long, device=device)
        for row, p in enumerate(prompts):
            tail = list(p[self.past[row] :])
            ids[row, self.fed - len(tail) :] = torch.tensor(tail, dtype=torch.long, device=device)
            mask[row, self.width - len(p) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, self.past_width :]
        past = cache_kwargs(stacked_past(self)) if self.past_width else {}
        return dict(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **past)


def plan_prefill(cache: PrefixCache | None, prompts: Sequence[Sequence[int]]) -> PrefillPlan:
    """Start each prompt from its longest cached prefix (none without a cache). ``fed`` is the longest uncached remainder
    of any row (one token at least: its output is needed); a row whose own remainder is shorter re-feeds a few cached
    tokens instead of leaving a hole in the middle."""
    lengths = [len(p) for p in prompts]
    hits = [cache.longest_prefix(p) if cache is not None else (None, 0) for p in prompts]
    usable = [min(n, length - 1) for (_, n), length in zip(hits, lengths)]
    fed = max(length - n for length, n in zip(lengths, usable))
    plan = PrefillPlan(hits, [max(0, length - fed) for length in lengths], fed)
    if cache is not None:
        cache.hits += sum(plan.past)
        cache.misses += sum(lengths) - sum(plan.past)
    return plan


def stacked_past(plan: PrefillPlan) -> Any:
    """A DynamicCache of ``plan.past_width`` columns holding each row's first ``past[row]`` cached keys/values,
    right-aligned (zeros under mask 0 elsewhere: never attended)."""
    rows = [(entry, k) for (entry, _), k in zip(plan.hits, plan.past)]
    width = plan.past_width

    def block(layer: int, part: str) -> Any:  # part: "keys" or "values"
        first = next(getattr(entry, part)[layer] for entry, k in rows if k)
        heads, _, dim = first.shape
        out = first.new_zeros((len(rows), heads, width, dim))
        for row, (entry, k) in enumerate(rows):
            if k:
                out[row, :, width - k :] = getattr(entry, part)[layer][:, :k]
        return out

    n_layers = len(next(entry for entry, k in rows if k).keys)
    return dynamic_cache([(block(i, "keys"), block(i, "values")) for i in range(n_layers)])


def row_keys_values(cache: Any, row: int, start: int, end: int) -> tuple[list[Any], list[Any]]:
    """Copies of one row's keys and values in columns ``start:end`` of every layer (to store in a :class:`PrefixCache`)."""
    return ([layer.keys[row, :, start:end].clone() for layer in cache.layers],
            [layer.values[row, :, start:end].clone() for layer in cache.layers])


def plain_cache(cache: Any) -> bool:
    """True for a DynamicCache of full-attention layers, whose per-row keys/values can be sliced out and spliced back."""
    layers = getattr(cache, "layers", None)
    return type(cache).__name__ == "DynamicCache" and bool(layers) and all(type(x).__name__ == "DynamicLayer" for x in layers)

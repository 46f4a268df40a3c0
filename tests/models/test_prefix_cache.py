"""The prefix cache: longest-prefix lookup, LRU under a byte budget, and generation that is exact with it on."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from oreo_agents.models.generation import HFBackend, SamplingParams  # noqa: E402
from oreo_agents.models.prefix_cache import BLOCK, PrefixCache  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402


def _kv(n_tokens: int, heads: int = 2, dim: int = 4):
    return [torch.zeros(heads, n_tokens, dim)], [torch.zeros(heads, n_tokens, dim)]


def test_lookup_finds_the_longest_common_prefix_across_entries():
    cache = PrefixCache(max_bytes=2**20)
    a = list(range(3 * BLOCK))
    b = list(range(2 * BLOCK)) + [999] * BLOCK
    cache.add(a, *_kv(len(a)))
    cache.add(b, *_kv(len(b)))
    entry, n = cache.longest_prefix(a + [7, 8])  # extends a whole
    assert list(entry.ids) == a and n == len(a)
    entry, n = cache.longest_prefix(list(range(2 * BLOCK + 5)) + [1])  # diverges from both inside block 3
    assert n == 2 * BLOCK + 5 and list(entry.ids) == a
    entry, n = cache.longest_prefix(b[: 2 * BLOCK] + [999, 999, 5])
    assert list(entry.ids) == b and n == 2 * BLOCK + 2
    assert cache.longest_prefix([5] * (3 * BLOCK)) == (None, 0)  # shares no whole first block


def test_superseded_entries_go_and_the_budget_evicts_least_recently_used():
    one = _kv(4 * BLOCK)
    size = sum(t.numel() * t.element_size() for t in (*one[0], *one[1])) + 4 * BLOCK * 8
    cache = PrefixCache(max_bytes=2 * size)
    first = list(range(2 * BLOCK))
    cache.add(first, *_kv(len(first)))
    parent, _ = cache.longest_prefix(first)
    longer = first + list(range(100, 100 + 2 * BLOCK))
    cache.add(longer, *_kv(len(longer)), supersedes=parent)  # extends it: the parent can serve nothing more
    assert len(cache) == 1 and cache.longest_prefix(first)[1] == len(first)
    others = [[1000 + i] * (4 * BLOCK) for i in range(2)]
    for ids in others:
        cache.add(ids, *_kv(len(ids)))
    assert cache.nbytes <= cache.max_bytes
    assert cache.longest_prefix(longer) == (None, 0)  # the oldest went first
    assert cache.longest_prefix(others[1])[1] == 4 * BLOCK


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("prefix"))


def test_multi_turn_generation_is_the_same_with_and_without_the_cache(tiny):
    cached, plain = HFBackend.from_pretrained(tiny), HFBackend.from_pretrained(tiny, prefix_cache_mb=0)
    assert plain.prefix_cache is None
    tok = cached.tokenizer
    header = tok("You are an agent in a household. go to cabinet 1. open cabinet 1.", add_special_tokens=False)["input_ids"]
    prompts = [header + tok(" take potato 1" * (i + 1), add_special_tokens=False)["input_ids"] for i in range(3)]
    new_part = max(len(p) for p in prompts)
    for turn in range(4):
        misses_before = cached.prefix_cache.misses
        params = SamplingParams(n=2, temperature=0.0, max_new_tokens=10)
        with_cache, without = cached.generate(prompts, params), plain.generate(prompts, params)
        for group_a, group_b in zip(with_cache, without):
            for a, b in zip(group_a, group_b):
                assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
                assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4
        # only the part since the last turn was prefilled (the shortest rows re-feed up to the longest row's part)
        assert cached.prefix_cache.misses - misses_before <= len(prompts) * new_part
        # next turn: the context, the reply as generated, and observations of different lengths per env
        observations = [tok(" you see a mug 1" * (turn + i + 1), add_special_tokens=False)["input_ids"] for i in range(3)]
        new_part = 1 + max(len(o) for o in observations)  # the reply's last token was never fed, then the observation
        prompts = [p + g[0].token_ids + o for p, g, o in zip(prompts, with_cache, observations)]
    assert cached.prefix_cache.hits > cached.prefix_cache.misses > 0


def test_generation_and_scoring_use_the_current_cache_api_without_warnings(tiny, monkeypatch):
    """No FutureWarning or deprecation log from transformers: the cache goes under the installed library's name."""
    import warnings

    import transformers.utils.generic as hf_generic

    from oreo_agents.agent.selection import policy_logprobs
    from oreo_agents.models.prefix_cache import cache_name

    logged = []
    monkeypatch.setattr(hf_generic.logger, "warning_once", lambda msg, *a, **k: logged.append(msg))
    backend = HFBackend.from_pretrained(tiny)
    tok = backend.tokenizer
    prompt = tok("You are an agent in a household. go to cabinet 1.", add_special_tokens=False)["input_ids"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [group] = backend.generate([prompt], SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=0))
        backend.generate([prompt + group[0].token_ids[:-1] + prompt[:5]], SamplingParams(temperature=0, max_new_tokens=4))
        policy_logprobs(backend.model, [prompt], [[group[0].token_ids, group[1].token_ids]])
    assert backend.prefix_cache.hits > 0  # the second call reused the first one's keys/values through a spliced cache
    messages = [str(w.message) for w in caught] + logged
    assert not [m for m in messages if "past_key_values" in m or "deprecat" in m.lower()], messages
    assert cache_name() in ("cache", "past_key_values")

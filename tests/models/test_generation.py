"""The HF generation backend: exact ids, log-probs equal to a fresh forward pass, seeds, stop strings, limits."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.models.backends import make_backend  # noqa: E402
from oreo_agents.models.generation import HFBackend, SamplingParams  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def backend(tiny):
    return HFBackend.from_pretrained(tiny, seed=0)


def _prompts(tok):
    return [tok("go to cabinet 1", add_special_tokens=False)["input_ids"],
            tok("Your task is to: put a hot potato in sinkbasin.", add_special_tokens=False)["input_ids"]]


def _fresh_logprobs(model, prompt, completion, temperature=1.0):
    with torch.no_grad():
        logits = model(torch.tensor([list(prompt) + list(completion)])).logits[0].float() / temperature
    lp = torch.log_softmax(logits, -1)
    return [float(lp[len(prompt) - 1 + i, t]) for i, t in enumerate(completion)]


def test_samples_are_exact_ids_with_fresh_forward_logprobs(backend):
    prompts = _prompts(backend.tokenizer)
    groups = backend.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=5))
    assert [len(g) for g in groups] == [3, 3]
    for prompt, group in zip(prompts, groups):
        for c in group:
            assert len(c.token_ids) == len(c.logprobs) >= 1
            assert c.text == backend.tokenizer.decode(c.token_ids, skip_special_tokens=True)
            ref = _fresh_logprobs(backend.model, prompt, c.token_ids)
            assert max(abs(a - b) for a, b in zip(ref, c.logprobs)) < 1e-4
            if c.finish_reason == "eos":
                assert c.token_ids[-1] == backend.tokenizer.eos_token_id  # terminator kept
            else:
                assert c.finish_reason == "length" and len(c.token_ids) == 12


def test_sampling_logprobs_follow_the_temperature(backend):
    prompt = _prompts(backend.tokenizer)[0]
    [[c]] = backend.generate([prompt], SamplingParams(temperature=0.5, max_new_tokens=6, seed=1, logprobs="sampling"))
    ref = _fresh_logprobs(backend.model, prompt, c.token_ids, temperature=0.5)
    assert max(abs(a - b) for a, b in zip(ref, c.logprobs)) < 1e-4


def test_seeded_sampling_repeats_and_seeds_differ(backend):
    prompts = _prompts(backend.tokenizer)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=11)
    first = [[c.token_ids for c in g] for g in backend.generate(prompts, params)]
    again = [[c.token_ids for c in g] for g in backend.generate(prompts, params)]
    other = [[c.token_ids for c in g] for g in backend.generate(prompts, SamplingParams(n=2, max_new_tokens=10, seed=12))]
    assert first == again and first != other


def test_greedy_is_the_argmax_and_independent_of_the_batch(backend):
    prompts = _prompts(backend.tokenizer)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    batched = backend.generate(prompts, params)
    alone = backend.generate(prompts[1:], params)
    assert batched[1][0].token_ids == alone[0][0].token_ids
    c = batched[0][0]
    ids = list(prompts[0])
    for t in c.token_ids:  # each greedy token is the argmax of a fresh forward over the sequence so far
        with torch.no_grad():
            assert int(backend.model(torch.tensor([ids])).logits[0, -1].argmax()) == t
        ids.append(t)


def test_stop_string_ends_the_sample_and_keeps_its_token(backend):
    prompt = _prompts(backend.tokenizer)[0]
    [[free]] = backend.generate([prompt], SamplingParams(temperature=0, max_new_tokens=8))
    stop = backend.tokenizer.decode(free.token_ids[2:3]).strip() or backend.tokenizer.decode(free.token_ids[2:3])
    [[cut]] = backend.generate([prompt], SamplingParams(temperature=0, max_new_tokens=8, stop_strings=(stop,)))
    assert cut.finish_reason == "stop" and stop in cut.text
    assert cut.token_ids == free.token_ids[: len(cut.token_ids)] and len(cut.token_ids) <= 3


def test_context_limit_is_reported_not_truncated(backend):
    prompts = _prompts(backend.tokenizer)
    saved = backend.max_context
    try:
        backend.max_context = len(prompts[1])  # the long prompt fills the model; the short one has room for 3 tokens
        short_room = backend.max_context - len(prompts[0])
        groups = backend.generate(prompts, SamplingParams(temperature=0, max_new_tokens=50))
    finally:
        backend.max_context = saved
    assert groups[1][0].finish_reason == "context" and groups[1][0].token_ids == []
    assert len(groups[0][0].token_ids) <= short_room


def test_bad_sampling_options_and_missing_vllm_are_one_line_errors(tiny):
    with pytest.raises(OreoError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(OreoError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(OreoError, match="backend"):
        make_backend("tgi", tiny)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(OreoError, match="vllm is not installed"):
            make_backend("vllm", tiny)


def test_completion_logprob_is_the_sum():
    from oreo_agents.models.generation import Completion

    assert math.isclose(Completion([1, 2], [-0.5, -0.25], "x", "eos").logprob, -0.75)


# --- issue #14 item 7: a sample depends on its own seed, not on the batch it was drawn in --------------------------------


def test_a_seeded_prompt_samples_the_same_in_any_batch(backend):
    tok = backend.tokenizer
    a, b, c = _prompts(tok) + [tok("Sam has 9 books. Sam sells 7 books.", add_special_tokens=False)["input_ids"]]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12)
    [alone] = backend.generate([a], params, seeds=[1234])
    crowd = backend.generate([b, a, c], params, seeds=[7, 1234, 99])
    assert [s.token_ids for s in crowd[1]] == [s.token_ids for s in alone]
    assert alone[0].token_ids != alone[1].token_ids or alone[0].logprobs != alone[1].logprobs  # n samples differ
    [other] = backend.generate([a], params, seeds=[1235])
    assert [s.token_ids for s in other] != [s.token_ids for s in alone]
    with pytest.raises(OreoError, match="2 seeds for 1 prompts"):
        backend.generate([a], params, seeds=[1, 2])


def test_batch_invariant_generation_gives_bit_identical_logprobs(tiny):
    """Without it only the floats' last bits depend on the batch (a 1-row matmul rounds unlike a 3-row one)."""
    fast = HFBackend.from_pretrained(tiny, seed=0)
    exact = HFBackend.from_pretrained(tiny, seed=0, batch_invariant=True)
    tok = fast.tokenizer
    a, b = _prompts(tok)
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    results = {}
    for name, be in (("fast", fast), ("exact", exact)):
        [[alone]] = be.generate([a], params, seeds=[5])
        together = be.generate([b, a], params, seeds=[6, 5])[1][0]
        assert together.token_ids == alone.token_ids
        results[name] = (alone.logprobs, together.logprobs)
    assert results["exact"][0] == results["exact"][1]
    assert max(abs(x - y) for x, y in zip(*results["fast"])) < 1e-4



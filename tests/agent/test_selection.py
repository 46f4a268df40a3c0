"""Each selection mode on a tiny model: deterministic under a seed, batched, and choosing by the right score."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from oreo_agents.agent import Agent, build_agent  # noqa: E402
from oreo_agents.agent import selection  # noqa: E402
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.models.loading import ValueModel  # noqa: E402
from oreo_agents.turns import Turn  # noqa: E402
from oreo_agents.models.policy import ModelPolicy  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402

ALF = "oreo_agents/ALFWorld-v0"
COMMANDS = ["go to cabinet 1", "open cabinet 1", "take potato 1 from countertop 1", "look"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("sel"))


@pytest.fixture(scope="module")
def value(tiny):
    v = ValueModel.from_base(tiny)
    torch.manual_seed(0)
    torch.nn.init.normal_(v.head.weight, std=1.0)  # a non-trivial head: values differ between replies
    return v.eval()


def _turns():
    obs = "You are in the middle of a room. You see a cabinet 1.\n\nYour task is to: put a hot potato in sinkbasin."
    info = {"admissible_commands": COMMANDS}
    return [Turn(ALF, "put a hot potato in sinkbasin", obs, obs, info),
            Turn(ALF, "put a hot potato in sinkbasin", obs + " It is dark.", obs + " It is dark.", info)]


def _agent(tiny, value, select, seed=7):
    return Agent(ModelPolicy(tiny, temperature=1.0, max_new_tokens=8, seed=seed), value, select=select, k=4)


def _full_value(value, ids):
    with torch.no_grad():
        t = torch.tensor([ids])
        return float(value(t, torch.ones_like(t))[0, -1])


@pytest.mark.parametrize("select", ["greedy", "sample", "value", "admissible"])
def test_each_mode_is_deterministic_under_a_seed(tiny, value, select):
    first = _agent(tiny, value, select).act(_turns())
    again = _agent(tiny, value, select).act(_turns())
    assert [d.completion_token_ids for d in first] == [d.completion_token_ids for d in again]
    assert [d.action for d in first] == [d.action for d in again]
    for d in first:
        assert sum(c.chosen for c in d.candidates) == 1
        assert d.completion_token_ids and len(d.completion_logprobs) == len(d.completion_token_ids)


def test_greedy_matches_a_temperature_zero_policy_and_sample_uses_the_seed(tiny, value):
    greedy = _agent(tiny, value, "greedy").act(_turns())
    plain = ModelPolicy(tiny, temperature=0, max_new_tokens=8).act(_turns())
    assert [d.completion_token_ids for d in greedy] == [d.completion_token_ids for d in plain]
    a = [d.completion_token_ids for d in _agent(tiny, value, "sample", seed=1).act(_turns())]
    b = [d.completion_token_ids for d in _agent(tiny, value, "sample", seed=2).act(_turns())]
    assert a != b


def test_value_mode_one_generation_one_value_pass_and_argmax(tiny, value, monkeypatch):
    agent = _agent(tiny, value, "value")
    calls = {"generate": 0, "value": 0}
    real_generate, real_value = agent.policy.backend.generate, selection.values_before_and_after

    def count_generate(*a, **kw):
        calls["generate"] += 1
        return real_generate(*a, **kw)

    def count_value(*a, **kw):
        calls["value"] += 1
        return real_value(*a, **kw)

    monkeypatch.setattr(agent.policy.backend, "generate", count_generate)
    monkeypatch.setattr("oreo_agents.agent.agent.values_before_and_after", count_value)
    turns = _turns()
    decisions = agent.act(turns)
    assert calls == {"generate": 1, "value": 1}  # K candidates x 2 envs: one batched call each
    for turn, d in zip(turns, decisions):
        assert len(d.candidates) == 4
        values = [c.value for c in d.candidates]
        chosen = next(c for c in d.candidates if c.chosen)
        assert chosen.value == max(values) and d.value == chosen.value
        # V at the chosen reply's last token equals a full forward over context + reply.
        ctx = agent.policy.context(turn)
        assert math.isclose(_full_value(value, ctx.ids + d.completion_token_ids), d.value, rel_tol=1e-4, abs_tol=1e-4)
        # V before the reply (for A_t) is V of the context alone, from the same value pass.
        assert math.isclose(_full_value(value, ctx.ids), d.value_before, rel_tol=1e-4, abs_tol=1e-4)


def test_admissible_scores_every_command_by_value_else_logprob(tiny, value):
    [d] = _agent(tiny, value, "admissible").act(_turns()[:1])
    assert [c.action for c in d.candidates] == COMMANDS
    assert d.action == max(d.candidates, key=lambda c: c.value).action
    [d2] = Agent(ModelPolicy(tiny, max_new_tokens=8), None, select="admissible").act(_turns()[:1])
    assert d2.action == max(d2.candidates, key=lambda c: c.logprob).action
    assert all(math.isnan(c.value) for c in d2.candidates)


def test_prefix_forward_equals_full_sequences(tiny, value):
    policy = ModelPolicy(tiny, max_new_tokens=4)
    contexts = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    conts = [[[20, 21, 22], [23], [24, 25]], [[30, 31, 32, 33], [34]]]
    vals = selection.value_at_ends(value, contexts, conts)
    lps = selection.policy_logprobs(policy.backend.model, contexts, conts)
    for g, ctx in enumerate(contexts):
        for j, cont in enumerate(conts[g]):
            assert math.isclose(_full_value(value, ctx + cont), vals[g][j], rel_tol=1e-4, abs_tol=1e-4)
            with torch.no_grad():
                lp = torch.log_softmax(policy.backend.model(torch.tensor([ctx + cont])).logits[0].float(), -1)
            ref = [float(lp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)]
            assert max(abs(a - b) for a, b in zip(ref, lps[g][j])) < 1e-4


def test_value_prefix_cache_serves_growing_contexts_with_the_same_values(tiny, value):
    # Turn by turn an agent's context grows by the chosen reply and an observation; with the cache V re-reads only that.
    from oreo_agents.models.prefix_cache import PrefixCache

    cache = PrefixCache(2**26)
    contexts = [[5, 6, 7, 8, 9, 10, 11, 12] * 3, [13, 14, 15] * 7]
    conts = [[[20, 21, 22], [23]], [[30, 31], [34, 35, 36]]]
    for turn in range(3):
        misses = cache.misses
        before, after = selection.values_before_and_after(value, contexts, conts, 0, cache)
        for g, ctx in enumerate(contexts):
            assert math.isclose(_full_value(value, ctx), before[g], rel_tol=1e-4, abs_tol=1e-4)
            for j, cont in enumerate(conts[g]):
                assert math.isclose(_full_value(value, ctx + cont), after[g][j], rel_tol=1e-4, abs_tol=1e-4)
        if turn:  # each context re-read only from where the previous one ended: chosen reply + observation
            assert cache.misses - misses == 2 * (3 + 4)
        contexts = [contexts[0] + conts[0][0] + [40, 41, 42, 43], contexts[1] + conts[1][1] + [44, 45, 46, 47]]
    assert len(cache) == 2  # each new context superseded its episode's previous one


def test_agent_keeps_a_value_cache_across_turns_unless_batch_invariant(tiny, value):
    agent = _agent(tiny, value, "value")
    first = agent.act(_turns())
    assert agent.value_cache is not None and agent.value_cache.hits == 0 and len(agent.value_cache) == 2
    agent.act(_turns())  # the same contexts again: served from the cache (their last token is re-fed)
    assert agent.value_cache.hits > 0
    again = _agent(tiny, value, "value").act(_turns())
    assert [d.value for d in again] == pytest.approx([d.value for d in first], abs=1e-4)
    agent.policy.backend.make_batch_invariant()
    assert agent.value_cache is None


def test_bad_selection_settings_are_one_line_errors(tiny):
    with pytest.raises(OreoError, match="--select value needs a value model"):
        Agent(ModelPolicy(tiny), None, select="value")
    with pytest.raises(OreoError, match="--select nope"):
        Agent(ModelPolicy(tiny), None, select="nope")
    with pytest.raises(OreoError, match="needs a model policy"):
        build_agent("expert", select="sample")
    with pytest.raises(OreoError, match="not a value model folder"):
        build_agent(str(tiny), value=str(tiny), select="value")

"""Scripted policies: expert, random (uniform over admissible commands, seeded per episode), noisy-expert, make_policy."""

from __future__ import annotations

from collections import Counter

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.policies import Policy, make_policy
from oreo_agents.turns import StepRecord, Turn

COMMANDS = ["go to desk 1", "inventory", "look", "open drawer 1"]


def turn(episode="ep-1", step=0, expert="open drawer 1", admissible=COMMANDS, with_expert=True):
    info = {"admissible_commands": list(admissible), "episode_id": episode}
    if with_expert:
        info["expert_action"] = expert
    history = [StepRecord(action="look", observation="", reward=0.0)] * step
    return Turn(env_id="oreo_agents/ALFWorld-v0", goal="g", initial_observation="o", observation="o", info=info, history=history)


def test_policies_follow_the_protocol():
    for name, kwargs in [("expert", {}), ("random", {"seed": 1}), ("noisy-expert", {"eps": 0.5, "seed": 1})]:
        policy = make_policy(name, **kwargs)
        assert isinstance(policy, Policy) and policy.name == name
        assert set(policy.metadata()) == {"checkpoint", "sampling", "tokenizer"}


def test_expert_plays_expert_action_and_needs_expert_info():
    [d] = make_policy("expert").act([turn(expert="go to desk 1")])
    assert d.action == d.reply == "go to desk 1" and not d.completion_token_ids
    [d] = make_policy("expert").act([turn(expert=None)])
    assert d.action is None  # no next action: the recorder ends the episode
    with pytest.raises(OreoError, match="expert=True.*'expert_action'"):
        make_policy("expert").act([turn(with_expert=False)])


def test_random_is_uniform_over_admissible_commands():
    policy = make_policy("random", seed=0)
    counts = Counter(policy.act([turn(episode=f"ep-{i}")])[0].action for i in range(4000))
    assert set(counts) == set(COMMANDS)
    assert all(abs(c / 4000 - 0.25) < 0.03 for c in counts.values()), counts


def test_random_is_reproducible_per_episode_and_step_regardless_of_batch():
    a = make_policy("random", seed=7)
    b = make_policy("random", seed=7)
    turns = [turn(episode=f"ep-{i}", step=s) for i in range(6) for s in range(3)]
    batched = [d.action for d in a.act(turns)]
    one_by_one = [b.act([t])[0].action for t in reversed(turns)][::-1]
    assert batched == one_by_one
    # ...and the listing order of admissible commands does not change the draw
    assert a.act([turn(admissible=COMMANDS[::-1])])[0].action == b.act([turn()])[0].action
    other_seed = make_policy("random", seed=8)
    assert [d.action for d in other_seed.act(turns)] != batched


def test_random_refuses_envs_without_admissible_commands():
    with pytest.raises(OreoError, match="needs admissible commands"):
        make_policy("random").act([turn(admissible=[])])


def test_noisy_expert_mixes_at_rate_eps():
    assert all(d.action == "open drawer 1" for d in make_policy("noisy-expert", eps=0.0).act([turn(episode=f"e{i}") for i in range(50)]))
    policy = make_policy("noisy-expert", eps=0.4, seed=3)
    actions = [d.action for d in policy.act([turn(episode=f"e{i}") for i in range(3000)])]
    # the expert's action also comes up by chance in a random draw: P(expert) = 0.6 + 0.4 / 4
    assert abs(actions.count("open drawer 1") / 3000 - 0.7) < 0.03
    with pytest.raises(OreoError, match=r"eps must be in \[0, 1\]"):
        make_policy("noisy-expert", eps=1.5)


def test_make_policy_errors():
    with pytest.raises(OreoError, match="unknown policy 'greedy'"):
        make_policy("greedy")
    with pytest.raises(OreoError, match="policy 'expert' takes no option"):
        make_policy("expert", eps=0.1)
    with pytest.raises(OreoError, match=r"pass the model folder itself \(--policy <folder>"):
        make_policy("model")  # the policies layer loads no model: build_agent does, from --policy <folder>

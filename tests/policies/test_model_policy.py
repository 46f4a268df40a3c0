"""The model policy collecting real episodes: ids recorded exactly as generated, log-probs match a fresh forward."""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")

import oreo_agents  # noqa: E402,F401
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.policies import make_policy  # noqa: E402
from oreo_agents.policies.base import Turn  # noqa: E402
from oreo_agents.policies.model import ModelPolicy  # noqa: E402
from oreo_agents.prompting import MATH_FORMAT, encode_episode  # noqa: E402
from oreo_agents.recording.collect import collect_episodes  # noqa: E402
from oreo_agents.recording.dataset import load_episodes  # noqa: E402
from oreo_agents.recording.writer import ShardWriter  # noqa: E402
from tests.policies.tiny_lm import build  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("policy"))


def test_model_policy_collects_exact_ids_and_logprobs(tiny, tmp_path):
    policy = ModelPolicy(tiny, temperature=1.0, max_new_tokens=10, seed=3)
    writer = ShardWriter(tmp_path / "ds", {"test": "model-policy"}, shard_size=10)
    summary = collect_episodes(
        lambda: gym.make("oreo_agents/Math-v0", num_problems=3, max_steps=3), policy, writer,
        episodes=4, num_envs=2, samples_per_task=2, seed=0, plan_key="t",
    )
    writer.close(complete=True)
    assert summary.recorded == 4
    rows = list(load_episodes(tmp_path / "ds"))
    model, tok = policy.backend.model, policy.tokenizer
    checked = 0
    for row in rows:
        enc = encode_episode(MATH_FORMAT, tok, goal=row["goal"], initial_observation=row["initial_observation"],
                             steps=row["steps"])
        # The recorded prompt/completion ids, concatenated, are exactly what the model read and wrote.
        flat = []
        for s in row["steps"]:
            flat += s["prompt_token_ids"] + s["completion_token_ids"]
        assert enc.input_ids == flat
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([flat])).logits[0].float(), -1)
        for s, start in zip(row["steps"], enc.step_starts):
            assert s["completion_token_ids"], "a model step must carry its ids"
            assert tok.decode(s["completion_token_ids"], skip_special_tokens=True) == s["reply"]
            fresh = [float(lp[start - 1 + i, t]) for i, t in enumerate(s["completion_token_ids"])]
            assert max(abs(a - b) for a, b in zip(fresh, s["completion_logprobs"])) < 1e-3
            checked += 1
    assert checked >= 4


def test_unparseable_reply_and_context_overflow(tiny):
    policy = ModelPolicy(tiny, temperature=0, max_new_tokens=4)
    turn = Turn(env_id="oreo_agents/Math-v0", goal="What is 3 + 4?", initial_observation="What is 3 + 4?",
                observation="What is 3 + 4?", info={})
    ctx = policy.context(turn)
    [[sample]] = policy.generate([ctx], n=1)
    from oreo_agents.policies.generation import Completion

    blank = policy.decision(ctx, Completion(sample.token_ids, sample.logprobs, "   \n", "stop"))
    assert blank.action is None and not blank.aborted and blank.completion_token_ids == sample.token_ids
    policy.backend.max_context = len(ctx.ids)  # the prompt alone fills the model
    try:
        [d] = policy.act([turn])
    finally:
        policy.backend.max_context = 4096
    assert d.aborted and d.action is None and d.prompt_token_ids == ctx.new_ids


def test_make_policy_model_and_bad_folder(tiny, tmp_path):
    assert make_policy("model", model=str(tiny), temperature=0.5).metadata()["sampling"]["temperature"] == 0.5
    with pytest.raises(OreoError, match="no such model directory"):
        ModelPolicy(tmp_path / "missing")

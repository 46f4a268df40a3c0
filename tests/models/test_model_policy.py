"""The model policy collecting real episodes: ids recorded exactly as generated, log-probs match a fresh forward."""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")

import oreo_agents  # noqa: E402,F401
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.turns import Turn  # noqa: E402
from oreo_agents.models.policy import ModelPolicy  # noqa: E402
from oreo_agents.prompting import MATH_FORMAT, encode_episode  # noqa: E402
from oreo_agents.pipeline.collect import collect_episodes  # noqa: E402
from oreo_agents.recording.dataset import load_episodes  # noqa: E402
from oreo_agents.recording.writer import ShardWriter  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("policy"))


def test_model_policy_collects_exact_ids_and_logprobs(tiny, tmp_path):
    policy = ModelPolicy(tiny, temperature=1.0, max_new_tokens=10, seed=3)
    writer = ShardWriter(tmp_path / "ds", {"test": "model-policy"}, shard_size=10)
    summary = collect_episodes(
        lambda: gym.make("oreo_agents/Math-v0", num_tasks=3, max_steps=3), policy, writer,
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
    from oreo_agents.models.generation import Completion

    blank = policy.decision(ctx, Completion(sample.token_ids, sample.logprobs, "   \n", "stop"))
    assert blank.action is None and not blank.aborted and blank.completion_token_ids == sample.token_ids
    policy.backend.max_context = len(ctx.ids)  # the prompt alone fills the model
    try:
        [d] = policy.act([turn])
    finally:
        policy.backend.max_context = 4096
    assert d.aborted and d.action is None and d.prompt_token_ids == ctx.new_ids


def test_model_policy_from_pretrained_and_bad_folder(tiny, tmp_path):
    assert ModelPolicy.from_pretrained(str(tiny), temperature=0.5).metadata()["sampling"]["temperature"] == 0.5
    with pytest.raises(OreoError, match="no such model directory"):
        ModelPolicy(tmp_path / "missing")


def test_an_episode_samples_the_same_whatever_batch_or_resume(tiny):
    """The reply at (episode id, step) depends on the policy seed and those alone: not on the turns it is batched with
    nor on how many calls the policy made before (a resumed run starts from zero calls)."""

    def turn(episode_id, question):
        return Turn(env_id="oreo_agents/Math-v0", goal=question, initial_observation=question, observation="",
                    info={"episode_id": episode_id})

    a, b, c = turn("ep-a", "What is 3 + 4?"), turn("ep-b", "Sam has 9 books. How many?"), turn("ep-c", "What is 9 - 7?")
    busy = ModelPolicy(tiny, temperature=1.0, max_new_tokens=10, seed=3)
    for _ in range(3):
        busy.act([b, c])  # an uninterrupted run has made other calls first
    crowded = busy.act([b, a, c])[1]
    fresh = ModelPolicy(tiny, temperature=1.0, max_new_tokens=10, seed=3).act([a])[0]  # a resumed run, batch of one
    assert fresh.completion_token_ids == crowded.completion_token_ids and fresh.reply == crowded.reply
    other_seed = ModelPolicy(tiny, temperature=1.0, max_new_tokens=10, seed=4)
    assert [other_seed.act([t])[0].completion_token_ids for t in (a, b, c)] != [
        busy.act([t])[0].completion_token_ids for t in (a, b, c)]

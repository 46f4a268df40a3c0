"""Step beam search and best-of-N on the real math env, with a value model rigged so the right answer is known.

The policy is a tiny LM trained for a few seconds to answer one problem with ``#### 7`` or ``#### 8`` about equally
often. The value head is set to ``h(#### 7) - h(#### 8)`` (last hidden states of the two finished solutions), so
V(right) - V(wrong) = ||h7 - h8||^2 > 0: the search must answer 7. Flipping the head must make it answer 8.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")

import oreo_agents  # noqa: E402,F401
from oreo_agents.agent.beam import beam_search, best_of_n  # noqa: E402
from oreo_agents.envs.math.problems import Problem  # noqa: E402
from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.models.loading import ValueModel, load_policy  # noqa: E402
from oreo_agents.turns import Turn  # noqa: E402
from oreo_agents.models.policy import ModelPolicy  # noqa: E402
from oreo_agents.prompting import MATH_FORMAT, encode_episode, encode_text  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402

QUESTION = "Tom has 3 apples and gets 4 more. How many apples does Tom have?"
PROBLEM = Problem(id="tom-apples", question=QUESTION, answer="7", steps=("3 + 4 = 7", "#### 7"), task_type="arith-L1")
ENV_ID = "oreo_agents/Math-v0"


def _env():
    return gym.make(ENV_ID, problems=[PROBLEM], max_steps=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny policy that answers with '#### 7' or '#### 8' (trained on both, 50/50)."""
    root = tmp_path_factory.mktemp("beam")
    path = build(root)
    model = load_policy(path)
    # Seed 2: under per-prompt sampling seeds (issue #14 item 7) seeds 0 and 1 happen to draw no "#### 8" in one of
    # the flipped searches (2 and 3 pass): with a 50/50 policy and 4-6 samples this test rests on the draw.
    policy = ModelPolicy(path, temperature=1.0, max_new_tokens=8, seed=2)
    tok = policy.tokenizer
    batch = []
    for answer in ("7", "8"):
        enc = encode_episode(MATH_FORMAT, tok, goal=QUESTION, initial_observation=QUESTION,
                             steps=[{"action": f"#### {answer}", "observation": ""}])
        batch.append(enc)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(60):
        loss = 0.0
        for enc in batch:  # the two answers tokenize to different lengths: one sequence at a time
            ids, mask = torch.tensor([enc.input_ids]), torch.tensor([enc.action_mask])
            nll = torch.nn.functional.cross_entropy(model(ids).logits[0, :-1].float(), ids[0, 1:], reduction="none")
            loss = loss + (nll * mask[0, 1:]).sum() / mask[0, 1:].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    policy.backend.model = model
    return policy


def _rigged_value(policy, right: str, wrong: str):
    value = ValueModel.from_base(policy.checkpoint).eval()
    ctx = policy.context(Turn(ENV_ID, QUESTION, QUESTION, QUESTION, {}))
    newline = encode_text(policy.tokenizer, "\n")
    hidden = []
    for answer in (right, wrong):
        seq = torch.tensor([ctx.ids + encode_text(policy.tokenizer, f"#### {answer}") + newline])
        with torch.no_grad():
            hidden.append(value.backbone(input_ids=seq).last_hidden_state[0, -1].float())
    with torch.no_grad():
        value.head.weight.copy_((hidden[0] - hidden[1])[None, :])
    return value


def test_policy_samples_both_answers(trained):
    ctx = trained.context(Turn(ENV_ID, QUESTION, QUESTION, QUESTION, {}))
    [group] = trained.generate([ctx], n=12)
    answers = {c.text.strip() for c in group}
    assert {"#### 7", "#### 8"} <= answers  # the search has a real choice to make


def test_beam_search_picks_the_highest_value_answer(trained):
    result = beam_search(_env(), trained, _rigged_value(trained, "7", "8"), beams=4, max_steps=4, seed=0)
    assert result.steps[-1] == "#### 7" and result.correct and result.reward == 1.0
    assert result.finished >= 2 and result.expansions >= 4
    assert result.history[-1].completion_token_ids  # ids exactly as generated travel with the answer
    flipped = beam_search(_env(), trained, _rigged_value(trained, "8", "7"), beams=4, max_steps=4, seed=0)
    assert flipped.steps[-1] == "#### 8" and not flipped.correct and flipped.reward == 0.0
    again = beam_search(_env(), trained, _rigged_value(trained, "7", "8"), beams=4, max_steps=4, seed=0)
    assert again.steps == result.steps and again.value == pytest.approx(result.value, abs=1e-4)


def test_best_of_n_by_value(trained):
    good = best_of_n(_env(), trained, _rigged_value(trained, "7", "8"), n=6, max_steps=4, seed=0)
    bad = best_of_n(_env(), trained, _rigged_value(trained, "8", "7"), n=6, max_steps=4, seed=0)
    assert good.correct and good.steps[-1] == "#### 7"
    assert not bad.correct and bad.steps[-1] == "#### 8"


def test_beam_search_needs_state_cloning(trained, alfworld_games_root):
    env = gym.make("oreo_agents/ALFWorld-v0", data_path=str(alfworld_games_root), split="valid_unseen")
    with pytest.raises(OreoError, match="get_state"):
        beam_search(env, trained, _rigged_value(trained, "7", "8"), beams=2, max_steps=1)
    env.close()

"""The prompt format: segments, action masks, recorded ids spliced verbatim, reply parsing."""

from __future__ import annotations

import pytest

from oreo_agents.prompting import (
    ALFWORLD_FORMAT,
    MATH_FORMAT,
    context_ids,
    encode_episode,
    encode_text,
    format_for,
)

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tokenizer():
    """A real byte-level BPE tokenizer trained here (no hub), wrapped as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "You arrive at countertop 1. On the countertop 1, you see a potato 1.",
        "go to countertop 1", "take potato 1 from countertop 1", "heat potato 1 with microwave 1",
        "Tom has 3 apples. He buys 5 more.", "3 + 5 = 8", "#### 8", "Answer:\n",
    ] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


STEPS = [
    {"action": "go to countertop 1", "observation": "On the countertop 1, you see a potato 1."},
    {"action": "take potato 1 from countertop 1", "observation": "You pick up the potato 1 from the countertop 1."},
]


def test_action_mask_covers_exactly_the_replies(tokenizer):
    enc = encode_episode(ALFWORLD_FORMAT, tokenizer, goal="heat a potato", initial_observation="You are in a room.", steps=STEPS)
    assert len(enc.input_ids) == len(enc.action_mask)
    assert len(enc.step_starts) == len(enc.step_ends) == 2
    for step, start, end in zip(STEPS, enc.step_starts, enc.step_ends):
        assert all(enc.action_mask[start:end]) and enc.input_ids[end - 1] == tokenizer.eos_token_id
        assert tokenizer.decode(enc.input_ids[start:end], skip_special_tokens=True) == step["action"]
    assert sum(enc.action_mask) == sum(e - s for s, e in zip(enc.step_starts, enc.step_ends))
    # The observation between the replies is context, and it ends with the reply cue.
    between = tokenizer.decode(enc.input_ids[enc.step_ends[0] : enc.step_starts[1]])
    assert between == "On the countertop 1, you see a potato 1.\n> "


def test_recorded_ids_are_spliced_verbatim(tokenizer):
    odd_reply = [5, 6, 7, tokenizer.eos_token_id]  # ids a model sampled; not what re-tokenizing the text would give
    odd_prompt = [9, 9, 9]
    steps = [dict(STEPS[0], completion_token_ids=odd_reply, prompt_token_ids=odd_prompt), STEPS[1]]
    enc = encode_episode(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="o", steps=steps)
    assert enc.input_ids[: len(odd_prompt) + len(odd_reply)] == odd_prompt + odd_reply
    assert enc.input_ids[enc.step_starts[0] : enc.step_ends[0]] == odd_reply


def test_context_delta_concatenates_to_the_episode(tokenizer):
    full0, delta0 = context_ids(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="You are in a room.", steps=[])
    assert full0 == delta0 and tokenizer.decode(full0).endswith("> ")
    full1, delta1 = context_ids(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="You are in a room.", steps=STEPS[:1])
    enc = encode_episode(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="You are in a room.", steps=STEPS)
    assert full1 == enc.input_ids[: enc.step_starts[1]]
    assert full1[-len(delta1):] == delta1


def test_truncation_keeps_whole_replies(tokenizer):
    full = encode_episode(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="o", steps=STEPS)
    cut = encode_episode(ALFWORLD_FORMAT, tokenizer, goal="g", initial_observation="o", steps=STEPS, max_length=full.step_ends[0] + 2)
    assert cut.truncated and cut.input_ids == full.input_ids[: full.step_ends[0]] and len(cut.step_starts) == 1


def test_math_steps_are_lines_and_final_answer_ends_with_eos(tokenizer):
    steps = [{"action": "3 + 5 = 8", "observation": ""}, {"action": "#### 8", "observation": ""}]
    enc = encode_episode(MATH_FORMAT, tokenizer, goal="Tom has 3 apples. He buys 5 more.", initial_observation="Tom has 3 apples. He buys 5 more.", steps=steps)
    first = tokenizer.decode(enc.input_ids[enc.step_starts[0] : enc.step_ends[0]])
    assert first == "3 + 5 = 8\n"
    assert enc.input_ids[enc.step_ends[1] - 1] == tokenizer.eos_token_id
    # No observation tokens between math steps: the step itself is the new state.
    assert enc.step_ends[0] == enc.step_starts[1]
    assert tokenizer.decode(enc.input_ids[: enc.step_starts[0]]).endswith("Answer:\n")


@pytest.mark.parametrize(
    "reply,action",
    [
        ("go to fridge 1", "go to fridge 1"),
        ("> open fridge 1.\nmore text", "open fridge 1"),
        ("\n\n  look  ", "look"),
        ("", None),
        ("   \n ", None),
    ],
)
def test_parse_agent_reply(reply, action):
    assert ALFWORLD_FORMAT.parse_action(reply) == action


def test_parse_math_reply_takes_first_line():
    assert MATH_FORMAT.parse_action("3 + 5 = 8\n#### 8") == "3 + 5 = 8"
    assert MATH_FORMAT.parse_action("\n") is None


def test_format_lookup_by_id_and_family():
    assert format_for("oreo_agents/ALFWorld-v0") is ALFWORLD_FORMAT
    assert format_for("math") is MATH_FORMAT
    with pytest.raises(KeyError, match="no prompt format"):
        format_for("oreo_agents/Atari-v0")


def test_goal_is_added_only_when_missing():
    text = ALFWORLD_FORMAT.prompt_text("put a mug in the sink", "You see a sink.\n\nYour task is to: put a mug in the sink")
    assert text.count("put a mug in the sink") == 1
    assert "Your task is to: clean a cup" in ALFWORLD_FORMAT.prompt_text("clean a cup", "You see a sink.")


def test_encode_text_empty(tokenizer):
    assert encode_text(tokenizer, "") == []

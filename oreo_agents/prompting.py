"""The ONE place that turns an episode into model input and a model reply into an env action.

The recorder stores what the model read and wrote with this format, the learner trains on it, and the agent plays with it,
so all three see identical token sequences. An episode is a list of *segments*, tokenized one by one and concatenated:

    [prompt]  [reply 0]  [observation 0]  [reply 1]  [observation 1] ...
     context    action       context        action       context

- ``prompt`` = instruction + goal + first observation + the reply cue (``"> "`` for agents, ``"Answer:\\n"`` for math).
- ``reply k`` = the action text plus the reply terminator: the tokenizer's EOS for agent envs (ALFWorld, web shop), a
  newline for math (one reasoning step = one line; the final ``#### answer`` line ends with EOS as well).
- ``observation k`` = the env's feedback + the reply cue (math: nothing, the step itself is the new state).

Tokenizing segment by segment (never the joined text) is what makes the boundaries exact: an action token is never merged
with observation text by the tokenizer, and the ids the model generated can be spliced in verbatim. The learner's
``action_mask`` marks reply tokens; ``step_starts[k]`` is the index of reply k's first token (OREO's step-level states are
the positions just before these).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


class Tokenizer(Protocol):  # the slice of a HF tokenizer this module needs
    eos_token_id: int | None

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class PromptFormat:
    """How one env family is rendered. See the module docstring for the segment layout."""

    family: str
    instruction: str
    reply_cue: str  # text after which the model writes its reply
    reply_end: str  # "eos" or "newline"
    observation_template: str = "{observation}\n"  # rendered after each reply, followed by reply_cue
    stop_strings: tuple[str, ...] = field(default=())

    # --- text ---------------------------------------------------------------------------------------------------
    def prompt_text(self, goal: str, initial_observation: str) -> str:
        """The first context segment. ``initial_observation`` already holds the goal for ALFWorld/web shop."""
        body = initial_observation.strip()
        if goal and goal not in body:
            body = f"{body}\nYour task is to: {goal}"
        return f"{self.instruction}\n{body}\n{self.reply_cue}"

    def observation_text(self, observation: str) -> str:
        """The context segment appended after a reply (empty for math: the step is the new state)."""
        if self.family == "math":
            return ""
        return self.observation_template.format(observation=observation.strip()) + self.reply_cue

    def reply_text(self, action: str) -> str:
        """The text of a reply for ``action`` without its terminator (the terminator is added as tokens)."""
        return action.strip()

    def parse_action(self, reply: str) -> str | None:
        """The env action in a model reply, or None when the reply holds none (OREO ends the episode with reward 0)."""
        text = reply.replace("\r", "")
        if self.family == "math":
            line = text.split("\n", 1)[0].strip()
            return line or None
        # Agents answer with one command; tolerate a leading cue, a trailing period and extra lines.
        for line in text.split("\n"):
            line = line.strip().lstrip(">").strip()
            if line:
                return re.sub(r"[.\s]+$", "", line) or None
        return None


ALFWORLD_FORMAT = PromptFormat(
    family="alfworld",
    instruction=(
        "You are an agent in a household. Each turn, reply with exactly one command, such as: go to X, open X, close X, "
        "take O from R, move O to R, heat O with R, cool O with R, clean O with R, use X, examine X, inventory, look."
    ),
    reply_cue="> ",
    reply_end="eos",
)

WEBSHOP_FORMAT = PromptFormat(
    family="webshop",
    instruction=(
        "You are shopping on a website. Each turn, reply with exactly one action: search[query] on the search page, or "
        "click[button] with one of the clickable buttons on the page."
    ),
    reply_cue="> ",
    reply_end="eos",
)

MATH_FORMAT = PromptFormat(
    family="math",
    instruction="Solve the problem step by step, one step per line. End with a line '#### <answer>'.",
    reply_cue="Answer:\n",
    reply_end="newline",
    stop_strings=("\n",),
)

FORMATS: dict[str, PromptFormat] = {f.family: f for f in (ALFWORLD_FORMAT, WEBSHOP_FORMAT, MATH_FORMAT)}


def format_for(env_id_or_family: str) -> PromptFormat:
    """The prompt format of an env id (``oreo_agents/ALFWorld-v0``) or family name (``alfworld``)."""
    key = env_id_or_family.lower()
    for family, fmt in FORMATS.items():
        if family in key:
            return fmt
    raise KeyError(f"no prompt format for env '{env_id_or_family}' (known: {', '.join(FORMATS)})")


# --- tokens ---------------------------------------------------------------------------------------------------------
def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def reply_terminator_ids(fmt: PromptFormat, tokenizer: Tokenizer, *, final: bool = False) -> list[int]:
    """Tokens that end a reply: EOS for agents; a newline for math steps (newline + EOS after the final answer)."""
    eos = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    if fmt.reply_end == "eos":
        return eos
    newline = encode_text(tokenizer, "\n")
    return newline + eos if final else newline


@dataclass
class EncodedEpisode:
    """An episode as one token sequence with the masks the learner needs."""

    input_ids: list[int]
    action_mask: list[int]  # 1 on reply (action) tokens, 0 on prompt/observation tokens
    step_starts: list[int]  # index of each reply's first token
    step_ends: list[int]  # index one past each reply's last token
    truncated: bool = False  # cut at max_length (replies past the cut are dropped whole)


def encode_episode(
    fmt: PromptFormat,
    tokenizer: Tokenizer,
    *,
    goal: str,
    initial_observation: str,
    steps: Sequence[dict[str, Any]],
    max_length: int | None = None,
    use_recorded_ids: bool = True,
) -> EncodedEpisode:
    """Turn a recorded episode (rows as in :mod:`oreo_agents.recording.schema`) into training tokens.

    When a step carries ``completion_token_ids`` (a model acted) those exact ids are used, and so are its
    ``prompt_token_ids``; otherwise (expert/random data) the text is rendered and tokenized here with the same format the
    model policy uses, segment by segment. With ``max_length`` the sequence keeps whole replies only.
    """
    ids: list[int] = []
    mask: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    truncated = False
    n = len(steps)
    for k, step in enumerate(steps):
        recorded = use_recorded_ids and bool(step.get("completion_token_ids"))
        if recorded and step.get("prompt_token_ids"):
            context = [int(t) for t in step["prompt_token_ids"]]
        elif k == 0:
            context = encode_text(tokenizer, fmt.prompt_text(goal, initial_observation))
        else:
            context = encode_text(tokenizer, fmt.observation_text(steps[k - 1]["observation"]))
        if recorded:
            reply = [int(t) for t in step["completion_token_ids"]]
        else:
            text = step.get("reply") or step["action"]
            final = k == n - 1
            reply = encode_text(tokenizer, fmt.reply_text(text)) + reply_terminator_ids(fmt, tokenizer, final=final)
        if max_length is not None and len(ids) + len(context) + len(reply) > max_length:
            truncated = True
            break
        ids += context
        mask += [0] * len(context)
        starts.append(len(ids))
        ids += reply
        mask += [1] * len(reply)
        ends.append(len(ids))
    return EncodedEpisode(ids, mask, starts, ends, truncated)


def context_ids(
    fmt: PromptFormat,
    tokenizer: Tokenizer,
    *,
    goal: str,
    initial_observation: str,
    steps: Sequence[dict[str, Any]],
) -> tuple[list[int], list[int]]:
    """(full context, new part) for generating the next reply after ``steps``.

    The new part is what the recorder stores as the next step's ``prompt_token_ids``.
    """
    done = encode_episode(fmt, tokenizer, goal=goal, initial_observation=initial_observation, steps=steps)
    if steps:
        delta = encode_text(tokenizer, fmt.observation_text(steps[-1]["observation"]))
    else:
        delta = encode_text(tokenizer, fmt.prompt_text(goal, initial_observation))
    return done.input_ids + delta, delta

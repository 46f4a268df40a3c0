"""vllm 0.32.0 ``inputs/llm.py:111-115``: ``TokensPrompt`` is a TypedDict (calling it builds a dict)."""

from typing import TypedDict


class TokensPrompt(TypedDict, total=False):
    prompt_token_ids: list[int]
    prompt: str

"""Math test-time search with the value model: step-level beam search (the paper's) and best-of-N by value.

A *step* is one line of the solution (the math prompt format stops generation at ``"\\n"``). Beam search keeps B partial
solutions; each round samples B next steps for every beam in ONE batched generation call, scores all B*B children in
ONE batched value forward (V at the step's last token), plays each child's step in the env from its parent's saved
state (``env.unwrapped.get_state()`` / ``set_state()``), moves finished solutions to a pool, and keeps the top B
unfinished children. The answer is the finished solution with the highest value; the env's own reward says whether it
is right. ::

    >>> env = gym.make("oreo_agents/Math-v0", split="test")                                   # doctest: +SKIP
    >>> result = beam_search(env, policy, value, beams=3, max_steps=20, seed=0)               # doctest: +SKIP
    >>> result.steps[-1], result.correct, round(result.value, 2)                               # doctest: +SKIP
    ('#### 18', True, 0.91)

Our choices where the paper is silent: the first round expands the single root into B children (so round one already
has B beams); a step whose reply holds no text is dropped; a child whose env step hits the env's step limit ends as
unfinished; if the pool is empty when the step limit is reached the search returns no answer (reward 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from oreo_agents.agent.selection import value_at_ends
from oreo_agents.envs.core import INFO_GOAL, INFO_WON
from oreo_agents.errors import OreoError
from oreo_agents.turns import Turn
from oreo_agents.models.policy import ModelPolicy
from oreo_agents.turns import StepRecord


@dataclass
class Beam:
    history: list[StepRecord]
    state: Any  # the env state after the last step
    value: float = math.nan
    reward: float = 0.0
    won: bool = False
    done: bool = False  # the env terminated (an answer was given)
    cut: bool = False  # the env's own step limit ended it unfinished


@dataclass
class SearchResult:
    """What a search returns: the chosen solution and what the env said about it."""

    steps: list[str]  # the chosen solution's lines
    reward: float  # the env's terminal reward for it (0 when nothing finished)
    correct: bool
    value: float  # V at the end of the chosen solution
    finished: int  # solutions in the pool
    expansions: int  # steps sampled in all
    history: list[StepRecord] = field(default_factory=list)


def _env_state(env: Any) -> tuple[Any, Any]:
    base = env.unwrapped
    if not (hasattr(base, "get_state") and hasattr(base, "set_state")):
        raise OreoError(f"beam search needs an env with get_state()/set_state() (the math env); {type(base).__name__} has none")
    return base, base.get_state()


def _turn(env_id: str, goal: str, init_obs: str, history: list[StepRecord]) -> Turn:
    return Turn(env_id=env_id, goal=goal, initial_observation=init_obs, observation="", info={}, history=history)


def _expand(base: Any, parent: Beam, action: str, sample: Any, ctx: Any, value: float) -> Beam:
    """Play one sampled step from the parent's state; the child carries the ids exactly as generated."""
    base.set_state(parent.state)
    obs, reward, terminated, truncated, info = base.step(action)
    step = StepRecord(
        action=action, observation=str(obs), reward=float(reward), won=bool(info.get(INFO_WON, False)), reply=sample.text,
        prompt_token_ids=list(ctx.new_ids), completion_token_ids=list(sample.token_ids),
        completion_logprobs=list(sample.logprobs), value=value,
    )
    return Beam(parent.history + [step], base.get_state(), value, float(reward), step.won, bool(terminated),
                bool(truncated) and not terminated)


def beam_search(env: Any, policy: ModelPolicy, value: Any, *, beams: int = 3, max_steps: int = 20,
                seed: int | None = None, options: dict[str, Any] | None = None, env_id: str = "oreo_agents/Math-v0") -> SearchResult:
    """Value-guided step beam search on one problem (``env.reset(seed=seed, options=options)`` picks it)."""
    if beams < 1:
        raise OreoError(f"--beams {beams}: need at least one beam")
    init_obs, info = env.reset(seed=seed, options=options)
    base, root_state = _env_state(env)
    goal = str(info.get(INFO_GOAL, ""))
    frontier = [Beam([], root_state)]
    pool: list[Beam] = []
    expansions = 0
    pad = getattr(policy.tokenizer, "pad_token_id", None) or 0
    for _ in range(max_steps):
        contexts = [policy.context(_turn(env_id, goal, init_obs, b.history)) for b in frontier]
        groups = policy.generate(contexts, n=beams)  # B samples for each of the (up to) B beams, one batched call
        expansions += sum(len(g) for g in groups)
        keep = [i for i, g in enumerate(groups) if g and all(c.token_ids for c in g)]
        values = value_at_ends(value, [contexts[i].ids for i in keep], [[c.token_ids for c in groups[i]] for i in keep], pad)
        children: list[Beam] = []
        for i, vs in zip(keep, values):
            for sample, v in zip(groups[i], vs):
                action = contexts[i].fmt.parse_action(sample.text)
                if action is None:
                    continue
                child = _expand(base, frontier[i], action, sample, contexts[i], v)
                if child.done:
                    pool.append(child)
                elif not child.cut:
                    children.append(child)
        # Stable sort: equal values keep sampling order, so a seeded search is reproducible.
        frontier = sorted(children, key=lambda b: -b.value)[:beams]
        if not frontier:
            break
    return _result(pool, expansions)


def best_of_n(env: Any, policy: ModelPolicy, value: Any, *, n: int = 4, max_steps: int = 20, seed: int | None = None,
              options: dict[str, Any] | None = None, env_id: str = "oreo_agents/Math-v0") -> SearchResult:
    """Sample N whole solutions (batched step by step), answer with the one whose final V is highest."""
    if n < 1:
        raise OreoError(f"--n {n}: need at least one sample")
    init_obs, info = env.reset(seed=seed, options=options)
    base, root_state = _env_state(env)
    goal = str(info.get(INFO_GOAL, ""))
    live = [Beam([], root_state) for _ in range(n)]
    pool: list[Beam] = []
    expansions = 0
    pad = getattr(policy.tokenizer, "pad_token_id", None) or 0
    for _ in range(max_steps):
        if not live:
            break
        contexts = [policy.context(_turn(env_id, goal, init_obs, b.history)) for b in live]
        groups = policy.generate(contexts, n=1)
        expansions += len(groups)
        nxt: list[Beam] = []
        for beam, ctx, (sample,) in zip(live, contexts, groups):
            action = ctx.fmt.parse_action(sample.text) if sample.token_ids else None
            if action is None:
                continue
            child = _expand(base, beam, action, sample, ctx, math.nan)
            if child.done:
                pool.append(child)
            elif not child.cut:
                nxt.append(child)
        live = nxt
    if pool:  # one value forward over every finished solution: V at its last token
        contexts = [policy.context(_turn(env_id, goal, init_obs, b.history[:-1])) for b in pool]
        finals = value_at_ends(value, [c.ids for c in contexts], [[b.history[-1].completion_token_ids] for b in pool], pad)
        for b, (v,) in zip(pool, finals):
            b.value = v
    return _result(pool, expansions)


def _result(pool: Sequence[Beam], expansions: int) -> SearchResult:
    if not pool:
        return SearchResult(steps=[], reward=0.0, correct=False, value=math.nan, finished=0, expansions=expansions)
    best = max(pool, key=lambda b: b.value)  # first of equal values wins (pool is in discovery order)
    return SearchResult(
        steps=[s.action for s in best.history], reward=best.reward, correct=best.won, value=best.value,
        finished=len(pool), expansions=expansions, history=best.history,
    )

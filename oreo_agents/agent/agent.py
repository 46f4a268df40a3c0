"""The agent: a policy model, an optional value model and a selection mode, itself a Policy.

Because it is a :class:`~oreo_agents.turns.Policy`, the same object plays in ``play`` and ``eval`` and collects
data in ``collect`` (a trained model with value selection collects like any other policy)::

    >>> agent = Agent.load("runs/oreo/policy", value="runs/oreo/value", select="value", k=4)   # doctest: +SKIP
    >>> [d] = agent.act([turn])                                                                   # doctest: +SKIP
    >>> [(c.action, round(c.value, 2), c.chosen) for c in d.candidates]                           # doctest: +SKIP
    [('go to cabinet 1', 0.41, False), ('go to stoveburner 1', 0.73, True), ...]

Modes (see :mod:`oreo_agents.agent.selection`): ``greedy``, ``sample`` (the policy's temperature), ``value`` (K sampled
replies, act with the highest V at the reply's last token; the paper's agent search), ``admissible`` (score every
admissible command by V, or by the policy's log-prob when no value model is given; no sampling).
Every decision lists its candidates with their policy log-probs and values, chosen one marked, for ``play``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.agent.selection import Scored, argmax_by, check_select, policy_logprobs, values_before_and_after
from oreo_agents.envs.core import INFO_ADMISSIBLE
from oreo_agents.errors import OreoError
from oreo_agents.turns import Candidate, Decision, Policy, Turn
from oreo_agents.models.generation import Completion
from oreo_agents.models.policy import Context, ModelPolicy
from oreo_agents.models.prefix_cache import PrefixCache
from oreo_agents.prompting import encode_text, reply_terminator_ids

# Value selection with a greedy policy would draw K identical replies; sample at this temperature instead.
DEFAULT_SEARCH_TEMPERATURE = 1.0
VALUE_CACHE_BYTES = 2**30  # keys/values of recent contexts for the value model (about one per env in flight)


class Agent:
    """Policy model + optional ValueModel + selection mode (``greedy``, ``sample``, ``value``, ``admissible``).

    Args:
        policy: a :class:`ModelPolicy`, or any other Policy (expert, random), which is then simply delegated to.
        value: a :class:`~oreo_agents.models.loading.ValueModel` sharing the policy's tokenizer, or None.
        select: the selection mode. k: candidates per turn for ``value``.
    """

    name = "agent"

    def __init__(self, policy: Policy, value: Any = None, *, select: str = "greedy", k: int = 4, value_path: str = "") -> None:
        check_select(select, k=k, has_value=value is not None)
        if select != "greedy" and not isinstance(policy, ModelPolicy):
            raise OreoError(f"--select {select} needs a model policy (--policy <checkpoint dir>), not '{policy.name}'")
        self.policy, self.value, self.select, self.k, self.value_path = policy, value, select, k, value_path
        if value is not None and isinstance(policy, ModelPolicy):
            vocab = value.backbone.get_input_embeddings().num_embeddings
            if vocab < len(policy.tokenizer):
                raise OreoError(
                    f"--value {value_path or 'model'}: its vocabulary ({vocab}) is smaller than the policy tokenizer's "
                    f"({len(policy.tokenizer)}); the value model must come from the same base checkpoint"
                )
            self.value = value.to(_device_of(policy)).eval()
        # The value model's own cross-turn prefix cache (the policy's generator keeps one for the policy): without it V
        # re-reads the whole episode every turn, which on long ALFWorld episodes cost more than generating K replies.
        # Off where the policy runs batch-invariant: cached keys are computed in another batch, equal only to rounding.
        self._value_cache = PrefixCache(VALUE_CACHE_BYTES) if self.value is not None else None

    @classmethod
    def load(cls, policy: str | Path, *, value: str | Path | None = None, select: str = "greedy", k: int = 4,
             temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
             backend: str = "hf", device: str | None = None, dtype: str | None = None,
             gpu_memory_utilization: float | None = None) -> "Agent":
        """An agent from checkpoint folders (the policy's, and the value model's saved by ``train``).

        The policy's backend is built first: a vLLM engine checks at start-up that its share of the GPU is free
        (vllm 0.32.0 ``v1/worker/utils.py:716-770``), so the value model takes the rest after it, not before."""
        check_select(select, k=k, has_value=value is not None)
        model = ModelPolicy(policy, backend=backend, device=device, dtype=dtype, temperature=temperature, top_p=top_p,
                            max_new_tokens=max_new_tokens, seed=seed, gpu_memory_utilization=gpu_memory_utilization)
        value_model = load_value(value, device=device, dtype=dtype) if value is not None else None
        return cls(model, value_model, select=select, k=k, value_path=str(value or ""))

    # --- Policy protocol --------------------------------------------------------------------------------------------
    def act(self, turns: Sequence[Turn]) -> list[Decision]:
        if not isinstance(self.policy, ModelPolicy):
            return self.policy.act(turns)
        policy = self.policy
        contexts = [policy.context(t) for t in turns]
        if self.select == "admissible":
            return self._admissible(turns, contexts)
        if self.select == "value":
            temp = policy.temperature or DEFAULT_SEARCH_TEMPERATURE
            groups = policy.generate(contexts, n=self.k, temperature=temp)
        else:
            groups = policy.generate(contexts, n=1, temperature=0.0 if self.select == "greedy" else None)
        scored = [[Scored(c.token_ids, c.logprobs, c.text) for c in group] for group in groups]
        before = self._add_values(contexts, scored)
        decisions = []
        for ctx, group, cands, v0 in zip(contexts, groups, scored, before):
            best = argmax_by(cands, "value") if self.select == "value" else 0
            decisions.append(self._decide(ctx, group[best], cands, best, v0))
        return decisions

    def metadata(self) -> dict[str, Any]:
        base = self.policy.metadata() if hasattr(self.policy, "metadata") else {}
        sampling = dict(base.get("sampling") or {})
        sampling.update(select=self.select, k=self.k if self.select == "value" else 1, value=self.value_path)
        return {**base, "sampling": sampling}

    # --- internals --------------------------------------------------------------------------------------------------
    def _add_values(self, contexts: Sequence[Context], scored: list[list[Scored]]) -> list[float]:
        """Fill V at each candidate's last token (one batched value forward over every candidate of every env); returns
        V of each context, the state before the reply (NaN without a value model)."""
        before = [math.nan] * len(contexts)
        if self.value is None:
            return before
        live = [i for i, cands in enumerate(scored) if cands and all(c.token_ids for c in cands)]
        if not live:
            return before
        ctx_values, values = values_before_and_after(
            self.value, [contexts[i].ids for i in live], [[c.token_ids for c in scored[i]] for i in live], self._pad,
            self.value_cache,
        )
        for i, v0, vs in zip(live, ctx_values, values):
            before[i] = v0
            for cand, v in zip(scored[i], vs):
                cand.value = v
        return before

    def _admissible(self, turns: Sequence[Turn], contexts: list[Context]) -> list[Decision]:
        policy = self.policy
        lm = getattr(policy.backend, "model", None)
        if lm is None:
            raise OreoError("--select admissible scores commands with a forward pass: use --backend hf")
        tok = policy.tokenizer
        limit = policy.backend.max_context or 10**9
        decisions: list[Decision | None] = [None] * len(turns)
        live, conts = [], []
        for i, (turn, ctx) in enumerate(zip(turns, contexts)):
            commands = list(turn.info.get(INFO_ADMISSIBLE) or [])
            if not commands:
                raise OreoError(
                    f"--select admissible: env {turn.env_id} lists no admissible commands (use greedy, sample or value)"
                )
            ids = [encode_text(tok, ctx.fmt.reply_text(c)) + reply_terminator_ids(ctx.fmt, tok) for c in commands]
            if len(ctx.ids) + max(len(x) for x in ids) > limit:  # honest: never cut what the model reads
                decisions[i] = Decision(action=None, prompt_token_ids=list(ctx.new_ids), aborted=True)
                continue
            live.append(i)
            conts.append(ids)
        if live:
            lps = policy_logprobs(lm, [contexts[i].ids for i in live], conts, self._pad)
            scored = {i: [Scored(ids, lp, tok.decode(ids, skip_special_tokens=True)) for ids, lp in zip(c, l)]
                      for i, c, l in zip(live, conts, lps)}
            lst = [scored[i] for i in live]
            before = self._add_values([contexts[i] for i in live], lst)
            for i, v0 in zip(live, before):
                cands = scored[i]
                best = argmax_by(cands, "value" if self.value is not None else "logprob")
                c = cands[best]
                sample = Completion(c.token_ids, c.logprobs, c.text, "eos")
                decisions[i] = self._decide(contexts[i], sample, cands, best, v0)
        return [d for d in decisions if d is not None]

    def _decide(self, ctx: Context, sample: Completion, cands: list[Scored], best: int,
                value_before: float = math.nan) -> Decision:
        decision = self.policy.decision(ctx, sample, value=cands[best].value)
        decision.value_before = value_before
        decision.candidates = [
            Candidate(reply=c.text, action=ctx.fmt.parse_action(c.text), logprob=c.logprob, value=c.value,
                      chosen=(j == best))
            for j, c in enumerate(cands)
        ]
        return decision

    @property
    def value_cache(self) -> Any:
        """The value model's prefix cache, or None where the policy runs batch-invariant (``collect --batch-invariant``
        may switch it on after the agent is built)."""
        if getattr(getattr(self.policy, "backend", None), "batch_invariant", False):
            return None
        return self._value_cache

    @property
    def _pad(self) -> int:
        pad = getattr(self.policy.tokenizer, "pad_token_id", None)
        return int(pad) if pad is not None else 0


def load_value(path: str | Path, *, device: str | None = None, dtype: str | None = None) -> Any:
    """A trained value model folder, with a one-line error naming ``--value`` when it is not one."""
    from oreo_agents.models.loading import ValueModel, default_device, is_value_dir
    from oreo_agents.models.servable import MARKER, export_value

    p = Path(path).expanduser()
    if not p.is_dir():
        raise OreoError(f"--value {path}: no such directory")
    if (p / MARKER).is_file():  # an OREO training checkpoint step-N: its value model, exported once (models/servable.py)
        p = export_value(p)
    if not is_value_dir(p):
        raise OreoError(f"--value {path}: not a value model folder (no oreo_value.json; train one with `oreo-agents train`)")
    return ValueModel.from_pretrained(p, dtype=dtype, device=device or default_device()).eval()


def _device_of(policy: ModelPolicy) -> Any:
    """Where the policy runs, so the value model runs beside it: the HF model's device, else the backend's own
    (``VLLMBackend.device``: "cuda", or "cpu" on vLLM's CPU build), else cuda when present."""
    from oreo_agents.models.loading import default_device

    model = getattr(policy.backend, "model", None)
    if model is not None:
        return next(model.parameters()).device
    return getattr(policy.backend, "device", None) or default_device()



SCRIPTED = ("expert", "random", "noisy-expert")


def build_agent(policy: str, *, value: str | None = None, select: str = "greedy", k: int = 4, eps: float = 0.2,
                temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                backend: str = "hf", device: str | None = None, dtype: str | None = None,
                gpu_memory_utilization: float | None = None) -> Policy:
    """What ``--policy expert|random|noisy-expert|<model folder>`` plus ``--value/--select/--k`` name, as one Policy
    (``eps``: the noisy expert's probability of a random action)."""
    from oreo_agents.policies import make_policy

    if policy in SCRIPTED:
        if select != "greedy":
            raise OreoError(f"--select {select} needs a model policy (--policy <checkpoint dir>), not '{policy}'")
        options = {"expert": {}, "random": {"seed": seed}, "noisy-expert": {"eps": eps, "seed": seed}}[policy]
        return make_policy(policy, **options)
    p = Path(policy).expanduser()
    if not p.is_dir():
        raise OreoError(f"--policy {policy}: not expert, random, noisy-expert or a model directory")
    return Agent.load(p, value=value, select=select, k=k, temperature=temperature, top_p=top_p,
                      max_new_tokens=max_new_tokens, seed=seed, backend=backend, device=device, dtype=dtype,
                      gpu_memory_utilization=gpu_memory_utilization)

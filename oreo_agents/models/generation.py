"""Generation backends: batched sampling over many token contexts, returning exactly what was generated.

A backend takes *token ids* in (the contexts from :func:`oreo_agents.prompting.context_ids`) and gives token ids out, so
the recorder stores what the model actually produced, never a re-tokenized reconstruction::

    >>> backend = HFBackend.from_pretrained("runs/sft/policy")                     # doctest: +SKIP
    >>> params = SamplingParams(n=4, temperature=0.7, max_new_tokens=48, stop_strings=("\\n",))
    >>> [samples] = backend.generate([prompt_ids], params)                          # doctest: +SKIP
    >>> samples[0].token_ids, samples[0].logprobs, samples[0].text, samples[0].finish_reason  # doctest: +SKIP

Each :class:`Completion` holds the sampled ids *terminator included* (the EOS, or the token that completed a stop string),
one log-prob per id, and the decoded text (special tokens skipped). ``logprobs="policy"`` (default) records
``log pi(token | context)`` of the model itself (temperature 1, no top-p: what a fresh forward pass gives and what
OREO's log-ratios need); ``logprobs="sampling"`` records the log-prob under the temperature/top-p distribution the token
was actually drawn from (the behaviour policy).

Backends: :class:`HFBackend` (any ``transformers`` causal LM, our own KV-cache loop) and
:class:`oreo_agents.models.vllm_backend.VLLMBackend` (GPU, optional), chosen by
:func:`oreo_agents.models.backends.make_backend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from oreo_agents.errors import OreoError
from oreo_agents.models.prefix_cache import (
    CachedPrefix,
    PrefixCache,
    cache_kwargs,
    output_cache,
    plain_cache,
    plan_prefill,
    row_keys_values,
)
# The shared types live in sampling.py (below both backends); re-exported here, where callers have always found them.
from oreo_agents.models.sampling import (  # noqa: F401
    Completion,
    FinishReason,
    GenerationBackend,
    SamplingParams,
    derive_seed,
    eos_ids,
)


def torch_inference_mode():
    """``torch.inference_mode`` as a decorator, imported when first called (module import stays torch-free)."""

    def decorate(func):
        def wrapper(*args, **kwargs):
            import torch

            with torch.inference_mode():
                return func(*args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
        return wrapper

    return decorate


class HFBackend:
    """Batched sampling with a ``transformers`` causal LM on CPU or GPU.

    Our own loop rather than ``model.generate`` because we need, per sample, the exact ids up to and including the
    terminator, their log-probs, one seeded generator per sample (so a sample depends on its own seed, not on what else is
    in the batch), and two kinds of prefill sharing: each prompt is
    prefilled once and its KV cache repeated ``n`` times, so K candidates cost one prefill, not K; and a
    :class:`~oreo_agents.models.prefix_cache.PrefixCache` keeps each finished sequence's keys/values, so the next turn
    of an episode prefills only the tokens added since (its new observation), not the whole history again.
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 64, seed: int = 0,
                 prefix_cache_mb: float = 1024, batch_invariant: bool = False) -> None:
        import inspect

        import torch

        self.model = model.eval()
        # Per-sample seeds make the *tokens* independent of the batch. The float results are not quite: a matmul over 1
        # row (GEMV) or 2-3 rows rounds differently from one over 4 (measured on CPU: log-probs differ by ~1e-7), and
        # re-fed or cache-spliced prefixes differ likewise. ``batch_invariant`` runs each prompt on its own with no
        # prefix cache, so a sample's floats are a function of its context alone (byte-identical datasets whatever
        # --num-envs), at the cost of batching's speed.
        self.batch_invariant = batch_invariant
        # Reuse of past keys/values across calls (0 turns it off); switched off by itself for models whose cache is not
        # plain per-layer keys/values (sliding windows, recurrent layers).
        use_cache = prefix_cache_mb > 0 and not batch_invariant
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20)) if use_cache else None
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.device = next(model.parameters()).device
        self.max_context = getattr(model.config, "max_position_embeddings", None)
        self._eos = eos_ids(tokenizer, model.config)
        pad = getattr(tokenizer, "pad_token_id", None)
        self._pad = int(pad if pad is not None else next(iter(self._eos), 0))
        self._generator = torch.Generator(device=self.device).manual_seed(seed)

    def make_batch_invariant(self) -> None:
        """Switch to ``batch_invariant`` after construction (e.g. on a backend an agent built)."""
        self.batch_invariant, self.prefix_cache = True, None

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None, dtype: str | None = None,
                        lora: str | Path | None = None, **kw: Any) -> "HFBackend":
        """The model of folder ``path`` on ``device`` (default: cuda when present, else cpu); with ``lora`` (a PEFT
        adapter folder trained on ``path``) the adapter is merged into the weights in memory."""
        from oreo_agents.models.loading import default_device, load_adapter_merged, load_policy, load_tokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise OreoError(f"model directory {path} has no config.json (expected a save_pretrained folder)")
        device = device or default_device()
        if lora is not None:
            model = load_adapter_merged(path, lora, dtype=dtype, device=device)
        else:
            model = load_policy(path, dtype=dtype, device=device)
        return cls(model, load_tokenizer(path), **kw)

    # --- public ---------------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        seeds = self._prompt_seeds(len(prompts), params, seeds)
        results: list[list[Completion]] = [[] for _ in prompts]
        # Longest first so each micro-batch holds similar lengths (less padding); results go back in prompt order.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        per_batch = 1 if self.batch_invariant else max(1, self.max_batch_size // params.n)
        for start in range(0, len(order), per_batch):
            chunk = order[start : start + per_batch]
            fits = [i for i in chunk if self._room(len(prompts[i])) > 0]
            for i in chunk:
                if i not in fits:  # the context alone fills the model: nothing can be generated
                    results[i] = [Completion([], [], "", "context") for _ in range(params.n)]
            if fits:
                row_seeds = [derive_seed(seeds[i], j) for i in fits for j in range(params.n)]
                for i, samples in zip(fits, self._generate_batch([prompts[i] for i in fits], params, row_seeds)):
                    results[i] = samples
        return results

    # --- internals ------------------------------------------------------------------------------------------------
    def _prompt_seeds(self, count: int, params: SamplingParams, seeds: Sequence[int] | None) -> list[int]:
        if seeds is not None:
            if len(seeds) != count:
                raise OreoError(f"generation: got {len(seeds)} seeds for {count} prompts")
            return [int(x) for x in seeds]
        import torch

        base = params.seed if params.seed is not None else int(
            torch.randint(0, 2**62, (1,), generator=self._generator, device=self.device).item()
        )
        return [derive_seed(base, i) for i in range(count)]

    def _room(self, prompt_len: int) -> int:
        return 10**9 if self.max_context is None else self.max_context - prompt_len

    @torch_inference_mode()
    def _generate_batch(self, prompts: list[Sequence[int]], params: SamplingParams, row_seeds: list[int]) -> list[list[Completion]]:
        import torch

        n, dev = params.n, self.device
        if not all(prompts):
            raise OreoError("generation: got an empty prompt (a context needs at least one token)")
        hits, cache, mask, out = self._prefill(prompts)
        prompt_end = mask.shape[1]  # the prompts end in this column; generated tokens follow, one column per step
        logits = out.logits[:, -1, :].float()
        if n > 1:  # prefill once per prompt, then fan out the KV cache to the n samples
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
        rows = len(prompts) * n
        last_pos = mask.sum(-1) - 1
        limits = [min(params.max_new_tokens, self._room(len(prompts[r // n]))) for r in range(rows)]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        reasons: list[str | None] = [None] * rows
        stop_len = max((len(s) for s in params.stop_strings), default=0)
        eos = self._eos | {int(t) for t in params.stop_token_ids}
        generators = [None if params.greedy else torch.Generator(device=dev).manual_seed(x) for x in row_seeds]
        for _ in range(max(limits)):
            chosen, policy_lp, sampling_lp = self._sample(logits, params, generators, reasons)
            record_lp = policy_lp if params.logprobs == "policy" else sampling_lp
            chosen_list, lp_list = chosen.tolist(), record_lp.tolist()
            for r in range(rows):
                if reasons[r] is not None:
                    continue
                tokens[r].append(chosen_list[r])
                lps[r].append(lp_list[r])
                if chosen_list[r] in eos:
                    reasons[r] = "eos"
                elif stop_len and self._hit_stop(tokens[r], params.stop_strings, stop_len):
                    reasons[r] = "stop"
                elif len(tokens[r]) >= limits[r]:
                    reasons[r] = "length"
            if all(reason is not None for reason in reasons):
                break
            # Finished rows keep stepping (batch shape stays fixed) on a pad token whose output is ignored.
            feed = torch.tensor(
                [chosen_list[r] if reasons[r] is None else self._pad for r in range(rows)], dtype=torch.long, device=dev
            )
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=torch.long, device=dev)], dim=1)
            last_pos = last_pos + 1
            out = self.model(
                input_ids=feed[:, None],
                attention_mask=mask,
                position_ids=last_pos[:, None],
                use_cache=True,
                **cache_kwargs(cache),
            )
            cache, logits = output_cache(out), out.logits[:, -1, :].float()
        self._remember(prompts, hits, n, cache, prompt_end, tokens)
        grouped: list[list[Completion]] = []
        for p in range(len(prompts)):
            group = []
            for r in range(p * n, (p + 1) * n):
                text = self.tokenizer.decode(tokens[r], skip_special_tokens=True)
                group.append(Completion(tokens[r], lps[r], text, reasons[r] or "length"))  # type: ignore[arg-type]
            grouped.append(group)
        return grouped

    def _prefill(self, prompts: list[Sequence[int]]) -> tuple[list[tuple[CachedPrefix | None, int]], Any, Any, Any]:
        """Encode the prompts, starting each from its longest cached prefix. Returns (hits, cache, mask, model output).

        Rows are left-padded so that every prompt ends in the same column (:func:`plan_prefill` decides what each row
        takes from the cache).
        """
        plan = plan_prefill(self.prefix_cache, prompts)
        kwargs = plan.model_inputs(prompts, self._pad, self.device)
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1  # only the last position's logits are needed (the others cost a vocab matmul)
        out = self.model(**kwargs)
        if self.prefix_cache is not None and not plain_cache(output_cache(out)):
            self.prefix_cache = None  # e.g. sliding-window or recurrent layers: keys/values cannot be spliced
        return plan.hits, output_cache(out), kwargs["attention_mask"], out

    def _remember(self, prompts: list[Sequence[int]], hits: list[tuple[CachedPrefix | None, int]], n: int, cache: Any,
                  prompt_end: int, tokens: list[list[int]]) -> None:
        """Store every sample's ``prompt + reply`` keys/values (the reply's last token was never fed, so not it)."""
        if self.prefix_cache is None:
            return
        for p, prompt in enumerate(prompts):
            for row in range(p * n, (p + 1) * n):
                reply = tokens[row][:-1]
                start, end = prompt_end - len(prompt), prompt_end + len(reply)
                keys, values = row_keys_values(cache, row, start, end)
                self.prefix_cache.add([*prompt, *reply], keys, values, supersedes=hits[p][0])

    def _hit_stop(self, ids: list[int], stops: Sequence[str], stop_len: int) -> bool:
        # A stop string of L characters is completed within the last L tokens; decode only that tail.
        tail = self.tokenizer.decode(ids[-(stop_len + 1) :], skip_special_tokens=True)
        return any(s in tail for s in stops)

    @staticmethod
    def _sample(logits: Any, params: SamplingParams, generators: list[Any], done: list[Any]) -> tuple[Any, Any, Any]:
        """One token per row. Row ``r`` draws with its own generator (advanced once per step it is still running), so
        its tokens depend on its seed and its logits only: not on the batch it shares, nor on how long others run."""
        import torch

        policy_lp = torch.log_softmax(logits, dim=-1)
        if params.greedy:
            chosen = logits.argmax(dim=-1)
            picked = policy_lp.gather(1, chosen[:, None])[:, 0]
            return chosen, picked, torch.zeros_like(picked)  # greedy: the behaviour policy picks it with prob 1
        scaled = logits / params.temperature
        if params.top_p < 1.0:
            sorted_logits, idx = scaled.sort(dim=-1, descending=True)
            cum = sorted_logits.softmax(-1).cumsum(-1)
            drop = cum - sorted_logits.softmax(-1) >= params.top_p  # keep the smallest prefix reaching top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            scaled = torch.full_like(scaled, float("-inf")).scatter(1, idx, sorted_logits)
        sampling_lp = torch.log_softmax(scaled, dim=-1)
        probs = sampling_lp.exp()
        chosen = torch.zeros(probs.shape[0], dtype=torch.long, device=probs.device)
        for r, generator in enumerate(generators):
            if done[r] is None:  # finished rows draw nothing (their output is ignored)
                chosen[r] = torch.multinomial(probs[r], 1, generator=generator)[0]
        return chosen, policy_lp.gather(1, chosen[:, None])[:, 0], sampling_lp.gather(1, chosen[:, None])[:, 0]

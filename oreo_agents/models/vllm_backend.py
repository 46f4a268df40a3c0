"""The generation protocol on vLLM (GPU machines): token ids in, token ids + log-probs out.

Imported only when ``backend="vllm"`` is chosen; install with ``pip install 'oreo-agents[vllm]'`` on a CUDA machine
(vLLM pins its own torch, so it lives in its own environment, not beside the CPU stack)::

    >>> backend = VLLMBackend("runs/sft/policy", gpu_memory_utilization=0.5)   # doctest: +SKIP
    >>> backend.generate([prompt_ids], SamplingParams(n=4, temperature=0.7))  # doctest: +SKIP

Same contract as :class:`~oreo_agents.models.generation.HFBackend`: ids exactly as generated, terminator included
(vLLM keeps the EOS / the stop-string token in ``token_ids``; ``include_stop_str_in_output`` keeps the text in step),
one log-prob per id (``logprobs=0`` returns the sampled token's own log-prob). ``logprobs="policy"`` maps to vLLM's
``raw_logprobs`` mode (the model's distribution), ``"sampling"`` to ``processed_logprobs`` (after temperature/top-p).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from oreo_agents.errors import OreoError
from oreo_agents.models.sampling import Completion, SamplingParams, derive_seed


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise OreoError(
            "--backend vllm: vllm is not installed (it needs a CUDA GPU: pip install 'oreo-agents[vllm]'); "
            "use --backend hf on this machine"
        ) from exc
    return vllm


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: str | None = None,
        seed: int = 0,
        logprobs: str = "policy",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        batch_invariant: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        if batch_invariant:
            # vLLM's own batch-invariant kernels (vllm 0.33 envs.py: VLLM_BATCH_INVARIANT, read when the engine starts).
            import os

            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        vllm = _import_vllm()
        from oreo_agents.models.loading import load_tokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise OreoError(f"--backend vllm: {path} is not a model directory (no config.json)")
        if logprobs == "sampling":  # the engine fixes the mode at start-up; the default is the raw model log-probs
            engine_kwargs["logprobs_mode"] = "processed_logprobs"
        self.logprobs = logprobs
        # Each turn's context extends the previous turn's: vLLM's automatic prefix caching skips re-reading it.
        engine_kwargs.setdefault("enable_prefix_caching", True)
        self.llm = vllm.LLM(
            model=str(path),
            dtype=dtype or "auto",
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            **engine_kwargs,
        )
        # The HF tokenizer of the same folder renders the prompt format, so ids match the HF backend's exactly.
        self.tokenizer = load_tokenizer(path)
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)
        self._vllm = vllm

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        """As :meth:`HFBackend.generate <oreo_agents.models.generation.HFBackend.generate>`. Each prompt is its own
        request with its own ``vllm.SamplingParams(seed=...)`` (``LLM.generate`` takes one per prompt, vllm 0.33
        ``entrypoints/llm.py``): a seeded request gets a private generator (``SamplingType.RANDOM_SEED``), and its
        ``n`` samples get ``seed + index`` (``v1/engine/parallel_sampling.py``), so a prompt's samples depend on its
        seed, not on the batch; identical contexts with different seeds no longer share one draw."""
        if params.logprobs != self.logprobs:
            raise OreoError(
                f"--backend vllm was started with logprobs={self.logprobs!r}; restart it to record {params.logprobs!r}"
            )
        from vllm.inputs import TokensPrompt

        results: list[list[Completion] | None] = [None] * len(prompts)
        todo = []
        for i, p in enumerate(prompts):
            if len(p) >= self.max_context:
                results[i] = [Completion([], [], "", "context") for _ in range(params.n)]
            else:
                todo.append(i)
        if seeds is not None and len(seeds) != len(prompts):
            raise OreoError(f"generation: got {len(seeds)} seeds for {len(prompts)} prompts")
        if seeds is None and params.seed is not None:
            seeds = [derive_seed(params.seed, i) for i in range(len(prompts))]
        per_prompt = [self._sampling(params, None if seeds is None else int(seeds[i])) for i in todo]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=[int(t) for t in prompts[i]]) for i in todo], per_prompt, use_tqdm=False
        )
        for i, request in zip(todo, outputs):
            results[i] = [self._completion(out) for out in request.outputs]
        return [r or [] for r in results]

    def _sampling(self, params: SamplingParams, seed: int | None) -> Any:
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop_strings) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            include_stop_str_in_output=True,
            skip_special_tokens=True,
            logprobs=0,
            seed=seed,
        )

    @staticmethod
    def _completion(out: Any) -> Completion:
        ids = [int(t) for t in out.token_ids]
        # out.logprobs: one {token_id: Logprob} dict per generated position; the sampled id is always among its keys.
        lps = [float(pos[t].logprob) for t, pos in zip(ids, out.logprobs or [])]
        if out.finish_reason == "length":
            reason = "length"
        elif isinstance(out.stop_reason, str):
            reason = "stop"
        else:  # None: EOS; an int: one of stop_token_ids (a terminator like EOS)
            reason = "eos"
        return Completion(ids, lps, out.text, reason)

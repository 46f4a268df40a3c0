"""Batched LM collection: N envs decided in one batched generation vs one env at a time, same model, same episodes.

    python benchmarks/bench_collect.py                   # N = 8, tiny model, math env, 1 thread
    python benchmarks/bench_collect.py --preset small --num-envs 8 --episodes 32

Both runs play the same planned episodes (same problems, same seeds, temperature 1.0). An untrained model is used, so
replies run to --max-new-tokens and episodes to --max-steps: the model, not the env, dominates. (Greedy would be
batch-invariant, but an untrained tied-embedding model greedily repeats the prompt's last token, "\n", and every episode
would end at step one.) Sampled text differs between the runs, so the token counts of both are printed beside the
rates. Target: ratio >= 0.6 * N.

Printed beside it, measured in the same run:
- the batched run with the HF backend's prefix cache switched off (every turn re-reads the whole context), and
- the hardware ceiling: one bare decode step of the same model at batch N vs batch 1 (``model(...)`` on a KV cache,
  nothing else). No collector can batch better than N * t(1) / t(N), since every generated token costs a decode step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def decode_step_ms(path: Path, batch: int, context: int = 100, steps: int = 40) -> float:
    """Milliseconds of one bare decode step (batch rows, ``context`` cached tokens), best of three runs."""
    import torch

    from oreo_agents.models.loading import load_policy

    model = load_policy(path).eval()
    ids = torch.randint(5, model.config.vocab_size, (batch, context))
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            mask = torch.ones(batch, context, dtype=torch.long)
            cache = model(input_ids=ids, attention_mask=mask, use_cache=True).past_key_values
            start = time.perf_counter()
            for i in range(steps):
                mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], 1)
                out = model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=torch.full((batch, 1), context + i),
                            past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            best = min(best, (time.perf_counter() - start) / steps * 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import gymnasium as gym
    import torch

    import oreo_agents  # noqa: F401
    from oreo_agents.models.loading import build_tiny_model
    from oreo_agents.models.generation import HFBackend
    from oreo_agents.models.policy import ModelPolicy
    from oreo_agents.pipeline.collect import collect_episodes
    from oreo_agents.recording.dataset import load_episodes
    from oreo_agents.recording.writer import ShardWriter

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    # No newlines in the tokenizer's text: the untrained model then rarely ends a math step early, so replies run to
    # --max-new-tokens and episodes to --max-steps (the model, not the env, dominates the time).
    path = build_tiny_model(["Sam has 9 books. Sam sells 7 books. How many books does Sam have now? 9 - 7 = 2"] * 50,
                            tmp / "lm", preset=args.preset)

    def run(num_envs: int, prefix_cache_mb: float = 1024) -> tuple[float, list, str]:
        backend = HFBackend.from_pretrained(path, seed=0, prefix_cache_mb=prefix_cache_mb)
        policy = ModelPolicy(backend, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
        out = tmp / f"ds-{num_envs}-{prefix_cache_mb}"
        writer = ShardWriter(out, {"bench": num_envs}, shard_size=1000)
        summary = collect_episodes(
            lambda: gym.make("oreo_agents/Math-v0", split="test", num_tasks=args.episodes, max_steps=args.max_steps),
            policy, writer, episodes=args.episodes, num_envs=num_envs, seed=0, plan_key="bench",
        )
        writer.close(complete=True)
        steps = sorted((r["task_id"], [s["completion_token_ids"] for s in r["steps"]]) for r in load_episodes(out))
        cache = backend.prefix_cache
        reuse = f", {cache.hits / max(1, cache.hits + cache.misses):.0%} of prompt tokens from the cache" if cache else ""
        return summary.recorded / summary.seconds, steps, reuse

    serial, ep1, reuse1 = run(1)
    batched, epn, reusen = run(args.num_envs)
    uncached, epu, _ = run(args.num_envs, prefix_cache_mb=0)
    assert [t for t, _ in ep1] == [t for t, _ in epn] == [t for t, _ in epu], "all runs must play the same problems"
    step1, stepn = decode_step_ms(path, 1), decode_step_ms(path, args.num_envs)

    def size(eps: list) -> str:
        return f"{sum(len(s) for _, s in eps)} steps, {sum(len(x) for _, s in eps for x in s)} tokens"

    n = args.num_envs
    print(f"model {args.preset}, {args.episodes} episodes (same problems in all runs), replies up to {args.max_new_tokens} tokens")
    print(f"one env at a time:             {serial:7.2f} episodes/s  ({size(ep1)}{reuse1})")
    print(f"{n} envs batched:                {batched:7.2f} episodes/s  ({size(epn)}{reusen})")
    print(f"{n} envs batched, no prefix cache: {uncached:5.2f} episodes/s  ({size(epu)})")
    print(f"bare decode step: {step1:.2f} ms at batch 1, {stepn:.2f} ms at batch {n} -> ceiling {n * step1 / stepn:.2f}x")
    print(f"ratio: {batched / serial:.2f}x  (target >= {0.6 * n:.1f}x = 0.6 * N; without the prefix cache "
          f"{uncached / serial:.2f}x)")


if __name__ == "__main__":
    main()

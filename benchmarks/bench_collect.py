"""Batched LM collection: N envs decided in one batched generation vs one env at a time, same model, same episodes.

    python benchmarks/bench_collect.py                   # N = 8, tiny model, math env, 1 thread
    python benchmarks/bench_collect.py --preset small --num-envs 8 --episodes 32

Both runs play the same planned episodes (same problems, same seeds, temperature 1.0). An untrained model is used, so
replies run to --max-new-tokens and episodes to --max-steps: the model, not the env, dominates. (Greedy would be
batch-invariant, but an untrained tied-embedding model greedily repeats the prompt's last token, "\n", and every episode
would end at step one.) Sampled text differs between the runs, so the token counts of both are printed beside the
rates. Target: ratio >= 0.6 * N.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import gymnasium as gym
    import torch

    import oreo_agents  # noqa: F401
    from oreo_agents.learning.models import build_tiny_model
    from oreo_agents.policies.model import ModelPolicy
    from oreo_agents.recording.collect import collect_episodes
    from oreo_agents.recording.dataset import load_episodes
    from oreo_agents.recording.writer import ShardWriter

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    # No newlines in the tokenizer's text: the untrained model then rarely ends a math step early, so replies run to
    # --max-new-tokens and episodes to --max-steps (the model, not the env, dominates the time).
    path = build_tiny_model(["Sam has 9 books. Sam sells 7 books. How many books does Sam have now? 9 - 7 = 2"] * 50,
                            tmp / "lm", preset=args.preset)

    def run(num_envs: int) -> tuple[float, list]:
        policy = ModelPolicy(path, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
        out = tmp / f"ds-{num_envs}"
        writer = ShardWriter(out, {"bench": num_envs}, shard_size=1000)
        summary = collect_episodes(
            lambda: gym.make("oreo_agents/Math-v0", split="test", num_problems=args.episodes, max_steps=args.max_steps),
            policy, writer, episodes=args.episodes, num_envs=num_envs, seed=0, plan_key="bench",
        )
        writer.close(complete=True)
        steps = sorted((r["task_id"], [s["completion_token_ids"] for s in r["steps"]]) for r in load_episodes(out))
        return summary.recorded / summary.seconds, steps

    serial, ep1 = run(1)
    batched, epn = run(args.num_envs)
    assert [t for t, _ in ep1] == [t for t, _ in epn], "both runs must play the same problems"

    def size(eps: list) -> str:
        return f"{sum(len(s) for _, s in eps)} steps, {sum(len(x) for _, s in eps for x in s)} tokens"

    print(f"model {args.preset}, {args.episodes} episodes (same problems in both runs), replies up to {args.max_new_tokens} tokens")
    print(f"one env at a time: {serial:7.2f} episodes/s  ({size(ep1)})")
    print(f"{args.num_envs} envs batched:    {batched:7.2f} episodes/s  ({size(epn)})")
    print(f"ratio: {batched / serial:.2f}x  (target >= {0.6 * args.num_envs:.1f}x = 0.6 * N)")


if __name__ == "__main__":
    main()

"""Agent speed: per-decision cost of value selection (K = 4) vs greedy on the same model, a whole growing episode with
and without the value model's prefix cache, and step beam search (B = 3).

    python benchmarks/bench_agent.py                       # tiny model (2.1M params), 1 thread
    python benchmarks/bench_agent.py --preset small --k 4  # 21M params
    python benchmarks/bench_agent.py --model smollm2 --episode-turns 20 --only-episode   # the #18 recipe's model

Value selection = K replies in one batched generation (the context prefilled once, its KV cache fanned out K ways) +
one value pass over the K candidates on top of the context's cache. Target: value/greedy time per decision <= 2x.
Episode: one agent plays --episode-turns turns of one episode whose context grows by a reply and an observation each
turn (as in ALFWorld); value selection with the value model's cross-turn prefix cache vs without it (V re-reading the
whole context every turn, as before issue #18), and greedy, side by side in one run.
Beam search: problems/s on the math env (B = 3, B samples per beam, up to --max-steps steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OBS = ("You arrive at loc 12. On the countertop 2, you see a apple 1, a bread 1, a butterknife 2, a cellphone 1, a "
       "creditcard 1, a dishsponge 2, a houseplant 1, a knife 1, a lettuce 1, a mug 2, a pan 1, a peppershaker 2, a "
       "potato 1, a soapbottle 3, a spatula 2, a spoon 3, a tomato 1, and a winebottle 1.")
COMMANDS = ["go to countertop 1", "take apple 1 from countertop 2", "open fridge 1", "examine countertop 2", "look"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--turns", type=int, default=6, help="prior turns in the context (ALFWorld-like history)")
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--decisions", type=int, default=20)
    ap.add_argument("--beams", type=int, default=3)
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="", help="a HF model folder or smollm2 instead of a from-scratch --preset model")
    ap.add_argument("--episode-turns", type=int, default=12)
    ap.add_argument("--only-episode", action="store_true", help="skip the per-decision and beam-search parts")
    args = ap.parse_args()

    import gymnasium as gym
    import torch

    import oreo_agents  # noqa: F401
    from oreo_agents.agent import Agent
    from oreo_agents.agent.beam import beam_search
    from oreo_agents.models.loading import ValueModel, build_tiny_model
    from oreo_agents.turns import Turn
    from oreo_agents.models.policy import ModelPolicy
    from oreo_agents.turns import StepRecord

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    if args.model:
        from oreo_agents.models.loading import resolve_model

        path = resolve_model(args.model)
    else:
        path = build_tiny_model([OBS, *COMMANDS, "Answer:\n3 + 4 = 7\n#### 7\n"] * 20, tmp / "lm", preset=args.preset)
    value = ValueModel.from_base(path)
    torch.nn.init.normal_(value.head.weight, std=0.02)
    history = [StepRecord(action=COMMANDS[i % len(COMMANDS)], observation=OBS, reward=0.0) for i in range(args.turns)]
    turn = Turn("oreo_agents/ALFWorld-v0", "put a clean apple in fridge", OBS, OBS, {"admissible_commands": COMMANDS},
                history)

    def per_decision(select: str) -> tuple[float, int]:
        # min_new_tokens-like fairness: the random model rarely emits EOS, so every mode writes max_new_tokens.
        agent = Agent(ModelPolicy(path, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0), value,
                      select=select, k=args.k)
        agent.act([turn])  # warm-up
        times = []
        for _ in range(args.decisions):
            t = time.perf_counter()
            agent.act([turn])
            times.append(time.perf_counter() - t)
        return statistics.median(times), len(agent.policy.context(turn).ids)

    def per_episode(select: str, value_cache: bool) -> tuple[float, int]:
        """Seconds for one episode of --episode-turns turns (context growing turn by turn), and the final context length."""
        agent = Agent(ModelPolicy(path, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0), value,
                      select=select, k=args.k)
        if not value_cache:
            agent._value_cache = None
        steps = [StepRecord(action=COMMANDS[i % len(COMMANDS)], observation=OBS.replace("12", str(i)), reward=0.0)
                 for i in range(args.episode_turns)]
        t = time.perf_counter()
        for i in range(args.episode_turns):
            agent.act([Turn(turn.env_id, turn.goal, OBS, OBS, turn.info, steps[:i])])
        return time.perf_counter() - t, len(agent.policy.context(Turn(turn.env_id, turn.goal, OBS, OBS, turn.info, steps)).ids)

    cached, final_len = per_episode("value", True)
    uncached, _ = per_episode("value", False)
    greedy_ep, _ = per_episode("greedy", True)
    print(f"episode of {args.episode_turns} turns (context {final_len} tokens at the end), {args.threads} thread(s):")
    print(f"greedy:                         {greedy_ep:8.1f} s")
    print(f"value, K={args.k}, value prefix cache: {cached:8.1f} s")
    print(f"value, K={args.k}, no value cache:     {uncached:8.1f} s")
    print(f"ratio no cache / cache: {uncached / cached:.2f}x;  value (cache) / greedy: {cached / greedy_ep:.2f}x")
    if args.only_episode:
        return

    greedy, ctx_len = per_decision("greedy")
    best_of_k, _ = per_decision("value")
    print(f"model {args.preset}, context {ctx_len} tokens, reply {args.max_new_tokens} tokens, {args.threads} thread(s)")
    print(f"greedy:          {greedy * 1000:8.1f} ms/decision")
    print(f"value, K={args.k}:     {best_of_k * 1000:8.1f} ms/decision")
    print(f"ratio value/greedy: {best_of_k / greedy:.2f}x  (target <= 2x)")

    policy = ModelPolicy(path, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    env = gym.make("oreo_agents/Math-v0", split="test", num_tasks=args.problems, max_steps=args.max_steps)
    t = time.perf_counter()
    for i in range(args.problems):
        beam_search(env, policy, value, beams=args.beams, max_steps=args.max_steps, options={"task": i})
    dt = time.perf_counter() - t
    print(f"beam search B={args.beams}, up to {args.max_steps} steps: {args.problems / dt:.2f} problems/s "
          f"({dt / args.problems:.2f} s/problem)")


if __name__ == "__main__":
    main()

"""Speed of ``oreo_agents/WebShop-v0``: shop build, BM25 search, expert and random-admissible episodes.

Prints the build time of the embedded shop (catalogue + BM25 index), search queries/s, and for the expert and for a
uniformly random admissible-action policy: episodes/s, env steps/s, success rate, mean reward and mean length. Envs are
made with ``gym.make`` (Gymnasium's checker wrapper included), as ``collect`` makes them.

    python benchmarks/bench_webshop.py                                  # 1000 products, 500 episodes per policy
    python benchmarks/bench_webshop.py --num-products 5000 --episodes 2000 --split test
    python benchmarks/bench_webshop.py --data-dir ~/webshop/data        # the real WebShop files
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import gymnasium as gym
from rich.progress import Progress
from rich.table import Table

from oreo_agents.console import console
from oreo_agents.envs import ENV_FAMILIES, register_envs


def play(env: gym.Env, episodes: int, policy: str, seed: int, progress: Progress) -> dict:
    rng = random.Random(seed)
    tasks = len(env.unwrapped.tasks)
    rewards, lengths, wins, steps = [], [], 0, 0
    job = progress.add_task(f"{policy} episodes", total=episodes)
    start = time.perf_counter()
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k, options={"task": k % tasks})
        for t in range(env.unwrapped.max_steps):
            action = info["expert_action"] if policy == "expert" else rng.choice(info["admissible_commands"])
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        steps += t + 1
        rewards.append(reward)
        lengths.append(t + 1)
        wins += bool(info["won"])
        progress.advance(job)
    seconds = time.perf_counter() - start
    return {"policy": policy, "episodes/s": episodes / seconds, "steps/s": steps / seconds, "success": wins / episodes,
            "mean reward": statistics.fmean(rewards), "mean length": statistics.fmean(lengths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-products", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder with the real WebShop JSON files")
    args = parser.parse_args()
    register_envs()

    start = time.perf_counter()
    env = gym.make(ENV_FAMILIES["webshop"], split=args.split, expert=True, num_products=args.num_products,
                   seed=args.seed, data_path=args.data_dir)
    build_s = time.perf_counter() - start
    shop = env.unwrapped
    queries = [t.text for t in shop.tasks[:200]]
    start = time.perf_counter()
    for q in queries:
        shop.engine.scores(q)  # uncached: the BM25 scoring itself
    search_qps = len(queries) / (time.perf_counter() - start)

    with Progress(console=console, transient=True) as progress:
        rows = [play(env, args.episodes, policy, args.seed, progress) for policy in ("expert", "random")]

    console.print(f"{shop.catalog}  |  build (catalogue + BM25 index) {build_s:.2f} s  |  "
                  f"BM25 search {search_qps:,.0f} queries/s (uncached)")
    table = Table("policy", "episodes/s", "steps/s", "success", "mean reward", "mean length",
                  title=f"oreo_agents/WebShop-v0, {args.split} split, {args.episodes} episodes each")
    for r in rows:
        table.add_row(r["policy"], f"{r['episodes/s']:,.0f}", f"{r['steps/s']:,.0f}", f"{r['success']:.1%}",
                      f"{r['mean reward']:.3f}", f"{r['mean length']:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()

"""Expert ALFWorld collection, side by side: in this process, on 1 Ray worker, on 2 Ray workers (one local cluster).

Same games, same plan, same settings (the in-process run is repeated last: the first pays one-time imports); each layout writes its own dataset folder and the script checks that the three
hold the same rows (sorted by episode id). The local cluster is started once (its start time is reported apart) and
every Ray run reuses it, as a long-lived cluster would be.

    RAY_AUTH_MODE=disabled python benchmarks/bench_ray_collect.py [--episodes 16] [--games-root DIR] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def rows(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    from oreo_agents.recording.writer import shard_paths

    found = [r for shard in shard_paths(folder) for r in pq.read_table(shard).to_pylist()]
    return [json.dumps(r, sort_keys=True, default=str) for r in sorted(found, key=lambda r: r["episode_id"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--games-root", default=None, help="embedded games root (default: generate 6 train games)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    games = args.games_root
    if games is None:
        from oreo_agents.envs.alfworld.games import ensure_games

        games = str(work / "games")
        ensure_games(games, split="train", num_games=6, seed=0, progress=False)

    import ray

    from oreo_agents.pipeline.collect import CollectConfig, run_collect

    def collect(name: str, **ray_options: object) -> tuple[float, Path]:
        out = work / name
        cfg = CollectConfig(env="alfworld", policy="expert", games_root=games, num_tasks=6, episodes=args.episodes,
                            shard_size=4, out=str(out), **ray_options)
        t0 = time.perf_counter()
        run_collect(cfg)
        return time.perf_counter() - t0, out

    results = {"in-process": collect("alone")}
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    cluster_start = time.perf_counter() - t0
    try:
        for workers in (1, 2):
            results[f"ray x{workers}"] = collect(f"ray{workers}", ray_address="auto", workers=workers)
    finally:
        ray.shutdown()
    results["in-process (again)"] = collect("alone-again")  # the first run pays this process's one-time costs
    reference = rows(results["in-process"][1])
    base = results["in-process"][0]
    print(f"\nexpert ALFWorld, {args.episodes} episodes, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"local Ray cluster start {cluster_start:.1f} s (not counted below)")
    print("| layout | seconds | episodes/s | vs in-process | same rows |\n|---|---:|---:|---:|---|")
    for name, (seconds, out) in results.items():
        print(f"| {name} | {seconds:.1f} | {args.episodes / seconds:.2f} | {base / seconds:.2f}x | "
              f"{rows(out) == reference} |")


if __name__ == "__main__":
    main()

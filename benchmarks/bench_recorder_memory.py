"""Peak memory of recording N vs 10*N episodes: the recorder streams shards, so memory must not grow with the dataset.

Each size runs in a fresh worker process (so peaks do not mix) through the real pipeline: ``collect_episodes`` over
``--num-envs`` envs -> ``RecordEpisode`` -> ``ShardWriter`` (Parquet shards). The env is a synthetic text env with
ALFWorld-sized episodes (``--steps`` steps of ~300-character observations) and the policy emits model-like token ids
and log-probs (~80 context + ~12 reply tokens a step), so each row weighs what an LM-collected ALFWorld row does.

Printed per size: peak RSS of the worker (what the OS sees), the peak of Python allocations during collection
(tracemalloc; Arrow's buffers are outside it and show up in RSS), episodes/s, and the on-disk size; then the peak-RSS
ratio (target <= 1.10).

    python benchmarks/bench_recorder_memory.py                    # 200 vs 2,000 episodes (30 steps each)
    python benchmarks/bench_recorder_memory.py --episodes 1000 --steps 40
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker(episodes: int, steps: int, num_envs: int, out: str, trace: bool) -> dict:
    import tracemalloc

    import gymnasium as gym

    from oreo_agents.envs.core import text_space
    from oreo_agents.turns import Decision
    from oreo_agents.pipeline.collect import collect_episodes
    from oreo_agents.recording import EpisodeMetadata, ShardWriter

    words = "apple bowl cabinet drawer fridge knife lettuce mug pan plate sink spoon table toaster tomato".split()

    class SyntheticEnv(gym.Env):
        """Fixed-length episodes of ALFWorld-sized observations; the last step wins half of the time."""

        def __init__(self) -> None:
            self.observation_space, self.action_space = text_space(), text_space(1000)
            self.t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._text(60), {"task_id": f"task-{seed}", "task_type": "synthetic", "goal": "do it",
                                    "split": "train", "won": False, "admissible_commands": []}

        def _text(self, n: int) -> str:
            return " ".join(words[int(i)] for i in self.np_random.integers(0, len(words), n))

        def step(self, action):
            self.t += 1
            done = self.t >= steps
            won = done and bool(self.np_random.integers(2))
            return self._text(50), float(won), done and won, done and not won, {"won": won}

    class TokenPolicy:
        name = "model"

        def __init__(self) -> None:
            self.rng = random.Random(0)

        def act(self, turns):
            r = self.rng
            return [Decision(action="go to cabinet 1", reply="go to cabinet 1",
                             prompt_token_ids=[r.randrange(2000) for _ in range(80)],
                             completion_token_ids=[r.randrange(2000) for _ in range(12)],
                             completion_logprobs=[-r.random() for _ in range(12)]) for _ in turns]

        def metadata(self):
            return {"checkpoint": "", "sampling": {}, "tokenizer": ""}

    writer = ShardWriter(out, {"bench": "recorder-memory", "steps": steps}, shard_size=50)  # imports datasets/pyarrow
    if trace:
        tracemalloc.start()  # after the imports: what is traced is what collection allocates
    start = time.perf_counter()
    with writer:
        summary = collect_episodes(SyntheticEnv, TokenPolicy(), writer, episodes=episodes, num_envs=num_envs, seed=0,
                                   metadata=EpisodeMetadata(policy="model"))
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] if trace else 0
    disk = sum(p.stat().st_size for p in Path(out, "data").glob("*.parquet"))
    return {"episodes": summary.recorded, "steps": summary.steps, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_traced_mb": traced / 2**20, "disk_mb": disk / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="the smaller run; the larger one records 10x")
    parser.add_argument("--steps", type=int, default=30, help="steps per episode")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--no-trace", action="store_true", help="skip tracemalloc (faster)")
    parser.add_argument("--worker", nargs=2, metavar=("EPISODES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(int(args.worker[0]), args.steps, args.num_envs, args.worker[1], not args.no_trace)))
        return
    results = []
    for n in (args.episodes, 10 * args.episodes):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--worker", str(n), str(Path(tmp) / "ds"), "--steps", str(args.steps),
                   "--num-envs", str(args.num_envs)] + (["--no-trace"] if args.no_trace else [])
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        results.append(res)
        print(f"{res['episodes']:>6} episodes ({res['steps']} steps): peak RSS {res['peak_rss_mb']:.1f} MB, "
              f"peak Python heap {res['peak_traced_mb']:.1f} MB, {res['episodes'] / res['seconds']:.0f} episodes/s, "
              f"{res['disk_mb']:.1f} MB on disk")
    small, big = results
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"peak RSS ratio (10x episodes / 1x): {ratio:.3f}  (target <= 1.10: {'PASS' if ratio <= 1.10 else 'FAIL'})")
    if small["peak_traced_mb"]:
        print(f"peak Python heap ratio: {big['peak_traced_mb'] / small['peak_traced_mb']:.3f}")


if __name__ == "__main__":
    main()

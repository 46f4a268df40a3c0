"""Rollouts at scale: ALFWorld collection with the envs in the main process vs in env worker processes, side by side.

    python benchmarks/bench_rollouts.py --games-root DIR                      # expert, 16 episodes, 0 / 1 / 2 workers
    python benchmarks/bench_rollouts.py --games-root DIR --act-seconds 0.5    # + a policy that takes 0.5 s per batch

First a toy-env table (the pool's round-trip cost, and envs that wait rather than compute stepping side by side), then
the ALFWorld tables.

The expert is the policy (it costs nothing: the envs' own work is what is measured); ``--act-seconds`` wraps it in a
stand-in for generation on an accelerator (a sleep per batched ``act``, the main process idle like a waiting GPU
driver), which is where workers pay off: the envs step while the policy "generates". Every layout must record the same
episodes: the table says whether the rows (sorted by episode id, as Arrow bytes) equal the in-process run's.
(env_workers_section is the part the lead folds into the full benchmark.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


class _Slow:
    """A policy taking ``seconds`` per batched act (a stand-in for generation), acting as ``policy`` does."""

    def __init__(self, policy: Any, seconds: float) -> None:
        self.policy, self.seconds, self.name = policy, seconds, policy.name

    def act(self, turns: list[Any]) -> list[Any]:
        time.sleep(self.seconds)
        return self.policy.act(turns)

    def metadata(self) -> dict[str, Any]:
        return self.policy.metadata()


def _rows_digest(folder: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = [pq.read_table(f).replace_schema_metadata(None) for f in sorted((folder / "data").glob("*.parquet"))]
    table = pa.concat_tables(shards).sort_by("episode_id").combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


def _collect_once(games_root: str, episodes: int, num_envs: int, max_steps: int, workers: int,
                  act_seconds: float) -> dict[str, Any]:
    """One collection in this process (run in a fresh process per layout: the ALFWorld engine memoises each game's
    translation per process, so a warm process would flatter whichever layout ran second)."""
    from oreo_agents.envs.core import task_reset_options
    from oreo_agents.envs.workers import EnvSpec
    from oreo_agents.pipeline.collect import collect_episodes
    from oreo_agents.policies import make_policy
    from oreo_agents.recording import EpisodeMetadata, ShardWriter

    spec = EnvSpec("oreo_agents/ALFWorld-v0", {"games_root": games_root, "num_tasks": 6, "max_steps": max_steps,
                                               "expert": True})
    policy = make_policy("expert")
    if act_seconds:
        policy = _Slow(policy, act_seconds)
    batches: list[int] = []

    class _Progress:  # collect_episodes reports every TurnFinished here: count the batches
        def start(self, total: int, done: int) -> None: ...
        def update(self, summary: Any) -> None:
            batches.append(1)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        started = time.perf_counter()
        with ShardWriter(out, {"policy": "expert", "max_steps": max_steps}) as writer:
            summary = collect_episodes(spec, policy, writer, episodes=episodes, num_envs=num_envs, seed=0,
                                       metadata=EpisodeMetadata(policy="expert"), env_id="oreo_agents/ALFWorld-v0",
                                       task_options=task_reset_options, env_workers=workers, progress=_Progress())
        seconds = time.perf_counter() - started
        digest = _rows_digest(out)
    return {"env_workers": workers, "act_s": act_seconds, "episodes": summary.recorded, "steps": summary.steps,
            "batches": len(batches), "seconds": round(seconds, 1), "steps_per_s": round(summary.steps / seconds, 2),
            "rows_sha256": digest}


def env_workers_section(games_root: str, *, episodes: int = 16, num_envs: int = 4, max_steps: int = 20,
                        layouts: tuple[int, ...] = (0, 1, 2), act_seconds: float = 0.0) -> list[dict[str, Any]]:
    """One collection per env-worker layout (0 = in the main process), same settings, each in a fresh process."""
    import json
    import subprocess
    import sys

    rows = []
    for workers in layouts:
        args = [sys.executable, __file__, "--games-root", games_root, "--one", str(workers), "--episodes",
                str(episodes), "--num-envs", str(num_envs), "--max-steps", str(max_steps), "--act-seconds",
                str(act_seconds)]
        done = subprocess.run(args, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for row in rows:
        row["speedup"] = round(base["seconds"] / row["seconds"], 2)
        row["same_rows"] = row["rows_sha256"] == base["rows_sha256"]
    return rows


def env_workers_overhead_section(*, step_delays: tuple[float, ...] = (0.0, 0.01), layouts: tuple[int, ...] = (0, 1, 2),
                                 episodes: int = 300, num_envs: int = 4) -> list[dict[str, Any]]:
    """The pool's own cost and its overlap, on the toy env (tests/recording/toy_env.py): ``step_delay`` 0 measures the
    round trip of a step through a worker; a sleeping step (an env waiting on I/O, a server, a simulator) shows envs
    stepping side by side. Random policy, so the rows must also be the same."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "recording"))
    import toy_env  # noqa: F401  (registers Toy-v0; workers import it by the "toy_env:" spelling)

    from oreo_agents.envs.workers import EnvSpec
    from oreo_agents.policies import make_policy
    from oreo_agents.rollouts import Job, finished_records, rollouts

    rows = []
    for delay in step_delays:
        base = None
        for workers in layouts:
            spec = EnvSpec("toy_env:Toy-v0", {"step_delay": delay, "max_steps": 12})
            started = time.perf_counter()
            jobs = [Job(seed=i) for i in range(episodes)]
            records = list(finished_records(rollouts(spec, make_policy("random", seed=0), jobs, num_envs=num_envs,
                                                     env_workers=workers)))
            seconds = time.perf_counter() - started
            rows_sorted = sorted((r.to_row() for r in records), key=lambda r: r["episode_id"])
            digest = hashlib.sha256(repr(rows_sorted).encode()).hexdigest()
            steps = sum(len(r.steps) for r in records)
            base = base or (seconds, digest)
            rows.append({"step_delay": delay, "env_workers": workers, "steps": steps, "seconds": round(seconds, 2),
                         "steps_per_s": round(steps / seconds), "speedup": round(base[0] / seconds, 2),
                         "same_rows": digest == base[1]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games-root", required=True, help="embedded ALFWorld games root (train split, >= 6 games)")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--num-envs", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--layouts", type=int, nargs="+", default=[0, 1, 2], help="env worker counts (0: in process)")
    ap.add_argument("--act-seconds", type=float, nargs="+", default=[0.0], help="policy time per batch (each a table)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # one layout, JSON out (internal)
    args = ap.parse_args()
    if args.one is not None:
        import json

        print(json.dumps(_collect_once(args.games_root, args.episodes, args.num_envs, args.max_steps, args.one,
                                       args.act_seconds[0])))
        return
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print("| toy env step_delay s | env workers | steps | seconds | steps/s | speedup | same rows |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in env_workers_overhead_section(layouts=tuple(args.layouts)):
        print(f"| {r['step_delay']:g} | {r['env_workers']} | {r['steps']} | {r['seconds']} | {r['steps_per_s']} | "
              f"{r['speedup']}x | {r['same_rows']} |", flush=True)
    print()
    print("| env workers | act s | episodes | steps | act batches | seconds | steps/s | speedup | same rows |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for act in args.act_seconds:
        for r in env_workers_section(args.games_root, episodes=args.episodes, num_envs=args.num_envs,
                                     max_steps=args.max_steps, layouts=tuple(args.layouts), act_seconds=act):
            print(f"| {r['env_workers']} | {r['act_s']:g} | {r['episodes']} | {r['steps']} | {r['batches']} | "
                  f"{r['seconds']} | {r['steps_per_s']} | {r['speedup']}x | {r['same_rows']} ({r['rows_sha256']}) |",
                  flush=True)


if __name__ == "__main__":
    main()

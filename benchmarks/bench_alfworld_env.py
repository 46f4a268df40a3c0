"""Stock alfworld ``AlfredTWEnv`` vs ``oreo_agents/ALFWorld-v0``: same games, same expert actions, one run.

Prints steps/s and resets/s (games played ``--repeats`` times, as training revisits games), their ratios, whether the
transcripts (observations + admissible commands at every step) are identical, and peak RSS per env. Each engine runs
in its own fresh worker process, so memory is measured per env and every game's first play is a new process's first:

- stock ``AlfredTWEnv``;
- ALFWorld-v0 with an empty compiled-game cache (first plays compile each game, and write it to the cache);
- ALFWorld-v0 again in a new process, now with that warm compiled-game cache (what every later worker gets).

    python benchmarks/bench_alfworld_env.py                     # 6 embedded train games (+ the real fixture if present)
    python benchmarks/bench_alfworld_env.py --num-games 12 --repeats 5 --root /tmp/games
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REAL_GAME = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "alfworld_real_game"


def _stock(games: list[str], repeats: int) -> dict:
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    out, rss = {"transcripts": [], "reset_s": [], "step_s": []}, [0.0]
    for game in games:
        actions = json.loads(Path(game).read_text())["walkthrough"]
        config = {
            "env": {"goal_desc_human_anns_prob": 0, "task_types": [1, 2, 3, 4, 5, 6], "domain_randomization": False,
                    "expert_type": "handcoded"},
            "dataset": {"data_path": str(Path(game).parent), "num_train_games": -1},
            "general": {"training_method": "dqn"},
            "rl": {"training": {"max_nb_steps_per_episode": 200}},
        }
        tw = AlfredTWEnv(config, train_eval="train")
        env = tw.init_env(batch_size=1)
        for _ in range(repeats):
            t = time.perf_counter()
            obs, infos = env.reset()
            out["reset_s"].append(time.perf_counter() - t)
            out["step_s"].append([])
            trace = [[obs[0], infos["admissible_commands"][0]]]
            for a in actions:
                t = time.perf_counter()
                obs, scores, dones, infos = env.step([a])
                out["step_s"][-1].append(time.perf_counter() - t)
                trace.append([obs[0], infos["admissible_commands"][0], bool(infos["won"][0])])
            out["transcripts"].append(trace)
        # The stock env lives in textworld's async worker process: measure that process before it goes.
        import psutil

        kids = psutil.Process().children(recursive=True)
        rss.append(sum(k.memory_info().rss for k in kids) / 2**20)
        env.close()
    # With batch_size=1 textworld may keep the env in this process: then this process's peak is the env's.
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["rss_mb"] = max(rss)
    return out


def _ours(games: list[str], repeats: int, compiled_cache: str) -> dict:
    import gymnasium as gym

    import oreo_agents  # noqa: F401

    out = {"transcripts": [], "reset_s": [], "step_s": []}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    env = gym.make("oreo_agents/ALFWorld-v0", games=games, max_steps=1000, compiled_cache=compiled_cache)
    for i, game in enumerate(games):
        actions = json.loads(Path(game).read_text())["walkthrough"]
        for _ in range(repeats):
            t = time.perf_counter()
            env.reset(options={"task": i})
            out["reset_s"].append(time.perf_counter() - t)
            out["step_s"].append([])
            # Same raw engine text as stock (our observation is this, cleaned): compare like with like.
            game_state = env.unwrapped._state
            trace = [[game_state["feedback"], game_state["admissible_commands"]]]
            for a in actions:
                t = time.perf_counter()
                _, _, _, _, info = env.step(a)
                out["step_s"][-1].append(time.perf_counter() - t)
                state = env.unwrapped._state
                trace.append([state["feedback"], info["admissible_commands"], bool(info["won"])])
            out["transcripts"].append(trace)
    env.close()
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_base_mb"] = base / 1024
    return out


def _worker(kind: str, games: list[str], repeats: int, compiled_cache: str = "none") -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--repeats", str(repeats), "--compiled-cache", compiled_cache,
           "--games", *games]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rates(r: dict, n_games: int, repeats: int) -> dict:
    first = [r["reset_s"][i] for i in range(0, len(r["reset_s"]), repeats)]
    again = [s for i, s in enumerate(r["reset_s"]) if i % repeats]
    steps = [t for play in r["step_s"] for t in play]
    repeated = [t for i, play in enumerate(r["step_s"]) if i % repeats for t in play]
    firsts = [t for i, play in enumerate(r["step_s"]) if not i % repeats for t in play]
    return {
        "steps_per_s": len(steps) / sum(steps),
        # Wall throughput of the env: every step and every reset of every play, each game's first play included.
        "env_steps_per_s": len(steps) / (sum(steps) + sum(r["reset_s"])),
        "first_play_steps_per_s": len(firsts) / (sum(firsts) + sum(first)),
        "repeated_steps_per_s": len(repeated) / sum(repeated) if repeated else float("nan"),
        "resets_per_s": len(again) / sum(again) if again else float("nan"),
        "reset_median_s": statistics.median(again or first),
        "first_reset_median_s": statistics.median(first),
        "step_median_ms": 1000 * statistics.median(steps),
        "rss_mb": r["rss_mb"],
    }


ROWS = (  # key, label, higher is better
    ("steps_per_s", "steps/s, all plays (step time)", True),
    ("env_steps_per_s", "steps/s, all plays incl. resets", True),
    ("first_play_steps_per_s", "steps/s, first plays incl. their reset", True),
    ("repeated_steps_per_s", "steps/s, repeated games", True),
    ("resets_per_s", "resets/s, repeated games", True),
    ("reset_median_s", "reset median, repeated (s)", False),
    ("first_reset_median_s", "first reset median (s)", False),
    ("step_median_ms", "step median (ms)", False),
    ("rss_mb", "peak RSS per env (MB)", False),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["stock", "ours"])
    ap.add_argument("--games", nargs="*", default=[])
    ap.add_argument("--num-games", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compiled-cache", default="none", help=argparse.SUPPRESS)  # the worker's; main makes its own
    ap.add_argument("--root", default=None, help="embedded games root (default: a cache under ./envs)")
    args = ap.parse_args()
    if args.worker:
        result = _stock(args.games, args.repeats) if args.worker == "stock" else _ours(
            args.games, args.repeats, args.compiled_cache)
        print(json.dumps(result))
        return

    import shutil
    import tempfile

    from rich.table import Table

    from oreo_agents.console import console
    from oreo_agents.envs.alfworld.games import ensure_games, list_games

    games = [str(g) for g in ensure_games(args.root, "train", args.num_games, seed=0)]
    if REAL_GAME.is_dir():
        games += [str(g) for g in list_games(REAL_GAME, "train")]
    console.print(f"{len(games)} games x {args.repeats} plays, expert walkthroughs, each env in a fresh process")
    cache = tempfile.mkdtemp(prefix="bench-alfworld-compiled-")
    try:
        stock = _worker("stock", games, args.repeats)
        cold = _worker("ours", games, args.repeats, cache)  # empty cache: compiles every game (and fills the cache)
        warm = _worker("ours", games, args.repeats, cache)  # a new process: every game compiled already
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    identical = stock["transcripts"] == cold["transcripts"] == warm["transcripts"]
    s, c, w = (_rates(r, len(games), args.repeats) for r in (stock, cold, warm))
    table = Table(title="ALFWorld env speed (one fresh process per env)")
    for col in ("metric", "stock AlfredTWEnv", "ALFWorld-v0 cold", "ratio", "ALFWorld-v0 warm compiled", "ratio"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for key, label, better_high in ROWS:
        ratio = (lambda o: o[key] / s[key]) if better_high else (lambda o: s[key] / o[key])
        table.add_row(label, f"{s[key]:.3f}", f"{c[key]:.3f}", f"{ratio(c):.1f}x", f"{w[key]:.3f}", f"{ratio(w):.1f}x")
    console.print(table)
    console.print(f"transcripts identical: {identical} ({sum(len(t) for t in warm['transcripts'])} observations)")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()

"""Peak memory and speed of one OREO update on long agent episodes, per micro-batch size, each in its own process.

    python benchmarks/bench_oreo_update.py --model smollm2                     # micro-batch 1 and 4, 18 GB watchdog
    python benchmarks/bench_oreo_update.py --model runs/sft/policy --micro 1 --micro 2 --limit-gb 12
    python benchmarks/bench_oreo_update.py --model smollm2 --micro 1 --all-logits   # A/B: every position's logits

Random-policy ALFWorld episodes (``--episodes`` of ``--max-steps`` steps: all fail and run to the limit, the longest
episodes a recipe sees) are recorded once; then, per micro-batch size, a fresh process trains one OREO update (batch of
``--episodes``, LoRA r = 16, the recipe's loss) and reports its peak resident memory, the update's tokens/s, and the
learner's pre-flight estimate (learning/memory.py). A watchdog thread stops a run past ``--limit-gb`` rather than let
the kernel pick a victim. Results for SmolLM2 on the 2-core machine: docs/results/alfworld-smollm2.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def record(out: Path, episodes: int, max_steps: int) -> Path:
    from oreo_agents.pipeline.collect import CollectConfig, run_collect

    run_collect(CollectConfig(env="alfworld", split="train", task_types=["pick_and_place_simple"], num_tasks=episodes,
                              policy="random", episodes=episodes, max_steps=max_steps, out=str(out)))
    return out


def one_update(args: argparse.Namespace) -> None:
    """In the child process: one OREO update, watched."""
    import psutil
    import torch

    torch.set_num_threads(args.threads)
    peak = [0]

    def watch() -> None:
        proc = psutil.Process()
        while True:
            rss = proc.memory_info().rss
            peak[0] = max(peak[0], rss)
            if rss > args.limit_gb * 1e9:
                print(json.dumps({"micro": args.micro[0], "exceeded_gb": args.limit_gb}), flush=True)
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.learning.trainer import Trainer

    if args.all_logits:
        Trainer.logit_columns = lambda self, mask: None  # type: ignore[method-assign]
    out = Path(args.work) / f"run-{args.micro[0]}{'-all' if args.all_logits else ''}"
    cfg = TrainConfig(algo="oreo", data=[args.data], model=args.model, out=str(out), batch_size=args.episodes,
                      micro_batch_size=args.micro[0], max_steps=1, lora_r=16, learning_rate=1e-4, max_length=args.max_length,
                      plot=False)  # fmt: skip
    make_trainer(cfg).train()
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    print(json.dumps({"micro": args.micro[0], "peak_gb": round(peak[0] / 1e9, 2), "tokens_per_s": round(metrics[-1]["tokens_per_s"], 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="a HF model folder, or smollm2")
    ap.add_argument("--micro", type=int, action="append", help="micro-batch sizes to measure (default 1 and 4)")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=30)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--limit-gb", type=float, default=18.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--all-logits", action="store_true", help="every position's logits (before logits_to_keep)")
    ap.add_argument("--data", default="", help=argparse.SUPPRESS)  # set for the child
    ap.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.data:
        return one_update(args)
    from oreo_agents.models.loading import resolve_model

    args.model = str(resolve_model(args.model))
    with tempfile.TemporaryDirectory(prefix="bench-oreo-update-") as tmp:
        data = record(Path(tmp) / "random", args.episodes, args.max_steps)
        print(f"{args.episodes} random ALFWorld episodes of {args.max_steps} steps, cut at {args.max_length} tokens; "
              f"{args.threads} thread(s); {'every position' if args.all_logits else 'action states'}' logits")
        for micro in args.micro or [1, 4]:
            cmd = [sys.executable, __file__, "--model", args.model, "--micro", str(micro), "--episodes", str(args.episodes),
                   "--max-length", str(args.max_length), "--limit-gb", str(args.limit_gb), "--threads", str(args.threads),
                   "--data", str(data), "--work", tmp, *(["--all-logits"] if args.all_logits else [])]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            warning = next((x for x in proc.stdout.splitlines() if "memory: the longest" in x), "")
            result = json.loads(lines[-1]) if lines else {"error": proc.stderr.strip().splitlines()[-1:]}
            print(f"micro-batch {micro}: {result}" + (f"\n  pre-flight: {warning.strip()}" if warning else ""))


if __name__ == "__main__":
    main()

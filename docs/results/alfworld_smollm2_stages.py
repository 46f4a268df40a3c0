"""One part of `oreo-agents compare` at a time, so that parts can run side by side on a CPU (issue #18's schedule).

The same stage functions and markers as `compare`: running the parts below and then `compare` itself gives the
same folders, the same episodes and the same report as `compare` alone (each stage resumes from its marker; `compare`
finds them done). Only the threads differ: two 1-thread evaluations at once instead of one 2-thread evaluation after
another.

    python docs/results/alfworld_smollm2_stages.py CONFIG 2 train              # games, expert, SFT, rollouts, OREO
    python docs/results/alfworld_smollm2_stages.py CONFIG 1 eval K5,SFT &      # two agents on one core ...
    python docs/results/alfworld_smollm2_stages.py CONFIG 1 eval K3,OREO       # ... two on the other
    oreo-agents compare --config CONFIG                                         # report, paired tables, value lens

Agent names: SFT, OREO (greedy), K<k> (OREO + value selection at that K).
"""

import sys
from dataclasses import replace
from pathlib import Path

import torch

if len(sys.argv) < 4 or sys.argv[3] not in ("train", "eval") or (sys.argv[3] == "eval" and len(sys.argv) < 5):
    sys.exit(__doc__)
cfg_path, threads, part = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)

from oreo_agents.config import build_config  # noqa: E402
from oreo_agents.pipeline.compare import CompareConfig, seed_agents  # noqa: E402
from oreo_agents.pipeline.loops import expert_stage, prepare_tasks  # noqa: E402
from oreo_agents.pipeline.stages import eval_rows  # noqa: E402

cfg = build_config(CompareConfig, {"config_file": cfg_path})
prepare_tasks(cfg)
expert = expert_stage(cfg)
for s in cfg.seeds:
    seed_cfg = replace(cfg, seed=s, out=f"{cfg.out}/seed-{s}", datasets=f"{cfg.datasets}/seed-{s}")
    agents = seed_agents(seed_cfg, expert)  # trains what is not trained yet
    if part == "eval":
        names = sys.argv[4].split(",")
        chosen = [a for a in agents if (f"K{a.k}" if a.select == "value" else a.name) in names]
        eval_rows(seed_cfg, Path(seed_cfg.out) / "eval", chosen)

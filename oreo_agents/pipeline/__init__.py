"""The OREO loop as resumable stages, and the commands built from them (quickstart, iterate, compare).

No torch at import: each stage imports the learning stack when it runs.
"""

from oreo_agents.pipeline.compare import CompareConfig, run_compare
from oreo_agents.pipeline.loops import (
    IterateConfig,
    QuickstartConfig,
    run_iterate,
    run_quickstart,
)
from oreo_agents.pipeline.stages import AgentSpec, LoopConfig, StartConfig, stage

__all__ = [
    "AgentSpec",
    "CompareConfig",
    "IterateConfig",
    "LoopConfig",
    "QuickstartConfig",
    "StartConfig",
    "run_compare",
    "run_iterate",
    "run_quickstart",
    "stage",
]

"""``export`` as a library function: a recorded dataset as an SFT, DPO or KTO view (TRL's dataset formats), written to
a .parquet / .jsonl / .json file (the views themselves are :mod:`oreo_agents.recording.exports`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from oreo_agents.console import console, escape
from oreo_agents.errors import OreoError


@dataclass
class ExportConfig:
    """Settings of one export (YAML keys of ``--config`` and flags)."""

    dataset: str | None = field(default=None, metadata={"help": "Recorded dataset folder (or a .parquet file)."})
    view: Literal["sft", "dpo", "kto"] = field(
        default="sft", metadata={"help": "sft: successful episodes; dpo: success/failure pairs per task; kto: all, labelled."}
    )
    style: Literal["messages", "prompt-completion"] = field(
        default="messages", metadata={"help": "sft: one chat per episode, or one prompt/completion row per reply."}
    )
    conversational: bool = field(default=False, metadata={"help": "dpo/kto: message lists instead of strings."})
    max_pairs_per_task: int | None = field(default=None, metadata={"help": "dpo: cap on pairs per task."})
    family: str | None = field(
        default=None, metadata={"help": "Prompt format (alfworld, math, webshop) for envs that are not oreo_agents'."}
    )
    with_ids: bool = field(default=False, metadata={"help": "Keep episode / task ids as extra columns."})
    out: str | None = field(default=None, metadata={"help": "Output file: .parquet, .jsonl or .json."})


def run_export(cfg: ExportConfig) -> Path:
    if not cfg.dataset:
        raise OreoError("--dataset is required: a folder written by `oreo-agents collect`")
    if not cfg.out:
        raise OreoError("--out is required: a .parquet, .jsonl or .json file")
    import datasets
    from oreo_agents.recording.exports import build_view, check_out_file, write_view

    check_out_file(cfg.out)
    datasets.disable_progress_bars()  # the status spinner below is the progress display

    stats: dict[str, int] = {}
    with console.status(f"building the {cfg.view} view of {escape(str(cfg.dataset))}"):
        ds = build_view(
            cfg.dataset, cfg.view, style=cfg.style, family=cfg.family, conversational=cfg.conversational,
            max_pairs_per_task=cfg.max_pairs_per_task, with_ids=cfg.with_ids, stats=stats,
        )
        path = write_view(ds, cfg.out)
    extra = ""
    if cfg.view == "dpo":
        extra = f" from {stats.get('tasks_with_pairs', 0)} tasks"
        if stats.get("mismatched_prompts"):
            extra += f" ({stats['mismatched_prompts']} pairs skipped: prompts differ)"
    console.print(f"wrote {len(ds)} {cfg.view} rows{extra} to {path} (columns: {', '.join(ds.column_names)})", markup=False)
    return Path(path)

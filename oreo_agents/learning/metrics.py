"""Training metrics: one JSONL line per update, a rich live panel (plain lines off a terminal), a PNG of the curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from oreo_agents.console import console, is_interactive

# Shown in the panel / plain lines, in this order, when present.
SHOWN = ("loss", "loss_v", "loss_pi", "kl", "margin", "accuracy", "mean_v", "return", "lr", "lr_v", "grad_norm",
         "grad_norm_joint", "tokens_per_s")


class MetricsLog:
    """Appends metrics to ``metrics.jsonl``; on resume drops lines past the checkpoint so the file matches a clean run."""

    def __init__(self, path: Path, *, resume_step: int = 0):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= resume_step]
            path.write_text("".join(ln + "\n" for ln in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


class Panel:
    """A live table of the latest metrics while training; on a pipe/CI, one plain line every ``every`` updates."""

    def __init__(self, title: str, total: int, *, every: int = 1, enabled: bool = True):
        self.title, self.total, self.every, self.enabled = title, total, every, enabled
        self.live: Live | None = None

    def __enter__(self) -> "Panel":
        if self.enabled and is_interactive():
            self.live = Live(self._table({"step": 0}), console=console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _table(self, rec: dict[str, Any]) -> Table:
        t = Table(title=f"{self.title}  step {rec.get('step', 0)}/{self.total}  epoch {_fmt(rec.get('epoch', 0))}", show_header=False)
        for k in SHOWN:
            if k in rec:
                t.add_row(k, _fmt(rec[k]))
        return t

    def update(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self._table(rec))
        elif rec["step"] % self.every == 0 or rec["step"] == self.total:
            parts = " ".join(f"{k}={_fmt(rec[k])}" for k in SHOWN if k in rec)
            console.print(f"[{self.title}] step {rec['step']}/{self.total} {parts}")


def plot_metrics(records: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """One subplot per numeric metric against the update step; returns the PNG path (None when nothing to plot)."""
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers/CI
    import matplotlib.pyplot as plt

    keys = [k for k in SHOWN if any(isinstance(r.get(k), (int, float)) for r in records)]
    cols = 3
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, k in zip(axes.flat, keys):
        ax.plot(steps, [r.get(k, float("nan")) for r in records])
        ax.set_title(k)
        ax.set_xlabel("update")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

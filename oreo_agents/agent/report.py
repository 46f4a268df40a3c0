"""The evaluation report a user looks at: the verdict table, its one-line reading, and the two figures (no torch).

- :func:`verdict_table`: one row per agent, one column per split (training games first), each cell
  ``successes/n rate [95% CI]``; fits an 80-column terminal.
- :func:`reading`: one sentence computed from those numbers (how much the agents learned of the games they trained on,
  how much of it carries to held-out games, and whether the best agent beats the first one beyond the CIs).
- :func:`plot_overall` (``eval.png``): one panel per split, one bar per agent with its CI.
- :func:`plot_task_types` (``eval_task_types.png``): a heat map per split, agents x task types, cells ``k/n``.

Rows are :class:`oreo_agents.agent.rows.Row`; an agent is the pair (agent label, selection mode).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.agent.rows import ALL, Row
from oreo_agents.stats import wilson

TRAIN = "train"


def agent_name(row: Row) -> str:
    """The label shown for an agent: its label, plus the selection mode unless greedy or already part of the label."""
    return row.agent if row.select in ("greedy", "") or row.select in row.agent or "+" in row.agent else f"{row.agent} [{row.select}]"


def _overall(rows: Sequence[Row]) -> tuple[list[str], list[str], dict[tuple[str, str], Row]]:
    """(agents in order, splits in order with train first, {(agent, split): row}) of the task-type ``all`` rows."""
    cells = {(agent_name(r), r.split): r for r in rows if r.task_type == ALL}
    agents = list(dict.fromkeys(a for a, _ in cells))
    splits = list(dict.fromkeys(s for _, s in cells))
    splits.sort(key=lambda s: s != TRAIN)  # stable: the training games first, held-out splits in their order
    return agents, splits, cells


def cell(r: Row | None) -> str:
    """``22/24 92% [74-98]``: successes/n, the rate, and its 95% interval in percent (never truncated)."""
    if r is None:
        return "-"
    return f"{r.successes}/{r.n} {r.rate:.0%} [{r.ci_low * 100:.0f}-{r.ci_high * 100:.0f}]"


def verdict_table(rows: Sequence[Row], *, metric: str = "success") -> Any:
    """A compact rich Table: agents x splits (``train`` = the games the policy trained on, played in-distribution)."""
    from rich import box
    from rich.table import Table

    agents, splits, cells = _overall(rows)
    table = Table(title=f"{metric}: solved/played, rate [95% CI]", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_justify="left")
    table.add_column("agent", no_wrap=True)
    for s in splits:
        table.add_column("train games" if s == TRAIN else s, justify="right", no_wrap=True)
    for a in agents:
        table.add_row(a, *[cell(cells.get((a, s))) for s in splits])
    return table


def pooled(rows: Sequence[Row]) -> tuple[int, int]:
    """(successes, episodes) summed over ``rows``."""
    return sum(r.successes for r in rows), sum(r.n for r in rows)


def _pct(lo: float, hi: float) -> str:
    return f"{lo:.0%}" if round(lo * 100) == round(hi * 100) else f"{lo:.0%}-{hi:.0%}"


def reading(rows: Sequence[Row]) -> str:
    """One sentence read off the numbers (not a fixed text): fit on the training games, transfer, best vs first agent."""
    agents, splits, cells = _overall(rows)
    held = [s for s in splits if s != TRAIN]
    if not agents or not held:
        return ""
    held_rates = {a: pooled([cells[(a, s)] for s in held if (a, s) in cells]) for a in agents}
    rate = {a: k / n if n else 0.0 for a, (k, n) in held_rates.items()}
    parts = []
    if TRAIN in splits:
        train = [cells[(a, TRAIN)].rate for a in agents if (a, TRAIN) in cells]
        lo_t, hi_t = min(train), max(train)
        lo_h, hi_h = min(rate.values()), max(rate.values())
        parts.append(f"the agents solve {_pct(lo_t, hi_t)} of the games they trained on and {_pct(lo_h, hi_h)} of "
                     "held-out games")
        if hi_t < 0.5:
            parts.append("they have not fit their training games yet (train longer, or a larger model)")
        elif hi_h < lo_t / 2:
            parts.append("they learned the games they saw, little of it carries to unseen ones")
        else:
            parts.append("much of what they learned carries to unseen games")
    else:
        parts.append(f"held-out success {_pct(min(rate.values()), max(rate.values()))}")
    first = agents[0]
    best = max(agents[1:], key=lambda a: (rate[a], -agents.index(a)), default=None)
    if best is not None:
        (k1, n1), (k2, n2) = held_rates[first], held_rates[best]
        lo1, hi1 = wilson(k1, n1)
        lo2, hi2 = wilson(k2, n2)
        diff = (rate[best] - rate[first]) * 100
        verdict = "the 95% CIs overlap" if lo2 <= hi1 and lo1 <= hi2 else "the 95% CIs do not overlap"
        parts.append(f"held out, {best} vs {first}: {diff:+.0f} points ({k2}/{n2} vs {k1}/{n1}; {verdict})")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


# --- figures -------------------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_overall(rows: Sequence[Row], path: Path, *, metric: str = "success rate", title: str = "") -> None:
    """One panel per split, one bar per agent (its 95% CI as a whisker, ``k/n`` written on it)."""
    plt = _pyplot()
    agents, splits, cells = _overall(rows)
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, max(1, len(splits)), figsize=(1.1 + 2.1 * len(splits) + 0.35 * len(agents) * len(splits), 3.8),
                             sharey=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        for i, a in enumerate(agents):
            r = cells.get((a, split))
            if r is None:
                continue
            ax.bar(i, r.rate, color=colours[i % len(colours)], width=0.7,
                   yerr=[[max(0.0, r.rate - r.ci_low)], [max(0.0, r.ci_high - r.rate)]], capsize=4, ecolor="0.3")
            ax.text(i, r.ci_high + 0.02, f"{r.successes}/{r.n}", ha="center", va="bottom", fontsize=8)
        ax.set_title("train games (seen)" if split == TRAIN else f"{split} (held out)", fontsize=10)
        ax.set_xticks(range(len(agents)))
        ax.set_xticklabels(agents, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (95% CI)")
    fig.suptitle(title or metric, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TASK_TYPE_SHORT = {  # ALFWorld's six task types, short enough for an axis label
    "pick_and_place_simple": "pick & place",
    "look_at_obj_in_light": "look in light",
    "pick_clean_then_place_in_recep": "clean & place",
    "pick_heat_then_place_in_recep": "heat & place",
    "pick_cool_then_place_in_recep": "cool & place",
    "pick_two_obj_and_place": "pick two",
}


def plot_task_types(rows: Sequence[Row], path: Path, *, metric: str = "success rate", title: str = "") -> None:
    """Small multiples: per split a heat map of agents x task types, each cell coloured by its rate and labelled k/n."""
    plt = _pyplot()
    typed = [r for r in rows if r.task_type != ALL]
    agents, splits, _ = _overall(rows)
    if not typed:
        typed = [r for r in rows if r.task_type == ALL]
    types = sorted({r.task_type for r in typed})
    cells = {(agent_name(r), r.split, r.task_type): r for r in typed}
    width = max(6.0, 2.2 + (0.8 * len(types) + 0.4) * len(splits))
    fig, axes = plt.subplots(1, max(1, len(splits)), squeeze=False, sharey=True, layout="constrained",
                             figsize=(width, max(2.8, 1.8 + 0.42 * len(agents))))
    image = None
    for ax, split in zip(axes[0], splits):
        grid = [[math.nan] * len(types) for _ in agents]
        for i, a in enumerate(agents):
            for j, t in enumerate(types):
                r = cells.get((a, split, t))
                if r is not None:
                    grid[i][j] = r.rate
                    ax.text(j, i, f"{r.successes}/{r.n}", ha="center", va="center", fontsize=7,
                            color="white" if r.rate < 0.5 else "black")
        ax.set_facecolor("0.9")  # no game of that type in the split
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(types)))
        ax.set_xticklabels([TASK_TYPE_SHORT.get(t, t[:14]) for t in types], rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(agents)))
        ax.set_yticklabels(agents, fontsize=8)
        ax.set_title("train games" if split == TRAIN else split, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.02, label=metric)
    fig.suptitle(f"{title + ': ' if title else ''}{metric} by task type (grey: no game of that type)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)

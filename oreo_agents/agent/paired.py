"""Paired comparisons of evaluated agents: the same tasks, the same seeds, compared task by task.

Each agent's outcomes (``outcomes.jsonl`` rows of ``eval``: split, task_id, success) are keyed by (seed, split, task,
occurrence); two agents are compared on the keys both played. The table gives, for each (agent, reference) pair, both
success counts, the tasks only one of them solved, the difference with a paired bootstrap interval over tasks and
McNemar's exact p-value (:mod:`oreo_agents.stats`). Beside per-agent Wilson intervals (which ignore that the agents
played the same tasks) this is what lets 48 tasks tell two agents apart when they disagree on few of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from oreo_agents.errors import OreoError
from oreo_agents.stats import PairedDifference, paired_difference

Key = tuple[Any, ...]


@dataclass(frozen=True)
class PairedRow:
    agent: str
    reference: str
    split: str  # a split name, or "all" for every split pooled
    stats: PairedDifference


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    """The rows of an ``outcomes.jsonl`` file (one JSON object per evaluated episode)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise OreoError(f"{path}: cannot read the evaluation outcomes ({exc.strerror})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise OreoError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(row, dict) or not {"split", "task_id", "success"} <= set(row):
            raise OreoError(f"{path}:{n}: an outcome needs split, task_id and success")
        rows.append(row)
    return rows


def keyed(outcomes: Iterable[dict[str, Any]], seed: Any = 0) -> dict[Key, bool]:
    """Outcomes keyed by (seed, split, task, occurrence): a task played twice pairs its first plays, then its second."""
    seen: dict[Key, int] = {}
    out = {}
    for o in outcomes:
        base = (seed, o["split"], o["task_id"])
        seen[base] = seen.get(base, -1) + 1
        out[base + (seen[base],)] = bool(o["success"])
    return out


def compare_pairs(outcomes: dict[str, dict[Key, bool]], pairs: Sequence[tuple[str, str]], *, per_split: bool = True,
                  seed: int = 0) -> list[PairedRow]:
    """Paired rows for each (agent, reference): all splits pooled (``all``), then each split when ``per_split``."""
    rows = []
    for agent, reference in pairs:
        mine, theirs = outcomes[agent], outcomes[reference]
        common = sorted(set(mine) & set(theirs), key=repr)
        if not common:
            raise OreoError(f"{agent} and {reference} played no task in common: nothing to pair")
        groups: dict[str, list[Key]] = {"all": common}
        if per_split:
            for key in common:
                groups.setdefault(str(key[1]), []).append(key)
        if per_split and len(groups) == 2:  # one split only: its row would repeat "all"
            groups = {"all": common}
        for split, keys in groups.items():
            stats = paired_difference([mine[k] for k in keys], [theirs[k] for k in keys], seed=seed)
            rows.append(PairedRow(agent, reference, split, stats))
    return rows


def paired_markdown(rows: Sequence[PairedRow]) -> list[str]:
    """The paired table in Markdown (differences in points of success rate)."""
    lines = ["| agent | vs | split | tasks | agent solved | reference solved | only agent / only reference | "
             "difference (95% paired CI) | McNemar p |", "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        s = r.stats
        lines.append(f"| {r.agent} | {r.reference} | {r.split} | {s.n} | {s.a_successes} | {s.b_successes} | "
                     f"{s.only_a} / {s.only_b} | {s.difference * 100:+.1f} ({s.ci_low * 100:+.1f} to {s.ci_high * 100:+.1f}) | "
                     f"{s.p_value:.3g} |")
    return lines


def outcomes_by_agent(rows: Iterable[dict[str, Any]], seed: Any = 0) -> dict[str, dict[Key, bool]]:
    """One ``eval`` run's outcomes (rows with ``agent`` and ``select``) grouped per agent as ``agent [select]``, keyed."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(f"{row.get('agent', '?')} [{row.get('select', '?')}]", []).append(row)
    return {name: keyed(group, seed) for name, group in grouped.items()}


def against(names: Sequence[str], references: Sequence[str]) -> list[tuple[str, str]]:
    """Every agent paired with each reference that is present (references in the given order); a pair already listed
    the other way round is not repeated (its difference is the same with the sign flipped)."""
    pairs: list[tuple[str, str]] = []
    for ref in (r for r in references if r in names):
        pairs += [(name, ref) for name in names if name != ref and (ref, name) not in pairs]
    return pairs


def append_paired_section(md: Path, outcomes: dict[str, dict[Key, bool]], pairs: Sequence[tuple[str, str]]) -> list[PairedRow]:
    """Add the paired table to a report (``eval.md``, ``compare.md``); returns its rows (none for fewer than 2 agents)."""
    rows = compare_pairs(outcomes, pairs) if pairs else []
    if rows:
        text = ["", "## Paired comparisons (same tasks, same seeds)", "",
                "Differences in points of success rate; the paired 95% interval resamples tasks, McNemar's exact test "
                "uses only the tasks one agent solved and the other did not.", "", *paired_markdown(rows)]
        md.write_text(md.read_text() + "\n".join(text) + "\n")
    return rows


def paired_line(row: PairedRow) -> str:
    """One printed line: ``OREO vs SFT: +6.2 points (-4.2 to +16.7), 5 vs 2 tasks only one solved, McNemar p 0.45``."""
    s = row.stats
    return (f"{row.agent} vs {row.reference}: {s.difference * 100:+.1f} points ({s.ci_low * 100:+.1f} to {s.ci_high * 100:+.1f}), "
            f"{s.only_a} vs {s.only_b} tasks only one solved, McNemar p {s.p_value:.2g}")

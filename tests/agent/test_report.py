"""The quickstart's verdict: an 80-column table, a reading computed from the numbers, and the two figures."""

from __future__ import annotations

import io

import pytest

from oreo_agents.agent.evaluate import Row
from oreo_agents.stats import wilson
from oreo_agents.agent.report import cell, plot_overall, plot_task_types, reading, verdict_table


def _row(agent: str, split: str, k: int, n: int, select: str = "greedy", task_type: str = "all") -> Row:
    lo, hi = wilson(k, n)
    return Row(agent, select, split, task_type, n, k, k / n, lo, hi, 10.0)


def _rows(train=(22, 23, 21), seen=(0, 0, 1), unseen=(0, 0, 0)) -> list[Row]:
    agents = [("sft", "greedy"), ("oreo", "greedy"), ("oreo+V K=4", "value")]
    rows = []
    for (a, sel), t, s, u in zip(agents, train, seen, unseen):
        rows += [_row(a, "valid_seen", s, 12, sel), _row(a, "train", t, 24, sel), _row(a, "valid_unseen", u, 12, sel)]
        rows += [_row(a, "train", t // 2, 12, sel, "pick_and_place_simple"), _row(a, "valid_seen", min(s, 6), 6, sel, "look_at_obj_in_light")]
    return rows


def test_cell_never_hides_a_number():
    assert cell(_row("sft", "train", 22, 24)) == "22/24 92% [74-98]"
    assert cell(_row("sft", "valid_seen", 0, 12)) == "0/12 0% [0-24]"
    assert cell(None) == "-"


def test_verdict_table_fits_80_columns_training_games_first():
    from rich.console import Console

    con = Console(width=80, file=io.StringIO(), record=True)
    con.print(verdict_table(_rows()))
    text = con.export_text()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in text
    header = next(line for line in lines if "agent" in line)
    assert header.index("train games") < header.index("valid_seen") < header.index("valid_unseen")
    assert "22/24 92% [74-98]" in text and "1/12 8% [1-35]" in text and "oreo+V K=4" in text


def test_reading_is_computed_from_the_numbers():
    memorised = reading(_rows())
    assert memorised.startswith("The agents solve 88%-96% of the games they trained on and 0%-4% of held-out games")
    assert "little of it carries" in memorised
    assert "oreo+V K=4 vs sft: +4 points (1/24 vs 0/24; the 95% CIs overlap)" in memorised
    underfit = reading(_rows(train=(3, 4, 2)))
    assert "have not fit their training games" in underfit
    transfer = reading(_rows(train=(20, 20, 20), seen=(9, 10, 11), unseen=(8, 9, 12)))
    assert "carries to unseen games" in transfer and "held out, oreo+V K=4 vs sft: +25 points (23/24 vs 17/24" in transfer
    clear = reading(_rows(train=(20, 20, 24), seen=(0, 1, 12), unseen=(0, 1, 12)))
    assert "oreo+V K=4 vs sft: +100 points (24/24 vs 0/24; the 95% CIs do not overlap)" in clear
    assert reading([_row("sft", "train", 1, 2)]) == ""  # nothing held out: nothing to read


def test_figures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    plot_overall(_rows(), tmp_path / "eval.png", title="t")
    plot_task_types(_rows(), tmp_path / "types.png", title="t")
    for name in ("eval.png", "types.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"

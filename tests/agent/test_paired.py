"""Paired comparison tables from outcome rows, on hand-made outcomes."""

from __future__ import annotations

import json

import pytest

from oreo_agents.agent.paired import compare_pairs, keyed, paired_markdown, read_outcomes
from oreo_agents.errors import OreoError


def _rows(split, solved):
    return [{"split": split, "task_id": f"t{i}", "success": s} for i, s in enumerate(solved)]


def test_pairs_by_task_pool_splits_and_report_discordant_tasks():
    sft = keyed(_rows("seen", [1, 0, 0, 1]) + _rows("unseen", [0, 0, 1, 0]))
    oreo = keyed(_rows("seen", [1, 1, 0, 1]) + _rows("unseen", [1, 0, 0, 0]))
    rows = compare_pairs({"OREO": oreo, "SFT": sft}, [("OREO", "SFT")])
    assert [r.split for r in rows] == ["all", "seen", "unseen"]
    pooled = rows[0].stats
    assert (pooled.n, pooled.a_successes, pooled.b_successes, pooled.only_a, pooled.only_b) == (8, 4, 3, 2, 1)
    assert pooled.difference == pytest.approx(1 / 8)
    assert pooled.p_value == pytest.approx(1.0)  # 2 * P(Bin(3, 1/2) <= 1) = 2 * 4/8
    seen = rows[1].stats
    assert (seen.n, seen.only_a, seen.only_b, seen.p_value) == (4, 1, 0, 1.0)
    table = paired_markdown(rows)
    assert table[2] == "| OREO | SFT | all | 8 | 4 | 3 | 2 / 1 | +12.5 (-25.0 to +50.0) | 1 |"


def test_only_common_tasks_are_paired_and_repeated_tasks_pair_in_order():
    a = keyed([{"split": "s", "task_id": "x", "success": True}, {"split": "s", "task_id": "x", "success": False},
               {"split": "s", "task_id": "y", "success": True}])
    b = keyed([{"split": "s", "task_id": "x", "success": False}, {"split": "s", "task_id": "x", "success": False}])
    (row,) = compare_pairs({"a": a, "b": b}, [("a", "b")])  # one split: no per-split rows repeating "all"
    assert (row.stats.n, row.stats.only_a, row.stats.only_b) == (2, 1, 0)
    with pytest.raises(OreoError, match="no task in common"):
        compare_pairs({"a": a, "c": keyed(_rows("other", [1]))}, [("a", "c")])


def test_read_outcomes_names_the_bad_line(tmp_path):
    path = tmp_path / "outcomes.jsonl"
    path.write_text(json.dumps({"split": "s", "task_id": "t", "success": True}) + "\n\n{oops\n")
    with pytest.raises(OreoError, match=r"outcomes.jsonl:3: not a JSON line"):
        read_outcomes(path)
    path.write_text(json.dumps({"split": "s"}) + "\n")
    with pytest.raises(OreoError, match="needs split, task_id and success"):
        read_outcomes(path)
    path.write_text(json.dumps({"split": "s", "task_id": "t", "success": True}) + "\n")
    assert read_outcomes(path) == [{"split": "s", "task_id": "t", "success": True}]


def test_eval_rows_group_per_agent_and_selection_and_pair_against_references():
    from oreo_agents.agent.paired import against, outcomes_by_agent

    rows = [{"agent": "oreo", "select": s, "split": "seen", "task_id": t, "success": ok}
            for s, outcomes in (("greedy", [0, 1]), ("value", [1, 1])) for t, ok in zip(("a", "b"), outcomes)]
    grouped = outcomes_by_agent(rows)
    assert sorted(grouped) == ["oreo [greedy]", "oreo [value]"]
    assert grouped["oreo [value]"] == {(0, "seen", "a", 0): True, (0, "seen", "b", 0): True}
    assert against(["SFT", "OREO", "OREO+V K=3"], ["SFT", "OREO", "RFT"]) == [
        ("OREO", "SFT"), ("OREO+V K=3", "SFT"), ("OREO+V K=3", "OREO")]  # no "SFT vs OREO": OREO vs SFT says it

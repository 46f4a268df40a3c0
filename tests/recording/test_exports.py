"""SFT / DPO / KTO views: contents, pairing rules, TRL's own format helpers, and the files written."""

from __future__ import annotations

import json

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.prompting import ALFWORLD_FORMAT, MATH_FORMAT
from oreo_agents.recording import load_episodes
from oreo_agents.recording.exports import build_view, dpo_rows, kto_rows, segments, sft_rows, write_view


def _rows(path):
    return list(load_episodes(path))


def test_sft_messages_follow_the_prompt_format(toy_dataset):
    episodes = _rows(toy_dataset)
    wins = [e for e in episodes if e["success"]]
    out = list(sft_rows(episodes, style="messages", family="alfworld", with_ids=True))
    assert len(out) == len(wins) > 0
    first = next(e for e in wins if e["episode_id"] == out[0]["episode_id"])
    msgs = out[0]["messages"]
    assert msgs[0] == {"role": "user", "content": ALFWORLD_FORMAT.prompt_text(first["goal"], first["initial_observation"])}
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == [s["action"] for s in first["steps"]]
    assert msgs[2]["content"] == ALFWORLD_FORMAT.observation_text(first["steps"][0]["observation"])
    assert msgs[-1]["role"] == "assistant"  # the final observation follows no reply, so it is left out


def test_sft_prompt_completion_one_row_per_reply(toy_dataset):
    episodes = _rows(toy_dataset)
    out = list(sft_rows(episodes, style="prompt-completion", family="alfworld"))
    assert len(out) == sum(e["length"] for e in episodes if e["success"])
    second = out[1]  # the second reply of the first successful episode sees the first reply and its feedback
    assert second["prompt"].startswith(out[0]["prompt"] + out[0]["completion"] + "\n")
    assert second["prompt"].endswith("> ")


def test_math_replies_merge_into_one_assistant_message():
    row = {"episode_id": "e", "task_id": "t", "env_id": "oreo_agents/Math-v0", "goal": "", "success": True,
           "initial_observation": "What is 2+3?", "steps": [{"action": "2+3=5", "reply": "2+3=5", "observation": ""},
                                                            {"action": "#### 5", "reply": "#### 5", "observation": ""}]}
    segs = segments(row, MATH_FORMAT)
    assert [k for k, _ in segs] == ["context", "reply", "reply"]
    [sft] = sft_rows([row])
    assert sft["messages"][1] == {"role": "assistant", "content": "2+3=5\n#### 5"}
    [kto] = kto_rows([row])
    assert kto["prompt"].endswith("Answer:\n") and kto["completion"] == "2+3=5\n#### 5" and kto["label"] is True


def test_dpo_pairs_success_with_failure_of_the_same_task(toy_dataset):
    episodes = _rows(toy_dataset)
    by_id = {e["episode_id"]: e for e in episodes}
    stats = {}
    pairs = list(dpo_rows(episodes, family="alfworld", with_ids=True, stats=stats))
    assert pairs and stats["mismatched_prompts"] == 0
    for p in pairs:
        chosen, rejected = by_id[p["chosen_episode_id"]], by_id[p["rejected_episode_id"]]
        assert chosen["success"] and not rejected["success"] and chosen["task_id"] == rejected["task_id"] == p["task_id"]
        assert p["chosen"].startswith(chosen["steps"][0]["action"])
    tasks = {}
    for e in episodes:
        tasks.setdefault(e["task_id"], [0, 0])[0 if e["success"] else 1] += 1
    mixed = {t: max(n) for t, n in tasks.items() if min(n) > 0}
    assert stats["tasks_with_pairs"] == len(mixed) and len(pairs) == sum(mixed.values())
    capped = list(dpo_rows(episodes, family="alfworld", max_pairs_per_task=1))
    assert len(capped) == len(mixed)


def test_views_match_trl_formats(toy_dataset):
    from trl.data_utils import is_conversational, unpair_preference_dataset

    dpo = build_view(toy_dataset, "dpo", family="alfworld")
    kto = build_view(toy_dataset, "kto", family="alfworld")
    unpaired = unpair_preference_dataset(dpo)  # TRL's own DPO -> KTO conversion reads our columns
    assert set(unpaired.column_names) == {"prompt", "completion", "label"} == set(kto.column_names)
    kto_pairs = {(r["prompt"], r["completion"], r["label"]) for r in kto}
    assert all((r["prompt"], r["completion"], r["label"]) in kto_pairs for r in unpaired)
    assert not is_conversational(dpo[0])
    conv = build_view(toy_dataset, "dpo", family="alfworld", conversational=True)
    assert is_conversational(conv[0]) and conv[0]["chosen"][0]["role"] == "assistant"
    sft = build_view(toy_dataset, "sft", family="alfworld")
    assert is_conversational(sft[0])


def test_write_view_files(toy_dataset, tmp_path):
    ds = build_view(toy_dataset, "kto", family="alfworld")
    path = write_view(ds, tmp_path / "out" / "kto.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 40 and set(json.loads(lines[0])) == {"prompt", "completion", "label"}
    import pandas as pd

    assert len(pd.read_parquet(write_view(ds, tmp_path / "kto.parquet"))) == 40
    with pytest.raises(OreoError, match="use a .parquet, .jsonl or .json"):
        write_view(ds, tmp_path / "kto.csv")


def test_unknown_env_without_family_is_refused(toy_dataset):
    with pytest.raises(OreoError, match="no prompt format for env 'Toy-v0'; pass --family"):
        build_view(toy_dataset, "sft")

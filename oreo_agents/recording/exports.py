"""Views of a recorded dataset for other trainers: SFT, DPO pairs and KTO rows in the formats TRL reads.

All views render text with :mod:`oreo_agents.prompting` (the one prompt format), so a model trained on them reads what
the ``model`` policy and the agent show it. An episode becomes segments::

    prompt_text  reply 0  observation 0  reply 1  ...      (context / reply / context / reply)

In text views each reply is followed by a newline when more text follows (in token space the reply ends with EOS for
agents or a newline for math; a trainer adds the final EOS itself). Views:

- ``sft`` — successful episodes. ``messages``: one chat per episode (user = context, assistant = reply; TRL
  ``SFTTrainer`` conversational format, use ``assistant_only_loss``). ``prompt-completion``: one row per reply, the
  prompt being everything before it (TRL's prompt-completion format; the loss falls on replies only).
- ``dpo`` — pairs of a success and a failure on the same ``task_id`` (the OREO paper's DPO baseline):
  ``prompt`` / ``chosen`` / ``rejected``.
- ``kto`` — every episode, unpaired: ``prompt`` / ``completion`` / ``label`` (= success).

``conversational=True`` gives DPO/KTO rows as message lists instead of strings.

    >>> rows = list(sft_rows(iter_episodes("datasets/alfworld-expert"), style="messages"))   # doctest: +SKIP
    >>> rows[0]["messages"][1]                                                             # doctest: +SKIP
    {'role': 'assistant', 'content': 'go to countertop 1'}
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from oreo_agents.errors import OreoError
from oreo_agents.prompting import PromptFormat, format_for

VIEWS = ("sft", "dpo", "kto")
SFT_STYLES = ("messages", "prompt-completion")
# The columns each view needs from the episode dataset (read nothing else).
COLUMNS = ["episode_id", "env_id", "task_id", "goal", "initial_observation", "steps", "success"]


def _format(row: dict[str, Any], family: str | None) -> PromptFormat:
    try:
        return format_for(family or row["env_id"])
    except KeyError:
        raise OreoError(
            f"episode {row.get('episode_id')}: no prompt format for env '{row['env_id']}'; "
            "pass --family alfworld, math or webshop"
        ) from None


def segments(row: dict[str, Any], fmt: PromptFormat) -> list[tuple[str, str]]:
    """An episode as ``[("context", text), ("reply", text), ...]``; empty contexts (math) are left out."""
    out = [("context", fmt.prompt_text(row["goal"], row["initial_observation"]))]
    steps = row["steps"]
    for k, step in enumerate(steps):
        out.append(("reply", fmt.reply_text(step.get("reply") or step["action"])))
        if k < len(steps) - 1:
            obs = fmt.observation_text(step["observation"])
            if obs:
                out.append(("context", obs))
    return out


def render(segs: list[tuple[str, str]]) -> str:
    """Concatenate segments; a reply gets a newline when more text follows it."""
    parts = []
    for i, (kind, text) in enumerate(segs):
        parts.append(text + ("\n" if kind == "reply" and i < len(segs) - 1 else ""))
    return "".join(parts)


def messages(segs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Segments as chat messages; consecutive replies (math steps) merge into one assistant message, one per line."""
    out: list[dict[str, str]] = []
    for kind, text in segs:
        role = "assistant" if kind == "reply" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def _ids(row: dict[str, Any], with_ids: bool) -> dict[str, Any]:
    return {"episode_id": row["episode_id"], "task_id": row["task_id"]} if with_ids else {}


def sft_rows(
    episodes: Iterable[dict[str, Any]], *, style: str = "messages", family: str | None = None, with_ids: bool = False
) -> Iterator[dict[str, Any]]:
    """SFT records from the successful episodes (rejection-sampling fine-tuning when the data is sampled)."""
    if style not in SFT_STYLES:
        raise OreoError(f"--style: unknown SFT style '{style}' (choose {', '.join(SFT_STYLES)})")
    for row in episodes:
        if not row["success"] or not row["steps"]:
            continue
        segs = segments(row, _format(row, family))
        if style == "messages":
            yield {"messages": messages(segs), **_ids(row, with_ids)}
            continue
        for i, (kind, text) in enumerate(segs):
            if kind == "reply":
                yield {"prompt": render(segs[:i] + [("context", "")]), "completion": text, **_ids(row, with_ids)}


def _split_prompt(row: dict[str, Any], family: str | None, conversational: bool) -> tuple[Any, Any]:
    segs = segments(row, _format(row, family))
    prompt, rest = segs[0][1], segs[1:]
    if conversational:
        return [{"role": "user", "content": prompt}], messages(rest)
    return prompt, render(rest)


def kto_rows(
    episodes: Iterable[dict[str, Any]], *, family: str | None = None, conversational: bool = False, with_ids: bool = False
) -> Iterator[dict[str, Any]]:
    """One unpaired KTO row per episode: prompt, completion (the whole trajectory after the prompt), label = success."""
    for row in episodes:
        if not row["steps"]:
            continue
        prompt, completion = _split_prompt(row, family, conversational)
        yield {"prompt": prompt, "completion": completion, "label": bool(row["success"]), **_ids(row, with_ids)}


def dpo_rows(
    episodes: Iterable[dict[str, Any]],
    *,
    family: str | None = None,
    conversational: bool = False,
    max_pairs_per_task: int | None = None,
    with_ids: bool = False,
    stats: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Preference pairs: a success (chosen) and a failure (rejected) of the same task.

    Per task with ``s`` successes and ``f`` failures, ``max(s, f)`` pairs round-robin (every episode used at least
    once), capped by ``max_pairs_per_task``. Pairs whose prompts differ (the task id was reused for different text)
    are skipped and counted in ``stats["mismatched_prompts"]``. Tasks are held in memory as rendered text.
    """
    by_task: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    order: list[str] = []
    for row in episodes:
        if not row["steps"]:
            continue
        if row["task_id"] not in by_task:
            order.append(row["task_id"])
        prompt, completion = _split_prompt(row, family, conversational)
        by_task[row["task_id"]][0 if row["success"] else 1].append((prompt, completion, row["episode_id"]))
    stats = stats if stats is not None else {}
    stats.setdefault("mismatched_prompts", 0)
    stats.setdefault("tasks_with_pairs", 0)
    for task_id in order:
        wins, losses = by_task[task_id]
        if not wins or not losses:
            continue
        stats["tasks_with_pairs"] += 1
        n = max(len(wins), len(losses))
        if max_pairs_per_task is not None:
            n = min(n, max_pairs_per_task)
        for i in range(n):
            (p_w, chosen, id_w), (p_l, rejected, id_l) = wins[i % len(wins)], losses[i % len(losses)]
            if p_w != p_l:
                stats["mismatched_prompts"] += 1
                continue
            extra = {"task_id": task_id, "chosen_episode_id": id_w, "rejected_episode_id": id_l} if with_ids else {}
            yield {"prompt": p_w, "chosen": chosen, "rejected": rejected, **extra}


def build_view(
    dataset_path: str | os.PathLike, view: str, *, style: str = "messages", family: str | None = None,
    conversational: bool = False, max_pairs_per_task: int | None = None, with_ids: bool = False,
    stats: dict[str, int] | None = None,
):
    """A view of a recorded dataset as a ``datasets.Dataset`` (pass it straight to a TRL trainer)."""
    from datasets import Dataset

    from oreo_agents.recording.dataset import iter_episodes

    episodes = iter_episodes(dataset_path, columns=COLUMNS)
    if view == "sft":
        rows = sft_rows(episodes, style=style, family=family, with_ids=with_ids)
    elif view == "kto":
        rows = kto_rows(episodes, family=family, conversational=conversational, with_ids=with_ids)
    elif view == "dpo":
        rows = dpo_rows(
            episodes, family=family, conversational=conversational, max_pairs_per_task=max_pairs_per_task,
            with_ids=with_ids, stats=stats,
        )
    else:
        raise OreoError(f"--view: unknown view '{view}' (choose {', '.join(VIEWS)})")
    records = list(rows)
    if not records:
        what = {"sft": "successful episodes", "dpo": "tasks with both a success and a failure", "kto": "episodes"}[view]
        raise OreoError(f"{dataset_path}: no {what}, so the {view} view is empty")
    return Dataset.from_list(records)


def check_out_file(out: str | os.PathLike) -> Path:
    """The output file of an export: a .parquet/.jsonl/.json name that is not a folder."""
    out = Path(out)
    if out.suffix not in (".parquet", ".jsonl", ".json"):
        raise OreoError(f"--out {out}: use a .parquet, .jsonl or .json file name")
    if out.is_dir():
        raise OreoError(f"--out {out} is a folder; give a file name")
    return out


def write_view(ds: Any, out: str | os.PathLike) -> Path:
    """Write a view as ``.parquet``, ``.jsonl`` or ``.json`` (by the file's suffix), atomically."""
    out = check_out_file(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OreoError(f"--out {out}: cannot create {out.parent}: {exc.strerror}") from exc
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if out.suffix == ".parquet":
        ds.to_parquet(str(tmp))
    else:
        ds.to_json(str(tmp), lines=out.suffix == ".jsonl", force_ascii=False)
    os.replace(tmp, out)
    return out

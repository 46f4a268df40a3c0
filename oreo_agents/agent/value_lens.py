"""The value lens: what OREO's value model V says about recorded episodes, step by step (its credit assignment).

OREO learns V from sparse terminal rewards; the lens asks whether V learned to tell good states and actions from bad
ones. For every recorded episode it reads V just before each reply (the state s_t the policy acted in) and right after
it (the state a value-guided agent scores), in one value forward per batch of episodes::

    >>> episodes = score_episodes(value_model, tokenizer, rows)      # rows: recorded episodes (dicts)  # doctest: +SKIP
    >>> summary = summarize_lens(episodes)                                                                # doctest: +SKIP
    >>> summary["auc_v0"], summary["ece"]                                                                 # doctest: +SKIP

and :func:`summarize_lens` turns that into the numbers of the report (:mod:`.value_metrics` computes each one):
AUC of V(s_0) and of V at each step for predicting success, the reliability bins and ECE, mean V per step for
successes and failures, and per episode the advantages A_t = V(after step t) - V(before step t) with its decisive
steps. :mod:`oreo_agents.agent.value_report` writes them as Markdown, JSON, plots and traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.agent import value_metrics as M
from oreo_agents.errors import OreoError, SchemaError
from oreo_agents.prompting import encode_episode, format_for


@dataclass
class EpisodeValues:
    """V around every step of one recorded episode."""

    episode_id: str
    task_id: str
    split: str
    task_type: str
    success: bool
    termination: str
    actions: list[str]
    v_before: list[float]  # V(s_t): the state the policy read before reply t
    v_after: list[float]  # V right after reply t (what value-guided selection compares)
    observations: list[str] = field(default_factory=list)

    @property
    def advantages(self) -> list[float]:
        return M.step_advantages(self.v_before, self.v_after)

    @property
    def v0(self) -> float:
        return self.v_before[0]


def score_episodes(value_model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], *, batch_size: int = 8,
                   max_length: int | None = None) -> list[EpisodeValues]:
    """V before and after every reply of each episode (episodes without steps are skipped).

    Each episode is rendered exactly as the learner renders it (:func:`oreo_agents.prompting.encode_episode`: the
    recorded token ids when a model acted), so V is read at the same positions it was trained on: the token before
    reply t's first token, and reply t's last token. Steps past ``max_length`` (default: the model's context) are dropped.
    """
    import torch

    limit = max_length or getattr(value_model.config, "max_position_embeddings", None)
    vocab = value_model.backbone.get_input_embeddings().num_embeddings
    encoded = []
    for row in rows:
        if not row.get("steps"):
            continue
        try:
            fmt = format_for(row["env_id"])
        except KeyError as exc:
            raise SchemaError(f"episode {row.get('episode_id')}: {exc.args[0]}") from exc
        enc = encode_episode(fmt, tokenizer, goal=row["goal"], initial_observation=row["initial_observation"],
                             steps=row["steps"], max_length=limit)
        if not enc.step_starts:
            continue
        if max(enc.input_ids) >= vocab:
            raise OreoError(
                f"episode {row['episode_id']} holds token id {max(enc.input_ids)}, past the value model's vocabulary "
                f"({vocab}): it was recorded with another tokenizer; use the value model trained from that policy"
            )
        encoded.append((row, enc))
    device = next(value_model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][1].input_ids))  # similar lengths per batch
    by_index: dict[int, EpisodeValues] = {}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i][1].input_ids) for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for b, i in enumerate(chunk):  # right padding: causal attention never reads the pads after a real token
                seq = encoded[i][1].input_ids
                ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long, device=device)
                mask[b, : len(seq)] = 1
            values = value_model(ids, mask).float().cpu()
            for b, i in enumerate(chunk):
                row, enc = encoded[i]
                n = len(enc.step_starts)
                steps = row["steps"][:n]
                by_index[i] = EpisodeValues(
                    episode_id=str(row.get("episode_id", "")), task_id=str(row.get("task_id", "")),
                    split=str(row.get("split", "") or "-"), task_type=str(row.get("task_type", "") or "-"),
                    success=bool(row["success"]), termination=str(row.get("termination", "")),
                    actions=[str(s.get("action") or s.get("reply") or "") for s in steps],
                    v_before=[float(values[b, s - 1]) for s in enc.step_starts],
                    v_after=[float(values[b, e - 1]) for e in enc.step_ends],
                    observations=[str(s.get("observation", "")) for s in steps],
                )
    return [by_index[i] for i in range(len(encoded))]


def summarize_lens(episodes: Sequence[EpisodeValues], *, bins: int = 10, top: int = 3) -> dict[str, Any]:
    """Every number of the value report, from scored episodes (JSON-ready; None where a metric is undefined)."""
    if not episodes:
        raise OreoError("value lens: no episode with at least one step to score")
    labels = [e.success for e in episodes]
    state_v = [v for e in episodes for v in e.v_before]
    state_y = [e.success for e in episodes for _ in e.v_before]
    wins = [e for e in episodes if e.success]
    fails = [e for e in episodes if not e.success]
    length = max(len(e.v_before) for e in episodes)
    splits = {}
    for split in sorted({e.split for e in episodes}):
        group = [e for e in episodes if e.split == split]
        splits[split] = {
            "episodes": len(group),
            "successes": sum(e.success for e in group),
            "mean_v0": _mean([e.v0 for e in group]),
            "auc_v0": M.auc([e.v0 for e in group], [e.success for e in group]),
            "ece": M.expected_calibration_error([v for e in group for v in e.v_before],
                                                [e.success for e in group for _ in e.v_before], bins),
        }
    return {
        "episodes": len(episodes),
        "successes": len(wins),
        "states": len(state_v),
        "auc_v0": M.auc([e.v0 for e in episodes], labels),
        "auc_states": M.auc(state_v, state_y),
        "auc_last": M.auc([e.v_after[-1] for e in episodes], labels),
        "auc_by_step": M.auc_by_step([e.v_before for e in episodes], labels, length),
        "ece": M.expected_calibration_error(state_v, state_y, bins),
        "ece_v0": M.expected_calibration_error([e.v0 for e in episodes], labels, bins),
        "reliability": [b.__dict__ for b in M.reliability_bins(state_v, state_y, bins)],
        "mean_v_success": M.mean_by_step([e.v_before for e in wins], length),
        "mean_v_failure": M.mean_by_step([e.v_before for e in fails], length),
        "mean_v_success_to_end": M.mean_by_step([e.v_before[::-1] for e in wins], length),
        "mean_v_failure_to_end": M.mean_by_step([e.v_before[::-1] for e in fails], length),
        "splits": splits,
        "decisive": [
            {"episode_id": e.episode_id, "task_id": e.task_id, "split": e.split, "success": e.success,
             "steps": [{"step": t, "action": e.actions[t], "v_before": e.v_before[t], "v_after": e.v_after[t],
                        "advantage": e.advantages[t]} for t in M.decisive_steps(e.advantages, top)]}
            for e in episodes
        ],
    }


def pick_traces(episodes: Sequence[EpisodeValues]) -> list[EpisodeValues]:
    """One success and one failure to show step by step: held-out ones first, then the one nearest 8 steps (readable)."""
    picked = []
    for success in (True, False):
        group = [e for e in episodes if e.success == success]
        if group:
            picked.append(max(group, key=lambda e: (e.split != "train", -abs(len(e.actions) - 8))))
    return picked


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def load_value_and_tokenizer(path: str | Path, *, device: str | None = None) -> tuple[Any, Any]:
    """A value model folder saved by ``train`` and the tokenizer saved beside it (one line naming --value if not)."""
    from oreo_agents.agent.agent import load_value
    from oreo_agents.models.loading import load_tokenizer

    value = load_value(path, device=device)
    try:
        tokenizer = load_tokenizer(path)
    except Exception as exc:  # noqa: BLE001 - a folder without tokenizer files is the user's input
        raise OreoError(f"--value {path}: no tokenizer beside the value model ({str(exc).splitlines()[0][:200]})") from exc
    return value, tokenizer

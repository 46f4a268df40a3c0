"""Teacher-forced step accuracy of a policy on recorded expert episodes, per action verb.

For each expert step the policy reads the expert's history and predicts the reply greedily, token by token, with the
expert's earlier tokens of that reply given (teacher forcing). A step counts as right when every token matches; the
"arguments" count leaves out the first token (the verb), i.e. it asks "given the verb, are the object and receptacle
right?". This is how docs/results/alfworld-tiny.md separates *deciding* to take from *naming* what to take.

    python docs/results/step_accuracy.py runs/sft/policy datasets/expert-valid_seen [more datasets ...]
"""

from __future__ import annotations

import collections
import sys

import torch

from oreo_agents.learning import data as D
from oreo_agents.recording.dataset import load_episode_rows
from oreo_agents.models.loading import load_policy, load_tokenizer


def step_accuracy(policy_dir: str, dataset: str) -> tuple[dict[str, list[int]], int, int]:
    """``{verb: [whole right, arguments right, steps]}``, episodes with every step right, episodes."""
    tok, model = load_tokenizer(policy_dir), load_policy(policy_dir).eval()
    rows = load_episode_rows([dataset])
    items = D.encode_episodes(rows, tok, max_length=1 << 16)
    stats: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    all_right = 0
    for item, row in zip(items, rows):
        ids = torch.tensor([item["input_ids"]])
        with torch.no_grad():
            hits = (model(input_ids=ids).logits[0, :-1].argmax(-1) == ids[0, 1:]).tolist()
        whole: dict[int, bool] = collections.defaultdict(lambda: True)
        args: dict[int, bool] = collections.defaultdict(lambda: True)
        seen: set[int] = set()
        for t, k in enumerate(item["step_ids"][1:]):  # token t + 1 is predicted at position t
            if k < 0:
                continue
            whole[k] &= hits[t]
            if k in seen:
                args[k] &= hits[t]
            seen.add(k)
        for k, step in enumerate(row["steps"]):
            s = stats[step["action"].split()[0]]
            s[0], s[1], s[2] = s[0] + whole[k], s[1] + args[k], s[2] + 1
        all_right += all(whole[k] for k in range(len(row["steps"])))
    return stats, all_right, len(items)


if __name__ == "__main__":
    torch.set_num_threads(1)
    policy, *datasets = sys.argv[1:]
    for ds in datasets:
        stats, right, n = step_accuracy(policy, ds)
        total = sum(s[0] for s in stats.values()), sum(s[2] for s in stats.values())
        verbs = "  ".join(f"{v} {w}/{m} (args {a}/{m})" for v, (w, a, m) in sorted(stats.items()) if m >= 5)
        print(f"{ds}: steps right {total[0]}/{total[1]} = {total[0] / total[1]:.0%}; {verbs}; episodes all right {right}/{n}")

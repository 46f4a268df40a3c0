"""Recorded episodes -> token tensors for the learner, and the reference log-prob cache.

Episode rows come from :func:`oreo_agents.recording.dataset.load_episode_rows` (the one loader, torch-free); each
episode is rendered with :func:`oreo_agents.prompting.encode_episode` (recorded token ids are used when present; only
reply tokens are actions) and batches are padded on the right. Tensors come out *aligned on states* as :mod:`.losses` expects::

    >>> rows = load_episode_rows(["datasets/alfworld-expert"])             # doctest: +SKIP
    >>> items = encode_episodes(rows, tokenizer, max_length=1024)          # doctest: +SKIP
    >>> batch = collate(items[:4], pad_id=tokenizer.pad_token_id)          # doctest: +SKIP
    >>> batch["mask"][:, t]   # 1 when token t+1 is an action token         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

import numpy as np
import torch

from oreo_agents.envs.core import TERMINATION_ABORTED
from oreo_agents.errors import OreoError, SchemaError
from oreo_agents.learning.vocab_chunks import chosen_logprobs, log_softmax_rows
from oreo_agents.prompting import encode_episode, format_for
from oreo_agents.recording.dataset import SOURCE_KEY


# --- episodes (rows from recording.dataset.load_episode_rows) --------------------------------------------------------
def select_episodes(rows: list[dict[str, Any]], algo: str) -> list[dict[str, Any]]:
    """The episodes each algorithm trains on (see docs/learning.md)."""
    if algo == "sft":
        chosen = [r for r in rows if r["success"]]
        what = "successful episodes"
    elif algo == "rft":
        # Rejection sampling: the policy's own rollouts (model/agent), successes only, each distinct reply sequence once.
        seen: set[tuple] = set()
        chosen = []
        for r in rows:
            own = (r.get("metadata") or {}).get("policy", "") in ("model", "agent")
            key = (r["task_id"], tuple(s["action"] for s in r["steps"]))
            if own and r["success"] and key not in seen:
                seen.add(key)
                chosen.append(r)
        what = "successful episodes recorded by a model policy (collect with --policy model first)"
    else:
        chosen, what = [r for r in rows if r["steps"]], "episodes with at least one step"
    if not chosen:
        raise SchemaError(f"--algo {algo} needs {what}, and the dataset has none")
    return chosen


def dpo_pairs(rows: list[dict[str, Any]], seed: int = 0) -> list[tuple[int, int]]:
    """(success index, failure index) pairs on the same task_id: every success once, failures reused round-robin.

    Aborted episodes (stopped from outside, no outcome) are neither: they never lost, so they are no rejected side.
    """
    rng = np.random.default_rng(seed)
    by_task: dict[str, tuple[list[int], list[int]]] = {}
    for i, r in enumerate(rows):
        if r.get("termination") == TERMINATION_ABORTED:
            continue
        wins, losses = by_task.setdefault(r["task_id"], ([], []))
        (wins if r["success"] else losses).append(i)
    pairs = []
    for task in sorted(by_task):
        wins, losses = by_task[task]
        if wins and losses:
            losses = list(rng.permutation(losses))
            pairs += [(w, int(losses[j % len(losses)])) for j, w in enumerate(wins)]
    if not pairs:
        raise SchemaError("--algo dpo needs tasks with both a successful and a failed episode; the dataset has none")
    return pairs


def episode_texts(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    """The text segments of episodes as the prompt format renders them (to train a from-scratch tokenizer on)."""
    for r in rows:
        fmt = format_for(r["env_id"])
        yield fmt.prompt_text(r["goal"], r["initial_observation"])
        for s in r["steps"]:
            yield fmt.reply_text(s.get("reply") or s["action"]) + ("\n" if fmt.reply_end == "newline" else "")
            yield fmt.observation_text(s["observation"])


# --- tokens ----------------------------------------------------------------------------------------------------------
def _tokenizer_key(name: str) -> str:
    """What identifies a tokenizer in ``metadata.tokenizer`` (``name@vocab-hash``): the hash; a bare name is itself."""
    return name.rsplit("@", 1)[-1] if "@" in name else name


def recorded_ids_usable(row: dict[str, Any], tokenizer: Any, model_tokenizer: str) -> bool:
    """Whether ``row``'s recorded token ids are the model's own: recorded by the same tokenizer (``metadata.tokenizer``
    vs ``model_tokenizer``), or by an unnamed one whose ids all fit the model's vocabulary (else :class:`OreoError`).
    Episodes without recorded ids (expert data) return True: they are rendered from text either way."""
    if not any(s.get("completion_token_ids") for s in row["steps"]):
        return True
    recorded = str((row.get("metadata") or {}).get("tokenizer") or "")
    if recorded:  # a name without the vocabulary hash cannot be checked: the text is the safe side
        return _tokenizer_key(recorded) == _tokenizer_key(model_tokenizer)
    top = max(int(t) for s in row["steps"] for part in ("prompt_token_ids", "completion_token_ids") for t in (s.get(part) or [0]))
    if top >= len(tokenizer):
        raise OreoError(
            f"dataset file {row.get(SOURCE_KEY, '?')}: episode {row['episode_id']} holds token id {top}, outside the "
            f"model's tokenizer {model_tokenizer} (vocabulary {len(tokenizer)}), and names no tokenizer in metadata.tokenizer; "
            "train with the model that recorded it"
        )
    return True


def encode_episodes(rows: Sequence[dict[str, Any]], tokenizer: Any, *, max_length: int) -> list[dict[str, Any]]:
    """One item per episode: ``input_ids``, ``action_mask``, ``step_ids`` (reply k's tokens = k, else -1), reward...

    Recorded token ids are spliced in only when ``metadata.tokenizer`` is the model's tokenizer; episodes recorded with
    another tokenizer are re-tokenized from their text (one warning line per file names both tokenizers). Episodes
    whose first reply does not fit in ``max_length`` cannot train anything and raise a clear error.
    """
    from oreo_agents.models.policy import tokenizer_id

    model_tokenizer = tokenizer_id(tokenizer)
    retokenized: dict[tuple[str, str], int] = {}
    items = []
    for i, r in enumerate(rows):
        try:
            fmt = format_for(r["env_id"])
        except KeyError as exc:
            raise SchemaError(f"episode {r['episode_id']}: {exc.args[0]}") from exc
        own_ids = recorded_ids_usable(r, tokenizer, model_tokenizer)
        if not own_ids:
            key = (str(r.get(SOURCE_KEY, "?")), str(r["metadata"]["tokenizer"]))
            retokenized[key] = retokenized.get(key, 0) + 1
        enc = encode_episode(
            fmt, tokenizer, goal=r["goal"], initial_observation=r["initial_observation"], steps=r["steps"], max_length=max_length,
            use_recorded_ids=own_ids,
        )  # fmt: skip
        if not any(enc.action_mask):
            raise OreoError(f"episode {r['episode_id']}: its first reply ends past --max-length {max_length}; raise it")
        step_ids = [-1] * len(enc.input_ids)
        for k, (a, b) in enumerate(zip(enc.step_starts, enc.step_ends)):
            step_ids[a:b] = [k] * (b - a)
        items.append(
            dict(
                index=i,
                input_ids=enc.input_ids,
                action_mask=enc.action_mask,
                step_ids=step_ids,
                reward=float(r["total_reward"]),
                success=bool(r["success"]),
                # Not finished where its tokens end: stopped from outside (no outcome) or cut at --max-length.
                truncated=bool(enc.truncated or r.get("termination") == TERMINATION_ABORTED),
                task_id=r["task_id"],
            )
        )
    if retokenized:
        from oreo_agents.console import console

        for (source, recorded), n in sorted(retokenized.items()):
            console.print(f"[yellow]warning:[/] {source}: {n} episode(s) recorded with tokenizer {recorded}, not the model's "
                          f"{model_tokenizer}: their token ids are ignored and their text re-tokenized", soft_wrap=True)
    return items


def length_grouped_micro_batches(idx: Sequence[int], length: Callable[[int], int], size: int) -> list[list[int]]:
    """Split one update's units ``idx`` into micro-batches of ``size`` with similar lengths, longest first.

    Padding then costs little, and an out-of-memory shows on the first micro-batch. The update's set of units is
    unchanged and the split is a pure function of ``idx`` (ties keep their order), so resume stays bit-identical.
    """
    order = sorted(idx, key=lambda i: -length(i))  # stable: equal lengths keep the update's order
    return [order[i : i + size] for i in range(0, len(order), size)] or [[]]


def collate(items: Sequence[dict[str, Any]], *, pad_id: int, ref: "RefCache | None" = None) -> dict[str, torch.Tensor]:
    """Right-padded ``[B, T]`` tensors, aligned on states (column t = state ending at token t; see :mod:`.losses`).

    ``mask`` = token t+1 is an action; ``reply_end`` = token t is a reply's last token (the state right after a reply,
    where value-guided agents read V); ``step_ids`` = step of the action chosen at t (-1 otherwise).
    """
    T = max(len(it["input_ids"]) for it in items)
    B = len(items)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    attn = torch.zeros(B, T, dtype=torch.long)
    act = torch.zeros(B, T + 1, dtype=torch.float32)  # one spare column so "next token" reads past the end as 0
    steps = torch.full((B, T + 1), -1, dtype=torch.long)
    ref_logp = torch.zeros(B, T)
    for b, it in enumerate(items):
        n = len(it["input_ids"])
        ids[b, :n] = torch.tensor(it["input_ids"])
        attn[b, :n] = 1
        act[b, :n] = torch.tensor(it["action_mask"], dtype=torch.float32)
        steps[b, :n] = torch.tensor(it["step_ids"])
        if ref is not None:
            ref_logp[b, : n - 1] = torch.from_numpy(ref.chosen(it["index"]))
    mask = act[:, 1:]
    reply_end = act[:, :T] * (1 - act[:, 1:])
    out = dict(
        input_ids=ids,
        attention_mask=attn,
        mask=mask,
        reply_end=reply_end,
        step_ids=steps[:, 1:],
        rewards=torch.tensor([it["reward"] for it in items], dtype=torch.float32),
        success=torch.tensor([it["success"] for it in items]),
        truncated=torch.tensor([bool(it.get("truncated", False)) for it in items]),
        index=torch.tensor([it["index"] for it in items]),
    )
    if ref is not None:
        out["ref_logp"] = ref_logp
    return out


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``out[:, t] = log softmax(logits[:, t])[input_ids[:, t+1]]`` (state-aligned, fp32; the last column is 0).

    Computed a chunk of positions at a time (:mod:`.vocab_chunks`): no ``[B, T, V]`` fp32 copy or log-softmax is made
    or kept for backward.
    """
    return chosen_logprobs(logits, input_ids)


# --- reference cache -------------------------------------------------------------------------------------------------
def model_fingerprint(path: Path) -> str:
    """Cheap identity of a model folder: config + each weight file's name, size and first/last MiB."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, f.stat().st_size - (1 << 20)))
            h.update(fh.read())
    return h.hexdigest()


def items_fingerprint(items: Sequence[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(np.asarray(it["input_ids"], dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def numerics(model: Any, autocast: Callable[[], ContextManager[Any]]) -> str:
    """How ``model`` computes under ``autocast``: its weights' dtype and the autocast dtype, e.g. ``float32/bfloat16``."""
    device = next(model.parameters()).device.type
    with autocast():
        mixed = str(torch.get_autocast_dtype(device)).removeprefix("torch.") if torch.is_autocast_enabled(device) else "off"
    return f"{str(next(model.parameters()).dtype).removeprefix('torch.')}/{mixed}"


class RefCache:
    """pi_ref's log-probs over a dataset, computed once and stored under ``<run>/ref_cache/<hash>/``.

    ``chosen(i)`` gives episode i's state-aligned log-probs of the tokens taken (length ``len(ids) - 1``); with
    ``full=True`` also the whole log-distribution at each action state (float16, memory-mapped) for the exact KL.
    The hash covers the model folder, every token id and the numerics (weights dtype, autocast dtype), so a different
    model, dataset or precision never reuses a stale cache.
    """

    def __init__(self, root: Path):
        self.root = root
        self._chosen = np.load(root / "chosen.npy", mmap_mode="r")
        self._offsets = np.load(root / "offsets.npy")
        self._full = np.load(root / "full.npy", mmap_mode="r") if (root / "full.npy").is_file() else None
        self._full_offsets = np.load(root / "full_offsets.npy") if self._full is not None else None

    @property
    def has_full(self) -> bool:
        return self._full is not None

    def chosen(self, i: int) -> np.ndarray:
        return np.array(self._chosen[self._offsets[i] : self._offsets[i + 1]], dtype=np.float32)

    def full(self, i: int) -> np.ndarray:
        """``[n_action_states, V]`` float16 log-probs, in the order of the episode's action states (kept in float16:
        :func:`.vocab_chunks.logprobs_and_kl` upcasts a chunk at a time, so no fp32 ``[N, V]`` copy is made)."""
        assert self._full is not None and self._full_offsets is not None
        return np.array(self._full[self._full_offsets[i] : self._full_offsets[i + 1]])

    @classmethod
    def build(
        cls,
        model: Any,
        model_path: Path,
        items: Sequence[dict[str, Any]],
        cache_root: Path,
        *,
        pad_id: int,
        full: bool,
        batch_size: int = 4,
        progress: Any = None,
        autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    ) -> "RefCache":
        """Load the cache for (model, items) from ``cache_root`` or compute it (rich ``progress`` optional).

        ``autocast`` is the context the policy's training forward runs under (``accelerator.autocast``): pi_ref's
        log-probs must be computed the same way, or log(pi/pi_ref) is not 0 at the first update (bf16 vs fp32 logits).
        """
        precision = numerics(model, autocast)  # a cache computed at another precision is not reused
        ident = f"{model_fingerprint(model_path)}|{items_fingerprint(items)}|full={full}|{precision}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:16]
        root = cache_root / key
        if (root / "done.json").is_file():
            return cls(root)
        tmp = cache_root / f"{key}.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        lengths = [len(it["input_ids"]) - 1 for it in items]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n_act = [int(sum(it["action_mask"][1:])) for it in items]
        full_offsets = np.concatenate([[0], np.cumsum(n_act)]).astype(np.int64)
        chosen = np.zeros(int(offsets[-1]), dtype=np.float32)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        dist = np.lib.format.open_memmap(tmp / "full.npy", mode="w+", dtype=np.float16, shape=(int(full_offsets[-1]), vocab)) if full else None
        task = progress.add_task("reference log-probs", total=len(items)) if progress is not None else None
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast():
            for s in range(0, len(items), batch_size):
                chunk = items[s : s + batch_size]
                batch = collate(chunk, pad_id=pad_id)
                device = next(model.parameters()).device
                logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
                logp = token_logprobs(logits, batch["input_ids"].to(device)).cpu()
                for b, it in enumerate(chunk):
                    i = s + b
                    chosen[offsets[i] : offsets[i + 1]] = logp[b, : lengths[i]].numpy()
                    if dist is not None:
                        at = int(full_offsets[i])
                        for part in log_softmax_rows(logits[b][batch["mask"][b].bool().to(device)]):
                            dist[at : at + len(part)] = part.cpu().numpy()
                            at += len(part)
                if task is not None:
                    progress.advance(task, len(chunk))
        model.train(was_training)
        np.save(tmp / "chosen.npy", chosen)
        np.save(tmp / "offsets.npy", offsets)
        if dist is not None:
            dist.flush()
            del dist
            np.save(tmp / "full_offsets.npy", full_offsets)
        (tmp / "done.json").write_text(json.dumps({"episodes": len(items), "full": full, "vocab": vocab}))
        if root.exists():  # another process finished first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(root)
        return cls(root)

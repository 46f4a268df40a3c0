"""Training speed: an OREO update vs an SFT update, and our SFT tokens/s vs TRL's SFTTrainer, same model and data.

    python benchmarks/bench_train.py                  # tiny model (2.1M params), 1 thread
    python benchmarks/bench_train.py --preset small --updates 6 --threads 2

Targets: OREO/SFT update time <= 2.1x (one policy + one value forward/backward per micro-batch, reference log-probs
cached), ours/TRL SFT tokens/s >= 1.0x. Both ratios are printed; numbers in docs/learning.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_dataset(path: Path, n_tasks: int) -> Path:
    """ALFWorld-shaped episodes (success = finds and places the object; failure = wanders), written as real Parquet."""
    import datasets

    from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord, episode_features
    from oreo_agents.turns import StepRecord

    rows = []
    for t in range(n_tasks):
        for ok in (True, False):
            obj, room, dest = f"object{t % 7}", f"cabinet {t % 5 + 1}", f"shelf {t % 3 + 1}"
            plan = (
                [(f"go to {room}", f"You arrive at {room}. On the {room}, you see a {obj} 1."), (f"take {obj} 1 from {room}", f"You pick up the {obj} 1."),
                 (f"go to {dest}", f"You arrive at {dest}."), (f"move {obj} 1 to {dest}", f"You move the {obj} 1 to the {dest}.")]
                if ok else [("look", "Nothing happens."), (f"go to {dest}", f"You arrive at {dest}. You see nothing."), ("inventory", "You carry nothing.")] * 2
            )  # fmt: skip
            steps = [StepRecord(action=a, observation=o, reward=0.0) for a, o in plan]
            if ok:
                steps[-1].reward, steps[-1].won = 1.0, True
            rec = EpisodeRecord(
                env_id="oreo_agents/ALFWorld-v0", task_id=f"t{t}", split="train", task_type="pick_and_place_simple",
                goal=f"put a {obj} in {dest}.", initial_observation=f"You are in a room with a {room} and a {dest}.\nYour task is to: put a {obj} in {dest}.",
                steps=steps, metadata=EpisodeMetadata(policy="model", seed=t), sample_index=int(not ok),
            )  # fmt: skip
            rows.append(rec.to_row())
    datasets.Dataset.from_list(rows, features=episode_features()).to_parquet(str(path))
    return path


def time_updates(trainer, n: int) -> tuple[float, float]:
    """(seconds per update, tokens per second) of ``n`` updates after one warm-up update."""
    per_epoch = -(-trainer.units() // trainer.cfg.batch_size)
    trainer.one_update(trainer.update_indices(0, per_epoch)[1])  # warm-up (allocator, first-call overheads)
    tokens, t0 = 0, time.perf_counter()
    for s in range(1, n + 1):
        tokens += trainer.one_update(trainer.update_indices(s, per_epoch)[1])["tokens"]
    dt = time.perf_counter() - t0
    return dt / n, tokens / dt


def build(algo: str, data: Path, out: Path, cache: Path, args):
    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig

    cfg = TrainConfig(algo=algo, data=[str(data)], out=str(out), model=args.preset, model_cache=str(cache),
                      batch_size=args.batch, micro_batch_size=args.micro, epochs=100, plot=False,
                      mixed_precision="bf16" if getattr(args, "bf16", False) else "no")  # fmt: skip
    tr = make_trainer(cfg)
    tr.prepare_data()
    tr.setup_models(10_000)
    return tr


def trl_sft_tokens_per_s(trainer, n: int, out: Path, *, bf16: bool) -> float:
    """TRL SFTTrainer on the same tokenized episodes (completion-only loss on the same action tokens), same batch and
    the same precision (SFTConfig defaults to bf16=True, even on CPU: comparing that with our fp32 would not be fair)."""
    import datasets
    from trl import SFTConfig
    from trl import SFTTrainer as TRLSFT

    from oreo_agents.models.loading import load_policy

    items = [trainer.items[i] for i in range(trainer.units())]
    ds = datasets.Dataset.from_list([{"input_ids": it["input_ids"], "completion_mask": it["action_mask"]} for it in items])
    accum = trainer.cfg.batch_size // trainer.cfg.micro_batch_size
    cfg = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=trainer.cfg.micro_batch_size, gradient_accumulation_steps=accum,
        max_steps=n + 1, learning_rate=1e-3, lr_scheduler_type="cosine", adam_beta2=0.95,
        completion_only_loss=True, max_length=trainer.cfg.max_length, packing=False, report_to="none", save_strategy="no",
        logging_steps=1000, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0, bf16=bf16,
    )  # fmt: skip
    model = load_policy(trainer.model_path)
    trl = TRLSFT(model=model, args=cfg, train_dataset=ds, processing_class=trainer.tokenizer)
    stamps: list[float] = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    trl.add_callback(Clock())
    trl.train()
    # tokens of updates 2..n+1 (the first is warm-up): the same sampler order is not guaranteed, so use the mean length
    mean_tokens = sum(len(it["input_ids"]) for it in items) / len(items)
    return n * trainer.cfg.batch_size * mean_tokens / (stamps[-1] - stamps[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-trl", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_dataset(tmp / "data.parquet", args.tasks)
        cache = tmp / "models"
        sft = build("sft", data, tmp / "sft", cache, args)
        oreo = build("oreo", data, tmp / "oreo", cache, args)
        sft.items = oreo.items  # same batch content for both (SFT would otherwise drop the failures)
        t_sft, tok_sft = time_updates(sft, args.updates)
        t_oreo, _ = time_updates(oreo, args.updates)
        print(f"model {args.preset}: {sum(p.numel() for p in sft.models['policy'].parameters()) / 1e6:.1f}M params, batch {args.batch} x micro {args.micro}, {args.threads} thread(s)")
        print(f"SFT update  {t_sft * 1000:8.1f} ms   ({tok_sft:,.0f} tokens/s)")
        print(f"OREO update {t_oreo * 1000:8.1f} ms")
        print(f"OREO / SFT update time: {t_oreo / t_sft:.2f}x  (target <= 2.1x)")
        if not args.skip_trl:
            from accelerate.state import AcceleratorState

            for bf16 in (False, True):
                AcceleratorState._reset_state(reset_partial_state=True)  # a process holds one precision at a time
                args.bf16 = bf16
                name = "bf16 autocast" if bf16 else "fp32"
                sft_only = build("sft", data, tmp / f"sft-{name[:4]}", cache, args)
                _, ours = time_updates(sft_only, args.updates)
                theirs = trl_sft_tokens_per_s(sft_only, args.updates, tmp / f"trl-{name[:4]}", bf16=bf16)
                print(f"SFT tokens/s, {name}: ours {ours:,.0f}  TRL SFTTrainer {theirs:,.0f}")
                print(f"ours / TRL SFT tokens/s, {name}: {ours / theirs:.2f}x  (target >= 1.0x)")


if __name__ == "__main__":
    main()

"""GPU check of the learner and the HF generation backend on a random Qwen2.5-1.5B-shaped bf16 checkpoint.

    bash benchmarks/gpu_check.sh            # one H200: ~4 minutes (measured 2026-12-04)
    SMALL=1 bash benchmarks/gpu_check.sh    # the same code paths at a tiny size, on CPU too (CI runs this)

Prints, for OREO with the paper's recipe (bf16 autocast, fp32 masters, lr 5e-6, Adam(0.9, 0.95), clip 1.0,
micro-batch 2 x 4096 tokens, gradient checkpointing, exact KL with pi_ref recomputed online):
s/update, tokens/s, MFU, peak memory, the share of policy weights changed after 2 updates, whether activation
checkpointing ran; the same under ``configs/accelerate/fsdp.yaml`` (and ``deepspeed-zero2.yaml`` where deepspeed is
installed) on 1 process; then the HF backend's generation tokens/s at batch 1 and 64. A section whose package or
hardware is missing prints ``SKIP <section>: <reason>``. No data or model is downloaded: the checkpoint is random and
the episodes synthetic (ALFWorld-shaped: observations and replies alternating, ~25% reply tokens).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Qwen2.5-1.5B (config.json of the release), and a tiny model of the same architecture for SMALL runs.
QWEN_1_5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True)  # fmt: skip
SMALL_MODEL = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=1024, rope_theta=10000.0, tie_word_embeddings=True)  # fmt: skip
H200_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak (NVIDIA H200 SXM datasheet)


def build_checkpoint(out: Path, shape: dict, device: str, dtype: str = "bfloat16") -> Path:
    """A random bf16 Qwen2 checkpoint (``"dtype": "bfloat16"``, as every release ships) + a word-level tokenizer whose
    vocabulary covers every id, so decoding random samples works."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from oreo_agents.models.loading import quiet_transformers

    quiet_transformers()

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, shape["vocab_size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    config = Qwen2Config(**shape, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    fast.save_pretrained(out)
    (out / "oreo_tiny.json").write_text(json.dumps({"preset": "gpu-check"}))  # load the tokenizer as saved
    return out


def synthetic_items(n: int, length: int, vocab: int, seed: int = 0, turn: tuple[int, int, int] = (200, 36, 100)) -> list[dict]:
    """Episodes of ``length`` tokens: a prompt, then (reply, observation) turns; ``turn`` = their token counts
    (ALFWorld-like by default: ~26% reply tokens)."""
    import random

    prompt, reply, obs = turn
    rng = random.Random(seed)
    items = []
    for i in range(n):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        act, steps = [0] * length, [-1] * length
        pos, k = min(prompt, length // 4), 0
        while pos < length:
            end = min(pos + reply, length)
            act[pos:end] = [1] * (end - pos)
            steps[pos:end] = [k] * (end - pos)
            pos, k = end + obs, k + 1
        items.append(dict(index=i, input_ids=ids, action_mask=act, step_ids=steps, reward=float(i % 2), success=bool(i % 2), task_id=f"t{i}"))
    return items


def train_flops_per_token(shape: dict, seq: int) -> float:
    """Model FLOPs per token of one OREO micro-batch (recompute excluded, as MFU counts): policy and value forward +
    backward (6 N each; the value model has no LM head), pi_ref forward (2 N), causal attention 6 L d T (train) /
    2 L d T (forward)."""
    d, L, V, ff = shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"], shape["intermediate_size"]
    kv = d * shape["num_key_value_heads"] // shape["num_attention_heads"]
    layer = 2 * d * d + 2 * d * kv + 3 * d * ff
    body, head = L * layer, d * V
    attn_train, attn_fwd = 6 * L * d * seq, 2 * L * d * seq
    return 6 * (body + head) + attn_train + 6 * body + attn_train + 2 * (body + head) + attn_fwd


def count_checkpointed_calls(model) -> list[int]:
    """Wrap every layer's checkpoint function with a counter (transformers binds it at enable time)."""
    counter = [0]
    for m in model.modules():
        fn = getattr(m, "_gradient_checkpointing_func", None)
        if getattr(m, "gradient_checkpointing", False) and fn is not None:
            def counted(*a, _fn=fn, **k):
                counter[0] += 1
                return _fn(*a, **k)

            m._gradient_checkpointing_func = counted
    return counter


def run_train(args, model_dir: Path, out: Path) -> dict:
    """Two OREO updates of the paper recipe on synthetic episodes; returns the measurements."""
    import torch
    from safetensors.torch import load_file

    from oreo_agents.learning import distributed as dist
    from oreo_agents.learning import make_trainer
    from oreo_agents.learning.config import TrainConfig
    from oreo_agents.models.loading import load_tokenizer

    shape = SMALL_MODEL if args.small else QWEN_1_5B
    cfg = TrainConfig(algo="oreo", model=str(model_dir), out=str(out), batch_size=args.batch, micro_batch_size=2,
                      max_length=args.seq, learning_rate=5e-6, value_learning_rate=5e-6, gradient_checkpointing=True,
                      ref_distributions="online", mixed_precision="auto", plot=False)  # fmt: skip
    tr = make_trainer(cfg)
    tr.model_path, tr.tokenizer = model_dir, load_tokenizer(model_dir)
    tr.pad_id = int(tr.tokenizer.pad_token_id)
    tr.items = synthetic_items(args.batch * 2, args.seq, shape["vocab_size"])
    cuda = torch.cuda.is_available()
    t_setup = time.perf_counter()
    tr.setup_models(10)
    t_setup = time.perf_counter() - t_setup
    model = next(iter(tr.models.values()))
    calls = count_checkpointed_calls(tr.acc.unwrap_model(model))
    start = {k: v for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, tokens = [], []
    for step in range(2):
        t0 = time.perf_counter()
        rec = tr.one_update(tr.update_indices(step, 2)[1])
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        tokens.append(rec["tokens"])
    micro = -(-args.batch // 2) // tr.acc.num_processes
    weights = dist.sub_state_dict(dist.full_state_dict(tr.acc, model), "policy.")
    changed = total = 0
    for k, v in start.items():
        if k in weights:
            changed += int((weights[k].float() != v.float()).sum())
            total += v.numel()
    tok_s = tokens[-1] / times[-1]
    res = {
        "backend": tr.backend, "processes": tr.acc.num_processes, "mixed_precision": tr.acc.mixed_precision,
        "setup_s": round(t_setup, 1), "s_per_update": round(times[-1], 3), "first_update_s": round(times[0], 3),
        "updates_timed": 1, "batch": args.batch, "seq": args.seq, "tokens_per_s": round(tok_s, 1),
        "weights_changed": round(changed / max(total, 1), 4),
        "master_dtype": master_dtype(tr, model),
        "checkpointed_layer_calls_per_update": calls[0] // 2,
        "expected_checkpointed_calls": 2 * shape["num_hidden_layers"] * micro,
        "loss_v": rec.get("loss_v"), "grad_norm": rec.get("grad_norm", rec.get("grad_norm_joint")),
    }  # fmt: skip
    if cuda:
        res["peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        res["mfu"] = round(tok_s * train_flops_per_token(shape, args.seq) / H200_BF16_FLOPS, 4)
    return res


def master_dtype(tr, model) -> str:
    """The dtype the optimizer steps: the module's parameters, except under DeepSpeed ZeRO, whose optimizer keeps fp32
    partitions of bf16 modules (deepspeed 0.18.2 runtime/zero/stage_1_and_2.py:292 ``single_partition_of_fp32_groups``,
    stage3.py:366 ``fp32_partitioned_groups_flat``; accelerate's DeepSpeedOptimizerWrapper holds it as ``.optimizer``)."""
    module = str(next(p for p in model.parameters()).dtype)
    zero = getattr(next(iter(tr.optimizers.values())), "optimizer", None)
    groups = getattr(zero, "single_partition_of_fp32_groups", None) or getattr(zero, "fp32_partitioned_groups_flat", None)
    return f"{groups[0].dtype} (ZeRO partitions; module {module})" if groups else module


def run_generation(args, model_dir: Path) -> dict:
    import random

    import torch

    from oreo_agents.models.loading import load_policy, load_tokenizer
    from oreo_agents.models.generation import HFBackend, SamplingParams

    cuda = torch.cuda.is_available()
    model = load_policy(model_dir, dtype=torch.bfloat16 if cuda else torch.float32, device="cuda" if cuda else "cpu")
    backend = HFBackend(model, load_tokenizer(model_dir), max_batch_size=64, prefix_cache_mb=0)
    vocab = model.config.vocab_size
    rng = random.Random(0)
    params = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, seed=0)
    out = {}
    for batch in (1, 64):
        for timed in (False, True):  # a warm-up call first (kernels, allocator); fresh prompts each call
            prompts = [[rng.randrange(3, vocab) for _ in range(args.prompt)] for _ in range(batch)]
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            done = backend.generate(prompts, params)
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        n = sum(len(c[0].token_ids) for c in done)
        out[f"batch_{batch}"] = {"tokens_per_s": round(n / dt, 1), "new_tokens": n, "seconds": round(dt, 2)}
    return out


def run_agent(args, model_dir: Path) -> dict:
    """Value-guided selection on the device: one episode of ``--turns`` turns whose context grows by a reply and an
    observation each turn (ALFWorld-like), K candidates a turn scored by V; with the value model's cross-turn prefix
    cache and without it. Same seeds, so both see the same candidates: their values must agree (bf16: up to rounding)."""
    import random

    import torch

    from oreo_agents.agent import Agent
    from oreo_agents.models.loading import ValueModel
    from oreo_agents.models.policy import ModelPolicy
    from oreo_agents.turns import StepRecord, Turn

    cuda = torch.cuda.is_available()
    vocab = (SMALL_MODEL if args.small else QWEN_1_5B)["vocab_size"]
    rng = random.Random(0)

    def words(n: int) -> str:  # the check's tokenizer knows only w3 ... w{vocab-1}
        return " ".join(f"w{rng.randrange(3, vocab)}" for _ in range(n))

    goal, commands = words(8), [words(4) for _ in range(5)]
    obs = [words(60) for _ in range(args.turns + 1)]
    steps = [StepRecord(action=commands[i % 5], observation=obs[i + 1], reward=0.0) for i in range(args.turns)]
    values = {dtype: ValueModel.from_base(model_dir, dtype=dtype) for dtype in (torch.bfloat16, torch.float32)}
    for v in values.values():
        torch.manual_seed(0)
        torch.nn.init.normal_(v.head.weight, std=0.02)
    value = values[torch.bfloat16 if cuda else torch.float32]

    def episode(cache: bool, value=value) -> tuple[float, list[list[tuple[str, float, bool]]]]:
        policy = ModelPolicy(str(model_dir), temperature=1.0, max_new_tokens=args.reply_tokens, seed=0)
        agent = Agent(policy, value, select="value", k=args.k)
        if not cache:
            agent._value_cache = None
        seen, t0 = [], time.perf_counter()
        for i in range(args.turns):
            turn = Turn("oreo_agents/ALFWorld-v0", goal, obs[0], obs[i], {"admissible_commands": commands}, steps[:i])
            seen.append([(c.reply, c.value, c.chosen) for c in agent.act([turn])[0].candidates])
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, seen

    def gaps(a, b) -> tuple[int, float]:
        """Candidates with the same reply in both runs, and the largest |V_a - V_b| among them."""
        pairs = [(x[1], y[1]) for ta, tb in zip(a, b) for x, y in zip(ta, tb) if x[0] == y[0]]
        return len(pairs), max((abs(x - y) for x, y in pairs), default=float("nan"))

    episode(True)  # warm-up: kernels, allocator
    cached_s, cached = episode(True)
    plain_s, plain = episode(False)
    _, fp32 = episode(False, values[torch.float32])  # reference: the same candidates scored by an fp32 value model
    same, diff = gaps(cached, plain)
    all_v = [c[1] for t in fp32 for c in t]
    return {"turns": args.turns, "k": args.k, "reply_tokens": args.reply_tokens,
            "seconds_with_value_cache": round(cached_s, 2), "seconds_without": round(plain_s, 2),
            "speedup": round(plain_s / cached_s, 2), "same_candidates": f"{same} of {sum(len(t) for t in cached)}",
            "max_abs_value_diff": diff, "value_dtype": str(next(value.parameters()).dtype),
            "fp32_value_range": [round(min(all_v), 3), round(max(all_v), 3)],
            "max_abs_diff_vs_fp32_cached": gaps(cached, fp32)[1], "max_abs_diff_vs_fp32_uncached": gaps(plain, fp32)[1],
            "same_choice_cached_vs_uncached": f"{sum(x == y for x, y in zip(chosen(cached), chosen(plain)))} of {args.turns}",
            "same_choice_cached_vs_fp32": f"{sum(x == y for x, y in zip(chosen(cached), chosen(fp32)))} of {args.turns}"}  # fmt: skip


def chosen(turns: list[list[tuple[str, float, bool]]]) -> list[str]:
    return [next((c[0] for c in t if c[2]), "") for t in turns]


def launch_worker(config: str, args, model_dir: Path, out: Path) -> dict:
    """This script as one ``accelerate launch`` process under ``config``; its result comes back as a JSON line."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / config), "--num_processes", "1",
           "--main_process_port", str(29600 + os.getpid() % 300), __file__, "--worker", "--model-dir", str(model_dir),
           "--out", str(out), "--batch", str(args.batch), "--seq", str(args.seq)] + (["--small"] if args.small else [])  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.worker_timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            warnings = [w.strip()[:110] for w in (done.stdout + done.stderr).splitlines() if w.startswith("warning:")]
            return json.loads(line[len("RESULT ") :]) | {"warnings": warnings}
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    raise RuntimeError(f"{config} failed (exit {done.returncode}):\n" + "\n".join(tail))


def show(name: str, res: dict) -> None:
    print(f"== {name}")
    for k, v in res.items():
        print(f"   {k}: {v}")
    sys.stdout.flush()


def section(name: str, title: str, run) -> None:
    """One section; a failure prints ``FAIL <section>`` and its traceback's end, and the next section still runs (a
    device run is one shot). Memory is handed back between sections, so a launched worker finds the GPU free."""
    import gc
    import traceback

    import torch

    t0 = time.perf_counter()
    try:
        res = run()
    except Exception as exc:  # noqa: BLE001
        tail = traceback.format_exc().strip().splitlines()[-12:]
        print(f"FAIL {name}: {type(exc).__name__}: {exc}\n   " + "\n   ".join(tail), flush=True)
    else:
        show(title, res | {"section_s": round(time.perf_counter() - t0, 1)})
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", default=os.environ.get("SMALL") == "1", help="tiny model and sizes (CPU/CI)")
    ap.add_argument("--sections", default="train,fsdp,deepspeed,generate,agent")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=0, help="trajectories per update (default 4: two micro-batches of 2)")
    ap.add_argument("--seq", type=int, default=0, help="tokens per trajectory (default 4096; SMALL 128)")
    ap.add_argument("--prompt", type=int, default=0, help="generation prompt tokens (default 512; SMALL 16)")
    ap.add_argument("--new-tokens", type=int, default=0, help="generated tokens per row (default 128; SMALL 8)")
    ap.add_argument("--turns", type=int, default=0, help="agent section: turns of the episode (default 12; SMALL 4)")
    ap.add_argument("--k", type=int, default=5, help="agent section: candidates per turn")
    ap.add_argument("--reply-tokens", type=int, default=0, help="agent section: tokens per reply (default 16; SMALL 6)")
    ap.add_argument("--worker-timeout", type=int, default=300)
    args = ap.parse_args()
    args.batch = args.batch or 4
    args.seq = args.seq or (128 if args.small else 4096)
    args.prompt = args.prompt or (16 if args.small else 512)
    args.new_tokens = args.new_tokens or (8 if args.small else 128)
    args.turns = args.turns or (4 if args.small else 12)
    args.reply_tokens = args.reply_tokens or (6 if args.small else 16)
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    if args.worker:
        print("RESULT " + json.dumps(run_train(args, Path(args.model_dir), Path(args.out))), flush=True)
        return
    cuda = torch.cuda.is_available()
    if not cuda and not args.small:
        print("SKIP full size: no CUDA GPU here (SMALL=1 runs the same code paths at a tiny size)")
        return
    import accelerate
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, accelerate {accelerate.__version__}, "
          f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, size {'SMALL' if args.small else 'Qwen2.5-1.5B shape'}")  # fmt: skip
    sections = set(args.sections.split(","))
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_checkpoint(tmp / "model", SMALL_MODEL if args.small else QWEN_1_5B, "cuda" if cuda else "cpu")
        runs = {
            "train": ("OREO, one process (paper recipe)", lambda: run_train(args, model_dir, tmp / "train")),
            "fsdp": ("OREO under configs/accelerate/fsdp.yaml, 1 process",
                     lambda: launch_worker("configs/accelerate/fsdp.yaml", args, model_dir, tmp / "fsdp")),
            "deepspeed": ("OREO under configs/accelerate/deepspeed-zero2.yaml, 1 process",
                          lambda: launch_worker("configs/accelerate/deepspeed-zero2.yaml", args, model_dir, tmp / "ds")),
            "generate": (f"HF backend generation ({args.prompt}-token prompts, {args.new_tokens} new tokens, sampling)",
                         lambda: run_generation(args, model_dir)),
            "agent": (f"value-guided agent (K = {args.k}), one growing episode", lambda: run_agent(args, model_dir)),
        }  # fmt: skip
        for name, (title, run) in runs.items():
            if name not in sections:
                continue
            if name == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
                print("SKIP deepspeed: the deepspeed package is not installed")
            elif name == "deepspeed" and not cuda:
                print("SKIP deepspeed: needs a CUDA GPU")
            else:
                section(name, title, run)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()

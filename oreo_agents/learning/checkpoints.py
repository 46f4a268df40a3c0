"""Training checkpoints that hold data, never code, and the settings fingerprint that guards resume.

A run folder is often copied between machines, so resuming must not unpickle anything from it (accelerate's
``save_state`` writes pickles: ``optimizer.bin``, ``custom_checkpoint_N.pkl`` for schedulers — loaded with
``weights_only=False`` in ``accelerate/checkpointing.py`` 1.16 ``load_custom_state`` — and ``random_states_N.pkl``).
Each component here is a JSON file plus a safetensors file for its tensors::

    <out>/checkpoints/step-N/
        trainer_state.json               step, algo, settings fingerprint, size + crc32 of every file below
        model-<name>.json/.safetensors   full (unsharded) state dict; a tied tensor is stored once, named twice
        optimizer-<name>.json/.safetensors   param groups and steps (JSON) + moment tensors (safetensors)
        scheduler-<name>.json            the LR schedule's state_dict
        scaler.json                      the fp16 loss scaler, when there is one
        rng-<rank>.json/.safetensors     python random, numpy, torch CPU (+ CUDA) generator states of each process
        serving/                         the base model's config + tokenizer files and serving.json (which state dict
                                         is the policy, the LoRA config): what ``--policy .../step-N`` exports to serve
                                         (``oreo_agents.models.servable``)

State dicts come from ``torch.distributed.checkpoint.state_dict.get_state_dict`` with ``full_state_dict=True`` (torch
2.13): one code path for plain, DDP and FSDP2 modules (all ranks take part in the gather, rank 0 writes; every rank reads
the full dict back and ``set_state_dict`` shards it again). A checkpoint is written into ``.step-N.partial`` and renamed
to ``step-N`` when complete, so a killed save leaves no ``step-N``. Resume verifies sizes and hashes and falls back to the
previous intact checkpoint, with a warning, when the newest is damaged.

DeepSpeed engines have no such state-dict API (their ZeRO partitions are saved by ``engine.save_checkpoint`` with
``torch.save``): under DeepSpeed checkpoints use accelerate's pickle format, and resuming from one (or from a checkpoint
of an older oreo-agents) needs ``--trust-checkpoint-pickles``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oreo_agents.console import console
from oreo_agents.errors import OreoError
# Full-byte sha256 is the identity of data and weights (0.55 s for 500 MB on the 2-vCPU dev machine, page cache warm;
# sizes + headers would take 1 ms but miss weights edited in place): the recorder's, shared.
from oreo_agents.recording.fingerprints import file_sha256

FORMAT = "oreo-agents-checkpoint-2"  # json + safetensors; a marker without it is accelerate's pickle format
PICKLE_FORMAT = "accelerate-pickle"
MARKER = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")

# Settings a resumed run may change: they do not alter the trajectory (what is logged or kept, where models are cached,
# memory-for-compute switches). Every other TrainConfig field, including ones added later, must match.
FREE_SETTINGS = frozenset({"out", "save_steps", "save_total_limit", "log_steps", "plot", "model_cache",
                           "trust_remote_code", "gradient_checkpointing", "trust_checkpoint_pickles", "save_dtype"})  # fmt: skip


class DamagedCheckpoint(Exception):
    """A checkpoint folder that cannot be loaded as written (truncated, missing or altered file)."""


# --- the settings fingerprint ------------------------------------------------------------------------------------------
def file_crc32(path: Path) -> str:
    """Damage check of a checkpoint file (truncation, bit rot, a copy cut short): 2.5x faster than sha256 here, and
    nothing in a checkpoint can run code, so an adversarial-grade hash buys nothing."""
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def model_files_digest(path: Path) -> str:
    """sha256 over a model folder's weights, config and tokenizer files (by name and content, not by location)."""
    from oreo_agents.models.loading import VALUE_CONFIG_FILE

    h = hashlib.sha256()
    files = [f for f in sorted(Path(path).iterdir()) if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name in (
        "config.json", "tokenizer.json", "tokenizer_config.json", VALUE_CONFIG_FILE))]  # fmt: skip
    for f in files:
        h.update(f"{f.name}\0{file_sha256(f)}\0".encode())
    return h.hexdigest()


def data_files(paths: list[str]) -> list[dict[str, str]]:
    """The resolved ``--data`` shards: absolute path (shown, not compared), name under its --data root and sha256."""
    from oreo_agents.recording.dataset import parquet_files

    out = []
    for p in map(Path, paths):
        root = p.resolve()
        for f in parquet_files(p):
            f = f.resolve()
            name = f.name if root.is_file() else f.relative_to(root).as_posix()
            out.append({"path": str(f), "name": name, "sha256": file_sha256(f)})
    return out


def fingerprint(cfg: Any, model_path: Path, acc: Any) -> dict[str, Any]:
    """What decides a run's trajectory: the settings (minus :data:`FREE_SETTINGS`), the data and the starting weights.

    Data and models are identified by content, so ``./x/`` and ``/abs/x`` (or a run folder and its data copied to
    another machine) are the same run; ``--mixed-precision auto`` is recorded as what it resolved to.
    """
    settings = {k: v for k, v in asdict(cfg).items() if k not in FREE_SETTINGS}
    settings["data"] = [{"name": f["name"], "sha256": f["sha256"]} for f in data_files(cfg.data)]
    settings["model"] = model_files_digest(model_path)
    settings["value_model"] = model_files_digest(Path(cfg.value_model).expanduser()) if cfg.value_model else ""
    settings["mixed_precision"] = str(acc.mixed_precision)
    settings["processes"] = acc.num_processes  # each process's share of an update: another count sums in another order
    settings["distributed"] = str(acc.distributed_type.value)
    return json.loads(json.dumps(settings, default=str))


def refuse_changed(out: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise an :class:`OreoError` naming every setting that differs (old -> new)."""
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k, "(not recorded)") != new.get(k, "(not recorded)")]
    if not keys:
        return

    def show(k: str, v: Any) -> str:
        if k == "data" and isinstance(v, list):
            return "[" + ", ".join(f"{f['name']} sha256:{f['sha256'][:12]}" for f in v) + "]"
        if k in ("model", "value_model") and isinstance(v, str) and len(v) == 64:
            return f"files sha256:{v[:12]}"
        return repr(v)

    def label(k: str) -> str:  # processes and the distributed mode come from the launcher, not from a flag
        return f"{k} (accelerate launch)" if k in ("processes", "distributed") else f"--{k.replace('_', '-')}"

    diffs = "; ".join(f"{label(k)} {show(k, old.get(k))} -> {show(k, new.get(k))}" for k in keys)
    raise OreoError(f"{out} holds a run trained with other settings ({diffs}); resuming would mix two runs. "
                    "Rerun with the original settings, or use another --out")  # fmt: skip


def check_settings(out: Path, algo: str, fp: dict[str, Any]) -> dict[str, Any]:
    """Before any model loads: refuse to resume ``out`` with another --algo or changed trajectory settings."""
    for ckpt in reversed(complete_checkpoints(out)):
        try:
            state = read_marker(ckpt)
        except DamagedCheckpoint:
            continue  # resume() warns about it and falls back
        check_state(out, state, algo, fp)
        break
    return fp


def check_state(out: Path, state: dict[str, Any], algo: str, fp: dict[str, Any]) -> None:
    if state.get("algo") != algo:
        raise OreoError(f"{out} holds a --algo {state.get('algo')} run; use another --out for --algo {algo}")
    if state.get("format") == FORMAT:  # pickle-format checkpoints recorded no fingerprint
        refuse_changed(out, state.get("fingerprint", {}), fp)


# --- JSON + safetensors encoding of state dicts ------------------------------------------------------------------------
def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str = "", _seen: dict | None = None) -> Any:
    """``obj`` as JSON, its tensors moved into ``tensors`` under their path (a tensor seen twice is stored once)."""
    seen = {} if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype) if t.numel() else None
        if key in seen:
            return {"__tensor__": seen[key]}
        name = path or "tensor"
        shares = key is not None and key[0] in seen  # same storage, another view: stored as its own copy
        tensors[name] = t.cpu().clone() if shares or not t.is_contiguous() else t.cpu()
        if key:
            seen[key], seen[key[0]] = name, name
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, tensors, f"{path}/{k}" if path else k, seen) for k, v in obj.items()}
        return {"__items__": [[encode(k, tensors, f"{path}/key{i}", seen), encode(v, tensors, f"{path}/{i}", seen)]
                              for i, (k, v) in enumerate(obj.items())]}  # fmt: skip
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{path}/{i}", seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}/{i}", seen) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise OreoError(f"{path} holds a {type(obj).__name__}: a checkpoint stores only tensors and JSON values, never pickles")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
    return {k: decode(v, tensors) for k, v in obj.items()}


def write_component(folder: Path, name: str, obj: Any) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    try:
        tree = encode(obj, tensors)
    except OreoError as exc:
        raise OreoError(f"checkpoint {name}: {exc}") from None
    try:
        if tensors:
            save_file(tensors, str(folder / f"{name}.safetensors"))
        (folder / f"{name}.json").write_text(json.dumps({"tree": tree, "tensors": bool(tensors)}))
    except Exception as exc:  # noqa: BLE001 - OSError or safetensors' SafetensorError: disk full, folder gone
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:160]
        raise OreoError(f"cannot write checkpoint file {folder / name} ({why}); the earlier checkpoints are intact: "
                        "free space or lower --save-total-limit, then rerun to resume") from exc  # fmt: skip


def read_component(folder: Path, name: str) -> Any:
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / f"{name}.json").read_text())
        tensors = load_file(str(folder / f"{name}.safetensors")) if meta["tensors"] else {}
        return decode(meta["tree"], tensors)
    except Exception as exc:  # noqa: BLE001 - OSError, JSON errors, safetensors_rust.SafetensorError (an Exception)
        raise DamagedCheckpoint(f"{name} does not load ({str(exc).splitlines()[0][:160]})") from exc


# --- which checkpoints exist -------------------------------------------------------------------------------------------
def complete_checkpoints(out: Path) -> list[Path]:
    """``step-N`` folders that hold a marker, oldest first (a save killed midway leaves only ``.step-N.partial``)."""
    root = Path(out) / "checkpoints"
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / MARKER).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def read_marker(ckpt: Path) -> dict[str, Any]:
    try:
        state = json.loads((ckpt / MARKER).read_text())
        int(state["step"])
        return state
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DamagedCheckpoint(f"{MARKER} is unreadable ({str(exc).splitlines()[0][:120]})") from exc


def verify_files(ckpt: Path, state: dict[str, Any]) -> None:
    for name, want in state.get("files", {}).items():
        f = ckpt / name
        if not f.is_file():
            raise DamagedCheckpoint(f"{name} is missing")
        if f.stat().st_size != want["bytes"]:
            raise DamagedCheckpoint(f"{name} has {f.stat().st_size} bytes, {want['bytes']} were written")
        if file_crc32(f) != want["crc32"]:
            raise DamagedCheckpoint(f"{name} changed after it was written (crc32 differs)")


# --- RNG states --------------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


# --- save and resume ---------------------------------------------------------------------------------------------------
def _raw(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one


def _is_deepspeed(acc: Any) -> bool:
    from accelerate.utils import DistributedType

    return acc.distributed_type == DistributedType.DEEPSPEED


def save(out: Path, step: int, *, acc: Any, models: dict, optimizers: dict, schedulers: dict, algo: str,
         fp: dict[str, Any], keep: int, serving: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write ``<out>/checkpoints/step-<step>`` (all processes call this; rank 0 writes the shared files).

    ``serving`` (keywords of :func:`oreo_agents.models.servable.write_serving_files`: base model folder, which state
    dict holds the policy, the LoRA config) adds ``serving/`` so the checkpoint can be served (``--policy step-N``)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    root = Path(out) / "checkpoints"
    final, tmp = root / f"step-{step}", root / f".step-{step}.partial"
    main = acc.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    if _is_deepspeed(acc):
        acc.save_state(str(tmp))  # ZeRO partitions: pickles; resume asks for --trust-checkpoint-pickles
        fmt = PICKLE_FORMAT
    else:
        fmt = FORMAT
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # gathers FSDP shards onto rank 0's CPU
        for name, model in models.items():
            if name in optimizers:
                model_sd, optim_sd = get_state_dict(model, _raw(optimizers[name]), options=options)
            else:
                model_sd, optim_sd = get_model_state_dict(model, options=options), None
            if main:
                write_component(tmp, f"model-{name}", model_sd)
                if optim_sd is not None:
                    write_component(tmp, f"optimizer-{name}", optim_sd)
        if main:
            for name, scheduler in schedulers.items():
                write_component(tmp, f"scheduler-{name}", scheduler.state_dict())
            if getattr(acc, "scaler", None) is not None:
                write_component(tmp, "scaler", acc.scaler.state_dict())
        write_component(tmp, f"rng-{acc.process_index}", rng_state())
    if main and serving is not None and fmt == FORMAT:
        from oreo_agents.models.servable import write_serving_files

        write_serving_files(tmp, **serving)
    acc.wait_for_everyone()
    if main:
        files = {f.relative_to(tmp).as_posix(): {"bytes": f.stat().st_size, "crc32": file_crc32(f)}
                 for f in sorted(tmp.rglob("*")) if f.is_file()}
        state = {"format": fmt, "step": step, "algo": algo, "processes": acc.num_processes, "fingerprint": fp, "files": files}
        # No fsync: after a power loss the renamed folder may hold short files, which resume's size/crc check catches
        # (and falls back from) — the same protection as fsync without its 3.5 s per 1.6 GB checkpoint.
        (tmp / MARKER).write_text(json.dumps(state, indent=1))  # last: the folder is complete
        if final.exists():  # a damaged checkpoint of this step that resume fell back from
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(out)[:-keep] + list(root.glob(".step-*.partial")):  # + leftovers of killed saves
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def read_checkpoint(ckpt: Path, state: dict[str, Any], *, models: dict, optimizers: dict, schedulers: dict, rank: int) -> dict:
    """Every component of ``ckpt`` in memory, verified, before anything is applied (a damaged file changes nothing)."""
    verify_files(ckpt, state)
    loaded: dict[str, Any] = {"rng": read_component(ckpt, f"rng-{rank}")}
    for name in models:
        loaded[f"model-{name}"] = read_component(ckpt, f"model-{name}")
        if name in optimizers:
            loaded[f"optimizer-{name}"] = read_component(ckpt, f"optimizer-{name}")
    for name in schedulers:
        loaded[f"scheduler-{name}"] = read_component(ckpt, f"scheduler-{name}")
    if "scaler.json" in state["files"]:
        loaded["scaler"] = read_component(ckpt, "scaler")
    return loaded


def apply_checkpoint(loaded: dict, *, acc: Any, models: dict, optimizers: dict, schedulers: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_state_dict

    options = StateDictOptions(full_state_dict=True)  # every rank holds the full dict; FSDP2 re-shards it locally
    for name, model in models.items():
        if name in optimizers:
            set_state_dict(model, _raw(optimizers[name]), model_state_dict=loaded[f"model-{name}"],
                           optim_state_dict=loaded[f"optimizer-{name}"], options=options)  # fmt: skip
        else:
            set_model_state_dict(model, loaded[f"model-{name}"], options=options)
    for name, scheduler in schedulers.items():
        scheduler.load_state_dict(loaded[f"scheduler-{name}"])
    if "scaler" in loaded and getattr(acc, "scaler", None) is not None:
        acc.scaler.load_state_dict(loaded["scaler"])
    set_rng_state(loaded["rng"])


def resume(out: Path, *, acc: Any, models: dict, optimizers: dict, schedulers: dict, algo: str, fp: dict[str, Any],
           trust_pickles: bool = False) -> int:  # fmt: skip
    """Load the newest intact checkpoint of ``out`` (falling back past damaged ones with a warning); its update count."""
    ckpts = complete_checkpoints(out)
    for i in range(len(ckpts) - 1, -1, -1):
        ckpt = ckpts[i]
        try:
            state = read_marker(ckpt)
            check_state(out, state, algo, fp)
            if state.get("format") != FORMAT:
                return _resume_pickle(out, ckpt, state, acc=acc, trust_pickles=trust_pickles)
            if _is_deepspeed(acc):
                raise OreoError(f"checkpoint {ckpt} was written without DeepSpeed; resume it with the launch config it was made with")
            loaded = read_checkpoint(ckpt, state, models=models, optimizers=optimizers, schedulers=schedulers, rank=acc.process_index)
        except DamagedCheckpoint as exc:
            if acc.is_main_process:
                then = f"falling back to {ckpts[i - 1].name}" if i else "no intact checkpoint is left: training starts from update 0"
                console.print(f"[yellow]warning[/]: checkpoint {ckpt} is damaged ({exc}); {then}")
            continue
        apply_checkpoint(loaded, acc=acc, models=models, optimizers=optimizers, schedulers=schedulers)
        if acc.is_main_process:
            console.print(f"resuming {out} from update {state['step']}")
        return int(state["step"])
    return 0


def _resume_pickle(out: Path, ckpt: Path, state: dict[str, Any], *, acc: Any, trust_pickles: bool) -> int:
    if not trust_pickles:
        raise OreoError(
            f"checkpoint {ckpt} is in accelerate's pickle format (a DeepSpeed run, or an older oreo-agents): loading it "
            "runs any code planted in the run folder. Pass --trust-checkpoint-pickles if you made this folder yourself, "
            "or use another --out"
        )
    acc.load_state(str(ckpt))
    if acc.is_main_process:
        console.print(f"resuming {out} from update {state['step']} (pickle checkpoint, trusted by --trust-checkpoint-pickles)")
    return int(state["step"])

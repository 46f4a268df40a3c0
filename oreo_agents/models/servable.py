"""What ``--policy`` may name, turned into what a generation backend loads: a model folder and, maybe, a LoRA adapter.

Three kinds of folder serve::

    runs/sft/policy                     a Hugging Face model folder (config.json + weights): served as it is
    runs/sft/policy-adapter             a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors); its base
                                        is adapter_config.json's base_model_name_or_path, which must be a local folder
    runs/sft/checkpoints/step-N         an intermediate training checkpoint: exported once into a cache folder

A checkpoint (``learning/checkpoints.py``) holds full state dicts (``model-<name>.json`` + ``.safetensors``) and, since
this module exists, a ``serving/`` folder with the base model's config and tokenizer files and ``serving.json`` (which
state dict holds the policy, under which prefix, and the PEFT LoRA config of a LoRA run). The export writes
``config.json`` + ``model.safetensors`` + tokenizer (full fine-tuning), or for a LoRA run the frozen base as such a
folder plus ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT's names: ``lora_A.weight``, the adapter name
dropped), so vLLM can serve the adapter unmerged. Only JSON and safetensors are read from the run folder: nothing is
unpickled or executed (an accelerate-pickle checkpoint, e.g. from DeepSpeed, is refused by name). The cache folder is
``~/.cache/oreo-agents/servable/<sha256 of trainer_state.json>`` (it lists size + crc32 of every file, so another
checkpoint gets another folder); the files are checked against those sums before export. :func:`export_value` does
the same for the value model of an OREO checkpoint (``--value .../step-N``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oreo_agents.errors import OreoError

MARKER = "trainer_state.json"  # learning/checkpoints.py MARKER (models sits below learning: the names are repeated)
FORMAT = "oreo-agents-checkpoint-2"
SERVING_DIR = "serving"
SERVING_FILE = "serving.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Non-weight files of a model folder that a served copy needs (config, generation settings, tokenizer). Python files
# (remote code) are never copied.
MODEL_TEXT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                    "chat_template.jinja", "chat_template.json", "oreo_tiny.json")  # fmt: skip


@dataclass(frozen=True)
class Served:
    """What a backend loads: a model folder, and a LoRA adapter folder trained on it (None: the weights are complete)."""

    model: Path
    lora: Path | None = None


def servable(path: str | Path, flag: str = "--policy", *, cache_dir: Path | None = None) -> Served:
    """The model (and adapter) that ``flag path`` names; a checkpoint is exported into ``cache_dir`` first."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise OreoError(f"{flag} {path}: no such model directory")
    if (p / "config.json").is_file():
        return Served(p)
    if (p / ADAPTER_CONFIG).is_file():
        return Served(adapter_base(p, flag), p)
    if (p / MARKER).is_file():
        return export_checkpoint(p, cache_dir=cache_dir, flag=flag)
    raise OreoError(f"{flag} {path}: not a model folder (no config.json), a LoRA adapter folder (no {ADAPTER_CONFIG}) "
                    f"or a training checkpoint (no {MARKER})")  # fmt: skip


def adapter_base(adapter: Path, flag: str = "--policy") -> Path:
    """The local base model folder of a PEFT adapter (``base_model_name_or_path``, as written or beside the adapter)."""
    try:
        base = json.loads((adapter / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path") or ""
    except (OSError, ValueError) as exc:
        raise OreoError(f"{flag} {adapter}: {ADAPTER_CONFIG} does not load ({exc})") from exc
    if not (adapter / ADAPTER_WEIGHTS).is_file():
        raise OreoError(f"{flag} {adapter}: no {ADAPTER_WEIGHTS} (a .bin adapter is a pickle: not loaded)")
    for candidate in (Path(base).expanduser(), adapter / base):
        if base and (candidate / "config.json").is_file():
            return candidate.resolve()
    raise OreoError(f"{flag} {adapter}: its base model {base!r} ({ADAPTER_CONFIG} base_model_name_or_path) is not a "
                    "local model folder; edit that field to the folder the adapter was trained on")  # fmt: skip


def default_servable_cache() -> Path:
    from oreo_agents.models.loading import default_cache_dir

    return default_cache_dir().parent / "servable"


# --- exporting a training checkpoint -----------------------------------------------------------------------------------
def export_checkpoint(ckpt: Path, *, cache_dir: Path | None = None, flag: str = "--policy") -> Served:
    """Export ``ckpt`` (a ``step-N`` folder) once into the cache; later calls find the finished folder."""
    ckpt = Path(ckpt)
    state, digest = _marker(ckpt, flag)
    out = Path(cache_dir or default_servable_cache()) / digest
    if (out / "done.json").is_file():
        return _served_from(out)
    serving, info = _serving_files(ckpt, state, flag)
    component = info.get("component", _policy_component(state))
    _verify(ckpt, state, [f"{component}.json", f"{component}.safetensors"], flag)
    weights = _read_state_dict(ckpt, component, flag)
    prefix = info.get("prefix", "policy." if component == "model-policy_value" else "")
    weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lora = info.get("lora")
    if lora:
        base, adapter = split_lora(weights)
        _write_model(serving, base, tmp / "base", flag)
        _write_adapter(adapter, lora, tmp / "adapter", base_dir=out / "base")
    else:
        if any(".lora_A." in k for k in weights):
            raise OreoError(f"{flag} {ckpt}: the weights hold LoRA adapters but {SERVING_FILE} names no LoRA config")
        _write_model(serving, weights, tmp / "model", flag)
    (tmp / "done.json").write_text(json.dumps({"checkpoint": str(ckpt.resolve()), "step": state.get("step"),
                                               "lora": bool(lora)}))  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # atomic: a killed export never leaves a folder that looks done
    return _served_from(out)


def export_value(ckpt: Path, *, cache_dir: Path | None = None, flag: str = "--value") -> Path:
    """The value model of an OREO checkpoint ``step-N`` as a value folder (backbone + ``value_head.safetensors`` +
    ``oreo_value.json``, what ``ValueModel.from_pretrained`` loads), exported once into the cache. A LoRA run's value
    adapters are merged into the backbone (``W + alpha/r * B @ A``, PEFT's LoRA scaling)."""
    from oreo_agents.models.loading import write_value_head

    ckpt = Path(ckpt)
    state, digest = _marker(ckpt, flag)
    out = Path(cache_dir or default_servable_cache()) / f"{digest}-value"
    if (out / "done.json").is_file():
        return out
    component = "model-policy_value"
    if f"{component}.json" not in state.get("files", {}):
        raise OreoError(f"{flag} {ckpt}: this checkpoint holds no value model (only --algo oreo runs train one)")
    serving, info = _serving_files(ckpt, state, flag)
    _verify(ckpt, state, [f"{component}.json", f"{component}.safetensors"], flag)
    weights = _read_state_dict(ckpt, component, flag)
    head = weights.get("value.head.weight")
    backbone = {k[len("value.backbone."):]: v for k, v in weights.items() if k.startswith("value.backbone.")}
    if head is None or not backbone:
        raise OreoError(f"{flag} {ckpt}: {component} holds no value.backbone / value.head weights")
    if info.get("lora"):
        backbone = merge_lora(backbone, info["lora"])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _write_model(serving, backbone, tmp, flag, backbone_only=True)
    write_value_head(tmp, head, int(head.shape[-1]))
    (tmp / "done.json").write_text(json.dumps({"checkpoint": str(ckpt.resolve()), "step": state.get("step")}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _marker(ckpt: Path, flag: str) -> tuple[dict[str, Any], str]:
    """trainer_state.json of a servable checkpoint, and the cache key (a hash of it: size + crc32 of every file)."""
    try:
        raw = (ckpt / MARKER).read_bytes()
        state = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise OreoError(f"{flag} {ckpt}: {MARKER} does not load ({exc})") from exc
    if state.get("format") != FORMAT:
        raise OreoError(f"{flag} {ckpt}: a checkpoint in accelerate's pickle format (DeepSpeed or an older oreo-agents) "
                        "cannot be served: loading it would unpickle files from the run folder")  # fmt: skip
    return state, hashlib.sha256(raw).hexdigest()[:24]


def merge_lora(weights: dict[str, Any], lora: dict[str, Any]) -> dict[str, Any]:
    """A PeftModel's LoRA state dict merged into plain weights: ``W + s * B @ A`` with PEFT's ``s = alpha / r``
    (``alpha / sqrt(r)`` under rsLoRA); DoRA and other variants are refused."""
    if lora.get("use_dora") or lora.get("fan_in_fan_out"):
        raise OreoError("LoRA checkpoint: DoRA / fan_in_fan_out adapters are not merged by this export")
    r = int(lora["r"])
    scale = float(lora["lora_alpha"]) / (r ** 0.5 if lora.get("use_rslora") else r)
    base, adapter = split_lora(weights)
    for key in [k for k in adapter if k.endswith(".lora_A.weight")]:
        module = key[len("base_model.model."): -len(".lora_A.weight")]
        a, b = adapter[key], adapter[key.replace(".lora_A.", ".lora_B.")]
        w = base[f"{module}.weight"]
        base[f"{module}.weight"] = (w.float() + scale * (b.float() @ a.float())).to(w.dtype)
    return base


def _served_from(out: Path) -> Served:
    if (out / "adapter").is_dir():
        return Served(out / "base", out / "adapter")
    return Served(out / "model")


def _policy_component(state: dict[str, Any]) -> str:
    names = sorted(n[: -len(".json")] for n in state.get("files", {}) if n.startswith("model-") and n.endswith(".json"))
    for name in ("model-policy", "model-policy_value"):
        if name in names:
            return name
    raise OreoError(f"checkpoint holds no policy weights (model files: {', '.join(names) or 'none'})")


def _serving_files(ckpt: Path, state: dict[str, Any], flag: str) -> tuple[Path, dict[str, Any]]:
    """The folder with the model's config + tokenizer files, and serving.json's content."""
    serving = ckpt / SERVING_DIR
    if (serving / "config.json").is_file():
        _verify(ckpt, state, [f"{SERVING_DIR}/{f.name}" for f in sorted(serving.iterdir()) if f.is_file()], flag)
        try:
            info = json.loads((serving / SERVING_FILE).read_text()) if (serving / SERVING_FILE).is_file() else {}
        except ValueError as exc:
            raise OreoError(f"{flag} {ckpt}: {SERVING_DIR}/{SERVING_FILE} is not JSON ({exc})") from exc
        return serving, info
    final = ckpt.parent.parent / "policy"  # a checkpoint of an older oreo-agents: the run's final policy has the files
    if (final / "config.json").is_file():
        return final, {}
    raise OreoError(f"{flag} {ckpt}: the checkpoint holds no {SERVING_DIR}/ folder (written by an older oreo-agents) "
                    "and the run has no final policy folder to take config and tokenizer from")  # fmt: skip


def _verify(ckpt: Path, state: dict[str, Any], names: list[str], flag: str) -> None:
    """Size and crc32 as recorded in trainer_state.json (a damaged file is named, never served)."""
    files = state.get("files", {})
    for name in names:
        want, f = files.get(name), ckpt / name
        if want is None:
            raise OreoError(f"{flag} {ckpt}: {name} is not listed in {MARKER}")
        crc = 0
        try:
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    crc = zlib.crc32(block, crc)
            size = f.stat().st_size
        except OSError as exc:
            raise OreoError(f"{flag} {ckpt}: {name} does not read ({exc.strerror or exc})") from exc
        if size != want.get("bytes") or f"{crc:08x}" != want.get("crc32"):
            raise OreoError(f"{flag} {ckpt}: {name} changed or was cut short after it was written (size/crc32 differ)")


def _read_state_dict(ckpt: Path, component: str, flag: str) -> dict[str, Any]:
    """A model state dict from ``<component>.json`` (names -> tensor names) + ``.safetensors``; aliases (tied weights)
    come back as the same tensor."""
    from safetensors.torch import load_file

    tree = json.loads((ckpt / f"{component}.json").read_text()).get("tree")
    if not isinstance(tree, dict) or not all(isinstance(v, dict) and set(v) == {"__tensor__"} for v in tree.values()):
        raise OreoError(f"{flag} {ckpt}: {component}.json is not a flat state dict of tensors")
    tensors = load_file(str(ckpt / f"{component}.safetensors"))
    try:
        return {k: tensors[v["__tensor__"]] for k, v in tree.items()}
    except KeyError as exc:
        raise OreoError(f"{flag} {ckpt}: {component}.safetensors lacks tensor {exc}") from None


def split_lora(weights: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PeftModel's state dict -> (the base model's state dict, PEFT's saved adapter dict).

    ``base_model.model.<m>.base_layer.weight`` -> ``<m>.weight``; ``base_model.model.<m>.lora_A.default.weight`` ->
    ``base_model.model.<m>.lora_A.weight`` (``peft.utils.get_peft_model_state_dict`` naming, adapter name dropped).
    """
    base, adapter, root = {}, {}, "base_model.model."
    for k, v in weights.items():
        if not k.startswith(root):
            raise OreoError(f"LoRA checkpoint: parameter {k} is outside the PEFT model ({root}...)")
        if ".lora_A." in k or ".lora_B." in k:
            adapter[k.replace(".default.", ".")] = v
        elif ".lora_" in k:
            raise OreoError(f"LoRA checkpoint: parameter {k} is of a LoRA variant this export does not write")
        else:
            base[k[len(root):].replace(".base_layer.", ".")] = v
    if not adapter:
        raise OreoError("LoRA checkpoint: no lora_A / lora_B weights found")
    return base, adapter


def _write_model(serving: Path, weights: dict[str, Any], out: Path, flag: str, *, backbone_only: bool = False) -> None:
    """``weights`` as a HF folder of the architecture in ``serving/config.json`` (built on ``meta``: every weight must
    come from the checkpoint; a missing or unknown one is refused), plus the tokenizer files. ``backbone_only``: the
    body without LM head (``AutoModel``), as a value model's backbone is saved."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(serving))  # never trust_remote_code: no code from the run folder runs
    with torch.device("meta"):
        model = (AutoModel if backbone_only else AutoModelForCausalLM).from_config(config)
    result = model.load_state_dict(weights, strict=False, assign=True)
    model.tie_weights()
    missing = [k for k, v in model.state_dict().items() if v.is_meta]
    if missing or result.unexpected_keys:
        raise OreoError(f"{flag}: the checkpoint's weights do not match {serving / 'config.json'} "
                        f"(missing {missing[:3]}, unexpected {list(result.unexpected_keys)[:3]})")  # fmt: skip
    model.save_pretrained(str(out))
    for name in MODEL_TEXT_FILES:
        if name != "config.json" and (serving / name).is_file():
            shutil.copy(serving / name, out / name)


def _write_adapter(adapter: dict[str, Any], lora: dict[str, Any], out: Path, *, base_dir: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    save_file({k: v.detach().contiguous().clone() for k, v in adapter.items()}, str(out / ADAPTER_WEIGHTS))
    config = {**lora, "base_model_name_or_path": str(base_dir), "inference_mode": True}
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))


# --- what a checkpoint records for serving (called by learning/checkpoints.py at save) ---------------------------------
def write_serving_files(folder: Path, base_model: Path, *, component: str, prefix: str,
                        lora: dict[str, Any] | None) -> None:
    """``folder/serving/``: the base model's config + tokenizer files and ``serving.json`` (where the policy's weights
    are, and the PEFT LoRA config when the run trains adapters)."""
    out = folder / SERVING_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_TEXT_FILES:
        if (Path(base_model) / name).is_file():
            shutil.copy(Path(base_model) / name, out / name)
    info = {"format": 1, "component": component, "prefix": prefix, "lora": lora}
    (out / SERVING_FILE).write_text(json.dumps(info, indent=1, sort_keys=True, default=_jsonable))


def peft_config_dict(model: Any) -> dict[str, Any] | None:
    """The PEFT LoRA config of a PeftModel as adapter_config.json holds it (None for a plain model)."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None
    config = next(iter(configs.values())).to_dict()
    return json.loads(json.dumps(config, default=_jsonable))


def _jsonable(x: Any) -> Any:
    if isinstance(x, (set, frozenset, tuple)):
        return sorted(x) if all(isinstance(i, str) for i in x) else list(x)
    return str(x)

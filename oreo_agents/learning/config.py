"""``TrainConfig``: every option of ``oreo-agents train`` (YAML key = flag = field; no torch import here).

Two sets of defaults matter. The *paper's* recipe for 1.5B models is beta 0.03, alpha 0.01/0.1/0.3 (token/step/response),
lr 5e-6, Adam(0.9, 0.95), no weight decay, clip 1.0, cosine with 3% warm-up, batch 128, 3 epochs on ALFWorld
(``configs/train-oreo-paper.yaml``). The field defaults below are the ones that work for the from-scratch ``tiny`` model
on the embedded data (a random 2M-parameter model needs a far larger learning rate and smaller batches); each help
string names the paper's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PAPER_ALPHA = {"token": 0.01, "step": 0.1, "response": 0.3}
OREO_BETA = 0.03  # the paper's beta for OREO at 1.5B; the default
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]  # also the loops' --mixed-precision (pipeline/stages.py)
REF_CACHE_AUTO_GB = 8  # --ref-distributions auto caches pi_ref's distributions up to this size, recomputes them beyond
REF_CACHE_MAX_GB = 20  # an explicit cache larger than this is refused with a way out


@dataclass
class TrainConfig:
    algo: Literal["oreo", "sft", "rft", "dpo"] = field(
        default="oreo", metadata={"help": "oreo (policy + value), sft (successful episodes), rft (successful own rollouts), dpo (success/failure pairs per task)."}
    )
    data: list[str] = field(
        default_factory=list, metadata={"help": "Recorded dataset(s): a Parquet file or a folder of them (repeat the flag for several)."}
    )
    model: str = field(default="tiny", metadata={"help": "Starting policy (= pi_ref): a HF model folder, or tiny / small (built on the data's text) / smollm2."})
    value_model: str = field(default="", metadata={"help": "Value model start: a folder (saved value or any causal LM). Default: the policy's start."})
    out: str = field(
        default="runs/train",
        metadata={"help": "Run folder: checkpoints, metrics.jsonl, metrics.png, policy/ and value/. Rerunning on it resumes: "
                  "--save-steps, --save-total-limit, --log-steps, --plot, --model-cache, --trust-remote-code, "
                  "--gradient-checkpointing and --save-dtype may change; any other setting, the data or the model changed is refused by name."},
    )
    observation_loss_weight: float = field(
        default=0.0,
        metadata={"help": "SFT/RFT: weight of the next-token loss on observation and prompt tokens beside the replies' (0 = replies only, "
                  "TRL's completion-only loss). A from-scratch model learns to read the game's text from it (1 helped the tiny model on ALFWorld)."},
    )
    loss_level: Literal["token", "step", "response"] = field(
        default="token", metadata={"help": "OREO loss granularity (paper ablation: token 77.3, step ~78.9, response ~74.4 on GSM8K)."}
    )
    beta: float = field(default=OREO_BETA, metadata={"help": "OREO: KL strength of the soft Bellman objective (paper 0.03)."})
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO: strength of the implicit KL to pi_ref (paper 0.1)."})
    alpha: float = field(default=-1.0, metadata={"help": "Weight of the exact KL regulariser; -1 = the paper's 0.01 / 0.1 / 0.3 for token / step / response."})
    ref_distributions: Literal["auto", "cache", "online"] = field(
        default="auto",
        metadata={"help": "Where the exact KL's pi_ref distributions come from: cache (computed once, float16 on disk: action tokens x "
                  "vocab x 2 bytes), online (a frozen pi_ref forward per micro-batch; LoRA runs reuse the base weights with the "
                  f"adapters off), auto = cache up to {REF_CACHE_AUTO_GB} GB, else online."},
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Policy learning rate (paper: 5e-6 OREO, 2e-5 SFT, 5e-7 DPO; 1e-3 suits the tiny model)."})
    value_learning_rate: float = field(default=-1.0, metadata={"help": "Value learning rate; -1 = same as --learning-rate (paper 5e-6)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (paper 0.9)."})
    adam_beta2: float = field(default=0.95, metadata={"help": "Adam beta2 (paper 0.95)."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay (paper: none)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of updates spent warming up before the cosine decay (paper 3%)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm for each model (paper 1.0)."})
    epochs: int = field(default=3, metadata={"help": "Passes over the data (paper: 3 for ALFWorld, 1 for math)."})
    max_steps: int = field(default=0, metadata={"help": "Stop after this many updates (0 = run all epochs)."})
    batch_size: int = field(default=8, metadata={"help": "Trajectories per update, over all processes (paper 128)."})
    micro_batch_size: int = field(default=4, metadata={"help": "Trajectories per forward/backward per process; gradient accumulation makes up the batch."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per episode; longer episodes keep whole replies up to this length."})
    mixed_precision: MixedPrecision = field(
        default="auto",
        metadata={"help": "Compute dtype (weights and Adam states stay fp32 whatever the checkpoint's dtype): auto = bf16 where "
                  "it is native (GPUs that support it; CPUs with AVX512-BF16 / AMX), fp32 elsewhere (emulated bf16 is slower)."},
    )
    save_dtype: Literal["float32", "bfloat16"] = field(
        default="float32",
        metadata={"help": "dtype of the saved policy/ and value/ (training always keeps fp32 master weights); bfloat16 halves "
                  "the folders for serving. The value head is always saved in float32."},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank for policy and value backbones (0 = full fine-tuning); the value head stays fully trainable."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations in the backward pass (less memory, ~30% slower)."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N updates (and always at the end)."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept in <out>/checkpoints (oldest removed)."})
    log_steps: int = field(default=1, metadata={"help": "Print a metrics line every N updates when not on a terminal."})
    seed: int = field(default=0, metadata={"help": "Seed for shuffling and initialisation."})
    split: str = field(default="", metadata={"help": "Use only episodes of this split (e.g. train); empty = all."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model folders with custom code (off: only trust code you have read)."})
    model_cache: str = field(default="", metadata={"help": "Where tiny/small/smollm2 models are built (default $OREO_AGENTS_CACHE/models, else ~/.cache/oreo-agents/models)."})
    plot: bool = field(default=True, metadata={"help": "Write metrics.png at the end."})
    trust_checkpoint_pickles: bool = field(
        default=False,
        metadata={"help": "Resume from a checkpoint in accelerate's pickle format (DeepSpeed runs, older oreo-agents runs): loading "
                  "it runs any code planted in the run folder, so only for folders you made yourself."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        for name in ("batch_size", "micro_batch_size", "epochs", "max_length", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.observation_loss_weight < 0:
            raise ValueError("--observation-loss-weight must be 0 or positive")
        if self.max_steps < 0:
            raise ValueError("--max-steps must be 0 (all epochs) or positive")
        if self.algo == "dpo" and self.beta != OREO_BETA:  # a recipe from before the split would silently train at 0.1
            raise ValueError(f"--beta {self.beta} is OREO's KL strength and does nothing for --algo dpo: set --dpo-beta")

    @property
    def kl_alpha(self) -> float:
        return PAPER_ALPHA[self.loss_level] if self.alpha < 0 else self.alpha

    @property
    def value_lr(self) -> float:
        return self.learning_rate if self.value_learning_rate < 0 else self.value_learning_rate

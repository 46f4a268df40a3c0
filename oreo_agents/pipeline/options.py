"""The option groups the commands are composed of (TRL style: dataclasses whose fields are the flags and YAML keys),
and the one place that turns env options into an env.

``collect``, ``eval`` and ``play`` inherit :class:`EnvOptions`, :class:`AgentOptions` and :class:`SamplingOptions`, so
each concept has one definition, one help text and one default; a command overrides a field only where it must (eval
takes several ``--policy`` / ``--split``; collect samples by default because it records training data).


``resolve_env_id`` maps an env family (``alfworld``, ``math``, ``webshop``) or a Gymnasium id to a registered id, and
``env_kwargs`` maps the env options of a command (``split``, ``data_path``, ``games_root``, ``source``,
``task_types``, ``max_steps``, ``num_tasks``) onto the env constructor's keywords. This is the only code that knows
the env constructors' vocabulary; when :func:`oreo_agents.envs.make` takes one vocabulary for every env, ``make_env``
is where to point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from oreo_agents.errors import OreoError

SCRIPTED_POLICIES = ("expert", "random", "noisy-expert")
# The selection modes as click choices; the values are oreo_agents.agent.selection.SelectMode's (checked by a test).
SelectChoice = Literal["greedy", "sample", "value", "admissible"]

# Options that are env options: their names are the envs' own (the one vocabulary of oreo_agents.envs.make).
ENV_OPTIONS = ("split", "data_path", "games_root", "source", "task_types", "max_steps", "num_tasks")


def resolve_env_id(name: str) -> str:
    """The Gymnasium id of ``--env`` (a family name, an id, or ``module:Id-v0``); one line naming it when unknown."""
    from oreo_agents import envs

    try:
        return envs.resolve(name)
    except OreoError as exc:
        raise OreoError(f"--{exc}") from None


def make_env(env_id: str, kwargs: dict[str, Any]) -> Any:
    """The env ``env_id`` built with ``kwargs`` (from :func:`env_kwargs`)."""
    from oreo_agents import envs

    try:
        return envs.make(env_id, **kwargs)
    except OreoError as exc:  # name the flag the user gave, not the keyword it became
        message = str(exc)
        option = next((k for k in kwargs if message.startswith(f"{k} is not an option")), None)
        if option is None:
            raise
        raise OreoError(f"--{option.replace('_', '-')}{message[len(option):]}") from None


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class EnvOptions:
    """Which env, which tasks, how long an episode may run."""

    env: str = field(default="alfworld", metadata=_help(
        "Env family (alfworld, math, webshop) or any registered Gymnasium id ('module:Id-v0' imports it)."))
    split: str = field(default="train", metadata=_help(
        "Split: train / valid_seen / valid_unseen (ALFWorld), train / test (math, web shop)."))
    data_path: str | None = field(default=None, metadata=_help(
        "Env data: real ALFWorld root, a math problems file (jsonl/parquet), or web-shop data folder."))
    games_root: str | None = field(default=None, metadata=_help(
        "ALFWorld: embedded games root (default $OREO_AGENTS_DATA/alfworld/embedded or ./envs/alfworld/embedded)."))
    source: str | None = field(default=None, metadata=_help(
        "Math: problem source (embedded, gsm8k, math, reasoning-gym:NAME); env default when unset."))
    task_types: list[str] = field(default_factory=list, metadata=_help("Keep only these task types (repeatable)."))
    num_tasks: int | None = field(default=None, metadata=_help(
        "How many games / problems the env holds (env default when unset)."))
    max_steps: int | None = field(default=None, metadata=_help(
        "Step limit per episode (the env's own default when unset: the one place it is defined)."))
    seed: int = field(default=0, metadata=_help(
        "Seed: which tasks are played (episode i resets with seed + i) and the policy's randomness."))

    @property
    def env_id(self) -> str:
        return resolve_env_id(self.env)

    def make(self, split: str | None = None, expert: bool = False) -> Any:
        """One env from these options (``split`` overrides the option; ``expert``: build it with its expert)."""
        env_id = self.env_id
        return make_env(env_id, self.env_kwargs(env_id, split=split, expert=expert))

    def env_kwargs(self, env_id: str, *, split: str | None = None, expert: bool = False) -> dict[str, Any]:
        """``envs.make`` options from the env options that were set (None / [] leave the env's default; ``split``
        overrides the option); ``make`` checks each against the env and names any it does not take."""
        from oreo_agents.envs import options_of

        values = {name: getattr(self, name, None) for name in ENV_OPTIONS}
        if split is not None:
            values["split"] = split
        elif not isinstance(values["split"], (str, type(None))):  # eval's list of splits: pass one with split=
            values["split"] = None
        kwargs = {k: v for k, v in values.items() if v not in (None, [])}
        accepted = options_of(env_id)
        if accepted is not None and "split" not in accepted and kwargs.get("split") == "train":
            del kwargs["split"]  # a third-party env without splits, and no split asked for (the default is train)
        if expert:
            if accepted is not None and "expert" not in accepted:
                raise OreoError(f"--policy {getattr(self, 'policy', 'expert')} needs an expert, and env {env_id} has none "
                                "(no 'expert' option)")
            kwargs["expert"] = True
        return kwargs


@dataclass
class AgentOptions:
    """Who acts: a scripted policy or a model folder, optionally with a value model and a selection mode."""

    policy: str = field(default="expert", metadata=_help(
        "Who acts: expert, random, noisy-expert, or a model folder (save_pretrained, e.g. runs/sft/policy)."))
    value: str | None = field(default=None, metadata=_help(
        "Value model folder (from `train --algo oreo`): shows V, enables --select value / admissible by V."))
    select: SelectChoice = field(default="greedy", metadata=_help(
        "How each reply is chosen: greedy, sample (temperature), value (best of --k by V), admissible (score each command)."))
    k: int = field(default=4, metadata=_help("Candidates per turn for --select value."))
    eps: float = field(default=0.2, metadata=_help("noisy-expert: probability of a random admissible action."))
    backend: Literal["hf", "vllm"] = field(default="hf", metadata=_help("Generation backend (vllm needs a GPU)."))
    device: str | None = field(default=None, metadata=_help("torch device, e.g. cpu or cuda (default: cuda if present)."))
    dtype: str | None = field(default=None, metadata=_help("Model dtype: float32, bfloat16 or float16."))

    def __post_init__(self) -> None:
        self.check_agent()

    def check_agent(self) -> None:
        """``select`` as a :class:`~oreo_agents.agent.selection.SelectMode`, ``k`` positive (commands that take one
        selection call this from their own ``__post_init__``)."""
        from oreo_agents.agent.selection import SelectMode

        if isinstance(self.select, str):
            try:
                self.select = SelectMode(self.select)
            except ValueError:
                raise OreoError(f"--select {self.select}: choose {', '.join(m.value for m in SelectMode)}") from None
        if self.k < 1:
            raise OreoError(f"--k must be at least 1, got {self.k}")

    def build(self, seed: int, sampling: "SamplingOptions | None" = None, *, policy: str | None = None,
              value: str | None = None, select: str | None = None) -> Any:
        """The Policy these options name (``policy`` / ``value`` / ``select`` override the fields, for eval's lists)."""
        name, mode = policy or self.policy, select or self.select
        if name in SCRIPTED_POLICIES:  # no model: nothing of torch is imported (the agent layer would import it)
            from oreo_agents.policies import make_policy

            if mode != "greedy":
                raise OreoError(f"--select {mode} needs a model policy (--policy <checkpoint dir>), not '{name}'")
            options = {"expert": {}, "random": {"seed": seed}, "noisy-expert": {"eps": self.eps, "seed": seed}}[name]
            return make_policy(name, **options)
        from oreo_agents.agent import build_agent

        s = sampling if sampling is not None else self if isinstance(self, SamplingOptions) else SamplingOptions()
        return build_agent(name, value=value if policy is not None else self.value, select=mode, k=self.k,
                           temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens, seed=seed,
                           backend=self.backend, device=self.device, dtype=self.dtype,
                           gpu_memory_utilization=s.gpu_memory_utilization)


@dataclass
class SamplingOptions:
    """How a model policy samples its replies."""

    temperature: float = field(default=1.0, metadata=_help("Sampling temperature (0 = greedy) for sample / value selection."))
    top_p: float = field(default=1.0, metadata=_help("Nucleus sampling mass."))
    max_new_tokens: int = field(default=64, metadata=_help("Longest reply in tokens."))
    gpu_memory_utilization: float | None = field(default=None, metadata=_help(
        "--backend vllm: fraction of GPU memory vLLM may take for weights + KV cache (default 0.85; on vLLM's CPU "
        "build: of host RAM). A value model runs in the rest: lower it if that does not fit."))


@dataclass
class EnvWorkerOptions:
    """Where envs are stepped: in this process, or in worker processes beside generation. Not episode content: the
    same settings give the same episodes whatever these are (so a resume may change them)."""

    env_workers: int = field(default=0, metadata=_help(
        "Env worker processes stepping envs beside generation (0: in the main process)."))
    env_timeout: float = field(default=300.0, metadata=_help(
        "Seconds an env worker may take for one reset / step before it counts as hung: killed, restarted, its episodes replayed."))
    env_restarts: int = field(default=3, metadata=_help(
        "Restarts of a crashed or hung env worker in a row (no answered command between) before the run stops."))

    def check_env_workers(self) -> None:
        """Commands that take env workers call this from their own ``__post_init__``."""
        if not isinstance(self.env_workers, int) or self.env_workers < 0:
            raise OreoError(f"--env-workers must be 0 (envs in the main process) or a positive integer, got {self.env_workers!r}")
        if not self.env_timeout > 0:
            raise OreoError(f"--env-timeout must be a positive number of seconds, got {self.env_timeout!r}")
        if not isinstance(self.env_restarts, int) or self.env_restarts < 0:
            raise OreoError(f"--env-restarts must be a non-negative integer, got {self.env_restarts!r}")

    def env_worker_kwargs(self) -> dict[str, Any]:
        """The keywords of ``rollouts`` / ``collect_episodes`` / ``run_episodes`` these options set."""
        return {"env_workers": self.env_workers, "env_timeout": self.env_timeout, "env_restarts": self.env_restarts}


ENV_WORKER_OPTIONS = ("env_workers", "env_timeout", "env_restarts")
RAY_OPTIONS = ("ray_address", "workers", "gpus_per_worker", "ray_stall_timeout")  # where collectors run, not what they play


def is_model_policy(policy: str) -> bool:
    return policy not in SCRIPTED_POLICIES


def policy_label(policy: str) -> str:
    """A short name for tables: the scripted name, or the model folder's last two parts."""
    p = Path(policy)
    return policy if policy in SCRIPTED_POLICIES else "/".join(p.parts[-2:]) if len(p.parts) > 1 else policy


@dataclass
class RayOptions:
    """Where collectors run: this process, or ``workers`` Ray actors on a cluster (see docs/scale-out.md).

    None of these change what an episode contains: N Ray workers write the same episodes as one process."""

    ray_address: str | None = field(default=None, metadata=_help(
        "auto | HOST:PORT | local: run --workers collectors as Ray actors (none: this process)."))
    workers: int = field(default=1, metadata=_help(
        "Ray actors with --ray-address, each playing a disjoint share of the episodes into the same --out."))
    gpus_per_worker: float | None = field(default=None, metadata=_help(
        "GPUs each Ray actor reserves (default: 1 for a model policy on a cluster with GPUs, else 0)."))
    ray_stall_timeout: float = field(default=1800.0, metadata=_help(
        "Seconds a Ray worker may go without finishing an env step (collect) or a turn (eval) before it is killed "
        "and its share restarts on a fresh actor (a hung model call or env; 0 = wait forever)."))

    def check_ray_options(self) -> None:
        """``workers`` positive, ``gpus_per_worker`` non-negative, both only meaningful with ``ray_address``."""
        if not isinstance(self.workers, int) or self.workers < 1:
            raise OreoError(f"--workers must be a positive integer, got {self.workers!r}")
        if not self.ray_stall_timeout >= 0:
            raise OreoError(f"--ray-stall-timeout must be 0 (never) or a number of seconds, got {self.ray_stall_timeout!r}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise OreoError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if self.ray_address is None and (self.workers != 1 or self.gpus_per_worker is not None):
            flag = "--workers" if self.workers != 1 else "--gpus-per-worker"
            raise OreoError(f"{flag} runs Ray actors: give --ray-address auto|HOST:PORT|local too")

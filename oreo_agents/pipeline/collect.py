"""Collection as a library function: the planned episodes not yet in a dataset, played by the rollout runner and
streamed to a :class:`~oreo_agents.recording.writer.ShardWriter`.

No torch here; any :class:`~oreo_agents.turns.Policy` works (scripted or a language model)::

    >>> writer = ShardWriter("datasets/demo", settings)                                   # doctest: +SKIP
    >>> summary = collect_episodes(lambda: gym.make("oreo_agents/ALFWorld-v0", expert=True), make_policy("expert"),
    ...                            writer, episodes=20, num_envs=4, seed=0)                # doctest: +SKIP

The plan (which task and sample each episode is, and its id) is :func:`oreo_agents.recording.collect.plan_episodes`.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from oreo_agents.config import to_dict
from oreo_agents.console import console, escape, is_interactive
from oreo_agents.envs.core import task_reset_options
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.options import (
    ENV_WORKER_OPTIONS,
    RAY_OPTIONS,
    AgentOptions,
    EnvOptions,
    EnvWorkerOptions,
    RayOptions,
    SamplingOptions,
    SelectChoice,
    is_model_policy,
    make_env,
)
from oreo_agents.recording.collect import CollectSummary, PlannedEpisode, plan_episodes
from oreo_agents.recording.schema import EpisodeMetadata
from oreo_agents.turns import Policy


@dataclass
class CollectConfig(RayOptions, EnvWorkerOptions, SamplingOptions, AgentOptions, EnvOptions):
    """Settings of one collection (the YAML keys of ``--config`` and the flags are these field names).

    The env, agent, sampling and env worker options come from :mod:`oreo_agents.pipeline.options`."""

    # Collection records training data: a model policy samples unless told otherwise.
    select: SelectChoice = field(default="sample", metadata={"help": AgentOptions.__dataclass_fields__["select"].metadata["help"]})
    model: str | None = field(default=None, metadata={"help": "Deprecated: --policy model --model DIR is --policy DIR."})
    batch_invariant: bool = field(
        default=False,
        metadata={"help": "model policy: generate each context on its own (no batching, no prefix cache) so recorded "
                          "log-probs are bit for bit the same whatever --num-envs (tokens are the same either way); slower."},
    )
    samples_per_task: int = field(default=1, metadata={"help": "Episodes per task (OREO: 5 per ALFWorld game, 10 per problem)."})
    episodes: int = field(default=100, metadata={"help": "Episodes in the dataset (rerun with more to extend it)."})
    num_envs: int = field(default=1, metadata={"help": "Envs stepped together; the model policy acts on all in one batch."})
    out: str | None = field(default=None, metadata={"help": "Dataset folder to write, e.g. datasets/alfworld-expert."})
    resume: bool = field(
        default=True, metadata={"help": "Continue a folder made with the same settings (--no-resume: refuse it)."}
    )
    shard_size: int = field(default=50, metadata={"help": "Episodes per Parquet shard (a kill loses at most one shard's worth)."})

    def __post_init__(self) -> None:
        for name in ("episodes", "num_envs", "samples_per_task", "shard_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "episodes" else 1):
                raise OreoError(f"--{name.replace('_', '-')} must be a {'non-negative' if name == 'episodes' else 'positive'} integer, got {value!r}")
        if self.policy == "model":  # the old spelling, still accepted
            if not self.model:
                raise OreoError("--policy model needs --model PATH; spell it --policy PATH (a save_pretrained model folder)")
            console.print(f"[yellow]warning:[/] --policy model --model {escape(self.model)} is the old spelling of "
                          f"--policy {escape(self.model)}")
            self.policy, self.model = self.model, None
        elif self.model:
            raise OreoError(f"--model {self.model}: give the model folder as --policy {self.model}")
        self.check_agent()
        self.check_env_workers()
        self.check_ray_options()

    @property
    def model_dir(self) -> str | None:
        """The model folder when a model acts, else None."""
        return self.policy if is_model_policy(self.policy) else None


# Settings that do not change what an episode contains, so a resume may change them.
_NOT_CONTENT = {"episodes", "num_envs", "out", "resume", "shard_size", "device", *ENV_WORKER_OPTIONS}
_NOT_CONTENT |= set(RAY_OPTIONS)  # where collectors run (pipeline/ray_runner.py)


# Settings that name files or folders: stored resolved, compared resolved (./x/ and /abs/x are the same folder).
PATH_SETTINGS = ("data_path", "games_root", "model", "value")


def _resolved(value: str | None) -> str | None:
    import os
    from pathlib import Path

    return str(Path(os.path.expandvars(value)).expanduser().resolve()) if value else value


_NOT_CONTENT.add("gpu_memory_utilization")  # vLLM's memory share decides speed, not what is sampled


def content_settings(cfg: CollectConfig) -> dict[str, Any]:
    """The settings stored in the manifest: everything that decides the episodes (policy-specific ones only if used).

    Paths are stored resolved; :func:`fingerprint_settings` adds the content hashes of the env data and weights."""
    out = {k: v for k, v in to_dict(cfg).items() if k not in _NOT_CONTENT}
    out["select"] = str(cfg.select)
    if cfg.model_dir:  # stored as before the one --policy spelling, so older datasets resume
        out["policy"], out["model"] = "model", cfg.model_dir
    for key in PATH_SETTINGS:
        out[key] = _resolved(out[key])
    if cfg.policy != "noisy-expert":
        out.pop("eps")
    if not cfg.model_dir or not cfg.batch_invariant:
        out.pop("batch_invariant")  # off: manifests stay as they were before this option
    if not cfg.model_dir:
        for k in ("model", "backend", "temperature", "top_p", "max_new_tokens", "dtype", "value", "select", "k"):
            out.pop(k)
    elif cfg.select == "sample" and cfg.value is None:
        for k in ("value", "select", "k"):  # plain sampling: manifests stay as they were before these options
            out.pop(k)
    return out


def env_provenance(env_id: str) -> tuple[str, str]:
    """(env_version, grammar_hash) for the episode metadata."""
    from importlib.metadata import PackageNotFoundError, version

    if "ALFWorld" in env_id:
        from oreo_agents.envs.alfworld.games import engine_fingerprint

        fp = engine_fingerprint()
        return f"alfworld {fp['alfworld_version']}, textworld {fp['textworld_version']}", fp["grammar_sha256"][:16]
    if "Math" in env_id:
        try:
            return f"math-verify {version('math-verify')}", ""
        except PackageNotFoundError:
            return "", ""
    return "", ""


def run_collect(cfg: CollectConfig) -> Any:
    from oreo_agents.policies import NEEDS_EXPERT
    from oreo_agents.recording.fingerprints import FINGERPRINT_KEYS, DigestCache
    from oreo_agents.recording.locks import LOCK_DIR
    from oreo_agents.recording.writer import ShardWriter, read_manifest

    if cfg.ray_address is not None:  # Ray importable and the address well-formed before anything is written
        from oreo_agents.pipeline.ray_runner import RAY_DRIVER_SHARE, check_ray

        check_ray(cfg)
    env_id = cfg.env_id
    kwargs = cfg.env_kwargs(env_id, expert=cfg.policy in NEEDS_EXPERT)
    if cfg.model_dir:
        if cfg.select in ("value", "admissible") and not cfg.value:
            raise OreoError(f"--select {cfg.select} needs --value DIR (a value model from `oreo-agents train --algo oreo`)")
    digests = DigestCache(Path(cfg.out) / LOCK_DIR / "digests.json" if read_manifest(cfg.out) else None)
    settings = fingerprint_settings(cfg, content_settings(cfg), lambda: make_env(env_id, kwargs), digests)
    # On Ray the driver holds a share lock of its own: its actors' share writers run beside it, a whole-plan writer
    # (or a second Ray driver) is refused while it runs.
    writer = ShardWriter(cfg.out, settings, resume=cfg.resume, shard_size=cfg.shard_size, path_keys=PATH_SETTINGS,
                         unverified_keys=FINGERPRINT_KEYS, share=RAY_DRIVER_SHARE if cfg.ray_address else None)
    digests.path = Path(cfg.out) / LOCK_DIR / "digests.json"
    digests.save()
    if writer.unverified:
        console.print(
            f"[yellow]warning:[/] {cfg.out} was recorded before {', '.join(writer.unverified)} were kept: resuming "
            "without checking them (they are recorded from now on)"
        )
    try:
        if cfg.ray_address is not None:
            from oreo_agents.pipeline.ray_runner import collect_on_ray

            return collect_on_ray(cfg, writer, env_id, kwargs, play_share=collect_share, report=print_summary)
        return _collect_into(cfg, writer, env_id, kwargs)
    except BaseException:
        writer.close()  # releases the lock; flushes nothing new (a failure before collecting leaves no episode)
        raise


def fingerprint_settings(cfg: CollectConfig, settings: dict[str, Any], make_env: Any, digests: Any) -> dict[str, Any]:
    """``settings`` plus the content hashes of the env's task data and of the model/value weights (see
    :mod:`oreo_agents.recording.fingerprints`); an env whose data cannot be seen gets no data hash."""
    from oreo_agents.recording.fingerprints import env_data_fingerprint

    out = dict(settings)
    env = make_env()
    try:
        data = env_data_fingerprint(env, digests)
    finally:
        env.close()
    if data is not None:
        out["env_data_sha256"] = data
    out.update(weights_fingerprints(cfg.model_dir, cfg.value, digests))
    return out


def weights_fingerprints(model_dir: str | None, value: str | None, digests: Any) -> dict[str, str]:
    """Content hashes of a model policy's folder, its value model's, and a LoRA adapter's base (none without a model)."""
    from oreo_agents.models.servable import ADAPTER_CONFIG, adapter_base
    from oreo_agents.recording.fingerprints import folder_fingerprint

    out = {}
    for key, folder in (("model_weights_sha256", model_dir), ("value_weights_sha256", value)):
        if model_dir and folder and Path(folder).is_dir():
            out[key] = folder_fingerprint(folder, digests)
    if model_dir and (Path(model_dir) / ADAPTER_CONFIG).is_file():
        # A LoRA adapter is half the policy: new weights saved into its base folder change every sample just as well.
        out["base_weights_sha256"] = folder_fingerprint(adapter_base(Path(model_dir)), digests)
    return out


def _collect_into(cfg: CollectConfig, writer: Any, env_id: str, kwargs: dict[str, Any]) -> Any:
    from oreo_agents.envs.workers import EnvSpec
    from oreo_agents.recording.collect import CollectProgress

    policy, metadata, plan_key = collect_setup(cfg, writer.settings, env_id, kwargs)
    progress = CollectProgress(console, interactive=is_interactive(), description=f"{'model' if cfg.model_dir else cfg.policy} on {cfg.env}")
    complete = False
    import signal
    # The env as the user spelled it ("module:Id-v0" imports its module): a worker process resolves it afresh.

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` (SIGTERM) stops like Ctrl-C: buffered episodes are flushed first

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (e.g. called from a notebook worker): keep the default handler
        previous = None
    try:
        summary = collect_episodes(
            EnvSpec(cfg.env, kwargs), policy, writer, episodes=cfg.episodes, num_envs=cfg.num_envs,
            samples_per_task=cfg.samples_per_task, seed=cfg.seed, metadata=metadata, env_id=env_id,
            plan_key=plan_key, task_options=task_reset_options, progress=progress, **cfg.env_worker_kwargs(),
        )
        complete = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        progress.stop()
        writer.close(complete=complete)
    print_summary(cfg, summary, writer.num_episodes)
    return summary


def collect_share(cfg: CollectConfig, settings: dict[str, Any], env_id: str, kwargs: dict[str, Any],
                  share: tuple[int, int], *, progress: Any = None) -> CollectSummary:
    """Share ``(i, n)`` of a collection into ``cfg.out`` (whose manifest holds ``settings``), as one of ``n``
    cooperating collectors plays it (a Ray actor, :mod:`oreo_agents.pipeline.ray_runner`)."""
    from oreo_agents.recording.fingerprints import FINGERPRINT_KEYS
    from oreo_agents.recording.writer import ShardWriter

    cfg.env_id  # resolving --env imports a 'module:Id-v0' env's module in this process too, registering its id
    # resume=True: the driver refused --no-resume on a folder with episodes; other shares' shards may be in already.
    writer = ShardWriter(cfg.out, settings, resume=True, shard_size=cfg.shard_size, share=f"{share[0]}-of-{share[1]}",
                         path_keys=PATH_SETTINGS, unverified_keys=FINGERPRINT_KEYS)
    try:
        policy, metadata, plan_key = collect_setup(cfg, writer.settings, env_id, kwargs)
        from oreo_agents.envs.workers import EnvSpec

        return collect_episodes(
            EnvSpec(cfg.env, kwargs), policy, writer, episodes=cfg.episodes, num_envs=cfg.num_envs,
            samples_per_task=cfg.samples_per_task, seed=cfg.seed, metadata=metadata, env_id=env_id,
            plan_key=plan_key, task_options=task_reset_options, progress=progress, share=share,
            **cfg.env_worker_kwargs(),
        )
    finally:
        writer.close()  # flushes the finished episodes it holds, also when stopped


def collect_setup(cfg: CollectConfig, settings: dict[str, Any], env_id: str,
                  kwargs: dict[str, Any]) -> tuple[Any, EpisodeMetadata, str]:
    """``(policy, metadata, plan_key)`` of a collection into a dataset whose manifest holds ``settings``: what every
    collector of it (this process, or each Ray actor) builds alike, so all of them plan and stamp the same episodes."""
    import oreo_agents

    policy = _collect_policy(cfg)
    meta = policy.metadata()
    env_version, grammar_hash = env_provenance(env_id)
    metadata = EpisodeMetadata(
        policy=policy.name,
        # The model folder as the manifest spells it (first run's spelling): episode ids stay the same however a
        # resume spells the same folder.
        checkpoint=str(settings.get("model") or meta.get("checkpoint", "")),
        sampling=json.dumps(meta.get("sampling", {}), sort_keys=True),
        seed=cfg.seed,
        env_version=env_version,
        grammar_hash=grammar_hash,
        tokenizer=str(meta.get("tokenizer", "")),
        package_version=oreo_agents.__version__,
        extra=json.dumps({"env_kwargs": {k: v for k, v in kwargs.items()}}, sort_keys=True, default=str),
    )
    return policy, metadata, f"{env_id}|{cfg.split}|{policy.name}|{metadata.checkpoint}"


def _collect_policy(cfg: CollectConfig) -> Any:
    """The policy of a collection: plain sampling from a model folder is the bare ModelPolicy (its metadata is what
    earlier datasets recorded); any other choice is the agent the options build."""
    if cfg.model_dir and cfg.batch_invariant and cfg.backend == "vllm":
        import os

        os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read by vllm when its engine starts (vllm 0.32.0 envs.py:636)
    if cfg.model_dir and cfg.select == "sample" and cfg.value is None:
        from oreo_agents.models.policy import ModelPolicy

        return ModelPolicy.from_pretrained(  # a model, LoRA adapter or checkpoint folder (models/servable.py checks it)
            cfg.model_dir, backend=cfg.backend, device=cfg.device, dtype=cfg.dtype,
            temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
            batch_invariant=cfg.batch_invariant, gpu_memory_utilization=cfg.gpu_memory_utilization,
        )
    if not cfg.model_dir:  # scripted: collect's default --select sample is about models, so it is not checked here
        return cfg.build(cfg.seed, select="greedy")
    policy = cfg.build(cfg.seed)  # the value-guided agent (or greedy decoding) is recorded like any policy
    backend = getattr(getattr(policy, "policy", None), "backend", None)
    if cfg.batch_invariant and hasattr(backend, "make_batch_invariant"):
        backend.make_batch_invariant()
    return policy


def print_summary(cfg: CollectConfig, summary: Any, total: int) -> None:
    from rich.table import Table

    table = Table(title=f"collected into {escape(str(cfg.out))}", title_justify="left")
    table.add_column("task type")
    table.add_column("episodes", justify="right")
    table.add_column("success", justify="right")
    for task_type, (n, ok) in sorted(summary.by_task_type.items()):
        table.add_row(escape(task_type), str(n), f"{ok / n:.1%}" if n else "-")
    table.add_row("[bold]all (this run)", f"[bold]{summary.recorded}", f"[bold]{summary.success_rate:.1%}")
    console.print(table)
    ends = ", ".join(f"{k} {v}" for k, v in sorted(summary.terminations.items())) or "-"
    console.print(
        f"{summary.recorded} new episodes ({summary.skipped} already there, {total} in the dataset), "
        f"{summary.steps} steps in {summary.seconds:.1f}s: {summary.steps_per_second:.1f} steps/s, "
        f"{summary.episodes_per_second:.2f} episodes/s. Endings: {ends}.",
        markup=False,
    )


def collect_episodes(
    make_env: Callable[[], Any],
    policy: Policy,
    writer: Any,
    *,
    episodes: int,
    num_envs: int = 1,
    samples_per_task: int = 1,
    seed: int = 0,
    metadata: EpisodeMetadata | None = None,
    env_id: str | None = None,
    plan_key: str = "",
    task_options: Callable[[Any, int], dict[str, Any] | None] | None = None,
    progress: Any = None,
    share: tuple[int, int] | None = None,
    env_workers: int = 0,
    env_timeout: float = 300.0,
    env_restarts: int = 3,
) -> CollectSummary:
    """Play the planned episodes not yet in ``writer`` and add each finished one to it.

    Args:
        make_env: builds one env (called ``min(num_envs, episodes left)`` times: none when nothing is left to do).
        policy: acts for all running envs at once, one ``act`` call per turn.
        metadata: provenance copied onto every episode (``extra`` gets the plan position added).
        plan_key: names the collection in episode ids (see :func:`plan_episodes`).
        task_options: ``(env, task_slot) -> reset options`` for envs that can be told which task to play (e.g.
            ``{"task": slot % n_games}``); without it the task is whatever ``reset(seed=seed + slot)`` picks.
        progress: a :class:`~oreo_agents.recording.collect.CollectProgress`-like object (``start(total, done)``,
            ``update(summary)``), or None.
        share: ``(i, n)``: play only the planned episodes whose plan index is ``i`` mod ``n`` — one of ``n``
            cooperating collectors writing into one folder, each with a ``ShardWriter(..., share=f"{i}-of-{n}")``.
            Episodes are the same as in an unshared run (their content depends on the settings and their id only).
        env_workers, env_timeout, env_restarts: step the envs in worker processes (``make_env`` must then be
            picklable, e.g. an :class:`~oreo_agents.envs.workers.EnvSpec`); same episodes, see
            :func:`oreo_agents.rollouts.rollouts`.
    """
    from oreo_agents.rollouts import EpisodeFinished, Job, TurnFinished, rollouts  # gymnasium: loaded when episodes run, not for --help

    if num_envs < 1:
        raise OreoError(f"num_envs must be at least 1, got {num_envs}")
    if share is not None and not (share[1] >= 1 and 0 <= share[0] < share[1]):
        raise OreoError(f"share must be (i, n) with 0 <= i < n, got {share}")
    summary = CollectSummary()
    pending: list[PlannedEpisode] = []
    for planned in plan_episodes(episodes=episodes, samples_per_task=samples_per_task, seed=seed, key=plan_key):
        if share is not None and planned.index % share[1] != share[0]:
            continue
        summary.planned += 1
        if writer.is_done(planned.episode_id):
            summary.skipped += 1
        else:
            pending.append(planned)
    if progress is not None:
        progress.start(summary.planned, summary.skipped)
    base = metadata or EpisodeMetadata()
    jobs = [Job(seed=p.reset_seed, task=p.task_slot, episode_id=p.episode_id, sample_index=p.sample_index,
                metadata=_with_plan(base, p), tag=p) for p in pending]
    started = time.perf_counter()
    try:
        with closing(rollouts(make_env, policy, jobs, num_envs=num_envs, env_id=env_id, metadata=base,
                              task_options=task_options, env_workers=env_workers, env_timeout=env_timeout,
                              env_restarts=env_restarts)) as events:
            for event in events:
                if isinstance(event, EpisodeFinished):
                    writer.add(event.record)
                    summary.add(event.record)
                elif isinstance(event, TurnFinished):
                    summary.seconds = time.perf_counter() - started
                    if progress is not None:
                        progress.update(summary)
    finally:
        summary.seconds = time.perf_counter() - started
    return summary


def _with_plan(base: EpisodeMetadata, planned: PlannedEpisode) -> EpisodeMetadata:
    extra = json.loads(base.extra or "{}")
    extra.update(task_slot=planned.task_slot, sample_index=planned.sample_index, reset_seed=planned.reset_seed)
    return replace(base, extra=json.dumps(extra, sort_keys=True))

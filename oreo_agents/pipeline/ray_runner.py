"""``collect`` and ``eval`` on a Ray cluster: ``--ray-address auto|HOST:PORT|local --workers N`` runs N Ray actors.

Collection: this process (the *driver*) checks the settings and writes the manifest once (``run_collect``), holding a
share lock of its own (:data:`RAY_DRIVER_SHARE`) so a whole-plan collector cannot start beside it. Actor ``i`` builds
its own policy from the config, opens ``ShardWriter(out, share=f"{i}-of-{N}")`` and runs
``collect_episodes(..., share=(i, N))``: the planned episodes whose plan index is ``i`` mod ``N``, each with the same id,
seed and content as in one process (:mod:`oreo_agents.recording.collect`), into the same folder. An actor that dies
(``RayActorError``) has its share rerun by a fresh actor: its committed shards are skipped by id, its buffered episodes
are played again, never twice (shards are atomic, :mod:`oreo_agents.recording.writer`). A killed driver leaves a folder
the same command resumes, with any ``--workers``.

Evaluation: each actor plays the episode indices ``i`` mod ``N`` of every (agent, split) and returns its outcomes and
records; the driver merges them by index and writes the one report exactly as one process does.

Ray is imported only here and only when asked for (``pip install 'oreo-agents[ray]'``). Ray 2.60.0 behaviour relied
on: ``ray/_private/worker.py``: ``ray.init(address=...)`` 1446-1545 ("auto" connects or raises ConnectionError,
"local" always starts a cluster, HOST:PORT connects), ``num_cpus`` only when starting one (1934-1939 raise ValueError
otherwise), the driver's current directory put on the workers' ``sys.path`` (2716-2720; ``job_config.py`` 50-64
``_py_driver_sys_path`` adds ours), ``ray.wait`` 3103, ``ray.kill(no_restart=True)`` 3474; ``ray/exceptions.py``:
``RayTaskError`` 149 keeps the actor's exception as ``cause`` (183), ``RayActorError`` 417 and its subclasses
``ActorDiedError`` 456, ``ActorUnavailableError`` 531; ``ray/_common/ray_option_utils.py`` 253 ``max_concurrency``
(a threaded actor answers ``progress()`` while ``run()`` plays); ``ray/_private/utils.py`` 284-293 (an actor with no
GPU keeps the node's ``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable

from oreo_agents.console import console, escape, is_interactive
from oreo_agents.errors import OreoError

RAY_MISSING = "--ray-address needs Ray: pip install 'oreo-agents[ray]'"
RAY_DRIVER_SHARE = "ray-driver"  # the driver's lock name in <out>/.locks/ (it writes no episode itself)
ACTOR_RETRIES = 3  # fresh actors per share after the first one died, before giving up
STOP_GRACE_S = 30.0  # Ctrl-C / SIGTERM: how long actors get to flush their buffered episodes
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OreoError(RAY_MISSING) from None
    return ray


def check_ray(cfg: Any) -> None:
    """Ray importable and ``--ray-address`` one of auto, local, HOST:PORT (before anything runs)."""
    address = cfg.ray_address
    if (address or "").startswith("ray://"):  # the Ray Client: the driver would not be on the cluster's filesystem
        raise OreoError(f"--ray-address {address}: Ray Client addresses are not supported; run the command on a node "
                        "of the cluster with --ray-address auto (or the head's HOST:PORT)")
    if address not in ("auto", "local") and not _ADDRESS.match(address or ""):
        raise OreoError(f"--ray-address {address!r}: give auto (a running cluster), local (start one here) or HOST:PORT")
    import_ray()


class _Cluster:
    """``ray.init`` for ``cfg.ray_address`` (reusing a Ray this process already joined) and ``ray.shutdown`` at the
    end only if it was started here."""

    def __init__(self, cfg: Any, *, cpus_per_worker: int) -> None:
        self.cfg, self.cpus_per_worker = cfg, cpus_per_worker
        self.started = False

    def __enter__(self) -> Any:
        ray = import_ray()
        if ray.is_initialized():  # e.g. a notebook or test that called ray.init itself
            return ray
        from ray.job_config import JobConfig

        address = self.cfg.ray_address
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                  "job_config": JobConfig(_py_driver_sys_path=_code_paths())}
        if address == "local":  # a one-machine cluster big enough for every actor at once
            kwargs["num_cpus"] = max(os.cpu_count() or 1, self.cfg.workers * self.cpus_per_worker)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            hint = " (start one with `ray start --head`, or use --ray-address local)" if address == "auto" else ""
            raise OreoError(f"--ray-address {address}: no Ray cluster reached{hint}: {_first_line(exc)}") from None
        self.started = True
        return ray

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            import_ray().shutdown()


def _code_paths() -> list[str]:
    """Folders the actors import from, as the driver does: this package's root and $PYTHONPATH (on other nodes they
    must exist at the same paths, or oreo-agents be installed there)."""
    import oreo_agents

    root = os.path.dirname(os.path.dirname(os.path.abspath(oreo_agents.__file__)))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isdir(p)]
    return list(dict.fromkeys([root, *map(os.path.abspath, extra)]))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Worker:
    """What every actor does first: resolve relative paths (--out, --games-root, model folders) as the driver does,
    from its folder. A failure is kept and raised by the first call, so it reaches the driver as one line (an error
    in ``__init__`` would kill the actor, and look like a crash to retry)."""

    def __init__(self, cwd: str) -> None:
        self._error: OreoError | None = None
        try:
            os.chdir(cwd)
        except OSError:
            import socket

            self._error = OreoError(f"Ray worker on {socket.gethostname()}: the driver's folder {cwd} is not there; "
                                    "run from a folder every node sees at the same path (a shared filesystem)")

    def check(self) -> None:
        if self._error is not None:
            raise self._error


def gpus_per_worker(cfg: Any, ray: Any, *, needs_model: bool) -> float:
    """``--gpus-per-worker``, or by default 1 for a model policy on a cluster with GPUs, else 0 (scripted policies
    and CPU clusters reserve none); a request the cluster cannot meet is refused instead of waiting forever."""
    have = float(ray.cluster_resources().get("GPU", 0))
    want = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else (1.0 if needs_model and have >= 1 else 0.0)
    if want > have:
        raise OreoError(f"--gpus-per-worker {want:g}: the Ray cluster has {have:g} GPUs")
    if needs_model and want == 0 and have >= 1 and getattr(cfg, "device", None) != "cpu":
        # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for an actor with no GPU (_private/utils.py:284-293), so every
        # such actor would see every GPU and put its model on cuda:0 by default.
        console.print("[yellow]warning:[/] --gpus-per-worker 0 on a cluster with GPUs: every actor sees all GPUs and "
                      "a model goes to cuda:0; give --device cpu, or --gpus-per-worker > 0", soft_wrap=True)
    return want


class _Pool:
    """Actors of one class, one per share; a share whose actor died is rerun on a fresh actor."""

    def __init__(self, ray: Any, actor_class: type, cfg: Any, *, num_cpus: int, num_gpus: float) -> None:
        self.ray, self.n = ray, cfg.workers
        # max_concurrency=2: progress() / stop() are answered while run() plays (a threaded actor).
        self._remote = ray.remote(actor_class).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0,
                                                       max_task_retries=0, max_concurrency=2)
        self.actors: dict[int, Any] = {}
        self.retries = dict.fromkeys(range(self.n), 0)
        self.killed: dict[int, str] = {}  # share -> why the driver killed its actor (reported when its run fails)
        self._cwd = os.getcwd()

    def actor(self, share: int) -> Any:
        if share not in self.actors:
            self.actors[share] = self._remote.remote(self._cwd)
        return self.actors[share]

    def run(self, submit: Callable[[Any, int], Any], on_result: Callable[[int, Any], None], *,
            poll: Callable[[], None] | None = None, release: bool = False) -> None:
        """``submit(actor, share)`` for every share, ``on_result(share, value)`` as each finishes; ``release``: kill
        an actor whose share is done (its CPU/GPU go to actors still waiting for resources)."""
        ray = self.ray
        pending = {submit(self.actor(i), i): i for i in range(self.n)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # ActorDiedError, ActorUnavailableError (node lost, OOM)
                    pending[self._replace(i, exc, submit)] = i
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, OreoError):  # a refusal in the actor: the same one line as in one process
                        raise OreoError(str(cause)) from None
                    raise
                on_result(i, value)
                if release:
                    ray.kill(self.actors.pop(i), no_restart=True)
            if poll is not None:
                poll()

    def kill(self, i: int, why: str) -> None:
        """Kill share ``i``'s actor (its pending run then fails and the share restarts, as if it had died)."""
        if i in self.actors:
            self.killed[i] = why
            self.ray.kill(self.actors[i], no_restart=True)

    def _replace(self, i: int, exc: BaseException, submit: Callable[[Any, int], Any]) -> Any:
        self.retries[i] += 1
        why = self.killed.pop(i, None) or f"died ({_first_line(exc)})"
        if self.retries[i] > ACTOR_RETRIES:
            raise OreoError(f"Ray worker {i} of {self.n} {why}, {self.retries[i]} times; rerun the same command to "
                            "resume (finished episodes are kept)")
        console.print(f"[yellow]warning:[/] Ray worker {i} of {self.n} {escape(why)}; its share "
                      f"restarts on a fresh actor (try {self.retries[i]} of {ACTOR_RETRIES})", soft_wrap=True)
        dead = self.actors.pop(i, None)
        if dead is not None:
            self.ray.kill(dead, no_restart=True)
        return submit(self.actor(i), i)

    def call_all(self, method: str, timeout: float) -> dict[int, Any]:
        """``method()`` on every live actor; the answers that came within ``timeout`` (dead actors answer nothing)."""
        refs = {getattr(a, method).remote(): i for i, a in self.actors.items()}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout) if refs else ([], [])
        answers = {}
        for ref in ready:
            try:
                answers[refs[ref]] = self.ray.get(ref)
            except self.ray.exceptions.RayError:
                pass
        return answers

    def stop(self, pending: list[Any] = (), grace: float = STOP_GRACE_S) -> None:
        """Ask every actor to stop (they flush what they hold), wait up to ``grace`` s, then kill them all."""
        if pending:
            self.call_all("stop", timeout=5.0)
            self.ray.wait(list(pending), num_returns=len(pending), timeout=grace)
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.actors = {}


class _StallWatch:
    """Kills the actor of every unfinished share whose ``steps`` (from its ``progress()``) have not moved for
    ``stall_timeout`` seconds since it first reported (after its model loaded): a hung model call or env step that no
    exception will ever end. Its share then restarts on a fresh actor (:meth:`_Pool.kill`). 0: never."""

    def __init__(self, pool: _Pool, stall_timeout: float) -> None:
        self.pool, self.stall_timeout = pool, stall_timeout
        self.moved: dict[int, tuple[Any, float]] = {}  # share -> (its last step count, when it last changed)

    def poll(self, done: Any = (), now: float | None = None) -> dict[int, dict[str, Any]]:
        """The actors' progress reports (the non-empty ones), after killing the stalled."""
        now = time.perf_counter() if now is None else now
        states = {i: st for i, st in self.pool.call_all("progress", timeout=0.5).items() if st}
        for i, state in states.items():
            if self.moved.get(i, (None, 0.0))[0] != state["steps"]:
                self.moved[i] = (state["steps"], now)
        if self.stall_timeout > 0:
            for i, (_, since) in list(self.moved.items()):
                if i not in done and now - since > self.stall_timeout:
                    self.pool.kill(i, f"made no progress for {now - since:.0f} s (--ray-stall-timeout {self.stall_timeout:g})")
                    del self.moved[i]  # its fresh actor starts a new clock with its first report
        return states


# --- collect ------------------------------------------------------------------------------------------------------
class StoppedByDriver(Exception):
    """Raised in an actor between two turns after the driver asked it to stop (Ctrl-C / SIGTERM on the driver)."""


class CollectWorker(_Worker):
    """A Ray actor that plays one share of a collection into the dataset folder, exactly as one process would."""

    def __init__(self, cwd: str) -> None:
        super().__init__(cwd)
        self._stop = False
        self._state: dict[str, Any] = {}

    def run(self, play_share: Callable[..., Any], *args: Any) -> Any:
        """``play_share(*args, progress=self)``: pipeline.collect.collect_share, passed in by the driver (by name)."""
        self.check()
        return play_share(*args, progress=self)

    # The progress protocol of collect_episodes (start / update), read by the driver through progress().
    def start(self, total: int, done: int) -> None:
        self._state = {"planned": total, "skipped": done, "recorded": 0, "successes": 0, "steps": 0}

    def update(self, summary: Any) -> None:
        self._state.update(recorded=summary.recorded, successes=summary.successes, steps=summary.steps)
        if self._stop:
            raise StoppedByDriver("stopped by the Ray driver")  # between turns; run() flushes what finished

    def progress(self) -> dict[str, Any]:
        return dict(self._state)

    def stop(self) -> None:
        self._stop = True


def merge_summaries(summaries: list[Any], seconds: float) -> Any:
    """One :class:`~oreo_agents.recording.collect.CollectSummary` of the shares' (counts add up; time is the driver's)."""
    from oreo_agents.recording.collect import CollectSummary

    out = CollectSummary(seconds=seconds)
    for s in summaries:
        for name in ("planned", "skipped", "recorded", "successes", "steps"):
            setattr(out, name, getattr(out, name) + getattr(s, name))
        out.terminations.update(s.terminations)
        for task_type, (n, ok) in s.by_task_type.items():
            n_ok = out.by_task_type.setdefault(task_type, [0, 0])
            n_ok[0] += n
            n_ok[1] += ok
    return out


class _CollectProgress:
    """The driver's one progress bar over all shares (polled from the actors once a second)."""

    def __init__(self, pool: _Pool, bar: Any, stall_timeout: float = 0.0) -> None:
        self.pool, self.bar, self.started = pool, bar, time.perf_counter()
        self.first: dict[int, dict[str, Any]] = {}  # each share's first report (its plan and what was already there)
        self.last: dict[int, dict[str, Any]] = {}
        self.watch = _StallWatch(pool, stall_timeout)
        self._shown = False

    def poll(self, done: Any = ()) -> None:
        from oreo_agents.recording.collect import CollectSummary

        now = time.perf_counter()
        for i, state in self.watch.poll(done, now).items():
            self.first.setdefault(i, state)
            self.last[i] = state
        if len(self.first) < self.pool.n:
            return  # shown once every share has planned (an actor may wait for resources)
        if not self._shown:
            self.bar.start(sum(s["planned"] for s in self.first.values()), sum(s["skipped"] for s in self.first.values()))
            self._shown = True
        summary = CollectSummary(seconds=now - self.started)
        for i, s in self.last.items():  # a restarted share counts what its dead actor committed as done
            summary.recorded += s["skipped"] + s["recorded"] - self.first[i]["skipped"]
            summary.successes += s["successes"]
            summary.steps += s["steps"]
        self.bar.update(summary)


def collect_on_ray(cfg: Any, writer: Any, env_id: str, kwargs: dict[str, Any], *,
                   play_share: Callable[..., Any], report: Callable[[Any, Any, int], None]) -> Any:
    """Play ``cfg``'s plan on ``cfg.workers`` Ray actors into ``writer.out`` and ``report(cfg, summary, total)`` once.

    ``writer``: the driver's share writer that ``run_collect`` opened (closed here); ``play_share(cfg, settings, env_id,
    kwargs, (i, n), progress=...)`` plays one share in an actor (``pipeline.collect.collect_share``)."""
    import signal

    from oreo_agents.recording.collect import CollectProgress
    from oreo_agents.recording.writer import ShardWriter

    settings, n = writer.settings, cfg.workers
    cpus = 1 + int(getattr(cfg, "env_workers", 0) or 0)  # the actor's own process, plus its env worker processes
    results: dict[int, Any] = {}
    started = time.perf_counter()
    bar = CollectProgress(console, interactive=is_interactive(),
                          description=f"{'model' if cfg.model_dir else cfg.policy} on {cfg.env} ({n} Ray workers)")

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` (SIGTERM) stops like Ctrl-C: actors flush what they hold first

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        previous = None
    try:
        with _Cluster(cfg, cpus_per_worker=cpus) as ray:
            pool = _Pool(ray, CollectWorker, cfg, num_cpus=cpus,
                         num_gpus=gpus_per_worker(cfg, ray, needs_model=bool(cfg.model_dir)))
            progress = _CollectProgress(pool, bar, stall_timeout=float(getattr(cfg, "ray_stall_timeout", 0) or 0))
            runs: dict[int, Any] = {}

            def submit(actor: Any, i: int) -> Any:
                runs[i] = actor.run.remote(play_share, cfg, settings, env_id, kwargs, (i, n))
                return runs[i]

            try:
                pool.run(submit, results.__setitem__, poll=lambda: progress.poll(results), release=True)
            finally:
                pool.stop([ref for i, ref in runs.items() if i not in results])
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        bar.stop()
        writer.close()  # the driver's share lock; the manifest's status is set below
    # Every share done: mark the manifest complete as one process does (a whole-plan writer, now that no actor writes;
    # the settings are the manifest's own, so they compare equal).
    full = ShardWriter(cfg.out, settings, resume=True, shard_size=cfg.shard_size)
    full.close(complete=True)
    summary = merge_summaries([results[i] for i in range(n)], time.perf_counter() - started)
    report(cfg, summary, full.num_episodes)
    return summary


# --- eval ---------------------------------------------------------------------------------------------------------
class EvalWorker(_Worker):
    """A Ray actor that plays one share of an (agent, split)'s episodes; it keeps the last agent it built."""

    def __init__(self, cwd: str) -> None:
        super().__init__(cwd)
        self._agent: tuple[Any, Any] = (None, None)
        self._state: dict[str, int] = {}

    def play(self, play_share: Callable[..., Any], cfg: Any, policy: str, value: str | None, mode: str, *args: Any) -> Any:
        """``play_share(cfg, agent, policy, mode, *args, on_turn=...)`` (pipeline.evaluate.play_share) with this actor's
        agent; ``on_turn`` counts its turns for the driver's stall watch, from the first call (ready to play: the
        agent built, the imports done) on."""
        self.check()
        self._state = {}
        key = (policy, value, mode)
        if self._agent[0] != key:
            self._agent = (None, None)  # one model in memory at a time
            self._agent = (key, cfg.build(cfg.seed, policy=policy, value=value, select=mode))
        return play_share(cfg, self._agent[1], policy, mode, *args, on_turn=self._turn)

    def _turn(self) -> None:
        self._state = {"steps": self._state.get("steps", -1) + 1}

    def progress(self) -> dict[str, int]:
        return dict(self._state)

    def stop(self) -> None:  # the pool's stop protocol; an eval share is simply killed (nothing is written by it)
        pass


class EvalPool:
    """``run_eval``'s player on Ray: ``play`` stands for ``run_episodes`` of one (agent, split); ``close`` at the end."""

    def __init__(self, cfg: Any, play_share: Callable[..., Any]) -> None:
        from oreo_agents.pipeline.options import is_model_policy

        self.cfg, self.play_share = cfg, play_share
        self._cluster = _Cluster(cfg, cpus_per_worker=1)
        ray = self._cluster.__enter__()
        try:
            gpus = gpus_per_worker(cfg, ray, needs_model=any(is_model_policy(p) for p in cfg.policy))
            self.pool = _Pool(ray, EvalWorker, cfg, num_cpus=1, num_gpus=gpus)
        except BaseException:
            self._cluster.__exit__()
            raise

    def play(self, policy: str, value: str | None, mode: str, split: str, total: int,
             on_outcome: Callable[[Any], None], on_record: Callable[[dict[str, Any]], None],
             done: dict[int, Any] | None = None) -> list[Any]:
        """Every share of episodes ``0..total-1`` but those ``done`` before (a resumed evaluation: they come back as
        they are); outcomes sorted by index, records of the episodes played handed over in index order."""
        n, cfg, done = self.pool.n, self.cfg, done or {}
        shares: dict[int, tuple[list[Any], list[tuple[int, dict[str, Any]]]]] = {}
        watch = _StallWatch(self.pool, float(getattr(cfg, "ray_stall_timeout", 0) or 0))
        self.pool.run(lambda actor, i: actor.play.remote(self.play_share, cfg, policy, value, mode, split, total, (i, n),
                                                         {k: o for k, o in done.items() if k % n == i}),
                      shares.__setitem__, poll=lambda: watch.poll(shares))
        outcomes = sorted((o for got, _ in shares.values() for o in got), key=lambda o: o.index)
        for o in outcomes:
            on_outcome(o)
        for _, row in sorted((pair for _, rows in shares.values() for pair in rows), key=lambda pair: pair[0]):
            on_record(row)
        return outcomes

    def close(self) -> None:
        try:
            self.pool.stop()
        finally:
            self._cluster.__exit__()


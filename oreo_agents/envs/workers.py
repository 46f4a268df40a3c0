"""Env worker processes: envs stepped in other processes while the main process generates.

An :class:`EnvPool` starts ``workers`` processes hosting ``slots`` envs between them (slot ``s`` lives in worker
``s % workers``), each built by a picklable factory (:class:`EnvSpec`). The main process sends ``reset`` / ``step``
commands and collects whatever replies are ready (:meth:`EnvPool.wait`), so the rollout runner
(:mod:`oreo_agents.rollouts`) can put every env whose observation is back into the next generation batch instead of
waiting for the slowest env::

    >>> pool = EnvPool(EnvSpec("oreo_agents/ALFWorld-v0", {"expert": True}), slots=8, workers=2)  # doctest: +SKIP
    >>> pool.reset(0, seed=3, options={"task": 0})                                               # doctest: +SKIP
    >>> pool.wait()                                   # [(0, (observation, info))]                 # doctest: +SKIP
    >>> pool.step(0, "go to cabinet 1"); pool.wait()  # [(0, (obs, reward, term., trunc., info))]  # doctest: +SKIP
    >>> pool.close()                                                                               # doctest: +SKIP

Why not ``gymnasium.vector.AsyncVectorEnv`` (gymnasium 1.4.0, ``vector/async_vector_env.py``): it steps in lockstep
(``step_async`` sends to every pipe, l. 482-505; ``step_wait`` receives from every pipe in turn), a timeout neither kills nor
restarts the slow worker, a worker's exception leaves the vector env unusable, and its autoreset resets without our
seed / task options. See ``docs/notes/16-rollouts-at-scale-research.md`` section 4.2.

Processes start with ``forkserver`` (``spawn`` where it is missing): a fresh, torch-free interpreter forks each worker,
never the main process with its model, tokenizer threads or CUDA context (forking a threaded process can deadlock, and
a forked child cannot use CUDA). The server preloads the env modules, so a (re)start costs a fork, not the imports.
Workers set ``OMP_NUM_THREADS=1`` and ignore Ctrl-C (the main process stops them). From CPython 3.11's
``multiprocessing``: the server is a new interpreter (``forkserver.py`` ``ensure_running``: ``spawnv_passfds`` of
``sys.executable -c 'from multiprocessing.forkserver import main; ...'``) that imports the
``set_forkserver_preload`` modules once (``main``); each child gets the parent's ``sys.path`` and working folder
(``popen_forkserver.py`` ``_launch`` sends ``spawn.get_preparation_data``) and re-runs the parent's main script as
``__mp_main__`` (``spawn.py`` ``_fixup_main_from_path``), hence the ``if __name__ == "__main__":`` guard scripts need.

A worker that dies (its process sentinel fires, its pipe closes) or hangs (a command older than ``timeout`` seconds) is
killed and restarted, at most ``restarts`` times in a row; each episode it hosted is replayed from what the pool
recorded (``reset(seed, options)`` and the actions sent so far) and must give the recorded observations again (an env
that does not is an error, never papered over), then the commands in flight are sent again. Nothing is lost or played
twice: the caller only ever sees one reply per command. An exception raised by an env is not a crash: it is raised in
the main process, with the worker's traceback as its cause.

Commands and replies are pickled over one ``multiprocessing.Pipe`` per worker: that is inter-process communication
between processes of one run, not data read from disk.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from typing import Any, Callable, Iterator

from oreo_agents.envs.env_worker import THREAD_LIMITS, EnvSpec, RemoteEnv, RemoteTraceback, serve
from oreo_agents.errors import OreoError

# --- the main process's side -----------------------------------------------------------------------------------------
class _Died(Exception):
    """A worker crashed or hung (the reason is the message)."""


@dataclass
class _Command:
    slot: int
    kind: str  # reset / step
    args: tuple[Any, ...]


@dataclass
class _Episode:
    """A slot's running episode as the pool saw it: enough to replay it in a new worker and check the replay."""

    label: str = ""
    reset: tuple[Any, ...] | None = None  # (seed, options) once the reset was answered
    observations: list[Any] = field(default_factory=list)  # reset observation, then (obs, reward, term, trunc) per step
    actions: list[Any] = field(default_factory=list)


@dataclass
class _Worker:
    index: int
    slots: list[int]
    process: Any = None
    conn: Any = None
    inflight: deque[_Command] = field(default_factory=deque)  # answered in order
    since: float = 0.0  # when the oldest command in flight started (the previous reply, or its sending)
    failures: int = 0  # restarts since the last answered command


def _context() -> Any:
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


@contextmanager
def _single_threaded_environment() -> Iterator[None]:
    """Thread limits for what a process start inherits (the fork server or a spawned worker); restored after."""
    saved = {name: os.environ.get(name) for name in THREAD_LIMITS}
    os.environ.update({name: "1" for name in THREAD_LIMITS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class EnvPool:
    """``slots`` envs in ``workers`` processes; see the module docstring.

    Args:
        make_env: a picklable factory (e.g. :class:`EnvSpec`), called once per slot in its worker.
        timeout: seconds a command may take before its worker is deemed hung (killed, restarted, replayed).
        restarts: restarts of one worker in a row (without an answered command between) before giving up.
    """

    def __init__(self, make_env: Callable[[], Any], slots: int, workers: int, *, timeout: float = 300.0,
                 restarts: int = 3) -> None:
        if workers < 1 or slots < 1:
            raise OreoError(f"--env-workers {workers}: need at least one worker and one env (got {slots} envs)")
        try:
            pickle.dumps(make_env)
        except Exception as exc:
            raise OreoError(f"--env-workers {workers}: the env factory cannot be sent to a worker process ({exc}); "
                            "pass an EnvSpec(env_id, kwargs)") from None
        self.make_env, self.timeout, self.restarts = make_env, timeout, restarts
        self.name = getattr(make_env, "env_id", type(make_env).__name__)
        self._ctx = _context()
        if self._ctx.get_start_method() == "forkserver" and isinstance(make_env, EnvSpec):
            self._ctx.set_forkserver_preload(["oreo_agents.envs.workers", "gymnasium", *make_env.modules()])
        self.workers = [_Worker(w, list(range(w, slots, workers))) for w in range(min(workers, slots))]
        self.episodes = [_Episode() for _ in range(slots)]
        self.envs: list[RemoteEnv] = [RemoteEnv("")] * slots
        try:
            for worker in self.workers:
                self._spawn(worker)
            for worker in self.workers:
                try:
                    self._await_ready(worker)
                except _Died as died:  # at start there is nothing to replay: a worker that cannot start is an error
                    raise OreoError(
                        f"env worker {worker.index} (env {self.name}) {died} while starting (a script that starts env "
                        "workers must guard its entry point with `if __name__ == '__main__':`, see multiprocessing's "
                        "'Safe importing of main module')") from None
        except BaseException:
            self.close()
            raise

    # --- commands ------------------------------------------------------------------------------------------------
    def reset(self, slot: int, seed: int | None, options: dict[str, Any] | None, *, label: str = "") -> None:
        """Send ``reset(seed=seed, options=options)`` to ``slot`` (``label``: names the episode in errors)."""
        self.episodes[slot] = _Episode(label=label)
        self._send(_Command(slot, "reset", (seed, options)))

    def step(self, slot: int, action: Any) -> None:
        self._send(_Command(slot, "step", (action,)))

    def wait(self) -> list[tuple[int, Any]]:
        """Block until at least one command is answered; every answer that is there, as ``(slot, result)``:
        ``(observation, info)`` for a reset, ``(observation, reward, terminated, truncated, info)`` for a step."""
        while True:
            busy = [w for w in self.workers if w.inflight]
            if not busy:
                raise RuntimeError("EnvPool.wait: no command in flight")
            deadline = min(w.since for w in busy) + self.timeout
            ready = set(wait_for([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                 max(0.0, deadline - time.monotonic())))
            replies: list[tuple[int, Any]] = []
            for worker in busy:
                try:
                    while worker.inflight and worker.conn.poll():
                        replies.append(self._answered(worker, worker.conn.recv()))
                    if worker.inflight and worker.process.sentinel in ready:
                        raise _Died(f"exited with code {worker.process.exitcode}")
                    if worker.inflight and time.monotonic() - worker.since > self.timeout:
                        raise _Died(f"did not answer within --env-timeout {self.timeout:g} s")
                except (EOFError, OSError) as exc:
                    self._restart(worker, self._lost(worker, exc))
                except _Died as died:
                    self._restart(worker, str(died))
            if replies:
                return replies

    def close(self) -> None:
        """Ask every worker to stop; kill those still running a moment later."""
        for worker in self.workers:
            try:
                if worker.conn is not None:
                    worker.conn.send(("close",))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            if worker.process is not None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            self._kill(worker)

    # --- internals -----------------------------------------------------------------------------------------------
    def _worker_of(self, slot: int) -> _Worker:
        return self.workers[slot % len(self.workers)]

    def _describe_slot(self, slot: int) -> str:
        episode = self.episodes[slot]
        return f"slot {slot}" + (f" (episode {episode.label})" if episode.label else "")

    def _send(self, command: _Command) -> None:
        worker = self._worker_of(command.slot)
        if not worker.inflight:
            worker.since = time.monotonic()
        worker.inflight.append(command)
        try:
            worker.conn.send((command.kind, command.slot, command.args))
        except OSError as exc:  # the worker died while idle: the restart sends this command again
            self._restart(worker, self._lost(worker, exc))

    def _answered(self, worker: _Worker, message: tuple[Any, ...]) -> tuple[int, Any]:
        kind, slot, result = message[0], message[1], message[2]
        if kind == "error":
            raise message[2] from RemoteTraceback(f"in env worker {worker.index}, {self._describe_slot(slot)}:\n"
                                                 f"{message[3]}")
        command = worker.inflight.popleft()
        assert command.slot == slot, f"env worker {worker.index} answered slot {slot}, expected {command.slot}"
        worker.since, worker.failures = time.monotonic(), 0
        episode = self.episodes[slot]
        if command.kind == "reset":
            episode.reset, episode.observations = command.args, [result[0]]
        else:
            episode.actions.append(command.args[0])
            episode.observations.append(result[:4])
            if result[2] or result[3]:  # ended: nothing to replay for this slot any more
                self.episodes[slot] = _Episode()
        return slot, result

    def _spawn(self, worker: _Worker) -> None:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(target=serve, args=(theirs, self.make_env, worker.slots),
                                    name=f"oreo-env-worker-{worker.index}", daemon=True)
        try:
            with _single_threaded_environment():
                process.start()
        finally:
            theirs.close()
        worker.process, worker.conn = process, ours

    def _recv(self, worker: _Worker, timeout: float) -> tuple[Any, ...]:
        """One message from a worker within ``timeout`` seconds; an env's exception is raised here."""
        ready = wait_for([worker.conn, worker.process.sentinel], timeout)
        if worker.conn in ready:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError) as exc:
                raise _Died(self._lost(worker, exc)) from None
            if message[0] == "error":
                where = self._describe_slot(message[1]) if message[1] is not None else "building its envs"
                raise message[2] from RemoteTraceback(f"in env worker {worker.index}, {where}:\n{message[3]}")
            return message
        if ready:
            raise _Died(f"exited with code {worker.process.exitcode}")
        raise _Died(f"did not answer within --env-timeout {self.timeout:g} s")

    def _await_ready(self, worker: _Worker) -> None:
        _, _, described = self._recv(worker, self.timeout)
        for slot, env in described.items():
            self.envs[slot] = env

    def _restart(self, worker: _Worker, reason: str) -> None:
        """Kill ``worker``, start it again, replay its episodes and resend its commands (bounded, see ``restarts``)."""
        from oreo_agents.console import console

        while True:
            worker.failures += 1
            doing = ", ".join(f"{c.kind} on {self._describe_slot(c.slot)}" for c in worker.inflight) or "idle"
            if worker.failures > self.restarts:
                self._kill(worker)
                raise OreoError(f"env worker {worker.index} (env {self.name}) {reason} ({doing}), "
                                f"{worker.failures} times in a row: giving up (--env-restarts {self.restarts})")
            console.print(f"[yellow]warning:[/] env worker {worker.index} (env {self.name}) {reason} ({doing}); "
                          f"restarting it and replaying its episodes ({worker.failures}/{self.restarts})",
                          soft_wrap=True, markup=True, highlight=False)
            self._kill(worker)
            try:
                self._spawn(worker)
                self._await_ready(worker)
                for slot in worker.slots:
                    self._replay(worker, slot)
                worker.since = time.monotonic()
                for command in worker.inflight:
                    worker.conn.send((command.kind, command.slot, command.args))
                return
            except _Died as died:
                reason = str(died)
            except OSError as exc:
                reason = self._lost(worker, exc)

    def _replay(self, worker: _Worker, slot: int) -> None:
        episode = self.episodes[slot]
        if episode.reset is None:
            return
        worker.conn.send(("replay", slot, (*episode.reset, list(episode.actions))))
        _, _, replayed = self._recv(worker, self.timeout * (1 + len(episode.actions)))
        for step, (want, got) in enumerate(zip(episode.observations, replayed)):
            if want != got:
                what = "a different first observation" if step == 0 else f"a different step {step}"
                raise OreoError(
                    f"env {self.name}: replaying {self._describe_slot(slot)} (reset seed {episode.reset[0]}) after env "
                    f"worker {worker.index} restarted gave {what} than recorded: the env is not a function of its "
                    "reset seed, options and actions, so the episode cannot be resumed")

    def _lost(self, worker: _Worker, exc: BaseException) -> str:
        """Why a worker's pipe broke: its exit code when it died (a moment to reap it), else the error."""
        worker.process.join(1.0)
        code = worker.process.exitcode
        return f"exited with code {code}" if code is not None else f"lost its pipe ({type(exc).__name__})"

    def _kill(self, worker: _Worker) -> None:
        if worker.process is not None:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5.0)
        if worker.conn is not None:
            worker.conn.close()
        worker.process, worker.conn = None, None


__all__ = ["EnvPool", "EnvSpec", "RemoteEnv", "RemoteTraceback", "serve"]

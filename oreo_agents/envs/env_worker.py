"""What runs inside an env worker process (:mod:`oreo_agents.envs.workers` starts them): the picklable env factory, the
command loop, and what the main process learns of each hosted env.

A worker builds one env per slot it hosts, answers ``("ready", None, {slot: RemoteEnv})``, then serves
``(kind, slot, args)`` commands one at a time (``reset``, ``step``, ``replay``) with ``("ok", slot, result)`` or
``("error", slot, exception, traceback text)``, until ``("close",)`` or the main process goes away. No torch here.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class EnvSpec:
    """A picklable env factory: ``EnvSpec(env_id, kwargs)()`` is :func:`oreo_agents.envs.make(env_id, **kwargs)`.

    ``env_id`` must resolve in a fresh process: a family name (``alfworld``), one of our ids, or ``"module:Id-v0"`` for
    an env registered by importing ``module`` (a bare id registered by an import in this process only is unknown
    there)."""

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        from oreo_agents.envs import make

        return make(self.env_id, **self.kwargs)

    def modules(self) -> list[str]:
        """The modules that define the env (a worker's server imports them once)."""
        import gymnasium as gym

        from oreo_agents.envs import register_envs, resolve

        register_envs()
        found = [self.env_id.split(":", 1)[0]] if ":" in self.env_id else []
        entry = gym.spec(resolve(self.env_id)).entry_point
        return found + ([entry.split(":", 1)[0]] if isinstance(entry, str) else [])


@dataclass(frozen=True)
class _Spec:
    id: str


@dataclass
class RemoteEnv:
    """What the main process knows of an env a worker hosts: its id (``spec.id``), step limit and task count, i.e. what
    :func:`~oreo_agents.envs.core.task_list` and the recorder's ``env_id_of`` read. It cannot be stepped itself."""

    env_id: str
    max_steps: int | None = None
    tasks: range | None = None  # task indices 0..n-1 when the env lists its tasks

    @property
    def spec(self) -> _Spec:
        return _Spec(self.env_id)

    @property
    def unwrapped(self) -> RemoteEnv:
        return self


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (the cause of the re-raised exception)."""

    def __str__(self) -> str:
        return str(self.args[0])


# --- the worker process ----------------------------------------------------------------------------------------------
def _describe(env: Any) -> RemoteEnv:
    from oreo_agents.envs.core import task_list

    base = getattr(env, "unwrapped", env)
    spec = getattr(base, "spec", None) or getattr(env, "spec", None)  # the recorder's env_id_of rule
    found = task_list(env)
    return RemoteEnv(spec.id if spec is not None else type(base).__name__, getattr(base, "max_steps", None),
                     range(found[1]) if found is not None else None)


def _reset(env: Any, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    obs, info = env.reset(seed=seed, options=options)
    return str(obs), info


def _step(env: Any, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
    obs, reward, terminated, truncated, info = env.step(action)
    return str(obs), float(reward), bool(terminated), bool(truncated), info


def _replay(env: Any, seed: int | None, options: dict[str, Any] | None, actions: list[Any]) -> list[Any]:
    """The observations (and reward, ending flags) of ``reset`` then each action: what a restarted worker checks."""
    out: list[Any] = [_reset(env, seed, options)[0]]
    out += [_step(env, a)[:4] for a in actions]
    return out


_COMMANDS: dict[str, Callable[..., Any]] = {"reset": _reset, "step": _step, "replay": _replay}


def _error(slot: int | None, exc: BaseException) -> tuple[Any, ...]:
    text = "".join(traceback.format_exception(exc))
    try:
        pickle.dumps(exc)
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return ("error", slot, exc, text)


def serve(conn: Any, make_env: Callable[[], Any], slots: list[int]) -> None:
    """A worker's loop: build one env per slot, then answer commands one at a time until ``close`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it closes the pool
    for name in THREAD_LIMITS:
        os.environ[name] = "1"
    envs: dict[int, Any] = {}
    try:
        for slot in slots:
            envs[slot] = make_env()
        conn.send(("ready", None, {slot: _describe(env) for slot, env in envs.items()}))
    except Exception as exc:
        conn.send(_error(None, exc))
        return
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the main process is gone
                return
            if message[0] == "close":
                return
            kind, slot, args = message
            try:
                conn.send(("ok", slot, _COMMANDS[kind](envs[slot], *args)))
            except Exception as exc:
                conn.send(_error(slot, exc))
    finally:
        for env in envs.values():
            try:
                env.close()
            except Exception:
                pass

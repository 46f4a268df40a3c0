"""oreo-agents: offline reinforcement learning (OREO) for LLM agents.

Importing the package makes the Gymnasium env ids (``oreo_agents/ALFWorld-v0``, ``oreo_agents/Math-v0``,
``oreo_agents/WebShop-v0``) available and imports nothing heavy: not gymnasium or numpy (the ids are registered when
gymnasium is imported, before or after this package), not torch or transformers (only ``oreo_agents.learning``,
``oreo_agents.agent`` and the model policies import those).
"""

from __future__ import annotations

from typing import Any

from oreo_agents.envs import register_envs, register_when_gymnasium_loads

register_when_gymnasium_loads()


def __getattr__(name: str) -> Any:
    # The version is read from the installed metadata on first use: scanning it costs more than the rest of the import.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("oreo-agents")
        except PackageNotFoundError:  # running from a source tree that was never installed
            value = "0.0.0+source"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "register_envs"]

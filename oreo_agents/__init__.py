"""oreo-agents: offline reinforcement learning (OREO) for LLM agents.

Importing the package registers the Gymnasium envs (``oreo_agents/ALFWorld-v0``, ``oreo_agents/Math-v0``,
``oreo_agents/WebShop-v0``) and nothing heavier: torch and transformers are imported only by ``oreo_agents.learning``,
``oreo_agents.agent`` and the model policies.
"""

from importlib.metadata import PackageNotFoundError, version

from oreo_agents.envs import register_envs

try:
    __version__ = version("oreo-agents")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

register_envs()

__all__ = ["__version__", "register_envs"]

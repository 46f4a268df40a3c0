"""A WebShop-style web-shopping env (Yao et al., 2022): search, results, item pages, options, buy; reward in [0, 1].

    >>> import gymnasium as gym, oreo_agents
    >>> env = gym.make("oreo_agents/WebShop-v0", split="train", num_products=100)
    >>> obs, info = env.reset(seed=0)
    >>> info["admissible_commands"][0].startswith("search[")
    True

Modules: ``catalog`` (products, instructions, split), ``generator`` (the embedded seeded shop), ``realdata`` (the real
WebShop files), ``search`` (BM25), ``reward`` (WebShop's reward), ``pages`` (text + HTML), ``expert``, ``env``.
Importing this package imports no heavy dependency; the env module is loaded by ``gym.make``.
"""

from __future__ import annotations

__all__ = ["WebShopEnv"]


def __getattr__(name: str):
    if name == "WebShopEnv":
        from oreo_agents.envs.webshop.env import WebShopEnv

        return WebShopEnv
    raise AttributeError(name)

"""Shared pytest fixtures.

``alfworld_games_root`` — a Path to an embedded ALFWorld games root (``json_2.1.1/<split>/...`` + ``gameset.json``)
holding, generated once per test session:

- ``train``: one game of each of the six task types (``ALFWORLD_TEST_GAMES["train"]`` = 6),
- ``valid_unseen``: two games (pick_and_place_simple, look_at_obj_in_light).

Use it as ``gym.make("oreo_agents/ALFWorld-v0", games_root=alfworld_games_root, num_tasks=6)`` (train) or
``ensure_games(alfworld_games_root, split="valid_unseen", num_games=2)``; asking for these counts never generates more.
Generation takes ~15-30 s on one core. Set ``OREO_AGENTS_TEST_CACHE=/some/dir`` to keep the set between sessions (the
cache folder is keyed by the generator version and the alfworld grammar hash, so a stale set is never reused).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ALFWORLD_TEST_GAMES = {"train": 6, "valid_unseen": 2}
ALFWORLD_TEST_SEED = 0


@pytest.fixture(scope="session")
def alfworld_games_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oreo_agents.envs.alfworld.games import engine_fingerprint, ensure_games
    from oreo_agents.envs.alfworld.generator import GENERATOR_VERSION

    cache = os.environ.get("OREO_AGENTS_TEST_CACHE")
    if cache:
        key = f"alfworld-g{GENERATOR_VERSION}-{engine_fingerprint()['grammar_sha256'][:12]}-s{ALFWORLD_TEST_SEED}"
        root = Path(cache) / key
    else:
        root = tmp_path_factory.mktemp("alfworld_games")
    for split, n in ALFWORLD_TEST_GAMES.items():
        ensure_games(root, split=split, num_games=n, seed=ALFWORLD_TEST_SEED, progress=False)
    return root

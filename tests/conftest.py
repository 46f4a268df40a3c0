"""Shared pytest fixtures.

``alfworld_games_root`` — a Path to an embedded ALFWorld games root (``json_2.1.1/<split>/...`` + ``gameset.json``)
holding, generated once per test session:

- ``train``: one game of each of the six task types (``ALFWORLD_TEST_GAMES["train"]`` = 6),
- ``valid_unseen``: two games (pick_and_place_simple, look_at_obj_in_light).

Use it as ``gym.make("oreo_agents/ALFWorld-v0", games_root=alfworld_games_root, num_tasks=6)`` (train) or
``ensure_games(alfworld_games_root, split="valid_unseen", num_games=2)``; asking for these counts never generates more.
Generation takes ~15-30 s on one core. Set ``OREO_AGENTS_TEST_CACHE=/some/dir`` to keep the set between sessions (the
cache folder is keyed by the generator version and the alfworld grammar hash, so a stale set is never reused).

``OREO_AGENTS_CACHE`` (where compiled ALFWorld games go, among others) points at a folder of this session, never at the
user's ``~/.cache/oreo-agents``: ``$OREO_AGENTS_TEST_CACHE/oreo-agents-cache`` when that is set (compiled games are
content-keyed and versioned, so reusing them is safe), else a temporary folder removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ALFWORLD_TEST_GAMES = {"train": 6, "valid_unseen": 2}
ALFWORLD_TEST_SEED = 0
_SESSION_CACHE: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so nothing a test module does at import time can write into the user's cache.
    global _SESSION_CACHE
    keep = os.environ.get("OREO_AGENTS_TEST_CACHE")
    if keep:
        os.environ["OREO_AGENTS_CACHE"] = str(Path(keep) / "oreo-agents-cache")
    else:
        _SESSION_CACHE = os.environ["OREO_AGENTS_CACHE"] = tempfile.mkdtemp(prefix="oreo-agents-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


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

"""Fixtures for the learner tests (datasets from fake_episodes.py, one torch thread)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from fake_episodes import episode, write_dataset  # noqa: E402


@pytest.fixture
def mixed_dataset(tmp_path: Path) -> Path:
    """4 tasks x (1 success + 1 failure), recorded by a model policy (so rft/dpo/oreo all have what they need)."""
    recs = [episode(t, ok, sample=int(not ok), policy="model") for t in range(4) for ok in (True, False)]
    return write_dataset(tmp_path / "data" / "mixed.parquet", recs)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread is at most 2x slower, contention far worse
    yield

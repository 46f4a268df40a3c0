"""Fixtures for the model tests: offline hub, one torch thread (the machine is shared)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


STANDIN = os.path.join(os.path.dirname(__file__), "standin")


def _drop_vllm_modules() -> None:
    import sys

    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def standin_vllm(monkeypatch):
    """The ``vllm`` stand-in of ``tests/models/standin/vllm`` (signatures of vllm 0.32.0, calls recorded in
    ``vllm.RECORD``) imported as ``vllm``, with the backend's engine registry empty before and after."""
    from oreo_agents.models import vllm_backend

    _drop_vllm_modules()
    monkeypatch.syspath_prepend(STANDIN)
    import vllm

    assert vllm.__version__.endswith("+standin")
    vllm.RECORD.reset()
    monkeypatch.setattr(vllm_backend, "_held", None, raising=False)  # the registry, empty (restored afterwards)
    monkeypatch.setattr(vllm_backend, "_adapter_ids", {}, raising=False)
    yield vllm
    _drop_vllm_modules()

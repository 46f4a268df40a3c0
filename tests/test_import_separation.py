"""Researchers reusing the envs and the recorder must not need the learning stack (torch, transformers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_TORCH = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'transformers', 'accelerate', 'peft'):\n"
    "            raise ImportError(f'{name} is blocked in this test')\n"
    "sys.meta_path.insert(0, Block())\n"
)


@pytest.mark.parametrize(
    "module",
    [
        "oreo_agents",
        "oreo_agents.envs",
        "oreo_agents.prompting",
        "oreo_agents.turns",
        "oreo_agents.recording.schema",
        "oreo_agents.envs.alfworld",
        "oreo_agents.envs.math",
        "oreo_agents.envs.webshop",
        "oreo_agents.recording",
        "oreo_agents.policies",
    ],
)
def test_module_imports_without_torch(module):
    code = BLOCK_TORCH + f"import {module}\nprint('OK')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize("module", ["oreo_agents.rollouts", "oreo_agents.pipeline.collect", "oreo_agents.pipeline.play"])
def test_scripted_collection_and_play_import_without_torch(module):
    """The rollout runner and the collect / play pipeline with a scripted policy need no torch."""
    code = BLOCK_TORCH + (
        f"import {module}\n"
        "from oreo_agents.pipeline.options import AgentOptions\n"
        "assert AgentOptions(policy='noisy-expert').build(0).name == 'noisy-expert'\n"
        "print('OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]

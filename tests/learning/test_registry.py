"""The trainers by ``--algo``: one table in ``oreo_agents.learning``, every algorithm of TrainConfig in it, nothing else."""

from __future__ import annotations

import subprocess
import sys
import types
import typing

import pytest

from oreo_agents.errors import OreoError
from oreo_agents.learning import TRAINERS, make_trainer
from oreo_agents.learning.baselines import DPOTrainer, PolicyTrainer, SFTTrainer
from oreo_agents.learning.config import TrainConfig
from oreo_agents.learning.trainer import Trainer


def test_every_algo_of_the_config_has_its_trainer_and_no_other():
    algos = typing.get_args(typing.get_type_hints(TrainConfig)["algo"])
    assert sorted(TRAINERS) == sorted(algos)
    for algo, cls in TRAINERS.items():
        assert issubclass(cls, Trainer) and cls.algo == algo


def test_make_trainer_builds_the_table_entry_and_refuses_unknown_algos(tmp_path):
    assert type(make_trainer(TrainConfig(algo="dpo", data=["x"], out=str(tmp_path)))) is DPOTrainer
    with pytest.raises(OreoError, match="--algo: unknown algorithm 'ppo'"):
        make_trainer(types.SimpleNamespace(algo="ppo"))


def test_dpo_reuses_the_policy_trainer_not_sft():
    assert issubclass(DPOTrainer, PolicyTrainer) and not issubclass(DPOTrainer, SFTTrainer)


def test_the_learning_package_and_its_config_import_no_torch():
    code = "import sys, oreo_agents.learning, oreo_agents.learning.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

"""The learner: data (episodes -> tokens), losses (one function per equation), trainers (OREO, SFT, RFT, DPO).

The trainers by ``--algo``, and the one way to build one::

    >>> from oreo_agents.learning import make_trainer
    >>> make_trainer(TrainConfig(algo="oreo", data=["datasets/alfworld-expert"], out="runs/oreo")).train()  # doctest: +SKIP

``TRAINERS`` (algo -> trainer class) and ``make_trainer`` import torch when first used, not when this package is imported
(``oreo_agents.learning.config`` stays light for the CLI). The models the trainers load live in ``oreo_agents.models``.
"""

from __future__ import annotations

from typing import Any


def trainers() -> dict[str, type]:
    """``--algo`` -> its trainer class."""
    from oreo_agents.learning.baselines import DPOTrainer, RFTTrainer, SFTTrainer
    from oreo_agents.learning.oreo import OREOTrainer

    return {"oreo": OREOTrainer, "sft": SFTTrainer, "rft": RFTTrainer, "dpo": DPOTrainer}


def make_trainer(cfg: Any) -> Any:
    """The trainer for ``cfg.algo`` (a :class:`~oreo_agents.learning.config.TrainConfig`), ready to ``.train()``."""
    table = trainers()
    if cfg.algo not in table:
        from oreo_agents.errors import OreoError

        raise OreoError(f"--algo: unknown algorithm '{cfg.algo}' (choose {', '.join(table)})")
    return table[cfg.algo](cfg)


def __getattr__(name: str) -> Any:
    if name == "TRAINERS":  # the table itself, built on first access (it imports torch)
        return trainers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
